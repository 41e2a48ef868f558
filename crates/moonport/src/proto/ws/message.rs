//! Turns received bytes into WebSocket events: whole messages (fragments
//! joined, text checked as UTF-8 even across fragment boundaries), pings,
//! pongs and close frames, which may arrive between the fragments of a
//! message. Every receive-side rule of RFC 6455 is checked here, so a
//! violation comes back with the close code to answer with.
//!
//! The decoder is sans-I/O: it takes whatever bytes have arrived, says how
//! many it used, and keeps its place between calls, so the caller can stop
//! waiting at any point (a timeout) and resume later without losing bytes.

use super::deflate::{Corrupt, Inflater, TooBig};
use super::frame::{self, Header, Parsed};
use super::{Violation, close_code_valid, code};

/// Which end this decoder is: clients must mask their frames, servers must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Message(Kind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer's close frame: its code and reason, if it gave a code.
    Close(Option<(u16, String)>),
}

/// The outcome of one `decode` call, after its bytes were used.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Event(Event),
    /// Nothing complete yet: call again once this many bytes (past those
    /// used) are available.
    More(usize),
}

/// The frame whose payload is being received.
struct Frame {
    header: Header,
    /// Payload bytes received so far (the mask offset).
    got: u64,
}

/// The data message being assembled from fragments.
struct Partial {
    kind: Kind,
    /// Sent compressed (RSV1 on its first frame): inflated when complete.
    compressed: bool,
    data: Vec<u8>,
    /// Bytes of `data` known to be valid UTF-8 (text only); what follows is
    /// at most an incomplete character.
    valid: usize,
}

pub struct Decoder {
    role: Role,
    /// Largest message accepted, all fragments together.
    max_message: usize,
    frame: Option<Frame>,
    message: Option<Partial>,
    /// Payload of the control frame being received (at most 125 bytes).
    control: Vec<u8>,
    /// Set when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
}

impl Decoder {
    pub fn new(role: Role, max_message: usize) -> Self {
        Self { role, max_message, frame: None, message: None, control: Vec::new(), inflater: None }
    }

    /// Accepts compressed messages (permessage-deflate was negotiated).
    pub fn with_deflate(mut self) -> Self {
        self.inflater = Some(Inflater::new());
        self
    }

