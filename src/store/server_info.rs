//! What the Redis server says of itself (`INFO`): its version, and the CPU time and commands it
//! has used so far, read before and after a benchmark run to charge each run its own share.

use anyhow::{Context, Result};
use redis::aio::ConnectionLike;

/// The server's CPU time (user + system) and commands processed since it started.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    pub cpu_s: f64,
    pub commands: u64,
}

/// Reads the counters; the `INFO` call itself counts as one command.
pub async fn counters(conn: &mut impl ConnectionLike) -> Result<Counters> {
    let info: String = redis::cmd("INFO").arg("everything").query_async(conn).await?;
    let cpu = |name: &str| -> Result<f64> {
        field(&info, name)?.parse::<f64>().with_context(|| format!("INFO {name} is not a number"))
    };
    let commands = field(&info, "total_commands_processed")?;
    Ok(Counters {
        cpu_s: cpu("used_cpu_user")? + cpu("used_cpu_sys")?,
        commands: commands
            .parse()
            .with_context(|| format!("INFO total_commands_processed is {commands:?}"))?,
    })
}

/// The server's version, as `INFO server` gives it.
pub async fn version(conn: &mut impl ConnectionLike) -> Result<String> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(field(&info, "redis_version")?.to_string())
}

/// A `name:value` line of an `INFO` reply.
fn field<'a>(info: &'a str, name: &str) -> Result<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
        .map(str::trim)
        .with_context(|| format!("INFO has no {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_found_by_name() {
        let info = "# Server\r\nredis_version:7.0.15\r\nused_cpu_sys:1.5\r\n";
        assert_eq!(field(info, "redis_version").unwrap(), "7.0.15");
        assert_eq!(field(info, "used_cpu_sys").unwrap(), "1.5");
        assert!(field(info, "used_cpu").is_err());
    }
}
