//! Exact money amounts in cents. Owns the conversion between JSON numbers, Iceberg
//! `decimal(p,2)` columns (through strings, as `serde_arrow` exchanges decimals) and arithmetic.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in cents (two decimal places), exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    /// Amount from a number that must have at most two decimals (`4.5`, `4.50`, `12`).
    /// Returns `None` for NaN, infinities, more than two decimals, or beyond ±10^16.
    pub fn from_f64(value: f64) -> Option<Self> {
        if !value.is_finite() || value.abs() >= 1e16 {
            return None;
        }
        let cents = (value * 100.0).round();
        // A value with more than two decimals is further than float noise from a whole cent.
        if ((value * 100.0) - cents).abs() > 1e-6 * cents.abs().max(1.0) {
            return None;
        }
        Some(Money(cents as i64))
    }

    /// Amount from decimal text (`"12.5"`, `"-0.01"`, `"7"`); at most two decimals.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 2
            || whole.len() > 16
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac_cents: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().ok()? * 10,
            _ => frac.parse().ok()?,
        };
        let cents = whole.checked_mul(100)?.checked_add(frac_cents)?;
        Some(Money(if negative { -cents } else { cents }))
    }

    /// `self × quantity`, or `None` on overflow.
    pub fn times(self, quantity: i64) -> Option<Money> {
        self.0.checked_mul(quantity).map(Money)
    }

    /// Whether the amount fits `decimal(precision, 2)`.
    pub fn fits_precision(self, precision: u32) -> bool {
        (self.0.unsigned_abs() as u128) < 10u128.pow(precision)
    }

    /// The amount as a float (for ratios and display only).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl Money {
    /// The amount as decimal text (`-12.50`), written into `buf` from its end: no allocation
    /// (every silver row's two amounts pass through this on their way to Arrow).
    fn text(self, buf: &mut [u8; 24]) -> &str {
        let mut abs = self.0.unsigned_abs();
        let mut at = buf.len();
        let mut push = |at: &mut usize, byte: u8| {
            *at -= 1;
            buf[*at] = byte;
        };
        for _ in 0..2 {
            push(&mut at, b'0' + (abs % 10) as u8);
            abs /= 10;
        }
        push(&mut at, b'.');
        loop {
            push(&mut at, b'0' + (abs % 10) as u8);
            abs /= 10;
            if abs == 0 {
                break;
            }
        }
        if self.0 < 0 {
            push(&mut at, b'-');
        }
        std::str::from_utf8(&buf[at..]).unwrap_or_default()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(&mut [0; 24]))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text(&mut [0; 24]))
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount with at most two decimals")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                Money::parse(v).ok_or_else(|| E::custom(format!("invalid amount {v:?}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                Money::from_f64(v).ok_or_else(|| E::custom(format!("invalid amount {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                v.checked_mul(100)
                    .map(Money)
                    .ok_or_else(|| E::custom("amount overflow"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(100))
                    .map(Money)
                    .ok_or_else(|| E::custom("amount overflow"))
            }
        }
        deserializer.deserialize_any(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_text_exactly() {
        assert_eq!(Money::parse("12.5"), Some(Money(1250)));
        assert_eq!(Money::parse("-0.01"), Some(Money(-1)));
        assert_eq!(Money::parse("7"), Some(Money(700)));
        assert_eq!(Money::parse(".5"), Some(Money(50)));
        assert_eq!(Money::parse("1.234"), None);
        assert_eq!(Money::parse("abc"), None);
        assert_eq!(Money::parse(""), None);
        assert_eq!(Money::parse("."), None);
    }

    #[test]
    fn floats_with_more_than_two_decimals_are_refused() {
        assert_eq!(Money::from_f64(4.35), Some(Money(435)));
        assert_eq!(Money::from_f64(999.99), Some(Money(99999)));
        assert_eq!(Money::from_f64(0.1 + 0.2), Some(Money(30)));
        assert_eq!(Money::from_f64(4.355), None);
        assert_eq!(Money::from_f64(f64::NAN), None);
        assert_eq!(Money::from_f64(1e17), None);
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Money(-5).to_string(), "-0.05");
        assert_eq!(Money(123456).to_string(), "1234.56");
        assert_eq!(Money(0).to_string(), "0.00");
        assert_eq!(Money(7).to_string(), "0.07");
        assert_eq!(Money(-1200).to_string(), "-12.00");
        assert_eq!(Money(i64::MAX).to_string(), "92233720368547758.07");
        assert_eq!(Money(i64::MIN).to_string(), "-92233720368547758.08");
    }

    #[test]
    fn precision_bound() {
        assert!(Money(9_999_999_999).fits_precision(10));
        assert!(!Money(10_000_000_000).fits_precision(10));
    }
}