    /// Uses bytes from `input` until an event is complete or the input ends.
    /// Returns how many bytes were used; the caller drops those and calls
    /// again with what follows (and more, when asked for).
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Step), Violation> {
        let mut used = 0;
        loop {
            if self.frame.is_none() {
                match frame::parse_header(&input[used..])? {
                    Parsed::Incomplete(n) => return Ok((used, Step::More(n))),
                    Parsed::Complete(header, size) => {
                        used += size;
                        self.start_frame(header)?;
                    }
                }
            }
            let Some(frame) = self.frame.as_mut() else { unreachable!("a frame was just started") };
            let remaining = frame.header.len - frame.got;
            let take = remaining.min((input.len() - used) as u64) as usize;
            let offset = frame.got as usize;
            frame.got += take as u64;
            let done = frame.got == frame.header.len;
            let header = frame.header;
            self.payload(&header, &input[used..used + take], offset)?;
            used += take;
            if !done {
                return Ok((used, Step::More(1)));
            }
            self.frame = None;
            if let Some(event) = self.end_frame(&header)? {
                return Ok((used, Step::Event(event)));
            }
        }
    }

    /// Checks a new frame against everything received before it.
    fn start_frame(&mut self, h: Header) -> Result<(), Violation> {
        // RSV1 marks a compressed message: only on the first frame of a
        // data message, and only with permessage-deflate.
        let rsv1 = h.rsv & 0x4 != 0;
        let rsv1_allowed = self.inflater.is_some() && !h.is_control() && h.opcode != frame::CONTINUATION;
        if h.rsv & 0x3 != 0 || (rsv1 && !rsv1_allowed) {
            return Err(Violation::protocol("reserved bits set"));
        }
        match (self.role, h.mask) {
            (Role::Server, None) => return Err(Violation::protocol("unmasked frame")),
            (Role::Client, Some(_)) => return Err(Violation::protocol("masked frame")),
            _ => {}
        }
        if h.is_control() {
            if !matches!(h.opcode, frame::CLOSE | frame::PING | frame::PONG) {
                return Err(Violation::protocol("reserved opcode"));
            }
            if !h.fin {
                return Err(Violation::protocol("fragmented control frame"));
            }
            if h.len > 125 {
                return Err(Violation::protocol("control frame too long"));
            }
            self.control.clear();
        } else {
            let kind = match h.opcode {
                frame::CONTINUATION => None,
                frame::TEXT => Some(Kind::Text),
                frame::BINARY => Some(Kind::Binary),
                _ => return Err(Violation::protocol("reserved opcode")),
            };
            let so_far = match (kind, &self.message) {
                (None, None) => return Err(Violation::protocol("continuation without a message")),
                (Some(_), Some(_)) => return Err(Violation::protocol("message inside a fragmented message")),
                (None, Some(m)) => m.data.len() as u64,
                (Some(_), None) => 0,
            };
            let total = so_far.saturating_add(h.len);
            if total > self.max_message as u64 {
                return Err(Violation { code: code::TOO_BIG, reason: "message too big" });
            }
            let message = self.message.get_or_insert_with(|| Partial {
                kind: kind.unwrap_or(Kind::Binary),
                compressed: rsv1,
                data: Vec::new(),
                valid: 0,
            });
            // Room for what is announced, up to a bound: a peer announcing
            // a big frame and sending nothing must not pin the memory.
            message.data.reserve((h.len as usize).min(64 * 1024));
        }
        self.frame = Some(Frame { header: h, got: 0 });
        Ok(())
    }

    /// Appends payload bytes (unmasked) to the control frame or the message.
    fn payload(&mut self, h: &Header, bytes: &[u8], offset: usize) -> Result<(), Violation> {
        let target = if h.is_control() {
            &mut self.control
        } else {
            let Some(m) = self.message.as_mut() else { unreachable!("start_frame opened the message") };
            &mut m.data
        };
        let start = target.len();
        target.extend_from_slice(bytes);
        if let Some(key) = h.mask {
            frame::apply_mask(&mut target[start..], key, offset);
        }
        if let Some(m) = self.message.as_mut().filter(|m| m.kind == Kind::Text && !m.compressed && !h.is_control()) {
            // Fail fast: a byte that can never start or continue a character
            // ends the connection now, not at the end of the message.
            match std::str::from_utf8(&m.data[m.valid..]) {
                Ok(_) => m.valid = m.data.len(),
                Err(e) if e.error_len().is_none() => m.valid += e.valid_up_to(),
                Err(_) => return Err(Violation { code: code::INVALID_DATA, reason: "invalid utf-8" }),
            }
        }
        Ok(())
    }

    fn end_frame(&mut self, h: &Header) -> Result<Option<Event>, Violation> {
        match h.opcode {
            frame::PING => Ok(Some(Event::Ping(std::mem::take(&mut self.control)))),
            frame::PONG => Ok(Some(Event::Pong(std::mem::take(&mut self.control)))),
            frame::CLOSE => close_payload(&self.control).map(|c| Some(Event::Close(c))),
            _ if !h.fin => Ok(None),
            _ => {
                let Some(mut m) = self.message.take() else { unreachable!("a data frame has a message") };
                if m.compressed {
                    let Some(inflater) = self.inflater.as_mut() else { unreachable!("RSV1 needs deflate") };
                    m.data = match inflater.inflate(&m.data, self.max_message) {
                        Ok(Ok(data)) => data,
                        Ok(Err(TooBig)) => return Err(Violation { code: code::TOO_BIG, reason: "message too big" }),
                        Err(Corrupt) => {
                            return Err(Violation { code: code::INVALID_DATA, reason: "invalid compressed data" });
                        }
                    };
                    if m.kind == Kind::Text {
                        m.valid = if std::str::from_utf8(&m.data).is_ok() { m.data.len() } else { 0 };
                    }
                }
                if m.kind == Kind::Text && m.valid != m.data.len() {
                    return Err(Violation { code: code::INVALID_DATA, reason: "invalid utf-8" });
                }
                Ok(Some(Event::Message(m.kind, m.data)))
            }
        }
    }
}

