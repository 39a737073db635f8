//! Messages to bytes and back, driven by a dialect's table.
//!
//! Decoding reads untrusted bytes from the network, so it never indexes
//! without a bound check and never panics: every way a message can be wrong
//! is a [`CodecError`] naming the part or field and what is wrong with it.
//! It is also strict (pad nibbles, upper-case hex, no empty secondary
//! bitmap, no trailing bytes), so a message has exactly one spelling and
//! `encode(decode(bytes)) == bytes` whenever decoding succeeds. The MAC
//! relies on that: it is checked over the re-encoded message.

use std::fmt;

use crate::bcd;
use crate::dialect::{BitmapEncoding, Dialect, MtiEncoding, PrefixEncoding};
use crate::message::{FieldValue, Message, Mti, Tpdu};
use crate::spec::{Encoding, FieldSpec, Kind, Length};

/// Where in a message something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Tpdu,
    Header,
    Mti,
    PrimaryBitmap,
    SecondaryBitmap,
    /// The LL or LLL length in front of a field.
    LengthOf(u8),
    Field(u8),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Tpdu => f.write_str("TPDU"),
            Part::Header => f.write_str("message header"),
            Part::Mti => f.write_str("MTI"),
            Part::PrimaryBitmap => f.write_str("primary bitmap"),
            Part::SecondaryBitmap => f.write_str("secondary bitmap"),
            Part::LengthOf(n) => write!(f, "length of field {n}"),
            Part::Field(n) => write!(f, "field {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{part}: the message ends after {available} of the {needed} bytes it needs")]
    Truncated { part: Part, needed: usize, available: usize },
    #[error("{part}: {problem}")]
    Malformed { part: Part, problem: &'static str },
    #[error("the dialect has a TPDU but the message has none")]
    MissingTpdu,
    #[error("the message has a TPDU but the dialect has none")]
    UnexpectedTpdu,
    #[error("message header: the dialect wants {expected} bytes, the message has {found}")]
    HeaderLength { expected: usize, found: usize },
    #[error("field {field}: fields 0 and 1 are the MTI and the secondary bitmap, which the codec writes")]
    ReservedField { field: u8 },
    #[error("field {field}: not defined in dialect {dialect}")]
    UndefinedField { field: u8, dialect: &'static str },
    #[error("field {field}: a {kind} field needs a {expected} value")]
    ValueType { field: u8, kind: &'static str, expected: &'static str },
    #[error("field {field}: {len} {unit}, the dialect wants {length}")]
    Length { field: u8, len: usize, unit: &'static str, length: Length },
    #[error("field {field}: character {position} (byte {byte:#04x}) is not allowed in a {kind} field")]
    Character { field: u8, position: usize, byte: u8, kind: &'static str },
    #[error("field {field}: nibble {nibble:X} at digit {position} is not allowed in a packed {kind} field")]
    Nibble { field: u8, position: usize, nibble: u8, kind: &'static str },
    #[error("field {field}: pad nibble is {found:X}, the dialect pads with {expected:X}")]
    Padding { field: u8, found: u8, expected: u8 },
    #[error("{count} bytes left over after the last field")]
    TrailingBytes { count: usize },
}

/// Encodes a message: TPDU, header, MTI, bitmap(s), then each field in
/// number order. Fails on the first value the dialect refuses.
pub fn encode(dialect: &Dialect, message: &Message) -> Result<Vec<u8>, CodecError> {
    let layout = dialect.layout();
    let mut out = Vec::with_capacity(256);
    match (layout.tpdu, message.tpdu) {
        (true, Some(tpdu)) => out.extend_from_slice(&tpdu.to_bytes()),
        (true, None) => return Err(CodecError::MissingTpdu),
        (false, Some(_)) => return Err(CodecError::UnexpectedTpdu),
        (false, None) => {}
    }
    if message.header.len() != layout.header_len {
        return Err(CodecError::HeaderLength { expected: layout.header_len, found: message.header.len() });
    }
    out.extend_from_slice(&message.header);
    encode_mti(layout.mti, message.mti, &mut out);

    let mut bitmap = [0u8; 16];
    for &n in message.fields.keys() {
        if n < 2 {
            return Err(CodecError::ReservedField { field: n });
        }
        if dialect.field(n).is_none() {
            return Err(CodecError::UndefinedField { field: n, dialect: dialect.name() });
        }
        set_bit(&mut bitmap, n);
    }
    let secondary = message.fields.keys().any(|&n| n > 64);
    if secondary {
        set_bit(&mut bitmap, 1);
    }
    let bitmaps = if secondary { &bitmap[..] } else { &bitmap[..8] };
    for half in bitmaps.chunks(8) {
        match layout.bitmap {
            BitmapEncoding::Binary => out.extend_from_slice(half),
            BitmapEncoding::Hex => out.extend_from_slice(hex::encode_upper(half).as_bytes()),
        }
    }

    for (&n, value) in &message.fields {
        let Some(spec) = dialect.field(n) else {
            return Err(CodecError::UndefinedField { field: n, dialect: dialect.name() });
        };
        encode_field(spec, layout.var_length, value, &mut out)?;
    }
    Ok(out)
}

/// Checks a message against a dialect without keeping the bytes.
pub fn validate(dialect: &Dialect, message: &Message) -> Result<(), CodecError> {
    encode(dialect, message).map(drop)
}

/// Checks only the fields, not the TPDU and header: for messages built
/// before the connection's addresses are known.
pub fn validate_fields(dialect: &Dialect, message: &Message) -> Result<(), CodecError> {
    for (&field, value) in &message.fields {
        if field < 2 {
            return Err(CodecError::ReservedField { field });
        }
        let spec = dialect.field(field).ok_or(CodecError::UndefinedField { field, dialect: dialect.name() })?;
        check_value(spec, value)?;
    }
    Ok(())
}

/// Decodes one whole message (without the frame's length prefix).
pub fn decode(dialect: &Dialect, bytes: &[u8]) -> Result<Message, CodecError> {
    let layout = dialect.layout();
    let mut r = Reader { buf: bytes, pos: 0 };
    let tpdu = if layout.tpdu {
        let b = r.take(5, Part::Tpdu)?;
        Some(Tpdu::from_bytes([b[0], b[1], b[2], b[3], b[4]]))
    } else {
        None
    };
    let header = r.take(layout.header_len, Part::Header)?.to_vec();
    let mti = decode_mti(layout.mti, &mut r)?;

    let mut bitmap = [0u8; 16];
    bitmap[..8].copy_from_slice(&read_bitmap(layout.bitmap, &mut r, Part::PrimaryBitmap)?);
    let secondary = bit(&bitmap, 1);
    if secondary {
        let second = read_bitmap(layout.bitmap, &mut r, Part::SecondaryBitmap)?;
        if second == [0; 8] {
            return Err(CodecError::Malformed {
                part: Part::SecondaryBitmap,
                problem: "present but empty (bit 1 is set with no field from 65 to 128)",
            });
        }
        bitmap[8..].copy_from_slice(&second);
    }

    let mut message = Message { tpdu, header, mti, fields: Default::default() };
    let last = if secondary { 128 } else { 64 };
    for n in 2..=last {
        if !bit(&bitmap, n) {
            continue;
        }
        let Some(spec) = dialect.field(n) else {
            return Err(CodecError::UndefinedField { field: n, dialect: dialect.name() });
        };
        let value = decode_field(spec, layout.var_length, &mut r)?;
        message.fields.insert(n, value);
    }
    let count = r.remaining();
    if count > 0 {
        return Err(CodecError::TrailingBytes { count });
    }
    Ok(message)
}

fn set_bit(bitmap: &mut [u8; 16], n: u8) {
    let i = (n - 1) as usize;
    bitmap[i / 8] |= 0x80 >> (i % 8);
}

fn bit(bitmap: &[u8; 16], n: u8) -> bool {
    let i = (n - 1) as usize;
    bitmap[i / 8] & (0x80 >> (i % 8)) != 0
}

/// A cursor over untrusted bytes whose only way to read is a checked take.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, part: Part) -> Result<&'a [u8], CodecError> {
        let available = self.remaining();
        let end = self.pos.checked_add(n).filter(|_| n <= available);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(CodecError::Truncated { part, needed: n, available }),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

fn encode_mti(encoding: MtiEncoding, mti: Mti, out: &mut Vec<u8>) {
    let digits = mti.digits();
    match encoding {
        MtiEncoding::Ascii => out.extend_from_slice(&digits),
        MtiEncoding::Bcd => {
            let nibbles = digits.map(|d| d - b'0');
            out.extend_from_slice(&bcd::pack(&nibbles, crate::spec::Justify::Left, 0));
        }
    }
}

fn decode_mti(encoding: MtiEncoding, r: &mut Reader<'_>) -> Result<Mti, CodecError> {
    let not_digits = CodecError::Malformed { part: Part::Mti, problem: "not four decimal digits" };
    let digits: [u8; 4] = match encoding {
        MtiEncoding::Ascii => {
            let b = r.take(4, Part::Mti)?;
            [b[0], b[1], b[2], b[3]]
        }
        MtiEncoding::Bcd => {
            let b = r.take(2, Part::Mti)?;
            let n = [b[0] >> 4, b[0] & 0x0f, b[1] >> 4, b[1] & 0x0f];
            if n.iter().any(|&d| d > 9) {
                return Err(not_digits);
            }
            n.map(|d| b'0' + d)
        }
    };
    Mti::from_digits(digits).map_err(|_| not_digits)
}

fn read_bitmap(encoding: BitmapEncoding, r: &mut Reader<'_>, part: Part) -> Result<[u8; 8], CodecError> {
    let mut bits = [0u8; 8];
    match encoding {
        BitmapEncoding::Binary => bits.copy_from_slice(r.take(8, part)?),
        BitmapEncoding::Hex => {
            let text = r.take(16, part)?;
            let upper = text.iter().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c));
            let problem = "not 16 upper-case hexadecimal digits";
            if !upper {
                return Err(CodecError::Malformed { part, problem });
            }
            hex::decode_to_slice(text, &mut bits).map_err(|_| CodecError::Malformed { part, problem })?;
        }
    }
    Ok(bits)
}

/// The nibble a character packs to, for the kinds that pack.
fn nibble_of(kind: Kind, c: u8) -> Option<u8> {
    match (kind, c) {
        (Kind::Numeric | Kind::Track, b'0'..=b'9') => Some(c - b'0'),
        (Kind::Track, b'=') => Some(0xd),
        _ => None,
    }
}

/// The character a nibble unpacks to, for the kinds that pack.
fn char_of(kind: Kind, nibble: u8) -> Option<u8> {
    match (kind, nibble) {
        (Kind::Numeric | Kind::Track, 0..=9) => Some(b'0' + nibble),
        (Kind::Track, 0xd) => Some(b'='),
        _ => None,
    }
}

/// Checks a value against its spec and returns its characters or bytes.
fn check_value<'v>(spec: &FieldSpec, value: &'v FieldValue) -> Result<&'v [u8], CodecError> {
    let field = spec.number;
    let kind = spec.kind.code();
    let raw = match (spec.kind, value) {
        (Kind::Binary, FieldValue::Bytes(b)) => b.as_slice(),
        (Kind::Binary, FieldValue::Text(_)) => {
            return Err(CodecError::ValueType { field, kind, expected: "bytes" });
        }
        (_, FieldValue::Bytes(_)) => return Err(CodecError::ValueType { field, kind, expected: "text" }),
        (k, FieldValue::Text(s)) => {
            let bytes = s.as_bytes();
            if let Some(position) = bytes.iter().position(|&c| !k.allows(c)) {
                return Err(CodecError::Character { field, position, byte: bytes[position], kind });
            }
            bytes
        }
    };
    if !spec.length.admits(raw.len()) {
        return Err(CodecError::Length { field, len: raw.len(), unit: spec.kind.unit(), length: spec.length });
    }
    Ok(raw)
}

