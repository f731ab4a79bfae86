//! A hand-written encoder and decoder of the bincode format defined in
//! `codec.rs`, for every message kind.
//!
//! Why: decoding a membership update through serde and bincode cost about
//! 100 ns, most of it in bincode's serde adapter (nested visitor calls
//! moving large `Result`s), against a 30 ns budget for encode + decode. The
//! format itself is cheap; this module reads and writes it directly.
//!
//! The format is still *defined* by the serde types and the one bincode
//! configuration of `codec.rs`: this module must produce exactly the bytes
//! bincode produces, and accept and reject exactly the inputs bincode
//! accepts and rejects, with the same [`WireError`]. The differential tests
//! (`differential.rs`) and the fuzz targets' checks hold it to that. What
//! bincode 2 (standard config, `with_limit::<65507>()`) does, and so what
//! this does:
//!
//! * integers are varints: a byte `0..=250` is the value; `251`, `252`,
//!   `253` are followed by a little-endian `u16`, `u32`, `u64`. A marker wider
//!   than the type (`253` for a `u32`), and `254`/`255`, are malformed.
//!   Non-canonical forms (`251 5 0` for 5) are accepted, as bincode does.
//! * strings and byte strings are a varint length (decoded as a `u64`) and
//!   the bytes; strings must be UTF-8. `bool` is one byte, 0 or 1.
//! * enum variants (the message tag, [`WireState`]) are a varint `u32`.
//! * `[u8; 4]` is four raw bytes; structs are their fields in order.
//! * the limit: before reading, bincode *claims* bytes against the limit
//!   (4 for a `u32`, 8 for a `u64` or a length prefix, 1 for a `u8` or
//!   `bool`, the length itself for a string) and fails with `TooLarge` when
//!   the running total passes 65 507, even if the bytes are there. The
//!   [`Reader`] keeps the same running total, so a claim fails at the same
//!   step with the same error (a length of `u64::MAX` is `TooLarge`, a
//!   length just past the end is `Truncated`).
//!
//! The message tag is decoded by the caller (`decode_message` dispatches on
//! it), so, as with bincode there, claims start at zero after the tag.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::codec::{Bytes, DoesNotFit, LIMIT};
use super::message::{
    Ack, Alive, Dead, Join, JoinReply, KvDigest, KvEntry, KvPull, KvReset, Left, MemberEntry,
    Message, MessageKind, Nack, Ping, PingReq, StateHash, Suspect, SyncReply, SyncRequest,
    WireState,
};
use super::WireError;

/// Largest integer a varint holds in its one byte.
const SINGLE_BYTE_MAX: u8 = 250;
/// Varint marker: a little-endian `u16` follows.
const U16_BYTE: u8 = 251;
/// Varint marker: a little-endian `u32` follows.
const U32_BYTE: u8 = 252;
/// Varint marker: a little-endian `u64` follows.
const U64_BYTE: u8 = 253;

// The wire tags: the index of the variant in `Message`, which is also the
// position of the kind in `MessageKind` (both documented as "append, never
// reorder").
const PING: u8 = MessageKind::Ping as u8;
const PING_REQ: u8 = MessageKind::PingReq as u8;
const ACK: u8 = MessageKind::Ack as u8;
const NACK: u8 = MessageKind::Nack as u8;
const ALIVE: u8 = MessageKind::Alive as u8;
const SUSPECT: u8 = MessageKind::Suspect as u8;
const DEAD: u8 = MessageKind::Dead as u8;
const LEFT: u8 = MessageKind::Left as u8;
const JOIN: u8 = MessageKind::Join as u8;
const JOIN_REPLY: u8 = MessageKind::JoinReply as u8;
const SYNC_REQUEST: u8 = MessageKind::SyncRequest as u8;
const SYNC_REPLY: u8 = MessageKind::SyncReply as u8;
const MEMBER: u8 = MessageKind::Member as u8;
const KV_ENTRY: u8 = MessageKind::KvEntry as u8;
const KV_DIGEST: u8 = MessageKind::KvDigest as u8;
const KV_PULL: u8 = MessageKind::KvPull as u8;
const KV_RESET: u8 = MessageKind::KvReset as u8;

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
    fn str(&mut self, b: &'a [u8], here: &'a [u8]) -> Result<&'a str, WireError> {
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
struct Reader<'a, 's> {
    /// The bytes not read yet.
    rest: &'a [u8],
    /// How much of the limit bincode has not claimed yet.
    budget: usize,
    /// UTF-8 already validated.
    utf8: &'s mut Utf8Seen<'a>,
}

