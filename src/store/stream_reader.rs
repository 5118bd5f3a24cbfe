//! Reading the event stream fast. `consume` must replay about a million events a second, and a
//! general Redis client turns every field of every entry into an allocation of its own (17 per
//! event) and parses them one by one. This reader sends `XREAD` itself on a plain connection (TCP
//! or a unix socket; with `AUTH` and `SELECT` as the URL asks) and parses the reply where it lies:
//! an entry's id and fields are slices of one reused buffer. It also asks for the next chunk as
//! soon as it has the current one, so that Redis builds the next reply while `consume` applies
//! this one.
//!
//! TLS connections (`rediss://`) are read through the general client instead, into the same
//! [`Chunk`], so `consume` has one way of applying entries whatever the connection.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use redis::ConnectionAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::store::connection::{
    CONNECT_TIMEOUT_MS, RESPONSE_TIMEOUT_MS, RETRY_LIMIT, Target, backoff_ms,
};

/// The most bytes one reply may take: far above what `COUNT` entries of our events need, low
/// enough that a stream of foreign, huge entries is refused instead of exhausting memory.
const MAX_REPLY_BYTES: usize = 1 << 30;
/// Bytes asked of the socket per read.
const READ_BYTES: usize = 1 << 20;

/// One `XREAD` reply: the entries, as offsets into the bytes that came from Redis.
#[derive(Debug, Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    /// Per entry: the id's start and end, and its fields' range in `fields`.
    entries: Vec<(u32, u32, u32, u32)>,
    /// Per field: the name's start and end, the value's start and end.
    fields: Vec<[u32; 4]>,
}

impl Chunk {
    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.fields.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each entry's id and its fields as (name, value) pairs, in stream order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = (&[u8], &[u8])>)> {
        self.entries.iter().map(|&(id_start, id_end, first, last)| {
            let id = std::str::from_utf8(&self.bytes[id_start as usize..id_end as usize])
                .expect("ids are checked to be ASCII when parsed");
            let fields = self.fields[first as usize..last as usize].iter().map(|f| {
                (
                    &self.bytes[f[0] as usize..f[1] as usize],
                    &self.bytes[f[2] as usize..f[3] as usize],
                )
            });
            (id, fields)
        })
    }

    /// The id of the last entry.
    pub fn last_id(&self) -> Option<&str> {
        self.entries.last().map(|&(start, end, _, _)| {
            std::str::from_utf8(&self.bytes[start as usize..end as usize])
                .expect("ids are checked to be ASCII when parsed")
        })
    }

    /// Adds an entry read by the general client (TLS connections).
    fn push(&mut self, id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        ensure!(id.is_ascii(), "stream entry id {id:?} is not ASCII");
        let first = self.fields.len();
        let id_range = self.append(id.as_bytes())?;
        for (name, value) in fields {
            let name = self.append(name)?;
            let value = self.append(value)?;
            self.fields.push([name.0, name.1, value.0, value.1]);
        }
        self.entries.push((id_range.0, id_range.1, offset(first)?, offset(self.fields.len())?));
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(u32, u32)> {
        let start = offset(self.bytes.len())?;
        self.bytes.extend_from_slice(bytes);
        Ok((start, offset(self.bytes.len())?))
    }
}

fn offset(n: usize) -> Result<u32> {
    u32::try_from(n).ok().filter(|&n| n as usize <= MAX_REPLY_BYTES).ok_or_else(|| {
        anyhow!("an XREAD reply is over {MAX_REPLY_BYTES} bytes: entries too large for this stream")
    })
}

/// Where parsing of a reply stands: it can stop at any byte and go on once more has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// Nothing parsed yet.
    Start,
    /// The header is parsed; this many entries remain, from byte `at`.
    Entries {
        remaining: usize,
        at: usize,
    },
    Done,
}

/// A parsing step's verdict on the bytes so far.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    NeedMore,
    Parsed,
}

/// The line from `at` to its CRLF, and where the next one starts; `None` if it has not all arrived.
fn line(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let end = at + memchr::memchr(b'\r', bytes.get(at..)?)?;
    (bytes.get(end + 1) == Some(&b'\n')).then(|| (&bytes[at..end], end + 2))
}