fn encode_field(
    spec: &FieldSpec,
    prefix: PrefixEncoding,
    value: &FieldValue,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let raw = check_value(spec, value)?;
    match spec.length {
        Length::Fixed(_) => {}
        Length::LlVar(_) => write_length(prefix, 2, raw.len(), out),
        Length::LllVar(_) => write_length(prefix, 3, raw.len(), out),
    }
    match spec.encoding {
        Encoding::Ascii | Encoding::Binary => out.extend_from_slice(raw),
        Encoding::Bcd { justify, pad } => {
            // check_value let only characters with a nibble through.
            let nibbles: Vec<u8> = raw.iter().filter_map(|&c| nibble_of(spec.kind, c)).collect();
            out.extend_from_slice(&bcd::pack(&nibbles, justify, pad));
        }
    }
    Ok(())
}

/// Writes `len` (at most 99 or 999, checked by the spec) as a `digits`-digit
/// length prefix.
fn write_length(prefix: PrefixEncoding, digits: usize, len: usize, out: &mut Vec<u8>) {
    match prefix {
        PrefixEncoding::Ascii => out.extend_from_slice(format!("{len:0digits$}").as_bytes()),
        PrefixEncoding::Bcd => {
            let text = format!("{len:0width$}", width = digits + digits % 2);
            let nibbles: Vec<u8> = text.bytes().map(|d| d - b'0').collect();
            out.extend_from_slice(&bcd::pack(&nibbles, crate::spec::Justify::Right, 0));
        }
        PrefixEncoding::Binary if digits == 2 => out.push(len as u8),
        PrefixEncoding::Binary => out.extend_from_slice(&(len as u16).to_be_bytes()),
    }
}

