//! Drives `moonport::buf` (Buffer, Cursor, Num, varints) with operations read
//! from the fuzz input, against a plain `Vec<u8>` model, the way the Lua
//! `moonport.buffer` module uses it: a buffer with a maximum, slices, clones
//! and in-flight chunks that must never change, and a reader position kept
//! across appends, clears and compactions.
//!
//! Checked after every operation:
//! - the buffer holds exactly the model's bytes, `len <= max`, `capacity >= len`;
//! - every slice, clone and chunk still holds the bytes it had (copy-on-write);
//! - a read that fails with `Short` (or a malformed varint) leaves the
//!   position where it was; a successful read moves it by the value's size
//!   and returns what an independent decoder makes of the bytes;
//! - writing a typed value or varint and reading it back gives the same value,
//!   and an out-of-range integer is refused without writing anything;
//! - nothing panics.
//!
//! Regression check, found by fuzzing, fixed in `Cursor::take` (a reader
//! position past the end of bytes that shrank now gives `Short`): zero-length
//! reads (`Cursor::take(0)`, Lua `read_bytes(0)` / `skip(0)` /
//! `read_slice(0)`) at a position past the end of the bytes (a reader whose
//! buffer was cleared, or `buffer.reader(buf, pos)` with pos > #buf) used to
//! panic with "range start index out of range"; they must return `Short`.
//! See docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;
use moonport::buf::{Buffer, Chunk, Cursor, Decoded, Endian, Full, Num, Short, encode_svarint, encode_uvarint};

/// Reads operation arguments from the fuzz input; past its end, zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    /// Up to `n` bytes (fewer if the input ends).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn endian(&mut self) -> Endian {
        if self.u8() & 1 == 0 { Endian::Big } else { Endian::Little }
    }

    fn num(&mut self) -> Num {
        Num::ALL[self.u8() as usize % Num::ALL.len()].1
    }

    /// An integer near a type boundary most of the time, else anything.
    fn int(&mut self) -> i128 {
        const EDGES: [i128; 12] = [
            0,
            1,
            -1,
            i8::MIN as i128,
            u8::MAX as i128,
            i16::MIN as i128,
            u16::MAX as i128,
            i32::MIN as i128,
            u32::MAX as i128,
            i64::MIN as i128,
            i64::MAX as i128,
            u64::MAX as i128,
        ];
        let kind = self.u8();
        let delta = i128::from(self.u8() as i8);
        match kind % 4 {
            0 => i128::from(self.u64() as i64),
            1 => i128::from(self.u64()) | (i128::from(self.u64() as i64) << 64),
            _ => EDGES[kind as usize / 4 % EDGES.len()] + delta,
        }
    }
}

/// What an independent decoder makes of `bytes` as `num`.
fn model_decode(num: Num, bytes: &[u8], endian: Endian) -> Decoded {
    let mut be = bytes.to_vec();
    if endian == Endian::Little {
        be.reverse();
    }
    let mut raw: u128 = 0;
    for &b in &be {
        raw = raw << 8 | u128::from(b);
    }
    let bits = 8 * bytes.len() as u32;
    let signed = matches!(num, Num::I8 | Num::I16 | Num::I32 | Num::I64);
    match num {
        Num::F32 => Decoded::Float(f32::from_bits(raw as u32).into()),
        Num::F64 => Decoded::Float(f64::from_bits(raw as u64)),
        _ if signed && raw >> (bits - 1) & 1 == 1 => Decoded::Int(raw as i128 - (1i128 << bits)),
        _ => Decoded::Int(raw as i128),
    }
}

fn same(a: Decoded, b: Decoded) -> bool {
    match (a, b) {
        (Decoded::Float(x), Decoded::Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (a, b) => a == b,
    }
}

/// An independent LEB128 decoder: (value bits, bytes used) when `bytes`
/// starts with a terminated group of at most 10 bytes whose value fits in 64
/// bits (two's complement for signed).
fn model_varint(bytes: &[u8], signed: bool) -> Option<(u64, usize)> {
    let end = bytes.iter().position(|b| b & 0x80 == 0)?;
    if end >= 10 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, b) in bytes[..=end].iter().enumerate() {
        v |= u128::from(b & 0x7f) << (7 * i);
    }
    let bits = 7 * (end as u32 + 1);
    if signed {
        // Sign-extend from `bits`, then it must fit in i64.
        let x = if bits < 128 && v >> (bits - 1) & 1 == 1 { v as i128 - (1i128 << bits) } else { v as i128 };
        let x = i64::try_from(x).ok()?;
        Some((x as u64, end + 1))
    } else {
        let x = u64::try_from(v).ok()?;
        Some((x, end + 1))
    }
}

