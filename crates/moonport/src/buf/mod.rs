//! Byte buffers: growable, bounded, cheaply sliced, and safe to hand to the
//! kernel for zero-copy writes.
//!
//! A [`Buffer`] is a window on shared storage (`Arc<Vec<u8>>`). Slices and
//! in-flight writes hold a reference to the storage; a buffer that is written
//! to while its storage is shared copies it first, so nobody ever sees bytes
//! change under them and the kernel never reads memory that moves. The
//! [`Cursor`] decodes typed values from a byte slice.

mod buffer;
mod cursor;
mod num;

pub use buffer::{Buffer, Chunk, Full};
pub use cursor::{Cursor, Short};
pub use num::{Decoded, Num, OutOfRange};

/// Byte order of a multi-byte value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// Appends `v` as unsigned LEB128 (7 bits per byte, low bits first).
pub fn encode_uvarint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `v` as signed LEB128 (two's complement, sign-extended).
pub fn encode_svarint(mut v: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
