//! The WebSocket frame format (RFC 6455 §5.2): parsing a frame header from
//! received bytes, encoding one for sending, and the XOR masking of payloads.
//! Only the wire format lives here; what frames mean together (fragments,
//! control frames, limits) is `message.rs`.

use super::Violation;

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Longest header: 2 bytes, 8 of extended length, 4 of mask key.
pub const MAX_HEADER: usize = 14;

/// A frame header as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    /// The three reserved bits (RSV1..3), high bit first; no extension is
    /// negotiated, so anything but 0 is a protocol error.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

impl Header {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// What the bytes received so far say about the next header.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// At least this many bytes are needed before the header can be read.
    Incomplete(usize),
    /// The header and how many bytes it took.
    Complete(Header, usize),
}

/// Reads the header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Result<Parsed, Violation> {
    let [b0, b1, ..] = *buf else { return Ok(Parsed::Incomplete(2)) };
    let masked = b1 & 0x80 != 0;
    let (len_bytes, short) = match b1 & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let size = 2 + len_bytes + if masked { 4 } else { 0 };
    if buf.len() < size {
        return Ok(Parsed::Incomplete(size));
    }
    let len = match short {
        Some(n) => n,
        None => buf[2..2 + len_bytes].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    };
    // §5.2: the most significant bit of a 64-bit length must be 0.
    if len >> 63 != 0 {
        return Err(Violation::protocol("invalid frame length"));
    }
    let mask = masked.then(|| {
        let k = &buf[2 + len_bytes..size];
        [k[0], k[1], k[2], k[3]]
    });
    let header = Header { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x7, opcode: b0 & 0xf, mask, len };
    Ok(Parsed::Complete(header, size))
}

/// Encodes a final frame's header into `out`; returns its length. `opcode`
/// may carry reserved bits in its high nibble (0x40: RSV1, "compressed").
pub fn encode_header(opcode: u8, mask: Option<[u8; 4]>, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = match len {
        0..=125 => {
            out[1] = mask_bit | len as u8;
            2
        }
        126..=0xffff => {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        out[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    n
}

/// XORs `data` with the mask `key`, where `data` starts `offset` bytes into
/// the payload (a payload may arrive in pieces). Masking twice unmasks.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as it lines up with data[0], repeated to a word: 8 bytes at a time.
    let mut rotated = [0u8; 8];
    for (i, b) in rotated.iter_mut().enumerate() {
        *b = key[(offset + i) % 4];
    }
    let word = u64::from_ne_bytes(rotated);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(rotated) {
        *b ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_examples() {
        // §5.7: a single-frame unmasked text message "Hello".
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let Parsed::Complete(h, n) = parse_header(&unmasked).unwrap() else { panic!() };
        assert_eq!((h.fin, h.opcode, h.mask, h.len, n), (true, TEXT, None, 5, 2));
        // The same, masked.
        let mut masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let Parsed::Complete(h, n) = parse_header(&masked).unwrap() else { panic!() };
        assert_eq!((h.mask, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        apply_mask(&mut masked[6..], [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&masked[6..], b"Hello");
        // 256 bytes binary in one unmasked frame: 16-bit length.
        let Parsed::Complete(h, n) = parse_header(&[0x82, 0x7e, 0x01, 0x00]).unwrap() else { panic!() };
        assert_eq!((h.opcode, h.len, n), (BINARY, 256, 4));
    }

    #[test]
    fn short_input_asks_for_the_whole_header() {
        assert_eq!(parse_header(&[]).unwrap(), Parsed::Incomplete(2));
        assert_eq!(parse_header(&[0x81]).unwrap(), Parsed::Incomplete(2));
        assert_eq!(parse_header(&[0x81, 0xfe, 0]).unwrap(), Parsed::Incomplete(8));
        assert_eq!(parse_header(&[0x82, 0x7f, 0, 0]).unwrap(), Parsed::Incomplete(10));
    }

    #[test]
    fn a_64_bit_length_with_its_top_bit_set_is_refused() {
        let frame = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_header(&frame).unwrap_err().code, 1002);
    }

    proptest! {
        #[test]
        fn headers_round_trip(op in prop::sample::select(vec![TEXT, BINARY, CLOSE, PING, PONG]),
                              len in prop_oneof![0usize..200, 0usize..70_000, 0usize..(1 << 40)],
                              mask in any::<Option<[u8; 4]>>()) {
            let mut out = [0u8; MAX_HEADER];
            let n = encode_header(op, mask, len, &mut out);
            let want_len = if len < 126 { 2 } else if len < 65536 { 4 } else { 10 };
            prop_assert_eq!(n, want_len + if mask.is_some() { 4 } else { 0 });
            for cut in 0..n {
                prop_assert!(matches!(parse_header(&out[..cut]).unwrap(), Parsed::Incomplete(k) if k > cut));
            }
            let h = Header { fin: true, rsv: 0, opcode: op, mask, len: len as u64 };
            prop_assert_eq!(parse_header(&out[..n]).unwrap(), Parsed::Complete(h, n));
        }

        #[test]
        fn masking_in_pieces_equals_masking_whole(data in prop::collection::vec(any::<u8>(), 0..100),
                                                  key in any::<[u8; 4]>(), cut in 0usize..100) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            apply_mask(&mut pieces[..cut], key, 0);
            apply_mask(&mut pieces[cut..], key, cut);
            prop_assert_eq!(&whole, &pieces);
            for (i, (m, d)) in whole.iter().zip(&data).enumerate() {
                prop_assert_eq!(*m, d ^ key[i % 4]);
            }
        }
    }
}
