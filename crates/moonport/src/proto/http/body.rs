//! Message bodies: how long a body is (`Content-Length`, chunked, or up to
//! the end of the connection) and a sans-I/O decoder for the chunked
//! transfer coding, whose chunk-size lines `httparse` parses.

use super::Head;

/// How a body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Up to the end of the connection (responses only).
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Framing headers that contradict themselves or a broken chunk (400).
    Malformed,
    /// More than the allowed body size (413).
    TooLarge,
}

/// The framing of a request body (RFC 9112 §6.3). Both `Transfer-Encoding`
/// and `Content-Length`, or differing lengths, are refused: that mismatch is
/// how requests get smuggled past proxies.
pub fn request_framing(head: &Head) -> Result<Framing, BodyError> {
    framing(head, Framing::None)
}

/// The framing of a response body to a request with `method`.
pub fn response_framing(method: &str, status: u16, head: &Head) -> Result<Framing, BodyError> {
    if method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    framing(head, Framing::UntilClose)
}

fn framing(head: &Head, otherwise: Framing) -> Result<Framing, BodyError> {
    let te = head.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    let mut lengths =
        head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.as_slice());
    if te {
        // Only `chunked` is spoken, and it must come last.
        let last = head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .next_back();
        return match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") && lengths.next().is_none() => Ok(Framing::Chunked),
            _ => Err(BodyError::Malformed),
        };
    }
    let Some(first) = lengths.next() else { return Ok(otherwise) };
    let n = parse_length(first)?;
    if lengths.any(|other| parse_length(other) != Ok(n)) {
        return Err(BodyError::Malformed);
    }
    Ok(if n == 0 { Framing::None } else { Framing::Length(n) })
}

fn parse_length(v: &[u8]) -> Result<u64, BodyError> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(BodyError::Malformed);
    }
    v.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))).ok_or(BodyError::Malformed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Decodes the chunked transfer coding, appending the data to `out`.
pub struct Chunked {
    state: State,
    /// Body bytes allowed in all.
    max: u64,
    total: u64,
}

impl Chunked {
    pub fn new(max: u64) -> Self {
        Self { state: State::Size, max, total: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Uses what it can of `input`: returns the bytes used, and at least how
    /// many bytes past those it needs to go on (0 when done).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, usize), BodyError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok((used, 0)),
                State::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        used += n;
                        self.total = self.total.checked_add(size).ok_or(BodyError::TooLarge)?;
                        if self.total > self.max {
                            return Err(BodyError::TooLarge);
                        }
                        self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                    }
                    Ok(httparse::Status::Partial) if rest.len() < MAX_LINE => return Ok((used, rest.len() + 1)),
                    _ => return Err(BodyError::Malformed),
                },
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok((used, 1));
                    }
                    let take = left.min(rest.len() as u64) as usize;
                    out.extend_from_slice(&rest[..take]);
                    used += take;
                    self.state = if take as u64 == left { State::DataEnd } else { State::Data(left - take as u64) };
                }
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::Size;
                    }
                    [] | [b'\r'] => return Ok((used, 2 - rest.len())),
                    _ => return Err(BodyError::Malformed),
                },
                State::Trailers => match memchr::memmem::find(rest, b"\r\n") {
                    // Trailer fields are dropped: nothing here reads them.
                    Some(0) => {
                        used += 2;
                        self.state = State::Done;
                    }
                    Some(i) if i < MAX_LINE => used += i + 2,
                    None if rest.len() < MAX_LINE => return Ok((used, rest.len() + 1)),
                    _ => return Err(BodyError::Malformed),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::Limits;
    use proptest::prelude::*;

    fn head(headers: &str) -> Head {
        let raw = format!("POST / HTTP/1.1\r\n{headers}\r\n");
        Head::parse(raw.as_bytes(), Limits::default()).unwrap().unwrap().0
    }

    #[test]
    fn framing_from_headers() {
        assert_eq!(request_framing(&head("")), Ok(Framing::None));
        assert_eq!(request_framing(&head("Content-Length: 12\r\n")), Ok(Framing::Length(12)));
        assert_eq!(request_framing(&head("content-length: 5\r\nContent-Length: 5\r\n")), Ok(Framing::Length(5)));
        assert_eq!(request_framing(&head("Transfer-Encoding: gzip, chunked\r\n")), Ok(Framing::Chunked));
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 1e3\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
        ] {
            assert_eq!(request_framing(&head(bad)), Err(BodyError::Malformed), "{bad}");
        }
    }

    fn decode_all(input: &[u8], piece: usize, max: u64) -> Result<Vec<u8>, BodyError> {
        let mut d = Chunked::new(max);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut fed = 0;
        while !d.is_done() {
            let (used, need) = d.decode(&buf, &mut out)?;
            buf.drain(..used);
            if d.is_done() {
                break;
            }
            assert!(fed < input.len(), "ran out of input needing {need}");
            let end = (fed + piece.max(need.saturating_sub(buf.len()))).min(input.len());
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
        }
        Ok(out)
    }

    #[test]
    fn chunked_bodies() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";
        assert_eq!(decode_all(body, 1, 100).unwrap(), b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(decode_all(body, 1, 10), Err(BodyError::TooLarge));
        assert_eq!(decode_all(b"4\r\nWikiXX", 100, 100), Err(BodyError::Malformed));
        assert_eq!(decode_all(b"zz\r\n", 100, 100), Err(BodyError::Malformed));
        assert_eq!(decode_all(b"ffffffffffffffffff\r\n", 100, 100), Err(BodyError::Malformed));
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..50), 0..8),
                                      piece in 1usize..20) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend(format!("{:x}\r\n", c.len()).bytes());
                wire.extend(c);
                wire.extend(b"\r\n");
            }
            wire.extend(b"0\r\n\r\n");
            prop_assert_eq!(decode_all(&wire, piece, 1 << 20).unwrap(), chunks.concat());
        }
    }
}
