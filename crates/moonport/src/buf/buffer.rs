//! The growable, bounded, shareable byte buffer behind `moonport.buffer`.

use std::ops::Range;
use std::sync::Arc;

/// A write would take the buffer past its maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("buffer full")
    }
}

impl std::error::Error for Full {}

#[derive(Debug, Clone)]
pub struct Buffer {
    data: Arc<Vec<u8>>,
    /// This buffer's bytes are `data[start..start + len]`.
    start: usize,
    len: usize,
    /// The longest this buffer may grow.
    max: usize,
}

impl Buffer {
    pub fn with_capacity(capacity: usize, max: usize) -> Self {
        Self { data: Arc::new(Vec::with_capacity(capacity.min(max))), start: 0, len: 0, max }
    }

    pub fn from_slice(bytes: &[u8], max: usize) -> Self {
        Self { data: Arc::new(bytes.to_vec()), start: 0, len: bytes.len(), max: max.max(bytes.len()) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// How many bytes the buffer holds before it must reallocate.
    pub fn capacity(&self) -> usize {
        if self.owns_tail() { self.data.capacity() - self.start } else { self.len }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..self.start + self.len]
    }

    /// A view of `range` (relative to this buffer) sharing the same bytes.
    pub fn slice(&self, range: Range<usize>) -> Buffer {
        debug_assert!(range.start <= range.end && range.end <= self.len);
        Buffer { data: self.data.clone(), start: self.start + range.start, len: range.len(), max: self.max }
    }

    /// The bytes as an owned, cheaply cloned handle, e.g. for a write in flight.
    pub fn chunk(&self) -> Chunk {
        Chunk { data: self.data.clone(), start: self.start, len: self.len }
    }

    /// Whether this buffer may write into its storage in place.
    fn owns_tail(&self) -> bool {
        Arc::strong_count(&self.data) == 1 && self.start + self.len == self.data.len()
    }

    /// Storage that this buffer alone owns, ending where its bytes end, with
    /// room for `extra` more bytes; copies first when the storage is shared.
    fn reserve(&mut self, extra: usize) -> Result<&mut Vec<u8>, Full> {
        let needed = self.len.checked_add(extra).filter(|&n| n <= self.max).ok_or(Full)?;
        if !self.owns_tail() || (self.start > 0 && self.start >= self.len) {
            // Shared, or mostly consumed: start afresh with only our bytes.
            let mut fresh = Vec::with_capacity(needed.max(self.len * 2).min(self.max));
            fresh.extend_from_slice(self.as_slice());
            self.data = Arc::new(fresh);
            self.start = 0;
        }
        let start = self.start;
        let max = self.max;
        let vec = Arc::get_mut(&mut self.data).ok_or(Full)?;
        let spare = vec.capacity() - vec.len();
        if spare < extra {
            // Grow geometrically, but never past what `max` allows.
            let target = (start + needed).max(2 * vec.capacity()).min(start + max);
            vec.reserve_exact(target - vec.len());
        }
        Ok(vec)
    }

    pub fn extend(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.reserve(bytes.len())?.extend_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    /// Appends with `f`, which may push at most `extra` bytes.
    pub fn extend_with(&mut self, extra: usize, f: impl FnOnce(&mut Vec<u8>)) -> Result<(), Full> {
        let vec = self.reserve(extra)?;
        let before = vec.len();
        f(vec);
        let added = vec.len() - before;
        debug_assert!(added <= extra);
        self.len += added;
        Ok(())
    }

    /// Empties the buffer, keeping its storage when nobody else shares it.
    pub fn clear(&mut self) {
        match Arc::get_mut(&mut self.data) {
            Some(vec) => vec.clear(),
            None => self.data = Arc::new(Vec::new()),
        }
        self.start = 0;
        self.len = 0;
    }

    /// Drops the first `n` bytes (all of them if `n` is larger), without copying.
    pub fn discard_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.start += n;
        self.len -= n;
        if self.len == 0 {
            self.clear();
        }
    }

    /// The bytes, in storage this buffer alone owns, for writing in place
    /// (e.g. through a raw pointer handed to LuaJIT's FFI).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if Arc::get_mut(&mut self.data).is_none() {
            self.data = Arc::new(self.as_slice().to_vec());
            self.start = 0;
        }
        let (start, len) = (self.start, self.len);
        match Arc::get_mut(&mut self.data) {
            Some(vec) => &mut vec[start..start + len],
            None => unreachable!("storage was just made unique"),
        }
    }
}

impl PartialEq for Buffer {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// Bytes kept alive for an I/O operation: the kernel reads them while the
/// operation is in flight, and nobody can change them meanwhile because any
/// writer sees the storage shared and copies it first.
#[derive(Debug, Clone)]
pub struct Chunk {
    data: Arc<Vec<u8>>,
    start: usize,
    len: usize,
}

impl Chunk {
    /// A buffer viewing these bytes (no copy); it copies them only when written to.
    pub fn into_buffer(self, max: usize) -> Buffer {
        Buffer { data: self.data, start: self.start, len: self.len, max: max.max(self.len) }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..self.start + self.len]
    }
}

// SAFETY: the pointer stays valid and the bytes unchanged while the Chunk
// lives: it holds a strong reference, and `Buffer` never writes to storage
// with more than one reference.
unsafe impl compio::buf::IoBuf for Chunk {
    fn as_buf_ptr(&self) -> *const u8 {
        self.as_slice().as_ptr()
    }

    fn buf_len(&self) -> usize {
        self.len
    }

    fn buf_capacity(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_up_to_max_then_reports_full() {
        let mut b = Buffer::with_capacity(2, 5);
        b.extend(b"abc").unwrap();
        b.extend(b"de").unwrap();
        assert_eq!(b.extend(b"f"), Err(Full));
        assert_eq!(b.as_slice(), b"abcde");
        assert!(b.capacity() <= 5);
    }

    #[test]
    fn slices_keep_their_bytes_when_the_parent_changes() {
        let mut b = Buffer::from_slice(b"hello world", 64);
        let s = b.slice(0..5);
        b.clear();
        b.extend(b"HELLO").unwrap();
        assert_eq!(s.as_slice(), b"hello");
        assert_eq!(b.as_slice(), b"HELLO");
        let mut s2 = s.clone();
        s2.extend(b"!").unwrap();
        assert_eq!(s.as_slice(), b"hello");
        assert_eq!(s2.as_slice(), b"hello!");
    }

    #[test]
    fn a_chunk_in_flight_is_not_written_through() {
        let mut b = Buffer::from_slice(b"abc", 64);
        let chunk = b.chunk();
        b.as_mut_slice()[0] = b'X';
        b.extend(b"d").unwrap();
        assert_eq!(chunk.as_slice(), b"abc");
        assert_eq!(b.as_slice(), b"Xbcd");
    }

    #[test]
    fn discard_front_is_cheap_and_later_appends_compact() {
        let mut b = Buffer::with_capacity(16, 64);
        b.extend(b"0123456789").unwrap();
        b.discard_front(8);
        assert_eq!(b.as_slice(), b"89");
        b.extend(b"ab").unwrap();
        assert_eq!(b.as_slice(), b"89ab");
        b.discard_front(100);
        assert!(b.is_empty());
    }
}
