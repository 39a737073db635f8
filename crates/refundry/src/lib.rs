//! The `refundry` binary's own parts that are worth reaching from outside
//! it (fuzzing, tools): configuration loading.

pub mod config;
