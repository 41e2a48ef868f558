//! Fixed-size numbers in either byte order: the typed values that buffer
//! writers append and readers decode.

use super::{Cursor, Endian, Short};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

/// A decoded value: integers widened to i128 so every type fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoded {
    Int(i128),
    Float(f64),
}

/// An integer outside what the type stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

impl Num {
    pub const ALL: [(&'static str, Num); 10] = [
        ("u8", Num::U8),
        ("i8", Num::I8),
        ("u16", Num::U16),
        ("i16", Num::I16),
        ("u32", Num::U32),
        ("i32", Num::I32),
        ("u64", Num::U64),
        ("i64", Num::I64),
        ("f32", Num::F32),
        ("f64", Num::F64),
    ];

    pub fn size(self) -> usize {
        match self {
            Num::U8 | Num::I8 => 1,
            Num::U16 | Num::I16 => 2,
            Num::U32 | Num::I32 | Num::F32 => 4,
            Num::U64 | Num::I64 | Num::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Num::F32 | Num::F64)
    }

    /// The integers this type stores. u64 also takes negative i64 values as
    /// two's complement, the way Lua 5.4's `string.pack` does.
    pub fn range(self) -> (i128, i128) {
        match self {
            Num::U8 => (0, u8::MAX.into()),
            Num::I8 => (i8::MIN.into(), i8::MAX.into()),
            Num::U16 => (0, u16::MAX.into()),
            Num::I16 => (i16::MIN.into(), i16::MAX.into()),
            Num::U32 => (0, u32::MAX.into()),
            Num::I32 => (i32::MIN.into(), i32::MAX.into()),
            Num::U64 => (i64::MIN.into(), u64::MAX.into()),
            Num::I64 => (i64::MIN.into(), i64::MAX.into()),
            Num::F32 | Num::F64 => (0, 0),
        }
    }

    /// Appends an integer (for a float type: its value as a float).
    pub fn put_int(self, v: i128, endian: Endian, out: &mut Vec<u8>) -> Result<(), OutOfRange> {
        if self.is_float() {
            self.put_float(v as f64, endian, out);
            return Ok(());
        }
        let (min, max) = self.range();
        if v < min || v > max {
            return Err(OutOfRange);
        }
        match self {
            Num::U8 | Num::I8 => out.push(v as u8),
            Num::U16 | Num::I16 => put(out, (v as u16).to_le_bytes(), (v as u16).to_be_bytes(), endian),
            Num::U32 | Num::I32 => put(out, (v as u32).to_le_bytes(), (v as u32).to_be_bytes(), endian),
            _ => put(out, (v as u64).to_le_bytes(), (v as u64).to_be_bytes(), endian),
        }
        Ok(())
    }

    /// Appends a float type's value; integer types must use `put_int`.
    pub fn put_float(self, v: f64, endian: Endian, out: &mut Vec<u8>) {
        match self {
            Num::F32 => put(out, (v as f32).to_le_bytes(), (v as f32).to_be_bytes(), endian),
            _ => put(out, v.to_le_bytes(), v.to_be_bytes(), endian),
        }
    }

    pub fn get(self, cur: &mut Cursor, endian: Endian) -> Result<Decoded, Short> {
        macro_rules! get {
            ($t:ty) => {{
                let bytes = cur.array()?;
                if endian == Endian::Little { <$t>::from_le_bytes(bytes) } else { <$t>::from_be_bytes(bytes) }
            }};
        }
        Ok(match self {
            Num::U8 => Decoded::Int(get!(u8).into()),
            Num::I8 => Decoded::Int(get!(i8).into()),
            Num::U16 => Decoded::Int(get!(u16).into()),
            Num::I16 => Decoded::Int(get!(i16).into()),
            Num::U32 => Decoded::Int(get!(u32).into()),
            Num::I32 => Decoded::Int(get!(i32).into()),
            Num::U64 => Decoded::Int(get!(u64).into()),
            Num::I64 => Decoded::Int(get!(i64).into()),
            Num::F32 => Decoded::Float(get!(f32).into()),
            Num::F64 => Decoded::Float(get!(f64)),
        })
    }
}

fn put<const N: usize>(out: &mut Vec<u8>, le: [u8; N], be: [u8; N], endian: Endian) {
    out.extend_from_slice(if endian == Endian::Little { &le } else { &be });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{encode_svarint, encode_uvarint};
    use proptest::prelude::*;

    /// One typed value to write, as a buffer writer would get it.
    #[derive(Debug, Clone)]
    enum Item {
        Int(Num, Endian, i128),
        Float(Num, Endian, f64),
        UVar(u64),
        SVar(i64),
        Bytes(Vec<u8>),
    }

    fn endian() -> impl Strategy<Value = Endian> {
        prop_oneof![Just(Endian::Little), Just(Endian::Big)]
    }

    fn item() -> impl Strategy<Value = Item> {
        let int = (0..8usize, endian()).prop_flat_map(|(i, e)| {
            let num = Num::ALL[i].1;
            let (min, max) = if num == Num::U64 { (0, u64::MAX.into()) } else { num.range() };
            (Just(num), Just(e), min..=max).prop_map(|(n, e, v)| Item::Int(n, e, v))
        });
        prop_oneof![
            int,
            (endian(), any::<f64>()).prop_map(|(e, v)| Item::Float(Num::F64, e, v)),
            (endian(), any::<f32>()).prop_map(|(e, v)| Item::Float(Num::F32, e, v.into())),
            any::<u64>().prop_map(Item::UVar),
            any::<i64>().prop_map(Item::SVar),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Item::Bytes),
        ]
    }

