//! The primitives of the format, read and written by hand: varints, byte
//! strings, UTF-8 strings, packed socket addresses, fixed arrays. Every
//! message is a sequence of these (`codec.rs`, `bus_codec.rs`).
//!
//! The bytes are the ones bincode 2 writes for the message types under the
//! configuration of `reference.rs` (standard: little endian, varints, a
//! 65 507-byte limit); that reference is kept for the differential tests
//! and fuzz targets, which hold this code to it byte for byte and error for
//! error. What bincode does, and so what this does:
//!
//! * integers are varints: a byte `0..=250` is the value; `251`, `252`,
//!   `253` are followed by a little-endian `u16`, `u32`, `u64`. A marker wider
//!   than the type (`253` for a `u32`), and `254`/`255`, are malformed.
//!   Non-canonical forms (`251 5 0` for 5) are accepted, as bincode does.
//! * strings and byte strings are a varint length (decoded as a `u64`) and
//!   the bytes; strings must be UTF-8. `bool` is one byte, 0 or 1.
//! * enum variants (the message tag, `WireState`) are a varint `u32`.
//! * `[u8; 4]` is four raw bytes; structs are their fields in order.
//! * the limit: before reading, bincode *claims* bytes against the limit
//!   (4 for a `u32`, 8 for a `u64` or a length prefix, 1 for a `u8` or
//!   `bool`, the length itself for a string) and fails with `TooLarge` when
//!   the running total passes 65 507, even if the bytes are there. The
//!   [`Reader`] keeps the same running total, so a claim fails at the same
//!   step with the same error (a length of `u64::MAX` is `TooLarge`, a
//!   length just past the end is `Truncated`). Claims start at zero after
//!   each message's tag.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::WireError;

/// Largest UDP payload; no message can claim more than this, so no decode can
/// be talked into reserving more.
pub(super) const LIMIT: usize = super::MAX_DATAGRAM;

/// Largest integer a varint holds in its one byte.
const SINGLE_BYTE_MAX: u8 = 250;
/// Varint marker: a little-endian `u16` follows.
const U16_BYTE: u8 = 251;
/// Varint marker: a little-endian `u32` follows.
const U32_BYTE: u8 = 252;
/// Varint marker: a little-endian `u64` follows.
const U64_BYTE: u8 = 253;

/// The destination slice was too small: the message does not fit the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoesNotFit;

/// A byte string borrowed from the datagram.
///
/// serde encodes `&[u8]` as a sequence, element by element; this wrapper
/// encodes it as one length-prefixed run (the same bytes on the wire, several
/// times faster) and decodes it without copying.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Bytes<'a>(pub &'a [u8]);

impl std::fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BorrowedBytes;
        impl<'de> serde::de::Visitor<'de> for BorrowedBytes {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a borrowed byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(BorrowedBytes)
    }
}

/// Which bytes of the buffer being decoded are already known to be UTF-8,
/// so that a string among them costs a boundary check instead of a
/// validation.
///
/// Why: `str::from_utf8` walks a short string byte by byte behind a call,
/// which was about half of decoding a membership update. One validation of
/// a long run of the datagram (word at a time, the datagram is mostly
/// ASCII) then serves every string in it. Exact: a substring of valid UTF-8
/// is valid if and only if it starts and ends on character boundaries
/// (which `str::get` checks), except that an empty string is always valid.
///
/// Positions are counted from the *end* of the buffer, because the
/// decoder sees ever shorter suffixes of it (`Messages` advances its slice
/// message by message) and a suffix keeps those positions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Utf8Seen<'a> {
    /// Validated bytes of the buffer (a prefix of the run scanned last).
    text: &'a str,
    /// How many bytes of the buffer follow `text`.
    after: usize,
    /// On a string outside `text`, validate from it to the end of the
    /// buffer (true), or the string alone (false). Scanning ahead pays off
    /// only when the next messages will be decoded with the same value.
    /// Each scan starts past the text of the last one or inside the string
    /// that ended it, and validates twice (to find the end of the valid
    /// run, then to have it as a `str`), so decoding a whole buffer
    /// validates each byte at most about four times, however it is laid
    /// out: linear, never quadratic.
    scan_ahead: bool,
}