fn read_length(prefix: PrefixEncoding, digits: usize, field: u8, r: &mut Reader<'_>) -> Result<usize, CodecError> {
    let part = Part::LengthOf(field);
    let malformed = |problem| CodecError::Malformed { part, problem };
    match prefix {
        PrefixEncoding::Ascii => {
            let text = r.take(digits, part)?;
            if !text.iter().all(u8::is_ascii_digit) {
                return Err(malformed("not ASCII digits"));
            }
            Ok(text.iter().fold(0, |n, &d| n * 10 + (d - b'0') as usize))
        }
        PrefixEncoding::Bcd => {
            let bytes = r.take(digits.div_ceil(2), part)?;
            // An even count, so there is no pad to look at.
            let (nibbles, _) = bcd::unpack(bytes, digits + digits % 2, crate::spec::Justify::Right);
            if nibbles.iter().any(|&d| d > 9) {
                return Err(malformed("not packed decimal digits"));
            }
            if nibbles.len() > digits && nibbles.first() != Some(&0) {
                return Err(malformed("an LLL length's first nibble must be 0"));
            }
            Ok(nibbles.iter().fold(0, |n, &d| n * 10 + d as usize))
        }
        PrefixEncoding::Binary => {
            let bytes = r.take(if digits == 2 { 1 } else { 2 }, part)?;
            Ok(bytes.iter().fold(0, |n, &b| n << 8 | b as usize))
        }
    }
}