    proptest! {
        /// Whatever sequence is written reads back identically, and the
        /// reader ends exactly at the end.
        #[test]
        fn typed_values_round_trip(items in proptest::collection::vec(item(), 0..60)) {
            let mut out = Vec::new();
            for item in &items {
                match *item {
                    Item::Int(n, e, v) => n.put_int(v, e, &mut out).unwrap(),
                    Item::Float(n, e, v) => n.put_float(v, e, &mut out),
                    Item::UVar(v) => encode_uvarint(v, &mut out),
                    Item::SVar(v) => encode_svarint(v, &mut out),
                    Item::Bytes(ref b) => {
                        encode_uvarint(b.len() as u64, &mut out);
                        out.extend_from_slice(b);
                    }
                }
            }
            let mut cur = Cursor::new(&out, 0);
            for item in &items {
                match *item {
                    Item::Int(n, e, v) => prop_assert_eq!(n.get(&mut cur, e), Ok(Decoded::Int(v))),
                    Item::Float(n, e, v) => match n.get(&mut cur, e) {
                        Ok(Decoded::Float(got)) => prop_assert!(got.to_bits() == v.to_bits() || (got.is_nan() && v.is_nan())),
                        other => prop_assert!(false, "{:?}", other),
                    },
                    Item::UVar(v) => prop_assert_eq!(cur.uvarint(), Ok(v)),
                    Item::SVar(v) => prop_assert_eq!(cur.svarint(), Ok(v)),
                    Item::Bytes(ref b) => {
                        let len = cur.uvarint().unwrap() as usize;
                        prop_assert_eq!(cur.take(len), Ok(&b[..]));
                    }
                }
            }
            prop_assert_eq!(cur.remaining(), 0);
        }

        /// Any truncation of a valid encoding is `Short`, never a wrong value.
        #[test]
        fn truncated_values_are_short(n in 0..10usize, e in endian(), cut in 0..8usize) {
            let num = Num::ALL[n].1;
            let mut out = Vec::new();
            num.put_int(if num.is_float() { 1 } else { num.range().1 }, e, &mut out).unwrap();
            let cut = cut.min(out.len() - 1);
            let mut cur = Cursor::new(&out[..cut], 0);
            prop_assert_eq!(num.get(&mut cur, e), Err(Short));
            prop_assert_eq!(cur.pos(), 0);
        }
    }

    #[test]
    fn out_of_range_is_refused() {
        let mut out = Vec::new();
        assert_eq!(Num::U8.put_int(256, Endian::Big, &mut out), Err(OutOfRange));
        assert_eq!(Num::I16.put_int(-32769, Endian::Big, &mut out), Err(OutOfRange));
        assert_eq!(Num::U64.put_int(-1, Endian::Big, &mut out), Ok(()));
        assert_eq!(out, [0xff; 8]);
    }
}
