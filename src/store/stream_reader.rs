//! Reading the event stream fast. `consume` must replay about a million events a second, so this
//! reader sends `XREAD` itself on a plain connection (TCP or a unix socket; with `AUTH` and
//! `SELECT` as the URL asks) and parses the reply where it lies ([`crate::store::xread_reply`]).
//! It also asks for the next chunk as soon as it has the current one, so that Redis builds the
//! next reply while `consume` applies this one.
//!
//! TLS connections (`rediss://`) are read through the general client instead, into the same
//! [`Chunk`], so `consume` has one way of applying entries whatever the connection.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use redis::ConnectionAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::store::connection::{CONNECT_TIMEOUT_MS, RESPONSE_TIMEOUT_MS};
use crate::store::retry::{RETRY_LIMIT, backoff_ms};
use crate::store::target::Target;
use crate::store::xread_reply::{Chunk, MAX_REPLY_BYTES, Parse, Step, parse};

/// Bytes asked of the socket per read.
const READ_BYTES: usize = 1 << 20;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Reads the events stream, a chunk of up to `count` entries at a time.
pub struct StreamReader {
    target: Target,
    stream: String,
    count: usize,
    block_ms: u64,
    /// Whether the connection is plain (TCP or unix socket), read by this module's parser.
    plain: bool,
    raw: Option<Box<dyn Io>>,
    client: Option<redis::aio::ConnectionManager>,
    /// The read-ahead sent and not yet received: the entries after this id.
    asked: Option<String>,
}

impl StreamReader {
    /// Connects to `target` to read `stream`. Reads wait up to `block_ms` for new entries.
    pub async fn connect(
        target: &Target,
        stream: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<StreamReader> {
        assert!(count >= 1);
        let mut reader = StreamReader {
            target: target.clone(),
            stream: stream.to_string(),
            count,
            block_ms,
            plain: true,
            raw: None,
            client: None,
            asked: None,
        };
        reader.reconnect().await?;
        Ok(reader)
    }

    async fn reconnect(&mut self) -> Result<()> {
        self.raw = None;
        self.asked = None;
        let info = self.target.client()?.get_connection_info().clone();
        let io: Box<dyn Io> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let tcp = tokio::time::timeout(
                    Duration::from_millis(CONNECT_TIMEOUT_MS),
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| anyhow!("cannot connect to Redis at {}: timed out", self.target))?
                .with_context(|| format!("cannot connect to Redis at {}", self.target))?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            }
            ConnectionAddr::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("cannot connect to Redis at {}", self.target))?,
            ),
            _ => {
                self.plain = false;
                if self.client.is_none() {
                    self.client = Some(crate::store::connection::manager(&self.target).await?);
                }
                return Ok(());
            }
        };
        self.raw = Some(io);
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut auth = vec!["AUTH"];
            auth.extend(settings.username());
            auth.push(password);
            self.simple(&auth).await.map_err(|e| {
                anyhow!(
                    "Redis at {} refused the login: {}",
                    self.target,
                    self.target.scrub(&e.to_string())
                )
            })?;
        }
        if settings.db() != 0 {
            self.simple(&["SELECT", &settings.db().to_string()]).await?;
        }
        Ok(())
    }

    /// Sends a command whose answer is a one-line status, and checks it is not an error.
    async fn simple(&mut self, args: &[&str]) -> Result<()> {
        let io = self.raw.as_mut().expect("connected");
        io.write_all(&encode(args)).await?;
        let mut reply = Vec::new();
        let deadline = Duration::from_millis(RESPONSE_TIMEOUT_MS);
        loop {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(deadline, io.read(&mut byte)).await.map_err(|_| {
                anyhow!("no answer to {} within {RESPONSE_TIMEOUT_MS} ms", args[0])
            })??;
            ensure!(n == 1, "the connection closed during {}", args[0]);
            reply.push(byte[0]);
            if reply.ends_with(b"\r\n") {
                break;
            }
            ensure!(reply.len() < 4096, "an over-long answer to {}", args[0]);
        }
        match reply.first() {
            Some(b'+') => Ok(()),
            _ => bail!("{}", String::from_utf8_lossy(&reply).trim_end()),
        }
    }

    /// Fills `chunk` with the entries after `after` (none when nothing came within the block
    /// time, or at once when `wait` is false or the read-ahead found nothing). Retries transient failures,
    /// reconnecting, up to [`RETRY_LIMIT`] times. On a plain connection the next chunk is asked
    /// for before this returns.
    pub async fn read(&mut self, after: &str, wait: bool, chunk: &mut Chunk) -> Result<()> {
        let mut attempt = 0;
        loop {
            let result = if self.plain {
                self.read_raw(after, wait, chunk).await
            } else {
                self.read_client(after, wait, chunk).await
            };
            match result {
                Ok(()) => return Ok(()),
                Err(err) if attempt < RETRY_LIMIT && is_transient(&err) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(backoff_ms(attempt))).await;
                    // A failed reconnect is one more attempt.
                    let _ = self.reconnect().await;
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("reading {}", self.stream));
                }
            }
        }
    }

    async fn read_raw(&mut self, after: &str, wait: bool, chunk: &mut Chunk) -> Result<()> {
        if self.raw.is_none() {
            self.reconnect().await?;
        }
        match self.asked.take() {
            // The read-ahead asked for exactly these entries, without waiting. If there were none
            // yet, the caller hears so at once (it may then see that the runs are over) and waits
            // on its next read.
            Some(asked) if asked == after => self.receive(chunk).await?,
            // It asked for others: its answer is read and dropped.
            Some(_) => {
                self.receive(chunk).await?;
                self.send(after, wait).await?;
                self.receive(chunk).await?;
            }
            None => {
                self.send(after, wait).await?;
                self.receive(chunk).await?;
            }
        }
        if let Some(last) = chunk.last_id() {
            let last = last.to_string();
            self.send(&last, false).await?;
            self.asked = Some(last);
        }
        Ok(())
    }

    async fn send(&mut self, after: &str, wait: bool) -> Result<()> {
        let count = self.count.to_string();
        let block = self.block_ms.to_string();
        let mut args = vec!["XREAD", "COUNT", &count];
        if wait {
            args.extend(["BLOCK", &block]);
        }
        args.extend(["STREAMS", &self.stream, after]);
        let io = self.raw.as_mut().expect("connected");
        io.write_all(&encode(&args)).await.map_err(anyhow::Error::from)
    }

    async fn receive(&mut self, chunk: &mut Chunk) -> Result<()> {
        chunk.clear();
        let io = self.raw.as_mut().expect("connected");
        let mut state = Parse::Start;
        let deadline = Duration::from_millis(RESPONSE_TIMEOUT_MS + self.block_ms);
        loop {
            if chunk.bytes.capacity() - chunk.bytes.len() < READ_BYTES {
                chunk.bytes.reserve(READ_BYTES);
            }
            let n = tokio::time::timeout(deadline, io.read_buf(&mut chunk.bytes))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            ensure!(
                chunk.bytes.len() <= MAX_REPLY_BYTES,
                "an XREAD reply over {MAX_REPLY_BYTES} bytes"
            );
            if parse(chunk, &mut state)? == Step::Parsed {
                ensure!(state == Parse::Done, "the reply ended early");
                return Ok(());
            }
        }
    }

    async fn read_client(&mut self, after: &str, wait: bool, chunk: &mut Chunk) -> Result<()> {
        chunk.clear();
        let conn = self.client.as_mut().expect("connected");
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(self.count);
        if wait {
            cmd.arg("BLOCK").arg(self.block_ms);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(after);
        let reply: redis::Value = cmd.query_async(conn).await?;
        for (id, fields) in parse_client_reply(reply)? {
            chunk.push(&id, &fields)?;
        }
        Ok(())
    }
}

