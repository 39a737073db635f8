//! What the ISO 8583 connector is told, and the checked form it runs on.
//! Everything that can be wrong with the configuration is found when the
//! processor is built, not in the middle of a refund.

use std::fmt;
use std::time::Duration;

use refundry_iso8583::builders::{KeyMode, Terminal};
use refundry_iso8583::{CupEcbMac, Tpdu};
use serde::Deserialize;

/// How to reach the acquirer host and who this terminal is to it.
///
/// Durations are read as milliseconds (`1500`) or as text with a unit
/// (`"1500ms"`, `"5s"`, `"1m"`), so TOML and environment variables both work.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Iso8583Config {
    /// The acquirer host, `host:port`.
    pub addr: String,
    /// Field 41 (终端号): 8 characters, as the acquirer registered this
    /// terminal. STANs are unique per this terminal.
    pub terminal_id: String,
    /// Field 42 (商户号): 15 characters.
    pub merchant_id: String,
    /// TPDU addresses the acquirer assigned (destination is often 0x0003).
    pub tpdu_destination: u16,
    #[serde(default)]
    pub tpdu_source: u16,
    /// The clear MAC key (MAK) as 16 or 32 hex digits. Without one,
    /// messages go unsigned and answers are not checked.
    #[serde(default)]
    pub mac_key_hex: Option<String>,
    /// The terminal's current batch (60.2), six digits.
    pub batch_no: String,
    #[serde(default = "defaults::connect_timeout", deserialize_with = "duration::deserialize")]
    pub connect_timeout: Duration,
    /// How long to wait for each answer before the outcome counts as unknown.
    #[serde(default = "defaults::response_timeout", deserialize_with = "duration::deserialize")]
    pub response_timeout: Duration,
    /// How often an unanswered refund advice is repeated (as 0221) before
    /// giving up with a timeout. The same bound applies to repeating a
    /// reversal, which CUP terminals also resend until it is answered.
    #[serde(default = "defaults::max_advice_repeats")]
    pub max_advice_repeats: u32,
}

mod defaults {
    use std::time::Duration;

    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }

    // CUP terminals commonly wait 60 s; an unattended job can afford less
    // because an unanswered message is resolved by repeats, not by waiting.
    pub fn response_timeout() -> Duration {
        Duration::from_secs(30)
    }

    pub fn max_advice_repeats() -> u32 {
        3
    }
}

impl fmt::Debug for Iso8583Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iso8583Config")
            .field("addr", &self.addr)
            .field("terminal_id", &self.terminal_id)
            .field("merchant_id", &self.merchant_id)
            .field("tpdu_destination", &format_args!("{:#06x}", self.tpdu_destination))
            .field("tpdu_source", &format_args!("{:#06x}", self.tpdu_source))
            .field("mac_key_hex", &self.mac_key_hex.as_ref().map(|_| "<redacted>"))
            .field("batch_no", &self.batch_no)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_advice_repeats", &self.max_advice_repeats)
            .finish()
    }
}

/// Why a configuration cannot be used. Never carries the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("addr must be host:port, not {0:?}")]
    Addr(String),
    #[error("terminal_id must be 8 printable ASCII characters")]
    TerminalId,
    #[error("merchant_id must be 15 printable ASCII characters")]
    MerchantId,
    #[error("batch_no must be six digits")]
    BatchNo,
    #[error("mac_key_hex must be 16 or 32 hexadecimal digits")]
    MacKey,
    #[error("{0} must be longer than zero")]
    ZeroTimeout(&'static str),
}

/// The configuration, checked and turned into what messages need.
pub(crate) struct Settings {
    pub addr: String,
    pub terminal: Terminal,
    pub tpdu: Tpdu,
    pub mac: Option<CupEcbMac>,
    pub key_mode: KeyMode,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_repeats: u32,
}