/// Reads a close frame's body: nothing, or a valid code and a UTF-8 reason.
fn close_payload(p: &[u8]) -> Result<Option<(u16, String)>, Violation> {
    match p {
        [] => Ok(None),
        [_] => Err(Violation::protocol("close frame too short")),
        [hi, lo, reason @ ..] => {
            let c = u16::from_be_bytes([*hi, *lo]);
            if !close_code_valid(c) {
                return Err(Violation::protocol("invalid close code"));
            }
            match std::str::from_utf8(reason) {
                Ok(r) => Ok(Some((c, r.to_string()))),
                Err(_) => Err(Violation { code: code::INVALID_DATA, reason: "invalid utf-8" }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::frame::{BINARY, CLOSE, CONTINUATION, MAX_HEADER, PING, TEXT, encode_header};
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; MAX_HEADER];
        let n = encode_header(opcode, Some(KEY), payload.len(), &mut head);
        if !fin {
            head[0] &= 0x7f;
        }
        let mut out = head[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        frame::apply_mask(&mut out[start..], KEY, 0);
        out
    }

    /// Decodes everything in `input`, feeding it `piece` bytes at a time.
    fn decode_all(d: &mut Decoder, input: &[u8], piece: usize) -> Result<Vec<Event>, Violation> {
        let mut events = Vec::new();
        let mut buffered: Vec<u8> = Vec::new();
        let mut fed = 0;
        loop {
            let (used, step) = d.decode(&buffered)?;
            buffered.drain(..used);
            match step {
                Step::Event(e) => events.push(e),
                Step::More(n) => {
                    if fed == input.len() {
                        return Ok(events);
                    }
                    while buffered.len() < n && fed < input.len() {
                        let end = (fed + piece.max(1)).min(input.len());
                        buffered.extend_from_slice(&input[fed..end]);
                        fed = end;
                    }
                }
            }
        }
    }

    fn server() -> Decoder {
        Decoder::new(Role::Server, 1 << 20)
    }

    #[test]
    fn fragments_join_and_control_frames_interleave() {
        let mut input = frame(false, TEXT, b"hel");
        input.extend(frame(true, PING, b"p"));
        input.extend(frame(false, CONTINUATION, b""));
        input.extend(frame(true, CONTINUATION, b"lo"));
        input.extend(frame(true, BINARY, &[0, 255]));
        let events = decode_all(&mut server(), &input, 1000).unwrap();
        assert_eq!(
            events,
            vec![
                Event::Ping(b"p".to_vec()),
                Event::Message(Kind::Text, b"hello".to_vec()),
                Event::Message(Kind::Binary, vec![0, 255])
            ]
        );
    }

    #[test]
    fn utf8_is_checked_across_fragments_and_fails_fast() {
        let euro = "€".as_bytes();
        let mut input = frame(false, TEXT, &euro[..1]);
        input.extend(frame(true, CONTINUATION, &euro[1..]));
        assert_eq!(decode_all(&mut server(), &input, 3).unwrap(), vec![Event::Message(Kind::Text, euro.to_vec())]);
        // 0xff never occurs in UTF-8: refused in the first fragment.
        let first = frame(false, TEXT, b"ok\xff");
        assert_eq!(server().decode(&first).unwrap_err().code, 1007);
        // A message may not end inside a character.
        assert_eq!(decode_all(&mut server(), &frame(true, TEXT, &euro[..2]), 100).unwrap_err().code, 1007);
    }

    #[test]
    fn rule_breaks_get_their_close_codes() {
        let unmasked = [0x81, 0x01, b'a'];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked.to_vec(), 1002),
            (frame(true, CONTINUATION, b"x"), 1002),
            ([frame(false, TEXT, b"a"), frame(true, TEXT, b"b")].concat(), 1002),
            (frame(false, PING, b""), 1002),
            (frame(true, PING, &[0; 126]), 1002),
            (frame(true, 0x3, b""), 1002),
            (frame(true, 0xB, b""), 1002),
            (frame(true, CLOSE, &[3]), 1002),
            (frame(true, CLOSE, &999u16.to_be_bytes()), 1002),
            (frame(true, CLOSE, &[0x03, 0xe8, 0xff]), 1007),
            (frame(true, BINARY, &vec![0; 2000]), 1009),
            ([frame(false, BINARY, &[0; 600]), frame(true, CONTINUATION, &[0; 600])].concat(), 1009),
        ];
        for (input, want) in cases {
            let mut d = Decoder::new(Role::Server, 1000);
            assert_eq!(decode_all(&mut d, &input, 7).unwrap_err().code, want, "{input:?}");
        }
        let mut rsv = frame(true, TEXT, b"a");
        rsv[0] |= 0x40;
        assert_eq!(decode_all(&mut server(), &rsv, 100).unwrap_err().code, 1002);
        // A client refuses masked frames.
        let mut client = Decoder::new(Role::Client, 100);
        assert_eq!(decode_all(&mut client, &frame(true, TEXT, b"a"), 100).unwrap_err().code, 1002);
        assert_eq!(
            decode_all(&mut client, &[0x81, 0x01, b'a'], 100).unwrap(),
            vec![Event::Message(Kind::Text, b"a".to_vec())]
        );
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let mut body = 4000u16.to_be_bytes().to_vec();
        body.extend(b"bye");
        assert_eq!(
            decode_all(&mut server(), &frame(true, CLOSE, &body), 100).unwrap(),
            vec![Event::Close(Some((4000, "bye".to_string())))]
        );
        assert_eq!(decode_all(&mut server(), &frame(true, CLOSE, b""), 100).unwrap(), vec![Event::Close(None)]);
    }

    #[test]
    fn compressed_messages_with_permessage_deflate() {
        use crate::proto::ws::deflate::{Deflater, Params};
        let mut deflater = Deflater::new(Params::default());
        let text = "hello hello hello hello".repeat(10);
        let packed = deflater.compress(text.as_bytes());
        let mut first = frame(false, TEXT, &packed[..5]);
        first[0] |= 0x40;
        let mut input = first.clone();
        input.extend(frame(true, CONTINUATION, &packed[5..]));
        let mut d = Decoder::new(Role::Server, 1 << 20).with_deflate();
        assert_eq!(decode_all(&mut d, &input, 3).unwrap(), vec![Event::Message(Kind::Text, text.clone().into_bytes())]);
        // The context carries over to the next message.
        let again = deflater.compress(text.as_bytes());
        assert!(again.len() < packed.len());
        let mut next = frame(true, TEXT, &again);
        next[0] |= 0x40;
        assert_eq!(decode_all(&mut d, &next, 100).unwrap(), vec![Event::Message(Kind::Text, text.into_bytes())]);
        // RSV1 without the extension, or on a continuation, is a protocol error.
        assert_eq!(decode_all(&mut server(), &first, 100).unwrap_err().code, 1002);
        let mut cont = frame(false, TEXT, b"a");
        let mut second = frame(true, CONTINUATION, b"b");
        second[0] |= 0x40;
        cont.extend(second);
        let mut d = Decoder::new(Role::Server, 1 << 20).with_deflate();
        assert_eq!(decode_all(&mut d, &cont, 100).unwrap_err().code, 1002);
        // Inflating past the limit is 1009.
        let mut d = Decoder::new(Role::Server, 100).with_deflate();
        let mut big = frame(true, BINARY, &Deflater::new(Params::default()).compress(&[0; 1000]));
        big[0] |= 0x40;
        assert_eq!(decode_all(&mut d, &big, 100).unwrap_err().code, 1009);
    }

    proptest! {
        /// However the bytes are split, the same messages come out.
        #[test]
        fn any_split_decodes_the_same(msgs in prop::collection::vec(
                (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300), 1usize..4), 1..6),
                piece in 1usize..64) {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for (text, mut data, parts) in msgs {
                if text {
                    data = String::from_utf8_lossy(&data).into_owned().into_bytes();
                }
                let kind = if text { Kind::Text } else { Kind::Binary };
                let step = data.len() / parts + 1;
                let pieces: Vec<&[u8]> = data.chunks(step).collect();
                let pieces = if pieces.is_empty() { vec![&data[..]] } else { pieces };
                for (i, p) in pieces.iter().enumerate() {
                    let op = if i > 0 { CONTINUATION } else if text { TEXT } else { BINARY };
                    input.extend(frame(i + 1 == pieces.len(), op, p));
                }
                want.push(Event::Message(kind, data));
            }
            prop_assert_eq!(decode_all(&mut server(), &input, piece).unwrap(), want);
        }
    }
}
