//! permessage-deflate (RFC 7692): choosing among a client's offers, and
//! compressing and inflating whole messages. Inflating is bounded by the
//! message size limit, so a small compressed message cannot expand into an
//! unbounded one.
//!
//! The compressor always uses a 32 KiB window (the pure-Rust backend offers
//! no other), so an offer that limits the server's window
//! (`server_max_window_bits` below 15) is declined.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block a sync flush ends with: stripped from each sent
/// message and put back before inflating each received one (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What was agreed with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params {
    /// Our compressor starts afresh for every message.
    pub server_no_context_takeover: bool,
    /// The client's compressor starts afresh for every message (our
    /// inflater does not need to know, but the answer says it).
    pub client_no_context_takeover: bool,
}

impl Params {
    /// The `Sec-WebSocket-Extensions` value that accepts these parameters.
    pub fn response(&self) -> String {
        let mut out = "permessage-deflate".to_string();
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        out
    }
}

/// Picks the first permessage-deflate offer this server can honour from the
/// `Sec-WebSocket-Extensions` header values, in order.
pub fn negotiate<'a>(offers: impl IntoIterator<Item = &'a [u8]>) -> Option<Params> {
    for value in offers {
        let Ok(value) = std::str::from_utf8(value) else { continue };
        for offer in value.split(',') {
            let mut parts = offer.split(';').map(str::trim);
            if parts.next() != Some("permessage-deflate") {
                continue;
            }
            if let Some(p) = accept_params(parts) {
                return Some(p);
            }
        }
    }
    None
}

/// The parameters of one offer, or `None` if it cannot be accepted.
fn accept_params<'a>(params: impl Iterator<Item = &'a str>) -> Option<Params> {
    let mut p = Params::default();
    let mut seen = Vec::new();
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        // §7.1: a parameter given twice makes the offer invalid.
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        let bits = |v: Option<&str>| v.and_then(|v| v.parse::<u8>().ok()).filter(|b| (8..=15).contains(b));
        match (name, value) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            // Our window is always 15 bits: only an offer allowing that fits.
            ("server_max_window_bits", v) if bits(v) == Some(15) => {}
            // The client's window may be anything: a 15-bit inflater reads all.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", v) if bits(v).is_some() => {}
            _ => return None,
        }
    }
    Some(p)
}

/// Compresses outgoing messages.
pub struct Deflater {
    compress: Compress,
    reset_each: bool,
}

impl Deflater {
    pub fn new(params: Params) -> Self {
        Self { compress: Compress::new(Compression::fast(), false), reset_each: params.server_no_context_takeover }
    }

    /// The compressed payload of one message (without the sync-flush tail).
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        if self.reset_each {
            self.compress.reset();
        }
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start_in = self.compress.total_in();
        loop {
            let used = (self.compress.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            // Compressing into a Vec with spare room cannot fail.
            let _ = self.compress.compress_vec(&data[used..], &mut out, FlushCompress::Sync);
            let done = (self.compress.total_in() - start_in) as usize == data.len();
            if done && out.ends_with(&TAIL) && out.len() < out.capacity() {
                break;
            }
        }
        out.truncate(out.len() - TAIL.len());
        out
    }
}

/// Inflates incoming messages.
pub struct Inflater {
    decompress: Decompress,
}

/// An inflated message would exceed the size limit.
#[derive(Debug, PartialEq, Eq)]
pub struct TooBig;

/// The compressed data is not a valid deflate stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

impl Inflater {
    pub fn new() -> Self {
        Self { decompress: Decompress::new(false) }
    }

    /// The message inflated from `data`, if it fits in `max` bytes.
    pub fn inflate(&mut self, data: &[u8], max: usize) -> Result<Result<Vec<u8>, TooBig>, Corrupt> {
        let input = [data, &TAIL[..]].concat();
        let mut out = Vec::with_capacity((data.len() * 3).clamp(256, 64 * 1024).min(max + 1));
        let start = self.decompress.total_in();
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().min(max + 1 - out.len().min(max)).max(1));
            }
            let before = (self.decompress.total_in(), out.len());
            let used = (before.0 - start) as usize;
            let status = self.decompress.decompress_vec(&input[used..], &mut out, FlushDecompress::Sync);
            if out.len() > max {
                return Ok(Err(TooBig));
            }
            let used = (self.decompress.total_in() - start) as usize;
            match status {
                Ok(Status::Ok | Status::BufError) => {}
                // A final block ends the stream: the message is complete and
                // the next one starts a new stream.
                Ok(Status::StreamEnd) => {
                    self.decompress.reset(false);
                    return Ok(Ok(out));
                }
                Err(_) => return Err(Corrupt),
            }
            let room = out.len() < out.capacity();
            if used == input.len() && room {
                return Ok(Ok(out));
            }
            if (self.decompress.total_in(), out.len()) == before && room {
                // Input left that leads nowhere: a truncated stream.
                return Err(Corrupt);
            }
        }
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negotiation() {
        let one = |s: &'static str| negotiate([s.as_bytes()]);
        assert_eq!(one("permessage-deflate"), Some(Params::default()));
        assert_eq!(
            one("permessage-deflate; client_max_window_bits; server_no_context_takeover"),
            Some(Params { server_no_context_takeover: true, client_no_context_takeover: false })
        );
        assert_eq!(one("permessage-deflate; server_max_window_bits=9"), None);
        assert_eq!(
            one("permessage-deflate; server_max_window_bits=9, permessage-deflate; client_no_context_takeover")
                .map(|p| p.client_no_context_takeover),
            Some(true)
        );
        assert_eq!(one("permessage-deflate; server_no_context_takeover; server_no_context_takeover"), None);
        assert_eq!(one("permessage-deflate; unknown"), None);
        assert_eq!(one("x-webkit-deflate-frame"), None);
        assert_eq!(
            Params { server_no_context_takeover: true, client_no_context_takeover: true }.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn rfc_7692_example() {
        // §7.2.3.1: "Hello" compressed without context takeover.
        let mut i = Inflater::new();
        assert_eq!(i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100), Ok(Ok(b"Hello".to_vec())));
        // §7.2.3.2: the same again, referring back to the first.
        assert_eq!(i.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], 100), Ok(Ok(b"Hello".to_vec())));
        assert_eq!(Inflater::new().inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 4), Ok(Err(TooBig)));
        assert_eq!(Inflater::new().inflate(&[0xff, 0xff, 0xff], 100), Err(Corrupt));
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let mut d = Deflater::new(Params::default());
        let zeros = vec![0u8; 10 << 20];
        let small = d.compress(&zeros);
        assert!(small.len() < 64 * 1024, "{}", small.len());
        assert_eq!(Inflater::new().inflate(&small, 1 << 20), Ok(Err(TooBig)));
    }

    proptest! {
        #[test]
        fn round_trips_with_and_without_context(msgs in prop::collection::vec(prop::collection::vec(0u8..4, 0..3000), 1..5),
                                                reset in any::<bool>()) {
            let params = Params { server_no_context_takeover: reset, client_no_context_takeover: false };
            let mut d = Deflater::new(params);
            let mut i = Inflater::new();
            for m in msgs {
                let c = d.compress(&m);
                prop_assert_eq!(i.inflate(&c, 1 << 20), Ok(Ok(m)));
            }
        }
    }
}
