//! Money, times and cards as people read and type them. Amounts are typed
//! in major units ("12.30") and turned into minor units by reading the
//! digits, never through a float.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use refundry_core::money::{Currency, MAX_AMOUNT_MINOR, Money};
use refundry_core::sale::PaymentMethod;

/// `¥12.30` for yuan, `USD 12.30` otherwise.
pub fn money(m: Money) -> String {
    let major = major(m.minor, m.currency);
    if m.currency == Currency::CNY { format!("¥{major}") } else { format!("{} {major}", m.currency.code()) }
}

/// `12.30` from 1230 with two decimals.
pub fn major(minor: i64, currency: Currency) -> String {
    let exp = u32::from(currency.exponent());
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(exp);
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = exp as usize)
}

/// Why a typed amount is not one; each is a message key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountInput {
    Empty,
    NotANumber,
    TooManyDecimals,
    NotPositive,
    TooLarge,
}

impl AmountInput {
    pub fn key(self) -> &'static str {
        match self {
            AmountInput::Empty => "form.amount_empty",
            AmountInput::NotANumber => "form.amount_not_a_number",
            AmountInput::TooManyDecimals => "form.amount_too_many_decimals",
            AmountInput::NotPositive => "form.amount_not_positive",
            AmountInput::TooLarge => "form.amount_too_large",
        }
    }
}

/// Minor units from what a person typed: digits, at most one `.` and no
/// more decimals than the currency has; `,` and spaces between thousands
/// and a leading `¥` are allowed.
pub fn parse_major(input: &str, currency: Currency) -> Result<i64, AmountInput> {
    let cleaned: String =
        input.trim().trim_start_matches(['¥', '￥']).chars().filter(|c| !matches!(c, ',' | ' ')).collect();
    if cleaned.is_empty() {
        return Err(AmountInput::Empty);
    }
    let (whole, frac) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(AmountInput::NotANumber);
    }
    let exp = usize::from(currency.exponent());
    if frac.len() > exp {
        return Err(AmountInput::TooManyDecimals);
    }
    if whole.len() > 15 {
        return Err(AmountInput::TooLarge);
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| AmountInput::TooLarge)? };
    let frac_value: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| AmountInput::NotANumber)? };
    let scale = 10i64.pow(exp as u32);
    let frac_minor = frac_value * 10i64.pow((exp - frac.len()) as u32);
    let minor = whole.checked_mul(scale).and_then(|w| w.checked_add(frac_minor)).ok_or(AmountInput::TooLarge)?;
    if minor <= 0 {
        return Err(AmountInput::NotPositive);
    }
    if minor > MAX_AMOUNT_MINOR {
        return Err(AmountInput::TooLarge);
    }
    Ok(minor)
}

/// `2030-01-31 14:05` in the business time zone.
pub fn time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string()
}

/// How the sale was paid, with the card masked as first 6 / last 4.
pub fn method(m: &PaymentMethod, lang: crate::i18n::Lang) -> String {
    match m {
        PaymentMethod::Card { brand, first6, last4, .. } => {
            let brand = lang.t(&format!("brand.{}", brand.as_str()));
            format!("{brand} {}******{}", first6.as_str(), last4.as_str())
        }
        PaymentMethod::Wallet { wallet } => lang.t(&format!("wallet.{}", wallet.as_str())).to_owned(),
        PaymentMethod::Cash => lang.t("method.cash").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_yuan_become_fen_exactly() {
        let cny = Currency::CNY;
        assert_eq!(parse_major("12.30", cny), Ok(1230));
        assert_eq!(parse_major("12.3", cny), Ok(1230));
        assert_eq!(parse_major("12", cny), Ok(1200));
        assert_eq!(parse_major(".05", cny), Ok(5));
        assert_eq!(parse_major("¥1,234.56", cny), Ok(123_456));
        assert_eq!(parse_major("0.1", cny), Ok(10));
        // a float would make 0.29 * 100 = 28.999…
        assert_eq!(parse_major("0.29", cny), Ok(29));
        assert_eq!(parse_major("1.234", cny), Err(AmountInput::TooManyDecimals));
        assert_eq!(parse_major("", cny), Err(AmountInput::Empty));
        assert_eq!(parse_major("-5", cny), Err(AmountInput::NotANumber));
        assert_eq!(parse_major("1e3", cny), Err(AmountInput::NotANumber));
        assert_eq!(parse_major("0.00", cny), Err(AmountInput::NotPositive));
        assert_eq!(parse_major("99999999999999999999", cny), Err(AmountInput::TooLarge));
        assert_eq!(parse_major(".", cny), Err(AmountInput::NotANumber));
    }

    #[test]
    fn fen_are_shown_as_yuan() {
        assert_eq!(money(Money::new(1230, Currency::CNY)), "¥12.30");
        assert_eq!(money(Money::new(5, Currency::CNY)), "¥0.05");
        assert_eq!(major(-150, Currency::CNY), "-1.50");
    }
}