impl<'a, 's> Reader<'a, 's> {
    #[inline(always)]
    fn new(body: &'a [u8], utf8: &'s mut Utf8Seen<'a>) -> Reader<'a, 's> {
        Reader {
            rest: body,
            budget: LIMIT,
            utf8,
        }
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
    fn u8(&mut self) -> Result<u8, WireError> {
        self.claim(1)?;
        let (&b, rest) = self.rest.split_first().ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    #[inline(always)]
    fn bool(&mut self) -> Result<bool, WireError> {
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

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, WireError> {
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

    #[inline(always)]
    fn u64(&mut self) -> Result<u64, WireError> {
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
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.len()?;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string, borrowed.
    #[inline(always)]
    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.len()?;
        let here = self.rest;
        let b = self.take(n)?;
        self.utf8.str(b, here)
    }

    /// A packed socket address (`codec::socket_addr`): 6 or 18 bytes.
    #[inline(always)]
    fn addr(&mut self) -> Result<SocketAddr, WireError> {
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
    fn hash(&mut self) -> Result<StateHash, WireError> {
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

    #[inline(always)]
    fn state(&mut self) -> Result<WireState, WireError> {
        match self.u32()? {
            0 => Ok(WireState::Alive),
            1 => Ok(WireState::Suspect),
            2 => Ok(WireState::Dead),
            3 => Ok(WireState::Left),
            _ => Err(WireError::Malformed),
        }
    }

    // One function per message, reading fields in declaration order (let
    // bindings make the order explicit: it decides which error wins).

    #[inline(always)]
    fn ping(&mut self) -> Result<Ping<'a>, WireError> {
        let seq = self.u32()?;
        let target = self.str()?;
        let hash = self.hash()?;
        Ok(Ping { seq, target, hash })
    }

    #[inline(always)]
    fn ping_req(&mut self) -> Result<PingReq<'a>, WireError> {
        let seq = self.u32()?;
        let target = self.str()?;
        let target_addr = self.addr()?;
        let nack = self.bool()?;
        Ok(PingReq {
            seq,
            target,
            target_addr,
            nack,
        })
    }

    #[inline(always)]
    fn ack(&mut self) -> Result<Ack, WireError> {
        let seq = self.u32()?;
        let hash = self.hash()?;
        Ok(Ack { seq, hash })
    }

    #[inline(always)]
    fn nack(&mut self) -> Result<Nack, WireError> {
        let seq = self.u32()?;
        Ok(Nack { seq })
    }

    #[inline(always)]
    fn alive(&mut self) -> Result<Alive<'a>, WireError> {
        let name = self.str()?;
        let addr = self.addr()?;
        let incarnation = self.u32()?;
        let meta = Bytes(self.bytes()?);
        Ok(Alive {
            name,
            addr,
            incarnation,
            meta,
        })
    }

    /// `Suspect` and `Dead` have the same fields.
    #[inline(always)]
    fn accusation(&mut self) -> Result<(&'a str, u32, &'a str), WireError> {
        let name = self.str()?;
        let incarnation = self.u32()?;
        let from = self.str()?;
        Ok((name, incarnation, from))
    }

    #[inline(always)]
    fn left(&mut self) -> Result<Left<'a>, WireError> {
        let name = self.str()?;
        let incarnation = self.u32()?;
        Ok(Left { name, incarnation })
    }

    #[inline(always)]
    fn join_reply(&mut self) -> Result<JoinReply<'a>, WireError> {
        let known = self.u32()?;
        let from = self.str()?;
        Ok(JoinReply { known, from })
    }

    #[inline(always)]
    fn sync_request(&mut self) -> Result<SyncRequest<'a>, WireError> {
        let id = self.u32()?;
        let from = self.str()?;
        let buckets = Bytes(self.bytes()?);
        Ok(SyncRequest { id, from, buckets })
    }

