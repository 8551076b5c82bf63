//! A cursor over one MessagePack document: the few value shapes frames use, and skipping of any
//! value. Plain byte parsing, so none of it is generic and none of it can panic.

use bytes::Bytes;

use crate::payload::{Headers, Payload};

/// Why a value could not be read: a fixed phrase and, when known, the field it belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fault {
    pub what: &'static str,
    pub field: &'static str,
}

pub(super) type Read<T> = Result<T, Fault>;

pub(super) fn fault<T>(what: &'static str) -> Read<T> {
    Err(Fault { what, field: "" })
}

/// The position in a document being read.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn peek(&self) -> Read<u8> {
        match self.bytes.get(self.pos) {
            Some(b) => Ok(*b),
            None => fault("unexpected end of input"),
        }
    }

    fn byte(&mut self) -> Read<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        match self.pos.checked_add(n).and_then(|end| self.bytes.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => fault("unexpected end of input"),
        }
    }

    /// A big-endian unsigned number of `n` (1, 2, 4 or 8) bytes.
    fn be(&mut self, n: usize) -> Read<u64> {
        Ok(self.take(n)?.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn len(&mut self, n: usize) -> Read<usize> {
        // At most 32 bits, so it fits in usize on every target we build for.
        Ok(self.be(n)? as usize)
    }

    /// Whether the next value is nil; if so it is consumed.
    pub fn nil(&mut self) -> Read<bool> {
        let is_nil = self.peek()? == 0xc0;
        if is_nil {
            self.pos += 1;
        }
        Ok(is_nil)
    }

    /// Any integer that is not negative.
    pub fn u64(&mut self) -> Read<u64> {
        match self.integer()? {
            Some(Int::Unsigned(v)) => Ok(v),
            Some(Int::Signed(v)) => {
                u64::try_from(v).or_else(|_| fault("expected an unsigned integer"))
            }
            None => fault("expected an unsigned integer"),
        }
    }

    pub fn u32(&mut self) -> Read<u32> {
        u32::try_from(self.u64()?).or_else(|_| fault("integer out of range"))
    }

    pub fn u16(&mut self) -> Read<u16> {
        u16::try_from(self.u64()?).or_else(|_| fault("integer out of range"))
    }

    pub fn u8(&mut self) -> Read<u8> {
        u8::try_from(self.u64()?).or_else(|_| fault("integer out of range"))
    }

    /// A float, or an integer read as one (as serde does).
    #[cfg(feature = "admin")]
    pub fn f64(&mut self) -> Read<f64> {
        match self.peek()? {
            0xca => {
                self.pos += 1;
                Ok(f64::from(f32::from_bits(self.be(4)? as u32)))
            }
            0xcb => {
                self.pos += 1;
                Ok(f64::from_bits(self.be(8)?))
            }
            _ => match self.integer()? {
                Some(Int::Unsigned(v)) => Ok(v as f64),
                Some(Int::Signed(v)) => Ok(v as f64),
                None => fault("expected a number"),
            },
        }
    }

    /// The next value if it is an integer; `None`, consuming nothing, if it is not.
    fn integer(&mut self) -> Read<Option<Int>> {
        let marker = self.peek()?;
        let int = match marker {
            0x00..=0x7f => Int::Unsigned(u64::from(marker)),
            0xe0..=0xff => Int::Signed(i64::from(marker as i8)),
            0xcc..=0xcf => {
                self.pos += 1;
                return Ok(Some(Int::Unsigned(self.be(1 << (marker - 0xcc))?)));
            }
            0xd0..=0xd3 => {
                self.pos += 1;
                let n = 1 << (marker - 0xd0);
                let raw = self.be(n)?;
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                return Ok(Some(Int::Signed(((raw << shift) as i64) >> shift)));
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(int))
    }

    #[cfg(feature = "admin")]
    pub fn bool(&mut self) -> Read<bool> {
        match self.byte()? {
            0xc2 => Ok(false),
            0xc3 => Ok(true),
            _ => fault("expected a boolean"),
        }
    }

    /// The bytes of a `str` value, if the next value is one.
    fn str_bytes(&mut self) -> Read<Option<&'a [u8]>> {
        let len = match self.peek()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            m @ 0xd9..=0xdb => {
                let n = 1 << (m - 0xd9);
                self.pos += 1;
                return self.len(n).and_then(|len| self.take(len)).map(Some);
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        self.take(len).map(Some)
    }

    fn bin_bytes(&mut self) -> Read<Option<&'a [u8]>> {
        let n = match self.peek()? {
            m @ 0xc4..=0xc6 => 1 << (m - 0xc4),
            _ => return Ok(None),
        };
        self.pos += 1;
        let len = self.len(n)?;
        self.take(len).map(Some)
    }

    pub fn str(&mut self) -> Read<&'a str> {
        match self.str_bytes()? {
            Some(b) => std::str::from_utf8(b).or_else(|_| fault("invalid UTF-8 in a string")),
            None => fault("expected a string"),
        }
    }

    pub fn string(&mut self) -> Read<String> {
        self.str().map(str::to_owned)
    }

    /// A `bin` value, a `str` one (UTF-8 or not) or an array of byte values: what serde's
    /// decoding of a payload accepts.
    pub fn payload(&mut self) -> Read<Payload> {
        let start = self.pos;
        if let Some(b) = self.bin_bytes()? {
            return Ok(Payload(Bytes::copy_from_slice(b)));
        }
        if let Some(b) = self.str_bytes()? {
            return Ok(Payload(Bytes::copy_from_slice(b)));
        }
        if self.array().is_ok() {
            // The header was only peeked at by `array`; `vec` reads it again.
            self.pos = start;
            return self.vec(Self::u8).map(Payload::from);
        }
        fault("expected binary data")
    }

    /// The number of entries of a map.
    pub fn map(&mut self) -> Read<usize> {
        self.header(0x80, 0xde, "expected a map")
    }

    /// The number of elements of an array.
    pub fn array(&mut self) -> Read<usize> {
        self.header(0x90, 0xdc, "expected an array")
    }

    /// A map or array header: `fix` with the length in the low nibble, or `wide` / `wide + 1`
    /// followed by a 16- or 32-bit length.
    fn header(&mut self, fix: u8, wide: u8, what: &'static str) -> Read<usize> {
        // Consumes nothing unless it succeeds: callers try one shape, then another.
        let marker = self.peek()?;
        if marker & 0xf0 == fix {
            self.pos += 1;
            return Ok(usize::from(marker & 0x0f));
        }
        if marker != wide && marker != wide + 1 {
            return fault(what);
        }
        self.pos += 1;
        let len = self.len(2 << (marker - wide));
        if len.is_err() {
            self.pos -= 1;
        }
        len
    }

    /// A map of string keys to string values; a repeated key keeps its last value.
    pub fn headers(&mut self) -> Read<Headers> {
        let mut out = Headers::new();
        for _ in 0..self.map()? {
            let key = self.string()?;
            out.insert(key, self.string()?);
        }
        Ok(out)
    }

    /// `n` elements read by `item`.
    pub fn vec<T>(&mut self, mut item: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        let n = self.array()?;
        // Every element takes at least one byte, so the input bounds the allocation.
        let mut out = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// A field or variant name: a `str` or a `bin`, both of which serde matches against names,
    /// or an unsigned integer, which serde takes as an index into `names`. A key that names
    /// nothing (not UTF-8, or an index past the end) reads as `""`: an unknown field, or an
    /// unknown variant, as it is to serde.
    pub fn key(&mut self, names: &[&'static str]) -> Read<&'a str> {
        let bytes = match self.str_bytes()? {
            Some(b) => b,
            None => match self.bin_bytes()? {
                Some(b) => b,
                None => {
                    return match self.integer()? {
                        Some(Int::Unsigned(i)) => {
                            Ok(usize::try_from(i).ok().and_then(|i| names.get(i)).map_or("", |n| n))
                        }
                        _ => fault("expected a string key"),
                    };
                }
            },
        };
        Ok(std::str::from_utf8(bytes).unwrap_or(""))
    }

    /// An operation name as serde reads a `String`: a `str` or `bin` holding UTF-8; `None`,
    /// consuming nothing, for any other value.
    pub fn loose_string(&mut self) -> Read<Option<&'a str>> {
        let bytes = match self.str_bytes()? {
            Some(b) => b,
            None => match self.bin_bytes()? {
                Some(b) => b,
                None => return Ok(None),
            },
        };
        Ok(std::str::from_utf8(bytes).ok())
    }

    /// Whether a map key is `"id"`. Keys may be strings, bytes or integers, as for serde's
    /// lenient reading of a frame's request id.
    pub fn loose_id_key(&mut self) -> Read<bool> {
        if let Some(b) = self.str_bytes()? {
            return Ok(b == b"id");
        }
        if let Some(b) = self.bin_bytes()? {
            return Ok(b == b"id");
        }
        match self.integer()? {
            Some(_) => Ok(false),
            None => fault("a map key that is not a string or an integer"),
        }
    }

    /// Whether the next value is an extension type, which serde's lenient readers refuse.
    pub fn is_ext(&self) -> Read<bool> {
        Ok(matches!(self.peek()?, 0xc7..=0xc9 | 0xd4..=0xd8))
    }

    /// The next value if it is an integer that is not negative; any other value is skipped.
    pub fn loose_u64(&mut self) -> Read<Option<u64>> {
        if self.is_ext()? {
            return fault("an extension value");
        }
        match self.integer()? {
            Some(Int::Unsigned(v)) => Ok(Some(v)),
            Some(Int::Signed(v)) => Ok(u64::try_from(v).ok()),
            None => self.skip().map(|()| None),
        }
    }

    /// Passes over one whole value of any type. Iterative, so nesting cannot exhaust the stack.
    pub fn skip(&mut self) -> Read<()> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker = self.byte()?;
            let body = match marker {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                0x80..=0x8f => {
                    pending += 2 * u64::from(marker & 0x0f);
                    0
                }
                0x90..=0x9f => {
                    pending += u64::from(marker & 0x0f);
                    0
                }
                0xa0..=0xbf => usize::from(marker & 0x1f),
                0xc4..=0xc6 => self.len(1 << (marker - 0xc4))?,
                0xc7..=0xc9 => 1 + self.len(1 << (marker - 0xc7))?,
                0xca => 4,
                0xcb => 8,
                0xcc..=0xcf => 1 << (marker - 0xcc),
                0xd0..=0xd3 => 1 << (marker - 0xd0),
                0xd4..=0xd8 => 1 + (1 << (marker - 0xd4)),
                0xd9..=0xdb => self.len(1 << (marker - 0xd9))?,
                0xdc | 0xdd => {
                    pending += self.be(2 << (marker - 0xdc))?;
                    0
                }
                0xde | 0xdf => {
                    pending += 2 * self.be(2 << (marker - 0xde))?;
                    0
                }
                // 0xc1 is never used.
                _ => return fault("invalid MessagePack marker"),
            };
            self.take(body)?;
        }
        Ok(())
    }
}

enum Int {
    Unsigned(u64),
    Signed(i64),
}