/// A length of the reply: `-1` or decimal digits (read by hand: there are some 20 per entry).
fn number(text: &[u8]) -> Result<i64> {
    let malformed = || anyhow!("malformed length {:?} in the reply", String::from_utf8_lossy(text));
    if text == b"-1" {
        return Ok(-1);
    }
    if text.is_empty() || text.len() > 18 {
        return Err(malformed());
    }
    text.iter().try_fold(0i64, |n, &b| {
        if b.is_ascii_digit() { Ok(n * 10 + i64::from(b - b'0')) } else { Err(malformed()) }
    })
}

/// The header of an element expected to be of `kind` (`*` array, `$` bulk string): its length,
/// -1 for null, and where its contents start. An error reply becomes an error.
fn header(bytes: &[u8], at: usize, kind: u8) -> Result<Option<(i64, usize)>> {
    let Some((text, next)) = line(bytes, at) else { return Ok(None) };
    match text.split_first() {
        Some((&b'-', message)) => bail!("{}", String::from_utf8_lossy(message)),
        Some((&first, rest)) if first == kind => Ok(Some((number(rest)?, next))),
        _ => bail!("unexpected reply element {:?}", String::from_utf8_lossy(text)),
    }
}

/// A bulk string at `at`: its start, end and where the next element starts.
fn bulk(bytes: &[u8], at: usize) -> Result<Option<(usize, usize, usize)>> {
    let Some((len, start)) = header(bytes, at, b'$')? else { return Ok(None) };
    let len = usize::try_from(len).map_err(|_| anyhow!("a null string in a stream entry"))?;
    let end = start + len;
    if bytes.len() < end + 2 {
        return Ok(None);
    }
    ensure!(&bytes[end..end + 2] == b"\r\n", "a bulk string of the reply is not terminated");
    Ok(Some((start, end, end + 2)))
}

