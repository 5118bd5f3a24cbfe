//! The `XREAD` reply of one stream, parsed where it lies. `consume` must replay about a million
//! events a second, and a general Redis client turns every field of every entry into an
//! allocation of its own (17 per event). Here an entry's id and fields are offsets into one
//! reused buffer ([`Chunk`]), and parsing can stop at any byte and go on once more has arrived,
//! so the stream reader parses as the bytes come. Pure code, apart from the socket: malformed
//! bytes give an error, never a panic, a hang or an allocation beyond the reply's own size.

use anyhow::{Result, anyhow, bail, ensure};

/// The most bytes one reply may take: far above what `COUNT` entries of our events need, low
/// enough that a stream of foreign, huge entries is refused instead of exhausting memory.
pub(super) const MAX_REPLY_BYTES: usize = 1 << 30;

/// One `XREAD` reply: the entries, as offsets into the bytes that came from Redis.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The reply as it came from Redis; the stream reader reads into it.
    pub(super) bytes: Vec<u8>,
    /// Per entry: the id's start and end, and its fields' range in `fields`.
    entries: Vec<(u32, u32, u32, u32)>,
    /// Per field: the name's start and end, the value's start and end.
    fields: Vec<[u32; 4]>,
}

impl Chunk {
    pub(super) fn clear(&mut self) {
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
    pub(super) fn push(&mut self, id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
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
pub(super) enum Parse {
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
pub(super) enum Step {
    NeedMore,
    Parsed,
}

/// The longest line of a reply: a header (`*12`, `$5`) is a few bytes, an error message a few
/// hundred.
const MAX_LINE_BYTES: usize = 1 << 16;

/// The line from `at` to its CRLF, and where the next one starts; `None` if it has not all arrived.
/// A CR followed by anything but LF is an error, and so is a line longer than [`MAX_LINE_BYTES`]:
/// no byte still to come could make either a line of a reply.
fn line(bytes: &[u8], at: usize) -> Result<Option<(&[u8], usize)>> {
    let Some(rest) = bytes.get(at..) else { return Ok(None) };
    let window = &rest[..rest.len().min(MAX_LINE_BYTES)];
    let Some(cr) = memchr::memchr(b'\r', window) else {
        ensure!(
            rest.len() < MAX_LINE_BYTES,
            "the reply has a line of over {MAX_LINE_BYTES} bytes at byte {at}"
        );
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((&rest[..cr], at + cr + 2))),
        Some(_) => bail!("the reply has a carriage return without a line feed at byte {}", at + cr),
    }
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
    let Some((text, next)) = line(bytes, at)? else { return Ok(None) };
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
pub(super) fn parse(chunk: &mut Chunk, state: &mut Parse) -> Result<Step> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const REPLY: &[u8] = b"*1\r\n*2\r\n$6\r\nevents\r\n*2\r\n\
        *2\r\n$3\r\n1-0\r\n*4\r\n$2\r\nid\r\n$7\r\nr1-w1-1\r\n$6\r\namount\r\n$3\r\n100\r\n\
        *2\r\n$3\r\n2-0\r\n*-1\r\n";

    /// An entry as parsed: its id and its fields' names and values.
    type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);
    /// An entry to encode: `None` fields stand for a null field list (a deleted entry).
    type Generated = (String, Option<Vec<(Vec<u8>, Vec<u8>)>>);
    /// The fewest bytes one field (an empty name and value) and one entry take in a reply.
    const MIN_FIELD_BYTES: usize = b"$0\r\n\r\n$0\r\n\r\n".len();
    const MIN_ENTRY_BYTES: usize = b"*2\r\n$0\r\n\r\n*0\r\n".len();

    /// The entries of `chunk`, read through `iter`, checked against `last_id`.
    fn entries(chunk: &Chunk) -> Vec<Entry> {
        let entries: Vec<Entry> = chunk
            .iter()
            .map(|(id, fields)| {
                (id.to_string(), fields.map(|(n, v)| (n.into(), v.into())).collect())
            })
            .collect();
        assert_eq!(chunk.last_id(), entries.last().map(|e| e.0.as_str()));
        assert_eq!(chunk.len(), entries.len());
        entries
    }

    /// Appends each piece to one chunk and parses after each, stopping at the first error or at
    /// the end of the reply; returns the chunk and the last verdict.
    fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (Chunk, Result<Step, String>) {
        let mut chunk = Chunk::default();
        let mut state = Parse::Start;
        let mut verdict = Ok(Step::NeedMore);
        for piece in pieces {
            chunk.bytes.extend_from_slice(piece);
            verdict = parse(&mut chunk, &mut state).map_err(|e| e.to_string());
            if verdict != Ok(Step::NeedMore) {
                break;
            }
        }
        if verdict == Ok(Step::Parsed) {
            assert_eq!(state, Parse::Done);
        }
        (chunk, verdict)
    }

    /// What the parser keeps is bounded by the bytes that arrived, whatever lengths they claim.
    fn assert_bounded(chunk: &Chunk) {
        assert!(chunk.fields.len() * MIN_FIELD_BYTES <= chunk.bytes.len(), "{chunk:?}");
        assert!(chunk.entries.len() * MIN_ENTRY_BYTES <= chunk.bytes.len(), "{chunk:?}");
    }

    fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }

    /// The RESP2 bytes of an `XREAD` reply: null, or one stream of these entries.
    fn encode(reply: &Option<(Vec<u8>, Vec<Generated>)>) -> Vec<u8> {
        let Some((stream, generated)) = reply else { return b"*-1\r\n".to_vec() };
        let mut out = b"*1\r\n*2\r\n".to_vec();
        push_bulk(&mut out, stream);
        out.extend_from_slice(format!("*{}\r\n", generated.len()).as_bytes());
        for (id, fields) in generated {
            out.extend_from_slice(b"*2\r\n");
            push_bulk(&mut out, id.as_bytes());
            let Some(fields) = fields else {
                out.extend_from_slice(b"*-1\r\n");
                continue;
            };
            out.extend_from_slice(format!("*{}\r\n", fields.len() * 2).as_bytes());
            for (name, value) in fields {
                push_bulk(&mut out, name);
                push_bulk(&mut out, value);
            }
        }
        out
    }

    fn expected(reply: &Option<(Vec<u8>, Vec<Generated>)>) -> Vec<Entry> {
        let Some((_, generated)) = reply else { return Vec::new() };
        generated
            .iter()
            .map(|(id, fields)| (id.clone(), fields.clone().unwrap_or_default()))
            .collect()
    }

    fn reply() -> impl Strategy<Value = Option<(Vec<u8>, Vec<Generated>)>> {
        let id = vec(0u8..0x80, 0..24).prop_map(|b| b.into_iter().map(char::from).collect());
        let field = (vec(any::<u8>(), 0..24), vec(any::<u8>(), 0..24));
        let entry = (id, proptest::option::weighted(0.8, vec(field, 0..6)));
        proptest::option::weighted(0.95, (vec(any::<u8>(), 0..12), vec(entry, 0..6)))
    }

    /// Bytes that look like RESP more often than random ones do: headers (some claiming huge
    /// lengths), nulls, errors, text, stray CR and LF, and a valid start of a reply.
    fn resp_soup() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(&b"*1\r\n*2\r\n$6\r\nevents\r\n"[..]),
            Just(&b"*1\r\n"[..]),
            Just(&b"*2\r\n"[..]),
            Just(&b"*4\r\n"[..]),
            Just(&b"*0\r\n"[..]),
            Just(&b"*3\r\n"[..]),
            Just(&b"*-1\r\n"[..]),
            Just(&b"$-1\r\n"[..]),
            Just(&b"$0\r\n"[..]),
            Just(&b"$1\r\n"[..]),
            Just(&b"$3\r\n"[..]),
            Just(&b"*999999999999999999\r\n"[..]),
            Just(&b"$999999999999999999\r\n"[..]),
            Just(&b"-ERR no\r\n"[..]),
            Just(&b"1-0"[..]),
            Just(&b"x"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"\n"[..]),
            Just(&b"\xff"[..]),
        ];
        vec(token, 0..40).prop_map(|tokens| tokens.concat())
    }

    fn input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![vec(any::<u8>(), 0..256), resp_soup(), reply().prop_map(|r| encode(&r))]
    }

    /// Cuts `bytes` into pieces of the given sizes (cycled), the last one taking the rest.
    fn pieces<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        for &size in sizes.iter().cycle().take(bytes.len()) {
            let (piece, after) = rest.split_at(size.min(rest.len()));
            pieces.push(piece);
            rest = after;
        }
        pieces.push(rest);
        pieces
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_fed_whole_never_panic(bytes in input()) {
            let (chunk, _) = feed([&bytes[..]]);
            entries(&chunk);
            assert_bounded(&chunk);
        }

        #[test]
        fn arbitrary_bytes_fed_in_pieces_parse_as_if_fed_whole(
            bytes in input(),
            sizes in vec(0usize..20, 1..8),
        ) {
            let (whole, whole_verdict) = feed([&bytes[..]]);
            let (split, split_verdict) = feed(pieces(&bytes, &sizes));
            assert_bounded(&split);
            prop_assert_eq!(split_verdict, whole_verdict);
            prop_assert_eq!(entries(&split), entries(&whole));
        }

        #[test]
        fn well_formed_replies_round_trip_whole_and_byte_by_byte(reply in reply()) {
            let bytes = encode(&reply);
            let (whole, verdict) = feed([&bytes[..]]);
            prop_assert_eq!(verdict, Ok(Step::Parsed));
            prop_assert_eq!(entries(&whole), expected(&reply));
            let (bytewise, verdict) = feed(bytes.chunks(1));
            prop_assert_eq!(verdict, Ok(Step::Parsed));
            prop_assert_eq!(bytewise.bytes.len(), bytes.len(), "parsed before the last byte");
            prop_assert_eq!(entries(&bytewise), expected(&reply));
        }

        #[test]
        fn a_mutated_reply_never_panics_and_a_truncated_one_waits(
            reply in reply(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let bytes = encode(&reply);
            let at = at.index(bytes.len());
            let mut mutated = bytes.clone();
            mutated[at] = byte;
            let (chunk, _) = feed([&mutated[..]]);
            entries(&chunk);
            assert_bounded(&chunk);
            let (chunk, verdict) = feed([&bytes[..at]]);
            prop_assert_eq!(verdict, Ok(Step::NeedMore));
            assert_bounded(&chunk);
        }
    }

    #[test]
    fn a_reply_parses_whole_or_one_byte_at_a_time() {
        let mut whole = Chunk::default();
        whole.bytes.extend_from_slice(REPLY);
        let mut state = Parse::Start;
        assert_eq!(parse(&mut whole, &mut state).unwrap(), Step::Parsed);
        assert_eq!(state, Parse::Done);
        let expected: Vec<Entry> = vec![
            (
                "1-0".to_string(),
                vec![(b"id".into(), b"r1-w1-1".into()), (b"amount".into(), b"100".into())],
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
    fn a_carriage_return_without_a_line_feed_is_an_error_not_a_wait() {
        for bad in [&b"*1\rx"[..], b"*1\r\n*2\r\n$1\r\ne\r\n*1\r\n*2\r\r\n"] {
            let (_, verdict) = feed([bad]);
            let err = verdict.unwrap_err();
            assert!(err.contains("carriage return without a line feed at byte"), "{err}");
        }
    }

    #[test]
    fn huge_claimed_lengths_wait_for_their_bytes_without_allocating() {
        let huge = "999999999999999999";
        let entries_start = "*1\r\n*2\r\n$1\r\ne\r\n";
        let replies = [
            format!("*1\r\n*2\r\n${huge}\r\nevents"),
            format!("{entries_start}*{huge}\r\n"),
            format!("{entries_start}*{huge}\r\n*2\r\n${huge}\r\n1-0"),
            format!(
                "{entries_start}*{huge}\r\n*2\r\n$3\r\n1-0\r\n*{huge}\r\n$1\r\na\r\n$1\r\nb\r\n"
            ),
            format!("{entries_start}*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n${huge}\r\nb"),
        ];
        for reply in &replies {
            let (chunk, verdict) = feed([reply.as_bytes()]);
            assert_eq!(verdict, Ok(Step::NeedMore), "{reply:?}");
            assert!(chunk.is_empty(), "{reply:?}");
            assert!(chunk.fields.capacity() <= 4 && chunk.entries.capacity() == 0, "{reply:?}");
        }
    }

    #[test]
    fn a_line_that_never_ends_is_an_error_not_a_wait() {
        let mut chunk = Chunk::default();
        chunk.bytes.extend_from_slice(b"*1");
        chunk.bytes.resize(MAX_LINE_BYTES - 1, b'1');
        assert_eq!(parse(&mut chunk, &mut Parse::Start).unwrap(), Step::NeedMore);
        chunk.bytes.push(b'1');
        let err = parse(&mut chunk, &mut Parse::Start).unwrap_err().to_string();
        assert!(err.contains("a line of over 65536 bytes at byte 0"), "{err}");
    }
}