    #[inline(always)]
    fn sync_reply(&mut self) -> Result<SyncReply<'a>, WireError> {
        let id = self.u32()?;
        let mask = self.u64()?;
        let from = self.str()?;
        Ok(SyncReply { id, mask, from })
    }

    #[inline(always)]
    fn member(&mut self) -> Result<MemberEntry<'a>, WireError> {
        let name = self.str()?;
        let addr = self.addr()?;
        let incarnation = self.u32()?;
        let state = self.state()?;
        let meta = Bytes(self.bytes()?);
        Ok(MemberEntry {
            name,
            addr,
            incarnation,
            state,
            meta,
        })
    }

    #[inline(always)]
    fn kv_entry(&mut self) -> Result<KvEntry<'a>, WireError> {
        let node = self.str()?;
        let generation = self.u64()?;
        let base = self.u64()?;
        let version = self.u64()?;
        let key = self.str()?;
        let value = Bytes(self.bytes()?);
        let expires_ms = self.u64()?;
        let deleted = self.bool()?;
        Ok(KvEntry {
            node,
            generation,
            base,
            version,
            key,
            value,
            expires_ms,
            deleted,
        })
    }

    #[inline(always)]
    fn kv_digest(&mut self) -> Result<KvDigest<'a>, WireError> {
        let node = self.str()?;
        let generation = self.u64()?;
        let heartbeat = self.u64()?;
        let max_version = self.u64()?;
        Ok(KvDigest {
            node,
            generation,
            heartbeat,
            max_version,
        })
    }

    #[inline(always)]
    fn kv_pull(&mut self) -> Result<KvPull, WireError> {
        let reply = self.bool()?;
        let complete = self.bool()?;
        Ok(KvPull { reply, complete })
    }

    #[inline(always)]
    fn kv_reset(&mut self) -> Result<KvReset<'a>, WireError> {
        let node = self.str()?;
        let generation = self.u64()?;
        let floor = self.u64()?;
        Ok(KvReset {
            node,
            generation,
            floor,
        })
    }

    /// The message of kind `tag` from the body; `None` for a tag without a
    /// hand-written decoder.
    #[inline(always)]
    fn message(&mut self, tag: u8) -> Option<Result<Message<'a>, WireError>> {
        Some(match tag {
            PING => self.ping().map(Message::Ping),
            PING_REQ => self.ping_req().map(Message::PingReq),
            ACK => self.ack().map(Message::Ack),
            NACK => self.nack().map(Message::Nack),
            ALIVE => self.alive().map(Message::Alive),
            SUSPECT => self.accusation().map(|(name, incarnation, from)| {
                Message::Suspect(Suspect {
                    name,
                    incarnation,
                    from,
                })
            }),
            DEAD => self.accusation().map(|(name, incarnation, from)| {
                Message::Dead(Dead {
                    name,
                    incarnation,
                    from,
                })
            }),
            LEFT => self.left().map(Message::Left),
            JOIN => self.alive().map(|member| Message::Join(Join { member })),
            JOIN_REPLY => self.join_reply().map(Message::JoinReply),
            SYNC_REQUEST => self.sync_request().map(Message::SyncRequest),
            SYNC_REPLY => self.sync_reply().map(Message::SyncReply),
            MEMBER => self.member().map(Message::Member),
            KV_ENTRY => self.kv_entry().map(Message::KvEntry),
            KV_DIGEST => self.kv_digest().map(Message::KvDigest),
            KV_PULL => self.kv_pull().map(Message::KvPull),
            KV_RESET => self.kv_reset().map(Message::KvReset),
            _ => return None,
        })
    }
}

