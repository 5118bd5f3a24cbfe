//! IBAN checks (ISO 13616 mod-97) and the construction of valid Spanish IBANs.
//!
//! Accounts are named by IBAN. `init` refuses an IBAN whose check digits are wrong, and `gen`
//! makes Spanish IBANs (`ES`, two ISO check digits, then entity, branch, two national control
//! digits and a ten-digit account number) so that the bank can be read from the entity code.

use std::fmt;

/// The shortest and longest IBANs any country uses (Norway 15, Saint Lucia 32; ISO allows 34).
const IBAN_MIN_LEN: usize = 15;
const IBAN_MAX_LEN: usize = 34;
/// A Spanish IBAN: `ES`, 2 check digits, 20 digits of BBAN.
pub const SPANISH_IBAN_LEN: usize = 24;

/// Why a string is not a valid IBAN. The text is meant to be read by the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IbanError {
    Length(usize),
    Character(char),
    CountryCode,
    CheckDigits { expected: String, found: String },
}

impl fmt::Display for IbanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IbanError::Length(len) => write!(
                f,
                "is {len} characters long; an IBAN has {IBAN_MIN_LEN} to {IBAN_MAX_LEN} (24 for Spain)"
            ),
            IbanError::Character(c) => write!(
                f,
                "contains {c:?}; an IBAN is upper-case letters and digits only, without spaces"
            ),
            IbanError::CountryCode => {
                write!(f, "does not start with a two-letter country code and two check digits")
            }
            IbanError::CheckDigits { expected, found } => write!(
                f,
                "has check digits {found} but its contents give {expected} (ISO 13616 mod-97): a typo?"
            ),
        }
    }
}

impl std::error::Error for IbanError {}

/// Checks an IBAN in its electronic form (no spaces): characters, country and mod-97 check digits.
pub fn validate(iban: &str) -> Result<(), IbanError> {
    let len = iban.len();
    if !(IBAN_MIN_LEN..=IBAN_MAX_LEN).contains(&len) {
        return Err(IbanError::Length(iban.chars().count()));
    }
    if let Some(c) = iban.chars().find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit())) {
        return Err(IbanError::Character(c));
    }
    let bytes = iban.as_bytes();
    if !(bytes[0].is_ascii_uppercase()
        && bytes[1].is_ascii_uppercase()
        && bytes[2].is_ascii_digit()
        && bytes[3].is_ascii_digit())
    {
        return Err(IbanError::CountryCode);
    }
    let expected = check_digits(&iban[..2], &iban[4..]);
    if expected != iban[2..4] {
        return Err(IbanError::CheckDigits { expected, found: iban[2..4].to_string() });
    }
    Ok(())
}

/// The two ISO 13616 check digits for a country code and a BBAN (upper-case letters and digits).
pub fn check_digits(country: &str, bban: &str) -> String {
    let remainder = mod97(bban.bytes().chain(country.bytes()).chain(*b"00"));
    format!("{:02}", 98 - remainder)
}

/// The remainder mod 97 of the number that the IBAN rules make of these characters
/// (digits stay, letters become 10..=35), computed digit by digit so it never overflows.
fn mod97(chars: impl Iterator<Item = u8>) -> u32 {
    chars.fold(0u32, |acc, c| match c {
        b'0'..=b'9' => (acc * 10 + u32::from(c - b'0')) % 97,
        b'A'..=b'Z' => (acc * 100 + u32::from(c - b'A') + 10) % 97,
        _ => unreachable!("mod97 is only called on checked upper-case letters and digits"),
    })
}

/// The Spanish national control digit of a run of digits, with the CCC weights.
fn spanish_control_digit(digits: &[u8]) -> u8 {
    const WEIGHTS: [u32; 10] = [1, 2, 4, 8, 5, 10, 9, 7, 3, 6];
    let offset = WEIGHTS.len() - digits.len();
    let sum: u32 =
        digits.iter().zip(&WEIGHTS[offset..]).map(|(d, w)| u32::from(d - b'0') * w).sum();
    match 11 - sum % 11 {
        11 => 0,
        10 => 1,
        d => u8::try_from(d).expect("11 - x % 11 is at most 11"),
    }
}

/// A valid Spanish IBAN for a 4-digit entity, a 4-digit branch and a 10-digit account number,
/// with correct national control digits and ISO check digits.
pub fn spanish(entity: &str, branch: &str, account: &str) -> String {
    assert!(entity.len() == 4 && branch.len() == 4 && account.len() == 10);
    assert!(
        (entity.bytes().chain(branch.bytes()).chain(account.bytes())).all(|b| b.is_ascii_digit())
    );
    let mut bank_branch = [0u8; 8];
    bank_branch[..4].copy_from_slice(entity.as_bytes());
    bank_branch[4..].copy_from_slice(branch.as_bytes());
    let dc1 = spanish_control_digit(&bank_branch);
    let dc2 = spanish_control_digit(account.as_bytes());
    let bban = format!("{entity}{branch}{dc1}{dc2}{account}");
    let iban = format!("ES{}{bban}", check_digits("ES", &bban));
    debug_assert!(validate(&iban).is_ok());
    iban
}

/// The entity code of a Spanish IBAN (`ES..` + 4 digits), if it is one.
pub fn spanish_entity_code(iban: &str) -> Option<&str> {
    (iban.len() == SPANISH_IBAN_LEN && iban.starts_with("ES")).then(|| &iban[4..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_published_examples_and_seed_ibans() {
        for iban in [
            "ES9121000418450200051332",
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "ES0804244907769990166862",
            "ES9539872841006101021005",
        ] {
            assert_eq!(validate(iban), Ok(()), "{iban}");
        }
    }

    #[test]
    fn rejects_wrong_check_digits_with_the_expected_ones() {
        assert_eq!(
            validate("ES9221000418450200051332"),
            Err(IbanError::CheckDigits { expected: "91".into(), found: "92".into() })
        );
        let err = validate("ES9221000418450200051332").unwrap_err().to_string();
        assert!(err.contains("check digits 92") && err.contains("give 91"), "{err}");
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(validate("ES91"), Err(IbanError::Length(4)));
        assert_eq!(validate("es9121000418450200051332"), Err(IbanError::Character('e')));
        assert_eq!(validate("ES91 2100 0418 4502 0005"), Err(IbanError::Character(' ')));
        assert_eq!(validate("1291210004184502000513"), Err(IbanError::CountryCode));
        assert_eq!(validate(&"X".repeat(35)), Err(IbanError::Length(35)));
    }

    #[test]
    fn builds_the_published_spanish_example() {
        // The Spanish example IBAN: entity 2100, branch 0418, control 45, account 0200051332.
        assert_eq!(spanish("2100", "0418", "0200051332"), "ES9121000418450200051332");
        assert_eq!(spanish_entity_code("ES9121000418450200051332"), Some("2100"));
        assert_eq!(spanish_entity_code("GB82WEST12345698765432"), None);
    }

    #[test]
    fn every_single_digit_change_is_caught() {
        let iban = spanish("0049", "1500", "0512345678");
        for pos in 4..iban.len() {
            for d in b'0'..=b'9' {
                let mut bytes = iban.clone().into_bytes();
                if bytes[pos] == d {
                    continue;
                }
                bytes[pos] = d;
                let changed = String::from_utf8(bytes).unwrap();
                assert!(validate(&changed).is_err(), "{changed}");
            }
        }
    }
}
