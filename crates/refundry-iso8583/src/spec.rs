//! What one data element looks like: its content type, how long it may be
//! and how it is written on the wire. A dialect is a table of these.

/// The content type of a data element, as ISO 8583 writes it (`n`, `an`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `n`: digits only.
    Numeric,
    /// `a`: letters. Space is accepted because hosts pad fixed fields with it.
    Alpha,
    /// `an`: letters and digits (and padding spaces, as for `a`).
    AlphaNumeric,
    /// `ans`: any printable ASCII character, space included.
    AlphaNumericSpecial,
    /// `z`: magnetic track data: digits and the field separator `=`.
    Track,
    /// `b`: bytes, carried as they are.
    Binary,
}

impl Kind {
    /// Whether the character may appear in a text value of this kind.
    /// Binary has no text form, so nothing is allowed.
    pub fn allows(self, c: u8) -> bool {
        match self {
            Kind::Numeric => c.is_ascii_digit(),
            Kind::Alpha => c.is_ascii_alphabetic() || c == b' ',
            Kind::AlphaNumeric => c.is_ascii_alphanumeric() || c == b' ',
            Kind::AlphaNumericSpecial => (0x20..=0x7e).contains(&c),
            Kind::Track => c.is_ascii_digit() || c == b'=',
            Kind::Binary => false,
        }
    }

    /// The unit lengths of this kind are counted in.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Numeric | Kind::Track => "digits",
            Kind::Binary => "bytes",
            _ => "characters",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Kind::Numeric => "n",
            Kind::Alpha => "a",
            Kind::AlphaNumeric => "an",
            Kind::AlphaNumericSpecial => "ans",
            Kind::Track => "z",
            Kind::Binary => "b",
        }
    }
}

/// How long a value is, counted in the kind's own unit: digits for `n` and
/// `z`, characters for `a`/`an`/`ans`, bytes for `b`. ISO writes `b64` in
/// bits; here that is `Fixed(8)` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Length {
    Fixed(u16),
    /// Up to 99 units after a two-digit length.
    LlVar(u16),
    /// Up to 999 units after a three-digit length.
    LllVar(u16),
}

impl Length {
    /// The most units a value may have.
    pub fn max(self) -> u16 {
        match self {
            Length::Fixed(n) | Length::LlVar(n) | Length::LllVar(n) => n,
        }
    }

    /// Whether a value of `len` units fits.
    pub fn admits(self, len: usize) -> bool {
        match self {
            Length::Fixed(n) => len == n as usize,
            Length::LlVar(max) | Length::LllVar(max) => len <= max as usize,
        }
    }
}

impl std::fmt::Display for Length {
    /// Reads after "the dialect wants": `exactly 8`, `at most 19 (LLVAR)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Length::Fixed(n) => write!(f, "exactly {n}"),
            Length::LlVar(max) => write!(f, "at most {max} (LLVAR)"),
            Length::LllVar(max) => write!(f, "at most {max} (LLLVAR)"),
        }
    }
}

/// Which end of a packed BCD field the digits sit against when their count
/// is odd. The other end gets the dialect's pad nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Justify {
    /// Digits first, pad nibble last (`"123"` → `12 30`).
    Left,
    /// Pad nibble first, then digits (`"123"` → `01 23`).
    Right,
}

/// How a value's units become bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Two digits a byte. `pad` is the nibble that fills an odd count
    /// (0 in China UnionPay's layout, F in some others) and must be seen
    /// again on decoding, so that every message has one spelling.
    Bcd { justify: Justify, pad: u8 },
    /// One ASCII character a byte.
    Ascii,
    /// Bytes as they are; only for [`Kind::Binary`].
    Binary,
}

impl Encoding {
    pub const BCD_LEFT: Encoding = Encoding::Bcd { justify: Justify::Left, pad: 0 };
    pub const BCD_RIGHT: Encoding = Encoding::Bcd { justify: Justify::Right, pad: 0 };

