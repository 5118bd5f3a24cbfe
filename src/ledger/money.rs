//! Money: integer minor units (cents) in `i64`, and the one limit the server-side script needs.
//!
//! Redis's Lua numbers are IEEE doubles, exact only up to 2^53. The transfer script compares an
//! account balance with an amount and adds an amount to a balance, so every account balance and
//! the total money in the system must stay at or below 2^53 - 1 cents for those steps to be exact.
//! `init` enforces it on the total (each balance is at most the total, and transfers only move
//! money), the broker on amounts, and the script checks it again before every write. Bank and
//! interbank balances are only ever changed by Redis's own `INCRBY`, which is exact over all of
//! `i64` and refuses to overflow.

/// The largest total of money, and so the largest balance or amount, in cents: 2^53 - 1.
pub const MAX_TOTAL_CENTS: i64 = (1 << 53) - 1;

/// Adds two amounts of money; `None` on overflow, never a wrap.
pub fn add_cents(a: i64, b: i64) -> Option<i64> {
    a.checked_add(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_exact_in_a_double() {
        assert_eq!(MAX_TOTAL_CENTS as f64 as i64, MAX_TOTAL_CENTS);
        assert_ne!((MAX_TOTAL_CENTS + 2) as f64 as i64, MAX_TOTAL_CENTS + 2);
    }

    #[test]
    fn overflow_is_none() {
        assert_eq!(add_cents(i64::MAX, 1), None);
        assert_eq!(add_cents(i64::MIN, -1), None);
        assert_eq!(add_cents(2, 3), Some(5));
    }
}