/// Parses what it can of an `XREAD` reply (RESP2: a null, or one stream with its entries) into
/// `chunk`'s offsets; call again with the same state once more bytes have arrived.
fn parse(chunk: &mut Chunk, state: &mut Parse) -> Result<Step> {
    let bytes = &chunk.bytes;
    if *state == Parse::Start {
        let Some((streams, mut at)) = header(bytes, 0, b'*')? else { return Ok(Step::NeedMore) };
        if streams == -1 {
            *state = Parse::Done;
            return Ok(Step::Parsed);
        }
        ensure!(streams == 1, "XREAD answered {streams} streams for one");
        let Some((pair, next)) = header(bytes, at, b'*')? else { return Ok(Step::NeedMore) };
        ensure!(pair == 2, "a stream of the reply has {pair} parts");
        let Some((_, _, next)) = bulk(bytes, next)? else { return Ok(Step::NeedMore) };
        let Some((count, next)) = header(bytes, next, b'*')? else { return Ok(Step::NeedMore) };
        at = next;
        let remaining = usize::try_from(count).map_err(|_| anyhow!("a null entry list"))?;
        *state = Parse::Entries { remaining, at };
    }
    while let Parse::Entries { remaining, at } = *state {
        if remaining == 0 {
            *state = Parse::Done;
            break;
        }
        let Some((parts, next)) = header(bytes, at, b'*')? else { return Ok(Step::NeedMore) };
        ensure!(parts == 2, "a stream entry has {parts} parts");
        let Some((id_start, id_end, next)) = bulk(bytes, next)? else {
            return Ok(Step::NeedMore);
        };
        ensure!(bytes[id_start..id_end].is_ascii(), "a stream entry id is not ASCII");
        let Some((count, mut next)) = header(bytes, next, b'*')? else {
            return Ok(Step::NeedMore);
        };
        let first = chunk.fields.len();
        // A null field list (an entry deleted under a reader) is kept as an entry with no fields.
        for _ in 0..count.max(0) / 2 {
            let Some((name_start, name_end, after_name)) = bulk(bytes, next)? else {
                chunk.fields.truncate(first);
                return Ok(Step::NeedMore);
            };
            let Some((value_start, value_end, after_value)) = bulk(bytes, after_name)? else {
                chunk.fields.truncate(first);
                return Ok(Step::NeedMore);
            };
            chunk.fields.push([
                offset(name_start)?,
                offset(name_end)?,
                offset(value_start)?,
                offset(value_end)?,
            ]);
            next = after_value;
        }
        ensure!(count < 0 || count % 2 == 0, "a stream entry has an odd number of field parts");
        chunk.entries.push((
            offset(id_start)?,
            offset(id_end)?,
            offset(first)?,
            offset(chunk.fields.len())?,
        ));
        *state = Parse::Entries { remaining: remaining - 1, at: next };
    }
    Ok(Step::Parsed)
}

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
                .is_some_and(crate::store::connection::is_transient)
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

    const REPLY: &[u8] = b"*1\r\n*2\r\n$6\r\nevents\r\n*2\r\n\
        *2\r\n$3\r\n1-0\r\n*4\r\n$2\r\nid\r\n$7\r\nr1-w1-1\r\n$6\r\namount\r\n$3\r\n100\r\n\
        *2\r\n$3\r\n2-0\r\n*-1\r\n";

    fn entries(chunk: &Chunk) -> Vec<(String, Vec<(String, String)>)> {
        chunk
            .iter()
            .map(|(id, fields)| {
                let fields = fields
                    .map(|(n, v)| {
                        (String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into())
                    })
                    .collect();
                (id.to_string(), fields)
            })
            .collect()
    }

    #[test]
    fn a_reply_parses_whole_or_one_byte_at_a_time() {
        let mut whole = Chunk::default();
        whole.bytes.extend_from_slice(REPLY);
        let mut state = Parse::Start;
        assert_eq!(parse(&mut whole, &mut state).unwrap(), Step::Parsed);
        assert_eq!(state, Parse::Done);
        let expected = vec![
            (
                "1-0".to_string(),
                vec![("id".into(), "r1-w1-1".into()), ("amount".into(), "100".into())],
            ),
            ("2-0".to_string(), vec![]),
        ];
        assert_eq!(entries(&whole), expected);
        assert_eq!(whole.last_id(), Some("2-0"));

        let mut bytewise = Chunk::default();
        let mut state = Parse::Start;
        for (i, &byte) in REPLY.iter().enumerate() {
            bytewise.bytes.push(byte);
            let step = parse(&mut bytewise, &mut state).unwrap();
            assert_eq!(step == Step::Parsed, i == REPLY.len() - 1, "at byte {i}");
        }
        assert_eq!(entries(&bytewise), expected);
    }

    #[test]
    fn nulls_and_errors_are_told_apart() {
        let mut chunk = Chunk::default();
        chunk.bytes.extend_from_slice(b"*-1\r\n");
        assert_eq!(parse(&mut chunk, &mut Parse::Start).unwrap(), Step::Parsed);
        assert!(chunk.is_empty());

        let mut chunk = Chunk::default();
        chunk.bytes.extend_from_slice(b"-WRONGTYPE Operation against a key\r\n");
        let err = parse(&mut chunk, &mut Parse::Start).unwrap_err();
        assert_eq!(err.to_string(), "WRONGTYPE Operation against a key");

        for bad in [&b"*x\r\n"[..], b"*+1\r\n", b"*\r\n", b"*-2\r\n", b"*1234567890123456789\r\n"] {
            let mut chunk = Chunk::default();
            chunk.bytes.extend_from_slice(bad);
            let err = parse(&mut chunk, &mut Parse::Start).unwrap_err().to_string();
            assert!(err.contains("malformed length") || err.contains("streams for one"), "{err}");
        }

        let mut chunk = Chunk::default();
        chunk.bytes.extend_from_slice(b"*1\r\n*2\r\n$1\r\ne\r\n*1\r\n*3\r\n");
        assert!(parse(&mut chunk, &mut Parse::Start).unwrap_err().to_string().contains("3 parts"));
    }

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        assert_eq!(
            encode(&["XREAD", "COUNT", "10"]),
            b"*3\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$2\r\n10\r\n"
        );
    }
}
