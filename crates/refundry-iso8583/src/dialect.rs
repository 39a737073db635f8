//! A dialect is data: the rules around the fields (headers, how the MTI,
//! the bitmap and variable lengths are written, the frame's length prefix)
//! and a table of up to 128 field specs. Supporting another acquirer means
//! writing another table, not another codec.

use crate::spec::{Encoding, FieldSpec, Kind, Length};

/// How the message type indicator is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MtiEncoding {
    /// Four digits in two bytes (`0200` → `02 00`).
    Bcd,
    /// Four ASCII digits.
    Ascii,
}

/// How each 64-bit bitmap is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitmapEncoding {
    /// Eight bytes.
    Binary,
    /// Sixteen upper-case hexadecimal ASCII characters. Lower case is
    /// refused on decoding so that a message has one spelling.
    Hex,
}

/// How the length in front of an LLVAR or LLLVAR value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrefixEncoding {
    /// BCD: one byte for LL, two bytes (first nibble 0) for LLL.
    Bcd,
    /// ASCII digits: two for LL, three for LLL.
    Ascii,
    /// Binary: one byte for LL, two bytes big-endian for LLL.
    Binary,
}

/// The length in front of each whole message on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FramePrefix {
    /// Two bytes, big-endian, counting the bytes that follow.
    BigEndian2,
    /// Four ASCII digits counting the bytes that follow.
    Ascii4,
}

impl FramePrefix {
    /// Bytes the prefix itself takes.
    pub fn width(self) -> usize {
        match self {
            FramePrefix::BigEndian2 => 2,
            FramePrefix::Ascii4 => 4,
        }
    }

    /// The largest frame this prefix can announce.
    pub fn max_frame(self) -> usize {
        match self {
            FramePrefix::BigEndian2 => u16::MAX as usize,
            FramePrefix::Ascii4 => 9999,
        }
    }
}

/// Everything about a dialect except its field table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    pub frame_prefix: FramePrefix,
    /// Whether a 5-byte TPDU (id, destination, source) opens the message.
    pub tpdu: bool,
    /// Bytes of application header between the TPDU and the MTI (China
    /// UnionPay POS: 6); carried as they are.
    pub header_len: usize,
    pub mti: MtiEncoding,
    pub bitmap: BitmapEncoding,
    pub var_length: PrefixEncoding,
    /// The field that carries the MAC, computed over the MTI, the bitmap
    /// and every field before it. `None` for dialects without one.
    pub mac_field: Option<u8>,
}

/// Why a dialect's table cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dialect table, field {field}: {problem}")]
pub struct DialectError {
    pub field: u8,
    pub problem: &'static str,
}

/// A layout plus the table of field specs, indexed by field number.
#[derive(Clone, PartialEq, Eq)]
pub struct Dialect {
    name: &'static str,
    layout: Layout,
    /// Index 0 and 1 stay empty: the MTI and the secondary bitmap are not
    /// data elements one can set.
    fields: Vec<Option<FieldSpec>>,
}

impl Dialect {
    /// Checks the table once, so that encoding and decoding can trust it.
    pub fn new(name: &'static str, layout: Layout, specs: &[FieldSpec]) -> Result<Dialect, DialectError> {
        let mut fields = vec![None; 129];
        for spec in specs {
            if let Some(problem) = spec.problem() {
                return Err(DialectError { field: spec.number, problem });
            }
            let slot = &mut fields[spec.number as usize];
            if slot.is_some() {
                return Err(DialectError { field: spec.number, problem: "defined twice" });
            }
            *slot = Some(*spec);
        }
        if let Some(mac) = layout.mac_field {
            let binary_8 = |s: &FieldSpec| s.kind == Kind::Binary && s.length == Length::Fixed(8);
            match fields.get(mac as usize).copied().flatten() {
                Some(spec) if binary_8(&spec) && spec.encoding == Encoding::Binary => {}
                _ => return Err(DialectError { field: mac, problem: "the MAC field must be defined as b64" }),
            }
        }
        Ok(Dialect { name, layout, fields })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The spec of field `number`, if this dialect defines it.
    pub fn field(&self, number: u8) -> Option<&FieldSpec> {
        self.fields.get(number as usize).and_then(Option::as_ref)
    }

    /// Every defined field, in field-number order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.iter().flatten()
    }

    /// Bytes in front of the MTI: the TPDU and the application header.
    pub(crate) fn preamble_len(&self) -> usize {
        (if self.layout.tpdu { 5 } else { 0 }) + self.layout.header_len
    }
}

impl std::fmt::Debug for Dialect {
    /// Defined fields only: 129 slots, mostly empty, say little.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialect")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .field("fields", &self.fields().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Encoding;

    fn layout() -> Layout {
        Layout {
            frame_prefix: FramePrefix::BigEndian2,
            tpdu: false,
            header_len: 0,
            mti: MtiEncoding::Ascii,
            bitmap: BitmapEncoding::Hex,
            var_length: PrefixEncoding::Ascii,
            mac_field: None,
        }
    }

    #[test]
    fn a_field_defined_twice_is_refused() {
        let spec = FieldSpec::new(3, "processing code", Kind::Numeric, Length::Fixed(6), Encoding::Ascii);
        let err = Dialect::new("twice", layout(), &[spec, spec]).unwrap_err();
        assert_eq!(err.field, 3);
    }

    #[test]
    fn the_mac_field_must_be_eight_bytes() {
        let mac = FieldSpec::new(64, "mac", Kind::Binary, Length::Fixed(16), Encoding::Binary);
        let err = Dialect::new("mac", Layout { mac_field: Some(64), ..layout() }, &[mac]).unwrap_err();
        assert_eq!(err.field, 64);
        let missing = Dialect::new("mac", Layout { mac_field: Some(64), ..layout() }, &[]).unwrap_err();
        assert_eq!(missing.field, 64);
    }

    #[test]
    fn lookups_skip_undefined_fields() {
        let spec = FieldSpec::new(11, "stan", Kind::Numeric, Length::Fixed(6), Encoding::Ascii);
        let d = Dialect::new("one", layout(), &[spec]).unwrap();
        assert_eq!(d.field(11), Some(&spec));
        assert_eq!(d.field(12), None);
        assert_eq!(d.field(0), None);
        assert_eq!(d.field(200), None);
        assert_eq!(d.fields().count(), 1);
    }
}