impl<'a> Utf8Seen<'a> {
    /// Nothing seen yet. `scan_ahead` as in the field's description.
    pub(crate) fn new(scan_ahead: bool) -> Utf8Seen<'a> {
        Utf8Seen {
            text: "",
            after: 0,
            scan_ahead,
        }
    }

    /// `b`, a string just read, as a `str` if it is UTF-8. `here` is the
    /// buffer from the start of `b` to its end.
    #[inline(always)]
    pub(super) fn str(&mut self, b: &'a [u8], here: &'a [u8]) -> Result<&'a str, WireError> {
        if b.is_empty() {
            return Ok("");
        }
        let after = here.len() - b.len();
        let text_from_end = self.after + self.text.len();
        if after >= self.after && here.len() <= text_from_end {
            let start = text_from_end - here.len();
            return self
                .text
                .get(start..start + b.len())
                .ok_or(WireError::Malformed);
        }
        self.scan(b, here)
    }

    /// [`Utf8Seen::str`] for a string outside the validated bytes.
    #[inline(never)]
    fn scan(&mut self, b: &'a [u8], here: &'a [u8]) -> Result<&'a str, WireError> {
        if !self.scan_ahead {
            return std::str::from_utf8(b).map_err(|_| WireError::Malformed);
        }
        let text = match std::str::from_utf8(here) {
            Ok(text) => text,
            Err(e) => {
                let valid = here.get(..e.valid_up_to()).unwrap_or_default();
                // Valid by definition of `valid_up_to`; `str` cannot be
                // had from it without checking again (no unsafe here).
                std::str::from_utf8(valid).unwrap_or_default()
            }
        };
        self.text = text;
        self.after = here.len() - text.len();
        // `b` starts `text`; shorter than `b`, the run ended inside it.
        text.get(..b.len()).ok_or(WireError::Malformed)
    }
}

