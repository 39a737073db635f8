//! Instants are stored as integer microseconds since the Unix epoch (UTC):
//! exact, sortable, and the same on every backend.

use jiff::Timestamp;

use crate::StoreError;

pub fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn from_micros(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(StoreError::corrupt)
}

/// The current time at the precision that is stored, so that a value held
/// in memory equals the same value read back.
pub fn now() -> Timestamp {
    let us = Timestamp::now().as_microsecond();
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}
