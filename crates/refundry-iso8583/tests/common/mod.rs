//! What the integration tests share: a second dialect and generators of
//! valid messages for any dialect.

#![allow(dead_code)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use refundry_iso8583::{
    BitmapEncoding, Dialect, Encoding, FieldSpec, FieldValue, FramePrefix, Kind, Layout, Length, Message, Mti,
    MtiEncoding, PrefixEncoding, Tpdu,
};

/// A made-up host that writes everything in ASCII: ASCII lengths, a hex
/// bitmap, an ASCII MTI and a four-digit frame length, with fields above
/// 64. It is only a table: no code of the codec knows about it.
pub fn ascii_dialect() -> Dialect {
    use Encoding::{Ascii, Binary};
    use Kind::{Alpha, AlphaNumeric, AlphaNumericSpecial, Numeric, Track};
    use Length::*;
    let layout = Layout {
        frame_prefix: FramePrefix::Ascii4,
        tpdu: false,
        header_len: 0,
        mti: MtiEncoding::Ascii,
        bitmap: BitmapEncoding::Hex,
        var_length: PrefixEncoding::Ascii,
        mac_field: None,
    };
    let fields = [
        FieldSpec::new(2, "pan", Numeric, LlVar(19), Ascii),
        FieldSpec::new(3, "processing code", Numeric, Fixed(6), Ascii),
        FieldSpec::new(4, "amount", Numeric, Fixed(12), Ascii),
        FieldSpec::new(11, "stan", Numeric, Fixed(6), Ascii),
        FieldSpec::new(35, "track 2", Track, LlVar(37), Ascii),
        FieldSpec::new(37, "rrn", AlphaNumeric, Fixed(12), Ascii),
        FieldSpec::new(39, "response code", AlphaNumeric, Fixed(2), Ascii),
        FieldSpec::new(41, "terminal id", AlphaNumericSpecial, Fixed(8), Ascii),
        FieldSpec::new(43, "name and location", Alpha, Fixed(10), Ascii),
        FieldSpec::new(52, "pin block", Kind::Binary, Fixed(8), Binary),
        FieldSpec::new(70, "network management code", Numeric, Fixed(3), Ascii),
        FieldSpec::new(90, "original data elements", Numeric, Fixed(42), Ascii),
        FieldSpec::new(102, "account id 1", AlphaNumericSpecial, LlVar(28), Ascii),
        FieldSpec::new(126, "private", AlphaNumericSpecial, LllVar(300), Ascii),
        FieldSpec::new(128, "mac", Kind::Binary, Fixed(8), Binary),
    ];
    Dialect::new("ascii-test-host", layout, &fields).unwrap()
}

/// Any value the spec allows.
pub fn value_for(spec: &FieldSpec) -> BoxedStrategy<FieldValue> {
    let len = match spec.length {
        Length::Fixed(n) => n as usize..=n as usize,
        Length::LlVar(max) | Length::LllVar(max) => 0..=max as usize,
    };
    match spec.kind {
        Kind::Binary => vec(any::<u8>(), len).prop_map(FieldValue::Bytes).boxed(),
        kind => {
            let alphabet: Vec<char> = (0u8..0x80).filter(|&c| kind.allows(c)).map(char::from).collect();
            vec(select(alphabet), len).prop_map(|cs| FieldValue::Text(cs.into_iter().collect())).boxed()
        }
    }
}

/// Any message the dialect can carry: each defined field present or not.
pub fn message_in(dialect: &Dialect) -> BoxedStrategy<Message> {
    let fields: Vec<BoxedStrategy<Option<(u8, FieldValue)>>> = dialect
        .fields()
        .map(|spec| {
            let n = spec.number;
            option::weighted(0.35, value_for(spec)).prop_map(move |v| v.map(|v| (n, v))).boxed()
        })
        .collect();
    let layout = *dialect.layout();
    let tpdu =
        if layout.tpdu { any::<[u8; 5]>().prop_map(|b| Some(Tpdu::from_bytes(b))).boxed() } else { Just(None).boxed() };
    let header = vec(any::<u8>(), layout.header_len);
    ("[0-9]{4}", tpdu, header, fields)
        .prop_map(|(mti, tpdu, header, fields)| {
            let mut m = Message::new(Mti::parse(&mti).unwrap());
            m.tpdu = tpdu;
            m.header = header;
            m.fields = fields.into_iter().flatten().collect();
            m
        })
        .boxed()
}