/// Reads fields the way bincode's borrowing slice decoder does.
#[derive(Clone, Debug)]
pub(super) struct Reader<'a> {
    /// The bytes not read yet.
    pub(super) rest: &'a [u8],
    /// How much of the limit bincode has not claimed yet (per message).
    budget: usize,
    /// UTF-8 already validated.
    utf8: Utf8Seen<'a>,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`, one message after another.
    #[inline(always)]
    pub(super) fn new(bytes: &'a [u8], utf8: Utf8Seen<'a>) -> Reader<'a> {
        Reader {
            rest: bytes,
            budget: LIMIT,
            utf8,
        }
    }

    /// What is known of the UTF-8 of the bytes (for the tests that check a
    /// reader against the reference message by message).
    #[cfg(test)]
    pub(super) fn utf8(&self) -> Utf8Seen<'a> {
        self.utf8
    }

    /// The tag of the next message: one byte, not claimed (bincode's
    /// claims start at zero after it, for each message).
    #[inline(always)]
    pub(super) fn tag(&mut self) -> Result<u8, WireError> {
        let (&tag, rest) = self.rest.split_first().ok_or(WireError::Truncated)?;
        self.rest = rest;
        self.budget = LIMIT;
        Ok(tag)
    }

    /// bincode's `claim_bytes_read`: every field claims its size before it
    /// is read, so a claim past the limit wins over a truncation after it.
    #[inline(always)]
    fn claim(&mut self, n: usize) -> Result<(), WireError> {
        if n > self.budget {
            return Err(WireError::TooLarge);
        }
        self.budget -= n;
        Ok(())
    }

    /// A `u8` (and the element of a byte array read one by one).
    #[inline(always)]
    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        self.claim(1)?;
        let (&b, rest) = self.rest.split_first().ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    /// One byte, 0 or 1.
    #[inline(always)]
    pub(super) fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Malformed),
        }
    }

    /// A fixed `N`-byte chunk after its marker byte (the wide varints).
    #[inline(always)]
    fn chunk<const N: usize>(&mut self, after_marker: &'a [u8]) -> Result<[u8; N], WireError> {
        let (v, rest) = after_marker
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(*v)
    }

    /// A varint of at most 32 bits.
    #[inline(always)]
    pub(super) fn u32(&mut self) -> Result<u32, WireError> {
        self.claim(4)?;
        match *self.rest {
            [b @ 0..=SINGLE_BYTE_MAX, ref rest @ ..] => {
                self.rest = rest;
                Ok(u32::from(b))
            }
            [U16_BYTE, ref rest @ ..] => Ok(u32::from(u16::from_le_bytes(self.chunk(rest)?))),
            [U32_BYTE, ref rest @ ..] => Ok(u32::from_le_bytes(self.chunk(rest)?)),
            [_, ..] => Err(WireError::Malformed),
            [] => Err(WireError::Truncated),
        }
    }

    /// A varint of at most 64 bits.
    #[inline(always)]
    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        self.claim(8)?;
        match *self.rest {
            [b @ 0..=SINGLE_BYTE_MAX, ref rest @ ..] => {
                self.rest = rest;
                Ok(u64::from(b))
            }
            [U16_BYTE, ref rest @ ..] => Ok(u64::from(u16::from_le_bytes(self.chunk(rest)?))),
            [U32_BYTE, ref rest @ ..] => Ok(u64::from(u32::from_le_bytes(self.chunk(rest)?))),
            [U64_BYTE, ref rest @ ..] => Ok(u64::from_le_bytes(self.chunk(rest)?)),
            [_, ..] => Err(WireError::Malformed),
            [] => Err(WireError::Truncated),
        }
    }

    /// The length prefix of a byte string.
    #[inline(always)]
    fn len(&mut self) -> Result<usize, WireError> {
        // bincode decodes the length as a u64 and converts it (an error on
        // 32-bit targets when it does not fit).
        usize::try_from(self.u64()?).map_err(|_| WireError::Malformed)
    }

    /// The `n` bytes of a byte string whose length was just read.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        self.claim(n)?;
        let (b, rest) = self.rest.split_at_checked(n).ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    /// A length-prefixed byte string, borrowed.
    #[inline(always)]
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.len()?;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string, borrowed.
    #[inline(always)]
    pub(super) fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.len()?;
        let here = self.rest;
        let b = self.take(n)?;
        self.utf8.str(b, here)
    }

    /// A packed socket address (`codec::socket_addr`): 6 or 18 bytes.
    #[inline(always)]
    pub(super) fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let b = self.bytes()?;
        if let Ok(&[a, b, c, d, p0, p1]) = <&[u8; 6]>::try_from(b) {
            let ip = Ipv4Addr::new(a, b, c, d);
            let port = u16::from_le_bytes([p0, p1]);
            return Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)));
        }
        if let Ok(&[ref ip @ .., p0, p1]) = <&[u8; 18]>::try_from(b) {
            let ip = Ipv6Addr::from(*ip);
            let port = u16::from_le_bytes([p0, p1]);
            return Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)));
        }
        // bincode's visitor rejects other lengths after reading them.
        Err(WireError::Malformed)
    }

    /// `[u8; 4]`: serde reads an array element by element, each claiming
    /// one byte. Away from the limit and the end that is one 4-byte read.
    #[inline(always)]
    pub(super) fn hash(&mut self) -> Result<[u8; 4], WireError> {
        if self.budget >= 4 {
            if let Some((h, rest)) = self.rest.split_first_chunk::<4>() {
                self.budget -= 4;
                self.rest = rest;
                return Ok(*h);
            }
        }
        // Byte by byte, so the first failure is bincode's.
        Ok([self.u8()?, self.u8()?, self.u8()?, self.u8()?])
    }
}

/// Writes fields the way bincode's slice encoder does, into the front of a
/// slice; a field that does not fit fails the whole message (the builder
/// then leaves its datagram unchanged).
pub(super) struct Writer<'b> {
    /// The space not written yet.
    pub(super) rest: &'b mut [u8],
}

