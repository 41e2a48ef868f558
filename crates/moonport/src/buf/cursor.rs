//! Positioned, typed reads from a byte slice. A read that needs more bytes
//! than remain fails with [`Short`] and leaves the position where it was, so a
//! caller can wait for more data and try again.

/// Not enough bytes (or a varint without its last byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Goes back to an earlier position, e.g. after decoding a value the
    /// caller cannot use.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.pos);
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        // The position can lie past the end when the bytes shrank under a
        // reader (e.g. its buffer was cleared): then even 0 bytes are short.
        if self.pos > self.bytes.len() || self.remaining() < n {
            return Err(Short);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Unsigned LEB128; more than 10 bytes, or bits past 64, is `Err(None)`.
    pub fn uvarint(&mut self) -> Result<u64, Option<Short>> {
        let (value, used) = self.varint(false)?;
        self.pos += used;
        Ok(value)
    }

    /// Signed LEB128.
    pub fn svarint(&mut self) -> Result<i64, Option<Short>> {
        let (raw, used) = self.varint(true)?;
        let bits = 7 * used as u32;
        let last = self.bytes[self.pos + used - 1];
        let value = if bits < 64 && last & 0x40 != 0 { (raw | (!0u64 << bits)) as i64 } else { raw as i64 };
        self.pos += used;
        Ok(value)
    }

    /// Decodes a LEB128 group without moving: (7-bit payload, bytes used).
    /// The 10th byte carries bit 63 only; for signed values its other bits
    /// are the sign extension (0x00 or 0x7f).
    fn varint(&self, signed: bool) -> Result<(u64, usize), Option<Short>> {
        let mut value: u64 = 0;
        for (i, &byte) in self.bytes.get(self.pos..).unwrap_or_default().iter().enumerate() {
            let payload = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            let overflow = shift == 63 && if signed { payload != 0 && payload != 0x7f } else { payload > 1 };
            // Ten bytes hold 64 bits: a tenth that asks for more can never be valid.
            if i >= 10 || overflow || (i == 9 && byte & 0x80 != 0) {
                return Err(None);
            }
            value |= payload << shift;
            if byte & 0x80 == 0 {
                return Ok((value, i + 1));
            }
        }
        Err(Some(Short))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{encode_svarint, encode_uvarint};

    #[test]
    fn short_reads_do_not_move() {
        let mut c = Cursor::new(b"abc", 0);
        assert_eq!(c.take(2), Ok(&b"ab"[..]));
        assert_eq!(c.take(2), Err(Short));
        assert_eq!(c.pos(), 2);
        assert_eq!(c.take(1), Ok(&b"c"[..]));
        assert_eq!(c.take(0), Ok(&b""[..]));
        assert_eq!(c.take(1), Err(Short));
        // Found by fuzzing: a position past the end (the bytes shrank).
        assert_eq!(Cursor::new(&[], 1).take(0), Err(Short));
        assert_eq!(Cursor::new(&[], 1).array::<0>(), Err(Short));
    }

    #[test]
    fn varints_match_known_encodings() {
        let mut out = Vec::new();
        encode_uvarint(624485, &mut out);
        assert_eq!(out, [0xe5, 0x8e, 0x26]);
        out.clear();
        encode_svarint(-123456, &mut out);
        assert_eq!(out, [0xc0, 0xbb, 0x78]);
        assert_eq!(Cursor::new(&[0xc0, 0xbb, 0x78], 0).svarint(), Ok(-123456));
        assert_eq!(Cursor::new(&[0xe5, 0x8e], 0).uvarint(), Err(Some(Short)));
        assert_eq!(Cursor::new(&[0xff; 11], 0).uvarint(), Err(None));
        // Ten continuation bytes are already malformed; no 11th byte is needed to know.
        assert_eq!(Cursor::new(&[0xff; 10], 0).uvarint(), Err(None));
    }

    #[test]
    fn varint_extremes_round_trip() {
        for v in [0u64, 1, 127, 128, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            encode_uvarint(v, &mut out);
            assert_eq!(Cursor::new(&out, 0).uvarint(), Ok(v));
        }
        for v in [0i64, -1, 63, -64, 64, -65, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            encode_svarint(v, &mut out);
            assert_eq!(Cursor::new(&out, 0).svarint(), Ok(v), "{v}");
        }
    }
}
