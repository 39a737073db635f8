//! A customer's contact data. It travels only inside these types, whose
//! `Debug` and `Display` print the masked form, so a log line cannot leak
//! it by accident; the clear value is read on purpose with `expose()`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("not an email address")]
    Email,
    #[error("a phone number is 6 to 20 digits, optionally with a leading +")]
    Phone,
}

/// An email address.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, ContactError> {
        let s = s.trim();
        let (local, domain) = s.split_once('@').ok_or(ContactError::Email)?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && s.len() <= 254
            && !s.contains(char::is_whitespace)
            && !domain.contains('@');
        if ok { Ok(Email(s.to_owned())) } else { Err(ContactError::Email) }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `w***@example.cn`
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

/// A phone number for SMS.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Phone, ContactError> {
        let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').unwrap_or(&compact);
        if (6..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Phone(compact))
        } else {
            Err(ContactError::Phone)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `138****8000`
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let keep = chars.len().min(3);
        let tail = chars.len().saturating_sub(4).max(keep);
        let head: String = chars[..keep].iter().collect();
        let end: String = chars[tail..].iter().collect();
        format!("{head}****{end}")
    }
}

macro_rules! masked_fmt {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.masked())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.masked())
            }
        }
    };
}
masked_fmt!(Email);
masked_fmt!(Phone);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_data_prints_masked_only() {
        let e = Email::parse("wang.fang@example.cn").unwrap();
        assert_eq!(format!("{e} {e:?}"), "w***@example.cn w***@example.cn");
        assert_eq!(e.expose(), "wang.fang@example.cn");
        let p = Phone::parse("+86 138-0013-8000").unwrap();
        assert_eq!(p.to_string(), "+86****8000");
        assert_eq!(Phone::parse("13800138000").unwrap().masked(), "138****8000");
        assert!(!format!("{p:?}").contains("0013"));
    }

    #[test]
    fn malformed_contacts_are_refused() {
        assert!(Email::parse("no-at-sign").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a b@c.cn").is_err());
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("1380013800a").is_err());
    }
}