struct State {
    buf: Buffer,
    model: Vec<u8>,
    /// A Lua reader's position: kept across changes to the buffer.
    pos: usize,
    views: Vec<(Buffer, Vec<u8>)>,
    chunks: Vec<(Chunk, Vec<u8>)>,
}

const MAX_VIEWS: usize = 8;

impl State {
    fn check(&self) {
        assert_eq!(self.buf.as_slice(), &self.model[..], "buffer differs from the model");
        assert_eq!(self.buf.len(), self.model.len());
        assert_eq!(self.buf.is_empty(), self.model.is_empty());
        assert!(self.buf.len() <= self.buf.max(), "len {} past max {}", self.buf.len(), self.buf.max());
        assert!(self.buf.capacity() >= self.buf.len(), "capacity below len");
        for (i, (v, want)) in self.views.iter().enumerate() {
            assert_eq!(v.as_slice(), &want[..], "view {i} changed");
        }
        for (i, (c, want)) in self.chunks.iter().enumerate() {
            assert_eq!(c.as_slice(), &want[..], "chunk {i} changed");
        }
    }

    /// Appends like a Lua writer: all or nothing, `Full` past the maximum.
    fn append(&mut self, bytes: &[u8]) {
        let fits = self.model.len() + bytes.len() <= self.buf.max();
        let r = self.buf.extend(bytes);
        if fits {
            assert_eq!(r, Ok(()));
            self.model.extend_from_slice(bytes);
        } else {
            assert_eq!(r, Err(Full));
        }
    }

    /// A read at `pos` with `f`; checks that failures do not move and
    /// returns (result, new position).
    fn at<T>(&self, f: impl FnOnce(&mut Cursor) -> T) -> (T, usize) {
        let mut c = Cursor::new(self.buf.as_slice(), self.pos);
        let out = f(&mut c);
        (out, c.pos())
    }

    fn remaining(&self) -> usize {
        self.model.len().saturating_sub(self.pos)
    }
}