/// Decodes the body (the bytes after the tag byte) of a message of kind
/// `tag`, returning the message and the body bytes used, exactly as bincode
/// decodes the variant's struct. `None` if `tag` has no hand-written
/// decoder (unknown tags, kinds appended later): the caller falls back to
/// bincode. The message is not validated. `utf8` is what is known of the
/// buffer `body` ends.
#[inline(always)]
pub(crate) fn decode_body<'a>(
    tag: u8,
    body: &'a [u8],
    utf8: &mut Utf8Seen<'a>,
) -> Option<Result<(Message<'a>, usize), WireError>> {
    let mut r = Reader::new(body, utf8);
    let msg = r.message(tag)?;
    Some(msg.map(|m| (m, body.len() - r.rest.len())))
}

/// Writes fields the way bincode's slice encoder does, into the front of a
/// slice; a field that does not fit fails the whole message (the builder
/// then leaves its datagram unchanged).
struct Writer<'b> {
    /// The space not written yet.
    rest: &'b mut [u8],
}

impl Writer<'_> {
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), DoesNotFit> {
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
    fn u8(&mut self, v: u8) -> Result<(), DoesNotFit> {
        self.put([v])
    }

    #[inline(always)]
    fn u64(&mut self, v: u64) -> Result<(), DoesNotFit> {
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
    fn u32(&mut self, v: u32) -> Result<(), DoesNotFit> {
        self.u64(u64::from(v))
    }

    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) -> Result<(), DoesNotFit> {
        self.u64(b.len() as u64)?;
        self.put_slice(b)
    }

    #[inline(always)]
    fn str(&mut self, s: &str) -> Result<(), DoesNotFit> {
        self.bytes(s.as_bytes())
    }

    /// `codec::socket_addr`: a length-prefixed run of 6 or 18 bytes.
    #[inline(always)]
    fn addr(&mut self, addr: &SocketAddr) -> Result<(), DoesNotFit> {
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
    fn bool(&mut self, v: bool) -> Result<(), DoesNotFit> {
        self.u8(u8::from(v))
    }

    #[inline(always)]
    fn state(&mut self, s: WireState) -> Result<(), DoesNotFit> {
        self.u8(match s {
            WireState::Alive => 0,
            WireState::Suspect => 1,
            WireState::Dead => 2,
            WireState::Left => 3,
        })
    }

    /// Writes `msg`, tag first. `None` for a kind without a hand-written
    /// encoder.
    #[inline(always)]
    fn message(&mut self, msg: &Message<'_>) -> Option<Result<(), DoesNotFit>> {
        Some(match msg {
            Message::Ping(p) => self.ping(p),
            Message::PingReq(p) => self.ping_req(p),
            Message::Ack(a) => self.ack(a),
            Message::Nack(n) => self.u8(NACK).and_then(|()| self.u32(n.seq)),
            Message::Alive(a) => self.u8(ALIVE).and_then(|()| self.alive(a)),
            Message::Suspect(s) => self.accusation(SUSPECT, s.name, s.incarnation, s.from),
            Message::Dead(d) => self.accusation(DEAD, d.name, d.incarnation, d.from),
            Message::Left(l) => self.left(l),
            Message::Join(j) => self.u8(JOIN).and_then(|()| self.alive(&j.member)),
            Message::JoinReply(r) => self.join_reply(r),
            Message::SyncRequest(s) => self.sync_request(s),
            Message::SyncReply(s) => self.sync_reply(s),
            Message::Member(m) => self.member(m),
            Message::KvEntry(e) => self.kv_entry(e),
            Message::KvDigest(d) => self.kv_digest(d),
            Message::KvPull(p) => self
                .u8(KV_PULL)
                .and_then(|()| self.bool(p.reply))
                .and_then(|()| self.bool(p.complete)),
            Message::KvReset(r) => self.kv_reset(r),
            // Kinds appended to `Message` later go through bincode until
            // they get a hand-written encoder; nothing to change here.
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }

    // One function per message, writing the tag and then the fields in
    // declaration order.

    #[inline(always)]
    fn ping(&mut self, p: &Ping<'_>) -> Result<(), DoesNotFit> {
        self.u8(PING)?;
        self.u32(p.seq)?;
        self.str(p.target)?;
        self.put(p.hash)
    }

    #[inline(always)]
    fn ping_req(&mut self, p: &PingReq<'_>) -> Result<(), DoesNotFit> {
        self.u8(PING_REQ)?;
        self.u32(p.seq)?;
        self.str(p.target)?;
        self.addr(&p.target_addr)?;
        self.bool(p.nack)
    }

    #[inline(always)]
    fn ack(&mut self, a: &Ack) -> Result<(), DoesNotFit> {
        self.u8(ACK)?;
        self.u32(a.seq)?;
        self.put(a.hash)
    }

    #[inline(always)]
    fn alive(&mut self, a: &Alive<'_>) -> Result<(), DoesNotFit> {
        self.str(a.name)?;
        self.addr(&a.addr)?;
        self.u32(a.incarnation)?;
        self.bytes(a.meta.0)
    }

    /// `Suspect` and `Dead` have the same fields.
    #[inline(always)]
    fn accusation(
        &mut self,
        tag: u8,
        name: &str,
        incarnation: u32,
        from: &str,
    ) -> Result<(), DoesNotFit> {
        self.u8(tag)?;
        self.str(name)?;
        self.u32(incarnation)?;
        self.str(from)
    }

    #[inline(always)]
    fn left(&mut self, l: &Left<'_>) -> Result<(), DoesNotFit> {
        self.u8(LEFT)?;
        self.str(l.name)?;
        self.u32(l.incarnation)
    }

    #[inline(always)]
    fn join_reply(&mut self, r: &JoinReply<'_>) -> Result<(), DoesNotFit> {
        self.u8(JOIN_REPLY)?;
        self.u32(r.known)?;
        self.str(r.from)
    }

    #[inline(always)]
    fn sync_request(&mut self, s: &SyncRequest<'_>) -> Result<(), DoesNotFit> {
        self.u8(SYNC_REQUEST)?;
        self.u32(s.id)?;
        self.str(s.from)?;
        self.bytes(s.buckets.0)
    }

    #[inline(always)]
    fn sync_reply(&mut self, s: &SyncReply<'_>) -> Result<(), DoesNotFit> {
        self.u8(SYNC_REPLY)?;
        self.u32(s.id)?;
        self.u64(s.mask)?;
        self.str(s.from)
    }

    #[inline(always)]
    fn kv_entry(&mut self, e: &KvEntry<'_>) -> Result<(), DoesNotFit> {
        self.u8(KV_ENTRY)?;
        self.str(e.node)?;
        self.u64(e.generation)?;
        self.u64(e.base)?;
        self.u64(e.version)?;
        self.str(e.key)?;
        self.bytes(e.value.0)?;
        self.u64(e.expires_ms)?;
        self.bool(e.deleted)
    }

    #[inline(always)]
    fn kv_digest(&mut self, d: &KvDigest<'_>) -> Result<(), DoesNotFit> {
        self.u8(KV_DIGEST)?;
        self.str(d.node)?;
        self.u64(d.generation)?;
        self.u64(d.heartbeat)?;
        self.u64(d.max_version)
    }

    #[inline(always)]
    fn kv_reset(&mut self, r: &KvReset<'_>) -> Result<(), DoesNotFit> {
        self.u8(KV_RESET)?;
        self.str(r.node)?;
        self.u64(r.generation)?;
        self.u64(r.floor)
    }

    #[inline(always)]
    fn member(&mut self, m: &MemberEntry<'_>) -> Result<(), DoesNotFit> {
        self.u8(MEMBER)?;
        self.str(m.name)?;
        self.addr(&m.addr)?;
        self.u32(m.incarnation)?;
        self.state(m.state)?;
        self.bytes(m.meta.0)
    }
}

/// Encodes `msg` at the start of `dst` exactly as bincode would, returning
/// the bytes written, or [`DoesNotFit`] when bincode would (the message is
/// longer than `dst`). `None` if its kind has no hand-written encoder.
#[inline]
pub(crate) fn encode_into(msg: &Message<'_>, dst: &mut [u8]) -> Option<Result<usize, DoesNotFit>> {
    let len = dst.len();
    let mut w = Writer { rest: dst };
    let written = w.message(msg)?;
    Some(written.map(|()| len - w.rest.len()))
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
fn varint_len(v: u64) -> usize {
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
fn bytes_len(b: &[u8]) -> usize {
    varint_len(b.len() as u64) + b.len()
}

/// Bytes taken by a packed socket address (length prefix included).
#[inline(always)]
fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 6,
        SocketAddr::V6(_) => 1 + 18,
    }
}

#[inline(always)]
fn alive_len(a: &Alive<'_>) -> usize {
    bytes_len(a.name.as_bytes())
        + addr_len(&a.addr)
        + varint_len(a.incarnation.into())
        + bytes_len(a.meta.0)
}

/// The exact length of `msg`'s encoding, tag included (what
/// [`encode_into`] writes); `None` for a kind without a hand-written
/// encoder.
#[inline]
pub(crate) fn encoded_len(msg: &Message<'_>) -> Option<usize> {
    let str_len = |s: &str| bytes_len(s.as_bytes());
    let body = match msg {
        Message::Ping(p) => varint_len(p.seq.into()) + str_len(p.target) + 4,
        Message::PingReq(p) => {
            varint_len(p.seq.into()) + str_len(p.target) + addr_len(&p.target_addr) + 1
        }
        Message::Ack(a) => varint_len(a.seq.into()) + 4,
        Message::Nack(n) => varint_len(n.seq.into()),
        Message::Alive(a) | Message::Join(Join { member: a }) => alive_len(a),
        Message::Suspect(Suspect {
            name,
            incarnation,
            from,
        })
        | Message::Dead(Dead {
            name,
            incarnation,
            from,
        }) => str_len(name) + varint_len((*incarnation).into()) + str_len(from),
        Message::Left(l) => str_len(l.name) + varint_len(l.incarnation.into()),
        Message::JoinReply(r) => varint_len(r.known.into()) + str_len(r.from),
        Message::SyncRequest(s) => {
            varint_len(s.id.into()) + str_len(s.from) + bytes_len(s.buckets.0)
        }
        Message::SyncReply(s) => varint_len(s.id.into()) + varint_len(s.mask) + str_len(s.from),
        Message::Member(m) => {
            str_len(m.name)
                + addr_len(&m.addr)
                + varint_len(m.incarnation.into())
                + 1
                + bytes_len(m.meta.0)
        }
        Message::KvEntry(e) => {
            str_len(e.node)
                + varint_len(e.generation)
                + varint_len(e.base)
                + varint_len(e.version)
                + str_len(e.key)
                + bytes_len(e.value.0)
                + varint_len(e.expires_ms)
                + 1
        }
        Message::KvDigest(d) => {
            str_len(d.node)
                + varint_len(d.generation)
                + varint_len(d.heartbeat)
                + varint_len(d.max_version)
        }
        Message::KvPull(_) => 2,
        Message::KvReset(r) => str_len(r.node) + varint_len(r.generation) + varint_len(r.floor),
        // As in `Writer::message`.
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    // The tag: one varint byte while there are fewer than 251 kinds.
    Some(1 + body)
}

/// Encodes `msg` into a vector of exactly its length, as bincode would;
/// `None` for a kind without a hand-written encoder.
#[inline]
pub(crate) fn encode_to_vec(msg: &Message<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; encoded_len(msg)?];
    match encode_into(msg, &mut buf)? {
        Ok(n) if n == buf.len() => Some(buf),
        // Cannot happen (`encoded_len` is exact, which the tests check);
        // should it ever, bincode answers rather than a wrong length.
        _ => None,
    }
}