/// Reads the entries of `stream` after `after` into `chunk`, up to `count`, without waiting, through
/// a connection that routes by key (the sharded layout reads each bank's stream on its shard this
/// way: a blocking read on a shared cluster connection would stall every other command on it).
pub async fn read_once(
    conn: &mut impl redis::aio::ConnectionLike,
    stream: &str,
    after: &str,
    count: usize,
    chunk: &mut Chunk,
) -> Result<()> {
    chunk.clear();
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(count).arg("STREAMS").arg(stream).arg(after);
    let reply: redis::Value = crate::store::retry::query_retrying(conn, &cmd)
        .await
        .with_context(|| format!("reading {stream}"))?;
    for (id, fields) in parse_client_reply(reply)? {
        chunk.push(&id, &fields)?;
    }
    Ok(())
}

/// A stream entry as the general client reads it: its id and its fields, in stream order.
type OwnedEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Turns an `XREAD` reply of the general client into entries.
fn parse_client_reply(reply: redis::Value) -> Result<Vec<OwnedEntry>> {
    use redis::Value;
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => bail!("unexpected reply {other:?}"),
    };
    let mut out = Vec::new();
    let entries: Vec<Value> = match streams.into_iter().next() {
        None => return Ok(out),
        Some(Value::Array(mut stream)) if stream.len() == 2 => match stream.pop() {
            Some(Value::Array(entries)) => entries,
            other => bail!("unexpected entries {other:?}"),
        },
        Some(other) => bail!("unexpected stream {other:?}"),
    };
    for entry in entries {
        let Value::Array(mut parts) = entry else { bail!("a stream entry is not an array") };
        ensure!(parts.len() == 2, "a stream entry has {} parts", parts.len());
        let fields = parts.pop().expect("two parts");
        let id: String = redis::from_redis_value(parts.pop().expect("two parts"))?;
        let flat = match fields {
            Value::Array(flat) => flat,
            Value::Nil => Vec::new(),
            _ => bail!("the fields of a stream entry are not an array"),
        };
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
            pairs.push((redis::from_redis_value(name)?, redis::from_redis_value(value)?));
        }
        out.push((id, pairs));
    }
    Ok(out)
}

/// Whether an error may go away on a new connection: the connection broke or timed out.
fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some()
            || cause
                .downcast_ref::<redis::RedisError>()
                .is_some_and(crate::store::retry::is_transient)
    })
}

/// A command in RESP: an array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        assert_eq!(
            encode(&["XREAD", "COUNT", "10"]),
            b"*3\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$2\r\n10\r\n"
        );
    }
}