impl Writer<'_> {
    #[inline(always)]
    pub(super) fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), DoesNotFit> {
        let (head, tail) = std::mem::take(&mut self.rest)
            .split_first_chunk_mut::<N>()
            .ok_or(DoesNotFit)?;
        *head = bytes;
        self.rest = tail;
        Ok(())
    }

    #[inline(always)]
    fn put_slice(&mut self, bytes: &[u8]) -> Result<(), DoesNotFit> {
        let (head, tail) = std::mem::take(&mut self.rest)
            .split_at_mut_checked(bytes.len())
            .ok_or(DoesNotFit)?;
        copy(head, bytes);
        self.rest = tail;
        Ok(())
    }

    #[inline(always)]
    pub(super) fn u8(&mut self, v: u8) -> Result<(), DoesNotFit> {
        self.put([v])
    }

    #[inline(always)]
    pub(super) fn u64(&mut self, v: u64) -> Result<(), DoesNotFit> {
        if v <= u64::from(SINGLE_BYTE_MAX) {
            self.put([v as u8])
        } else if let Ok(v) = u16::try_from(v) {
            let [a, b] = v.to_le_bytes();
            self.put([U16_BYTE, a, b])
        } else if let Ok(v) = u32::try_from(v) {
            let [a, b, c, d] = v.to_le_bytes();
            self.put([U32_BYTE, a, b, c, d])
        } else {
            let [a, b, c, d, e, f, g, h] = v.to_le_bytes();
            self.put([U64_BYTE, a, b, c, d, e, f, g, h])
        }
    }

    /// A `u32` varint is the `u64` varint of the same value.
    #[inline(always)]
    pub(super) fn u32(&mut self, v: u32) -> Result<(), DoesNotFit> {
        self.u64(u64::from(v))
    }

    #[inline(always)]
    pub(super) fn bytes(&mut self, b: &[u8]) -> Result<(), DoesNotFit> {
        self.u64(b.len() as u64)?;
        self.put_slice(b)
    }

    #[inline(always)]
    pub(super) fn str(&mut self, s: &str) -> Result<(), DoesNotFit> {
        self.bytes(s.as_bytes())
    }

    /// `codec::socket_addr`: a length-prefixed run of 6 or 18 bytes.
    #[inline(always)]
    pub(super) fn addr(&mut self, addr: &SocketAddr) -> Result<(), DoesNotFit> {
        match addr {
            SocketAddr::V4(v4) => {
                let [a, b, c, d] = v4.ip().octets();
                let [p0, p1] = v4.port().to_le_bytes();
                self.put([6, a, b, c, d, p0, p1])
            }
            SocketAddr::V6(v6) => {
                self.u8(18)?;
                self.put(v6.ip().octets())?;
                self.put(v6.port().to_le_bytes())
            }
        }
    }

    #[inline(always)]
    pub(super) fn bool(&mut self, v: bool) -> Result<(), DoesNotFit> {
        self.u8(u8::from(v))
    }
}

/// `dst.copy_from_slice(src)` (same lengths), without a call to `memcpy`
/// for the short strings of a membership update: up to 16 bytes are two
/// fixed-size, possibly overlapping moves. The `memcpy` call was a tenth of
/// encoding an update.
#[inline(always)]
fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    // (Callers split `dst` to `src`'s length; checking it again lets the
    // compiler drop the bounds checks of the fixed-size moves.)
    if n != dst.len() || n > 16 {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        // 1 to 3 bytes: first, middle and last (some the same).
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// Bytes taken by the varint of `v`.
#[inline(always)]
pub(super) fn varint_len(v: u64) -> usize {
    if v <= u64::from(SINGLE_BYTE_MAX) {
        1
    } else if v <= u64::from(u16::MAX) {
        3
    } else if v <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

/// Bytes taken by a length-prefixed byte string.
#[inline(always)]
pub(super) fn bytes_len(b: &[u8]) -> usize {
    varint_len(b.len() as u64) + b.len()
}

/// Bytes taken by a packed socket address (length prefix included).
#[inline(always)]
pub(super) fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 6,
        SocketAddr::V6(_) => 1 + 18,
    }
}
