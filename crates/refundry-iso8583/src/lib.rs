//! ISO 8583:1987, as POS acquirers in China speak it.
//!
//! # Layout
//!
//! A China UnionPay POS message on the wire is
//!
//! ```text
//! length (2 bytes, big-endian) | TPDU (5) | header (6) | MTI (2, BCD) | bitmap (8, +8) | fields…
//! ```
//!
//! [`FrameCodec`] handles the length (a tokio-util codec); [`encode`] and
//! [`decode`] handle everything after it. The TPDU ([`Tpdu`]: id 0x60, then
//! destination and source) and the 6-byte header are kept on the
//! [`Message`]. A secondary bitmap follows the primary one when a field
//! from 65 to 128 is present. Each field is written as its [`FieldSpec`]
//! says: fixed or LL/LLL variable length, packed BCD (left or right
//! justified, with a pad nibble), ASCII, or bytes.
//!
//! # Dialects are tables
//!
//! [`Dialect::china_unionpay_pos`] is the common CUP POS layout
//! ([`cup::CUP_POS_FIELDS`]); it must be checked against the acquirer's own
//! specification. To add an acquirer, write a [`Layout`] (headers, how the
//! MTI, bitmap and LL/LLL lengths are written, the frame prefix, the MAC
//! field) and a `&[FieldSpec]` table, and call [`Dialect::new`], which
//! checks the table once. No codec code changes: the tests run a second,
//! all-ASCII dialect through the same functions.
//!
//! # Safety on untrusted input
//!
//! [`decode`] never panics, whatever the bytes (a property test and a
//! cargo-fuzz target in `fuzz/` hold it to that), and it is strict, so a
//! successful decode re-encodes to the same bytes.
//!
//! # The rest
//!
//! - [`mac`]: the [`Mac`] trait and [`CupEcbMac`], CUP's POS ECB MAC.
//! - [`builders`]: refund (0220), void (0200), reversal (0400), sign-on
//!   (0800) and echo test (0820) from plain structs.
//! - [`response_code_meaning`]: field 39 as approved / declined / retry /
//!   unknown, with a stable reason and English and Chinese text.
//! - `Debug` on a [`Message`] masks the PAN and hides track, PIN, chip and
//!   key fields, so a logged message leaks no card secret.

mod bcd;
pub mod builders;
pub mod codec;
pub mod cup;
pub mod dialect;
pub mod frame;
pub mod mac;
pub mod message;
pub mod response;
pub mod spec;

pub use codec::{CodecError, Part, decode, encode, validate, validate_fields};
pub use dialect::{BitmapEncoding, Dialect, DialectError, FramePrefix, Layout, MtiEncoding, PrefixEncoding};
pub use frame::{FrameCodec, FrameError, MessageCodec};
pub use mac::{CupEcbMac, Mac, MacError};
pub use message::{FieldValue, Message, Mti, Tpdu};
pub use response::{ResponseMeaning, ResponseStatus, response_code_meaning};
pub use spec::{Encoding, FieldSpec, Justify, Kind, Length};