    /// Bytes taken on the wire by `units` units.
    pub fn byte_len(self, units: usize) -> usize {
        match self {
            Encoding::Bcd { .. } => units.div_ceil(2),
            Encoding::Ascii | Encoding::Binary => units,
        }
    }
}

/// One data element of a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    pub number: u8,
    pub name: &'static str,
    pub kind: Kind,
    pub length: Length,
    pub encoding: Encoding,
}

impl FieldSpec {
    pub const fn new(number: u8, name: &'static str, kind: Kind, length: Length, encoding: Encoding) -> FieldSpec {
        FieldSpec { number, name, kind, length, encoding }
    }

    /// Why this spec cannot be used, if it cannot: a kind the encoding
    /// cannot carry, or a length its prefix cannot count.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if !(2..=128).contains(&self.number) {
            return Some("field numbers run from 2 to 128 (1 is the secondary bitmap)");
        }
        match (self.kind, self.encoding) {
            (Kind::Binary, Encoding::Binary) => {}
            (Kind::Binary, _) => return Some("binary fields must use the binary encoding"),
            (_, Encoding::Binary) => return Some("only binary fields may use the binary encoding"),
            (Kind::Numeric | Kind::Track, Encoding::Bcd { pad, .. }) if pad > 0xf => {
                return Some("the BCD pad must be one nibble (0 to F)");
            }
            (Kind::Numeric | Kind::Track, _) => {}
            (_, Encoding::Bcd { .. }) => return Some("only numeric and track fields may be packed as BCD"),
            _ => {}
        }
        match self.length {
            Length::Fixed(0) => Some("a fixed length must be at least 1"),
            Length::LlVar(max) if max > 99 => Some("an LLVAR field holds at most 99 units"),
            Length::LllVar(max) if max > 999 => Some("an LLLVAR field holds at most 999 units"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_accept_only_their_characters() {
        assert!(Kind::Numeric.allows(b'7') && !Kind::Numeric.allows(b'A') && !Kind::Numeric.allows(b' '));
        assert!(Kind::Alpha.allows(b'x') && Kind::Alpha.allows(b' ') && !Kind::Alpha.allows(b'1'));
        assert!(Kind::AlphaNumeric.allows(b'Z') && Kind::AlphaNumeric.allows(b'0') && !Kind::AlphaNumeric.allows(b'-'));
        assert!(Kind::AlphaNumericSpecial.allows(b'~') && !Kind::AlphaNumericSpecial.allows(0x7f));
        assert!(!Kind::AlphaNumericSpecial.allows(0xe4), "GBK bytes belong in binary fields");
        assert!(Kind::Track.allows(b'=') && !Kind::Track.allows(b'D'));
    }

    #[test]
    fn bcd_takes_half_a_byte_a_digit_rounded_up() {
        assert_eq!(Encoding::BCD_LEFT.byte_len(3), 2);
        assert_eq!(Encoding::BCD_RIGHT.byte_len(12), 6);
        assert_eq!(Encoding::Ascii.byte_len(3), 3);
    }

    #[test]
    fn specs_that_cannot_work_are_named() {
        let ok = FieldSpec::new(4, "amount", Kind::Numeric, Length::Fixed(12), Encoding::BCD_RIGHT);
        assert_eq!(ok.problem(), None);
        let binary_bcd = FieldSpec { encoding: Encoding::BCD_LEFT, kind: Kind::Binary, ..ok };
        assert!(binary_bcd.problem().is_some());
        let ascii_bcd = FieldSpec { kind: Kind::AlphaNumeric, ..ok };
        assert!(ascii_bcd.problem().is_some());
        let too_long = FieldSpec { length: Length::LlVar(100), ..ok };
        assert!(too_long.problem().is_some());
        let field_one = FieldSpec { number: 1, ..ok };
        assert!(field_one.problem().is_some());
        let wide_pad = FieldSpec { encoding: Encoding::Bcd { justify: Justify::Left, pad: 0x10 }, ..ok };
        assert!(wide_pad.problem().is_some());
    }
}