fn decode_field(spec: &FieldSpec, prefix: PrefixEncoding, r: &mut Reader<'_>) -> Result<FieldValue, CodecError> {
    let field = spec.number;
    let kind = spec.kind.code();
    let units = match spec.length {
        Length::Fixed(n) => n as usize,
        Length::LlVar(_) => read_length(prefix, 2, field, r)?,
        Length::LllVar(_) => read_length(prefix, 3, field, r)?,
    };
    if !spec.length.admits(units) {
        return Err(CodecError::Length { field, len: units, unit: spec.kind.unit(), length: spec.length });
    }
    let bytes = r.take(spec.encoding.byte_len(units), Part::Field(field))?;
    match spec.encoding {
        Encoding::Binary => Ok(FieldValue::Bytes(bytes.to_vec())),
        Encoding::Ascii => {
            if let Some(position) = bytes.iter().position(|&c| !spec.kind.allows(c)) {
                return Err(CodecError::Character { field, position, byte: bytes[position], kind });
            }
            Ok(FieldValue::Text(bytes.iter().map(|&c| c as char).collect()))
        }
        Encoding::Bcd { justify, pad } => {
            let (nibbles, found) = bcd::unpack(bytes, units, justify);
            if let Some(found) = found.filter(|&f| f != pad) {
                return Err(CodecError::Padding { field, found, expected: pad });
            }
            let mut text = String::with_capacity(units);
            for (position, &nibble) in nibbles.iter().enumerate() {
                match char_of(spec.kind, nibble) {
                    Some(c) => text.push(c as char),
                    None => return Err(CodecError::Nibble { field, position, nibble, kind }),
                }
            }
            Ok(FieldValue::Text(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{FramePrefix, Layout};
    use crate::spec::Justify;

    fn layout() -> Layout {
        Layout {
            frame_prefix: FramePrefix::BigEndian2,
            tpdu: false,
            header_len: 0,
            mti: MtiEncoding::Bcd,
            bitmap: BitmapEncoding::Binary,
            var_length: PrefixEncoding::Bcd,
            mac_field: None,
        }
    }

    fn dialect(specs: &[FieldSpec]) -> Dialect {
        Dialect::new("test", layout(), specs).unwrap()
    }

    fn one_field(spec: FieldSpec, value: FieldValue) -> Result<Vec<u8>, CodecError> {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        m.fields.insert(spec.number, value);
        encode(&dialect(&[spec]), &m).map(|b| b[10..].to_vec())
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::Text(s.into())
    }

    #[test]
    fn odd_fixed_numbers_pad_on_the_side_the_spec_names() {
        let left = FieldSpec::new(22, "entry mode", Kind::Numeric, Length::Fixed(3), Encoding::BCD_LEFT);
        let right = FieldSpec::new(23, "card seq", Kind::Numeric, Length::Fixed(3), Encoding::BCD_RIGHT);
        assert_eq!(one_field(left, text("051")).unwrap(), [0x05, 0x10]);
        assert_eq!(one_field(right, text("001")).unwrap(), [0x00, 0x01]);
    }

    #[test]
    fn llvar_bcd_counts_digits_and_pads_the_last_byte() {
        let pan = FieldSpec::new(2, "pan", Kind::Numeric, Length::LlVar(19), Encoding::BCD_LEFT);
        let bytes = one_field(pan, text("6222021234567890123")).unwrap();
        assert_eq!(bytes, [0x19, 0x62, 0x22, 0x02, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x30]);
    }

    #[test]
    fn lllvar_bcd_takes_two_bytes_of_length() {
        let f60 = FieldSpec::new(60, "reserved", Kind::Numeric, Length::LllVar(17), Encoding::BCD_LEFT);
        assert_eq!(one_field(f60, text("22000001000")).unwrap(), [0x00, 0x11, 0x22, 0x00, 0x00, 0x01, 0x00, 0x00]);
        let f63 = FieldSpec::new(63, "reserved", Kind::Binary, Length::LllVar(163), Encoding::Binary);
        assert_eq!(one_field(f63, FieldValue::Bytes(b"CUP".to_vec())).unwrap(), [0x00, 0x03, b'C', b'U', b'P']);
    }

    #[test]
    fn track_data_packs_the_separator_as_d() {
        let t2 = FieldSpec::new(35, "track 2", Kind::Track, Length::LlVar(37), Encoding::BCD_LEFT);
        assert_eq!(one_field(t2, text("123=45")).unwrap(), [0x06, 0x12, 0x3d, 0x45]);
    }

    #[test]
    fn values_outside_the_spec_are_named_by_field() {
        let tid = FieldSpec::new(41, "terminal id", Kind::AlphaNumericSpecial, Length::Fixed(8), Encoding::Ascii);
        let err = one_field(tid, text("1234567")).unwrap_err();
        assert_eq!(err, CodecError::Length { field: 41, len: 7, unit: "characters", length: Length::Fixed(8) });
        assert_eq!(err.to_string(), "field 41: 7 characters, the dialect wants exactly 8");
        let err = one_field(tid, text("1234567\u{7f}")).unwrap_err();
        assert!(matches!(err, CodecError::Character { field: 41, position: 7, .. }), "{err}");
        let err = one_field(tid, FieldValue::Bytes(vec![0; 8])).unwrap_err();
        assert!(matches!(err, CodecError::ValueType { field: 41, expected: "text", .. }), "{err}");
        let amount = FieldSpec::new(4, "amount", Kind::Numeric, Length::Fixed(12), Encoding::BCD_RIGHT);
        let err = one_field(amount, text("00000000001A")).unwrap_err();
        assert!(matches!(err, CodecError::Character { field: 4, position: 11, .. }), "{err}");
    }

    #[test]
    fn fields_missing_from_the_dialect_are_refused_both_ways() {
        let d = dialect(&[FieldSpec::new(3, "proc", Kind::Numeric, Length::Fixed(6), Encoding::BCD_LEFT)]);
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        m.set_text(4, "000000000001");
        assert_eq!(encode(&d, &m), Err(CodecError::UndefinedField { field: 4, dialect: "test" }));
        m.fields.clear();
        m.set_text(1, "x");
        assert_eq!(encode(&d, &m), Err(CodecError::ReservedField { field: 1 }));
        // bit 4 set, field 4 unknown to the dialect
        let bytes = [0x02, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(decode(&d, &bytes), Err(CodecError::UndefinedField { field: 4, dialect: "test" }));
    }

    #[test]
    fn the_bitmap_marks_present_fields_from_the_left() {
        let d = dialect(&[
            FieldSpec::new(3, "proc", Kind::Numeric, Length::Fixed(6), Encoding::BCD_LEFT),
            FieldSpec::new(64, "mac", Kind::Binary, Length::Fixed(8), Encoding::Binary),
        ]);
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        m.set_text(3, "200000").set_bytes(64, [0xaa; 8]);
        let bytes = encode(&d, &m).unwrap();
        assert_eq!(&bytes[..2], [0x08, 0x00]);
        assert_eq!(&bytes[2..10], [0x20, 0, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(decode(&d, &bytes).unwrap(), m);
    }

    #[test]
    fn a_secondary_bitmap_follows_when_a_field_above_64_is_present() {
        let d = dialect(&[
            FieldSpec::new(3, "proc", Kind::Numeric, Length::Fixed(6), Encoding::BCD_LEFT),
            FieldSpec::new(70, "network code", Kind::Numeric, Length::Fixed(3), Encoding::BCD_RIGHT),
        ]);
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        m.set_text(3, "000000").set_text(70, "301");
        let bytes = encode(&d, &m).unwrap();
        assert_eq!(&bytes[2..10], [0xa0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[10..18], [0x04, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[21..], [0x03, 0x01]);
        assert_eq!(decode(&d, &bytes).unwrap(), m);
    }

    #[test]
    fn an_empty_secondary_bitmap_is_refused() {
        let d = dialect(&[FieldSpec::new(3, "proc", Kind::Numeric, Length::Fixed(6), Encoding::BCD_LEFT)]);
        let mut bytes = vec![0x08, 0x00, 0xa0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&[0, 0, 0]);
        let err = decode(&d, &bytes).unwrap_err();
        assert!(matches!(err, CodecError::Malformed { part: Part::SecondaryBitmap, .. }), "{err}");
    }

    #[test]
    fn decoding_refuses_wrong_pads_nibbles_and_leftovers() {
        let d = dialect(&[
            FieldSpec::new(2, "pan", Kind::Numeric, Length::LlVar(19), Encoding::BCD_LEFT),
            FieldSpec::new(60, "reserved", Kind::Numeric, Length::LllVar(17), Encoding::BCD_LEFT),
        ]);
        let head = [0x02, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0];
        let with = |tail: &[u8]| [&head[..], tail].concat();
        assert!(decode(&d, &with(&[0x03, 0x12, 0x30])).is_ok());
        let pad = decode(&d, &with(&[0x03, 0x12, 0x3f])).unwrap_err();
        assert_eq!(pad, CodecError::Padding { field: 2, found: 0xf, expected: 0 });
        let nibble = decode(&d, &with(&[0x02, 0x1a])).unwrap_err();
        assert_eq!(nibble, CodecError::Nibble { field: 2, position: 1, nibble: 0xa, kind: "n" });
        let long = decode(&d, &with(&[0x20, 0x12])).unwrap_err();
        assert!(matches!(long, CodecError::Length { field: 2, len: 20, .. }), "{long}");
        let short = decode(&d, &with(&[0x04, 0x12])).unwrap_err();
        assert_eq!(short, CodecError::Truncated { part: Part::Field(2), needed: 2, available: 1 });
        let prefix = decode(&d, &with(&[0x1a])).unwrap_err();
        assert!(matches!(prefix, CodecError::Malformed { part: Part::LengthOf(2), .. }), "{prefix}");
        let leftover = decode(&d, &with(&[0x02, 0x12, 0xff])).unwrap_err();
        assert_eq!(leftover, CodecError::TrailingBytes { count: 1 });
        let lll = [0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x10, 0x02, 0x12];
        let err = decode(&d, &lll).unwrap_err();
        assert!(matches!(err, CodecError::Malformed { part: Part::LengthOf(60), .. }), "{err}");
    }

    #[test]
    fn the_mti_must_be_packed_digits() {
        let d = dialect(&[]);
        let err = decode(&d, &[0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, CodecError::Malformed { part: Part::Mti, .. }), "{err}");
        assert_eq!(decode(&d, &[0x02]), Err(CodecError::Truncated { part: Part::Mti, needed: 2, available: 1 }));
    }

    #[test]
    fn headers_must_match_the_layout() {
        let d = Dialect::new("hdr", Layout { tpdu: true, header_len: 6, ..layout() }, &[]).unwrap();
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        assert_eq!(encode(&d, &m), Err(CodecError::MissingTpdu));
        m.tpdu = Some(Tpdu::new([0, 3], [0, 0]));
        assert_eq!(encode(&d, &m), Err(CodecError::HeaderLength { expected: 6, found: 0 }));
        m.header = vec![0x60, 0x31, 0x00, 0x31, 0x00, 0x00];
        let bytes = encode(&d, &m).unwrap();
        assert_eq!(&bytes[..13], [0x60, 0, 3, 0, 0, 0x60, 0x31, 0x00, 0x31, 0x00, 0x00, 0x08, 0x00]);
        assert_eq!(decode(&d, &bytes).unwrap(), m);
        let plain = dialect(&[]);
        assert_eq!(encode(&plain, &m), Err(CodecError::UnexpectedTpdu));
    }

    #[test]
    fn f_padding_is_a_table_entry_not_code() {
        let spec = FieldSpec::new(
            2,
            "pan",
            Kind::Numeric,
            Length::LlVar(19),
            Encoding::Bcd { justify: Justify::Left, pad: 0xf },
        );
        assert_eq!(one_field(spec, text("123")).unwrap(), [0x03, 0x12, 0x3f]);
    }
}