fn run(data: &[u8]) {
    let mut input = Input { data };
    let max = match input.u8() % 4 {
        0 => usize::from(input.u8()),
        1 => usize::from(input.u16()),
        _ => 1 << 20,
    };
    let mut st = if input.u8() & 1 == 0 {
        let cap = usize::from(input.u16());
        State { buf: Buffer::with_capacity(cap, max), model: Vec::new(), pos: 0, views: Vec::new(), chunks: Vec::new() }
    } else {
        let n = usize::from(input.u8());
        let init = input.bytes(n);
        let buf = Buffer::from_slice(init, max);
        assert_eq!(buf.max(), max.max(init.len()));
        State { buf, model: init.to_vec(), pos: 0, views: Vec::new(), chunks: Vec::new() }
    };
    st.check();

    let mut steps = 0;
    while !input.is_empty() && steps < 4096 {
        steps += 1;
        match input.u8() % 22 {
            // Lua append / write_string.
            0 => {
                let n = usize::from(input.u8()) * (1 + usize::from(input.u8() % 4) * 64);
                let bytes = input.bytes(n);
                st.append(bytes);
            }
            // extend_with pushing at most `extra` bytes (write_lstring).
            1 => {
                let extra = usize::from(input.u16() % 2048);
                let k = usize::from(input.u16()) % (extra + 1);
                let fill = input.u8();
                let fits = st.model.len() + extra <= st.buf.max();
                let r = st.buf.extend_with(extra, |v| v.extend(std::iter::repeat_n(fill, k)));
                if fits {
                    assert_eq!(r, Ok(()));
                    st.model.extend(std::iter::repeat_n(fill, k));
                } else {
                    assert_eq!(r, Err(Full));
                }
            }
            2 => {
                st.buf.clear();
                st.model.clear();
            }
            // Lua reader:compact(): drop what was read, position back to 0.
            3 => {
                st.buf.discard_front(st.pos);
                let n = st.pos.min(st.model.len());
                st.model.drain(..n);
                st.pos = 0;
            }
            4 => {
                let n = usize::from(input.u16());
                st.buf.discard_front(n);
                let n = n.min(st.model.len());
                st.model.drain(..n);
            }
            // Slices and clones keep their bytes whatever happens to the parent.
            5 if st.views.len() < MAX_VIEWS => {
                let len = st.model.len();
                let a = usize::from(input.u16()) % (len + 1);
                let b = usize::from(input.u16()) % (len + 1);
                let (a, b) = (a.min(b), a.max(b));
                let v = st.buf.slice(a..b);
                assert_eq!(v.as_slice(), &st.model[a..b]);
                assert_eq!(v.max(), st.buf.max());
                st.views.push((v, st.model[a..b].to_vec()));
            }
            6 if st.views.len() < MAX_VIEWS => st.views.push((st.buf.clone(), st.model.clone())),
            // A chunk, as for a write in flight.
            7 if st.chunks.len() < MAX_VIEWS => st.chunks.push((st.buf.chunk(), st.model.clone())),
            8 => {
                let drop_view = input.u8();
                if !st.chunks.is_empty() && drop_view & 1 == 0 {
                    st.chunks.remove(usize::from(drop_view / 2) % st.chunks.len());
                } else if !st.views.is_empty() {
                    st.views.remove(usize::from(drop_view / 2) % st.views.len());
                }
            }
            // Writes through the FFI pointer (LuaJIT buffer:ptr()).
            9 => {
                let i = usize::from(input.u16());
                let b = input.u8();
                let s = st.buf.as_mut_slice();
                assert_eq!(s.len(), st.model.len());
                if !s.is_empty() {
                    let i = i % s.len();
                    s[i] = b;
                    st.model[i] = b;
                }
            }
            // Typed reads at the reader position.
            10 => {
                let num = input.num();
                let e = input.endian();
                let (r, new) = st.at(|c| num.get(c, e));
                if st.remaining() >= num.size() {
                    let want = model_decode(num, &st.model[st.pos..st.pos + num.size()], e);
                    let got = r.expect("enough bytes but Short");
                    assert!(same(got, want), "{num:?} {e:?}: got {got:?}, want {want:?}");
                    assert_eq!(new, st.pos + num.size());
                    st.pos = new;
                } else {
                    assert_eq!(r, Err(Short));
                    assert_eq!(new, st.pos, "Short moved the position");
                }
            }
            // read_bytes(n) / skip(n) / read_slice(n).
            11 => {
                let n = usize::from(input.u16() % 1024);
                let pos = st.pos;
                let (r, new) = st.at(|c| c.take(n).map(<[u8]>::to_vec));
                if st.remaining() >= n && pos <= st.model.len() {
                    assert_eq!(r.as_deref(), Ok(&st.model[pos..pos + n]));
                    assert_eq!(new, pos + n);
                    st.pos = new;
                } else {
                    assert_eq!(r, Err(Short));
                    assert_eq!(new, pos, "Short moved the position");
                }
            }
            // read_varint / read_svarint.
            12 | 13 => {
                let signed = input.u8() & 1 == 1;
                let pos = st.pos;
                let rest = st.model.get(pos..).unwrap_or_default().to_vec();
                let want = model_varint(&rest, signed);
                let (r, new) = st.at(|c| if signed { c.svarint().map(|v| v as u64) } else { c.uvarint() });
                match (r, want) {
                    (Ok(v), Some((w, used))) => {
                        assert_eq!(v, w, "varint value (signed: {signed}) of {:02x?}", &rest[..used]);
                        assert_eq!(new, pos + used);
                        // The canonical encoding is never longer and decodes the same.
                        let mut enc = Vec::new();
                        if signed {
                            encode_svarint(v as i64, &mut enc)
                        } else {
                            encode_uvarint(v, &mut enc)
                        }
                        assert!(enc.len() <= used);
                        let mut c = Cursor::new(&enc, 0);
                        let back = if signed { c.svarint().map(|x| x as u64) } else { c.uvarint() };
                        assert_eq!(back, Ok(v));
                        st.pos = new;
                    }
                    (Err(e), None) => {
                        assert_eq!(new, pos, "a failed varint read moved the position");
                        if e == Some(Short) {
                            // Short only while no terminating byte has arrived.
                            assert!(rest.iter().all(|b| b & 0x80 != 0), "Short but {:02x?} ends", rest);
                        }
                    }
                    (r, want) => panic!("varint (signed: {signed}) of {rest:02x?}: got {r:?}, model says {want:?}"),
                }
            }
            // Typed writes: in range, they read back the same; else refused.
            14 | 15 => {
                let num = input.num();
                let e = input.endian();
                let v = input.int();
                let mut out = Vec::new();
                let r = num.put_int(v, e, &mut out);
                let (min, max) = num.range();
                if num.is_float() {
                    assert_eq!(r, Ok(()));
                    let back = num.get(&mut Cursor::new(&out, 0), e).unwrap();
                    let want = if num == Num::F32 { f64::from(v as f64 as f32) } else { v as f64 };
                    assert!(same(back, Decoded::Float(want)), "{num:?} {v}: {back:?}");
                } else if (min..=max).contains(&v) {
                    assert_eq!(r, Ok(()));
                    assert_eq!(out.len(), num.size());
                    let mut c = Cursor::new(&out, 0);
                    let back = num.get(&mut c, e).unwrap();
                    // u64 takes negative i64 values as two's complement.
                    let want = if num == Num::U64 && v < 0 { v + (1i128 << 64) } else { v };
                    assert_eq!(back, Decoded::Int(want), "{num:?} {e:?} {v}");
                    assert_eq!(c.remaining(), 0);
                } else {
                    assert_eq!(r, Err(moonport::buf::OutOfRange));
                    assert!(out.is_empty(), "a refused value wrote bytes");
                }
                st.append(&out);
            }
            16 => {
                let f32_ = input.u8() & 1 == 1;
                let e = input.endian();
                let bits = input.u64();
                let mut out = Vec::new();
                if f32_ {
                    let v = f64::from(f32::from_bits(bits as u32));
                    Num::F32.put_float(v, e, &mut out);
                    let back = Num::F32.get(&mut Cursor::new(&out, 0), e).unwrap();
                    assert!(same(back, Decoded::Float(v)), "f32 {v}: {back:?}");
                } else {
                    let v = f64::from_bits(bits);
                    Num::F64.put_float(v, e, &mut out);
                    let back = Num::F64.get(&mut Cursor::new(&out, 0), e).unwrap();
                    assert!(same(back, Decoded::Float(v)), "f64 {v}: {back:?}");
                }
                st.append(&out);
            }
            17 => {
                let v = input.u64();
                let signed = input.u8() & 1 == 1;
                let mut out = Vec::new();
                if signed {
                    encode_svarint(v as i64, &mut out);
                    assert_eq!(Cursor::new(&out, 0).svarint(), Ok(v as i64));
                } else {
                    encode_uvarint(v, &mut out);
                    assert_eq!(Cursor::new(&out, 0).uvarint(), Ok(v));
                }
                assert!(!out.is_empty() && out.len() <= 10);
                assert_eq!(model_varint(&out, signed), Some((v, out.len())));
                st.append(&out);
            }
            // reader:seek(p): moves only within the bytes.
            18 => {
                let p = usize::from(input.u16());
                if p <= st.model.len() {
                    st.pos = p;
                }
            }
            // buffer.reader(buf, pos): any position.
            19 => st.pos = usize::from(input.u16() % 512),
            // Cursor::rewind never moves forward.
            20 => {
                let n = usize::from(input.u8());
                let back = usize::from(input.u16());
                let (r, new) = st.at(|c| {
                    let moved = c.take(n).is_ok();
                    let after = c.pos();
                    c.rewind(back);
                    (moved, after)
                });
                let (moved, after) = r;
                assert_eq!(after, if moved { st.pos + n } else { st.pos });
                assert_eq!(new, back.min(after));
            }
            // Changing a view or a slice leaves the parent alone.
            21 if !st.views.is_empty() => {
                let i = usize::from(input.u8()) % st.views.len();
                let n = usize::from(input.u8());
                let bytes = input.bytes(n);
                let (v, want) = &mut st.views[i];
                let fits = want.len() + bytes.len() <= v.max();
                let r = v.extend(bytes);
                if fits {
                    assert_eq!(r, Ok(()));
                    want.extend_from_slice(bytes);
                } else {
                    assert_eq!(r, Err(Full));
                }
                if input.u8() & 3 == 0 {
                    v.clear();
                    want.clear();
                }
            }
            _ => {}
        }
        st.check();
    }
}

fuzz_target!(|data: &[u8]| run(data));