impl Settings {
    pub fn from_config(c: &Iso8583Config) -> Result<Settings, ConfigError> {
        if c.addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(ConfigError::Addr(c.addr.clone()));
        }
        if !printable(&c.terminal_id, 8) {
            return Err(ConfigError::TerminalId);
        }
        if !printable(&c.merchant_id, 15) {
            return Err(ConfigError::MerchantId);
        }
        if c.batch_no.len() != 6 || !c.batch_no.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::BatchNo);
        }
        let batch = c.batch_no.parse().map_err(|_| ConfigError::BatchNo)?;
        let mac = match &c.mac_key_hex {
            Some(hex) => Some(CupEcbMac::from_hex(hex).map_err(|_| ConfigError::MacKey)?),
            None => None,
        };
        // The sign-on asks for keys as long as the one we were given.
        let key_mode = match &c.mac_key_hex {
            Some(hex) if hex.trim().len() == 32 => KeyMode::Double,
            _ => KeyMode::Single,
        };
        if c.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("connect_timeout"));
        }
        if c.response_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("response_timeout"));
        }
        Ok(Settings {
            addr: c.addr.clone(),
            terminal: Terminal { terminal_id: c.terminal_id.clone(), merchant_id: c.merchant_id.clone(), batch },
            tpdu: Tpdu::new(c.tpdu_destination.to_be_bytes(), c.tpdu_source.to_be_bytes()),
            mac,
            key_mode,
            connect_timeout: c.connect_timeout,
            response_timeout: c.response_timeout,
            max_repeats: c.max_advice_repeats,
        })
    }
}

fn printable(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Durations as milliseconds or as text with a unit.
mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::Deserializer;
    use serde::de::{self, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("milliseconds, or a number with a unit: \"250ms\", \"5s\", \"1m\"")
        }

        fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(ms))
        }

        fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
            u64::try_from(ms).map(Duration::from_millis).map_err(|_| E::custom("a duration cannot be negative"))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            parse(text).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
        }
    }

    pub(super) fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: u64 = number.parse().ok()?;
        match unit.trim() {
            "" | "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789ABCDEF";

    fn config() -> Iso8583Config {
        Iso8583Config {
            addr: "127.0.0.1:9000".into(),
            terminal_id: "12345678".into(),
            merchant_id: "898310048140001".into(),
            tpdu_destination: 3,
            tpdu_source: 0,
            mac_key_hex: Some(KEY.into()),
            batch_no: "000007".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_advice_repeats: 3,
        }
    }

    #[test]
    fn debug_output_never_shows_the_mac_key() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("12345678"), "{shown}");
    }

    #[test]
    fn a_checked_config_keeps_the_terminal_and_tpdu() {
        let s = Settings::from_config(&config()).unwrap();
        assert_eq!(s.terminal.batch, 7);
        assert_eq!(s.tpdu.to_bytes(), [0x60, 0x00, 0x03, 0x00, 0x00]);
        assert!(s.mac.is_some());
        assert_eq!(s.key_mode, KeyMode::Single);
    }

    #[test]
    fn unusable_values_are_refused_by_name() {
        let bad = |f: fn(&mut Iso8583Config)| {
            let mut c = config();
            f(&mut c);
            Settings::from_config(&c).err().unwrap()
        };
        assert_eq!(bad(|c| c.addr = "nohost".into()), ConfigError::Addr("nohost".into()));
        assert_eq!(bad(|c| c.terminal_id = "1234567".into()), ConfigError::TerminalId);
        assert_eq!(bad(|c| c.merchant_id = "898310048140001\t".into()), ConfigError::MerchantId);
        assert_eq!(bad(|c| c.batch_no = "7".into()), ConfigError::BatchNo);
        assert_eq!(bad(|c| c.mac_key_hex = Some("0123".into())), ConfigError::MacKey);
        assert_eq!(bad(|c| c.response_timeout = Duration::ZERO), ConfigError::ZeroTimeout("response_timeout"));
    }

    #[test]
    fn the_config_reads_from_text_with_defaults_and_units() {
        let c: Iso8583Config = serde_json::from_str(
            r#"{"addr": "acq.example:5000", "terminal_id": "12345678", "merchant_id": "898310048140001",
                "tpdu_destination": 3, "batch_no": "000001", "response_timeout": "1500ms"}"#,
        )
        .unwrap();
        assert_eq!(c.response_timeout, Duration::from_millis(1500));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.max_advice_repeats, 3);
        assert_eq!(c.mac_key_hex, None);
        let typo = serde_json::from_str::<Iso8583Config>(r#"{"adr": "x:1"}"#);
        assert!(typo.is_err());
    }

    #[test]
    fn durations_take_milliseconds_or_a_unit() {
        assert_eq!(duration::parse("250"), Some(Duration::from_millis(250)));
        assert_eq!(duration::parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration::parse("5s"), Some(Duration::from_secs(5)));
        assert_eq!(duration::parse(" 2 m "), Some(Duration::from_secs(120)));
        assert_eq!(duration::parse("5h"), None);
        assert_eq!(duration::parse("s"), None);
        assert_eq!(duration::parse("-5s"), None);
    }
}
