//! Money is an integer count of a currency's minor unit. There is no
//! floating point anywhere near it.

use std::fmt;

/// ISO 4217 currencies Refundry accepts, with their minor-unit exponent.
/// Kept as a table so adding a currency is one line, not new code.
const CURRENCIES: &[(&str, u8)] = &[
    ("aed", 2),
    ("aud", 2),
    ("bhd", 3),
    ("cad", 2),
    ("chf", 2),
    ("cny", 2),
    ("czk", 2),
    ("dkk", 2),
    ("eur", 2),
    ("gbp", 2),
    ("hkd", 2),
    ("huf", 2),
    ("idr", 2),
    ("ils", 2),
    ("inr", 2),
    ("iqd", 3),
    ("jod", 3),
    ("jpy", 0),
    ("krw", 0),
    ("kwd", 3),
    ("lyd", 3),
    ("mop", 2),
    ("mxn", 2),
    ("myr", 2),
    ("nok", 2),
    ("nzd", 2),
    ("omr", 3),
    ("php", 2),
    ("pln", 2),
    ("rub", 2),
    ("sar", 2),
    ("sek", 2),
    ("sgd", 2),
    ("thb", 2),
    ("tnd", 3),
    ("try", 2),
    ("twd", 2),
    ("usd", 2),
    ("vnd", 0),
    ("zar", 2),
];

/// An ISO 4217 currency, known by its lower-case alphabetic code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    index: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unsupported ISO 4217 currency")]
pub struct UnknownCurrency;

impl Currency {
    pub const CNY: Currency = Currency { index: 5 };

    /// Parses a lower-case ISO 4217 code such as `cny`. Upper case is refused
    /// so that one currency has exactly one spelling on the wire.
    pub fn parse(code: &str) -> Result<Currency, UnknownCurrency> {
        CURRENCIES
            .iter()
            .position(|(c, _)| *c == code)
            .map(|index| Currency { index: index as u8 })
            .ok_or(UnknownCurrency)
    }

    pub fn code(self) -> &'static str {
        CURRENCIES[self.index as usize].0
    }

    /// Number of decimal places of the minor unit (CNY 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u8 {
        CURRENCIES[self.index as usize].1
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The largest single amount Refundry takes: 10^13 minor units (100 billion
/// yuan). Far above any POS sale, far below i64 overflow when summed.
pub const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a positive whole number of minor units")]
    NotPositive,
    #[error("amount is larger than the largest accepted ({MAX_AMOUNT_MINOR} minor units)")]
    TooLarge,
    #[error("currencies differ")]
    CurrencyMismatch,
    #[error("arithmetic overflow")]
    Overflow,
}

/// An amount of money: minor units and currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// An amount a customer paid or asks back: strictly positive and bounded.
    pub fn positive(minor: i64, currency: Currency) -> Result<Money, AmountError> {
        if minor <= 0 {
            return Err(AmountError::NotPositive);
        }
        if minor > MAX_AMOUNT_MINOR {
            return Err(AmountError::TooLarge);
        }
        Ok(Money { minor, currency })
    }

    pub fn checked_add(self, other: Money) -> Result<Money, AmountError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(AmountError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, AmountError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(AmountError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    fn same_currency(self, other: Money) -> Result<(), AmountError> {
        if self.currency == other.currency { Ok(()) } else { Err(AmountError::CurrencyMismatch) }
    }
}

impl fmt::Display for Money {
    /// `123.45 CNY`: for people (slips, logs); the API uses minor units.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent() as u32;
        let code = self.currency.code().to_ascii_uppercase();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return write!(f, "{sign}{abs} {code}");
        }
        let unit = 10u64.pow(exp);
        write!(f, "{sign}{}.{:0width$} {code}", abs / unit, abs % unit, width = exp as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_parse_lower_case_only() {
        assert_eq!(Currency::parse("cny").unwrap(), Currency::CNY);
        assert!(Currency::parse("CNY").is_err());
        assert!(Currency::parse("xxx").is_err());
        assert_eq!(Currency::parse("jpy").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("kwd").unwrap().exponent(), 3);
    }

    #[test]
    fn display_uses_the_currency_exponent() {
        assert_eq!(Money::new(12345, Currency::CNY).to_string(), "123.45 CNY");
        assert_eq!(Money::new(5, Currency::CNY).to_string(), "0.05 CNY");
        assert_eq!(Money::new(500, Currency::parse("jpy").unwrap()).to_string(), "500 JPY");
        assert_eq!(Money::new(1234, Currency::parse("kwd").unwrap()).to_string(), "1.234 KWD");
        assert_eq!(Money::new(-150, Currency::CNY).to_string(), "-1.50 CNY");
    }

    #[test]
    fn positive_amounts_are_bounded() {
        assert_eq!(Money::positive(0, Currency::CNY), Err(AmountError::NotPositive));
        assert_eq!(Money::positive(-1, Currency::CNY), Err(AmountError::NotPositive));
        assert_eq!(Money::positive(MAX_AMOUNT_MINOR + 1, Currency::CNY), Err(AmountError::TooLarge));
        assert!(Money::positive(MAX_AMOUNT_MINOR, Currency::CNY).is_ok());
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let usd = Currency::parse("usd").unwrap();
        let a = Money::new(1, Currency::CNY);
        assert_eq!(a.checked_add(Money::new(1, usd)), Err(AmountError::CurrencyMismatch));
        assert_eq!(Money::new(i64::MAX, Currency::CNY).checked_add(a), Err(AmountError::Overflow));
    }
}
