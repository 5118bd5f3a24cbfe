//! The seed's thirteen Spanish banks and their real four-digit entity codes.
//!
//! `gen` writes IBANs whose entity code (digits 5..9 of the BBAN) is the bank's own, so the bank
//! can be read back from the IBAN. The list is also what `gen` writes to `banks.csv`.

/// A bank known to `gen`: its name as the seed spells it and its Bank of Spain entity code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownBank {
    pub name: &'static str,
    pub entity_code: &'static str,
}

/// The seed's banks, in the seed's order (`../shared/seed/data/banks.csv`).
pub const KNOWN_BANKS: [KnownBank; 13] = [
    KnownBank { name: "CaixaBank", entity_code: "2100" },
    KnownBank { name: "Santander", entity_code: "0049" },
    KnownBank { name: "BBVA", entity_code: "0182" },
    KnownBank { name: "Sabadell", entity_code: "0081" },
    KnownBank { name: "CecaBank", entity_code: "2000" },
    KnownBank { name: "ING", entity_code: "1465" },
    KnownBank { name: "Cooperativo", entity_code: "0198" },
    KnownBank { name: "Bankinter", entity_code: "0128" },
    KnownBank { name: "Cajamar", entity_code: "3058" },
    KnownBank { name: "IberCaja", entity_code: "2085" },
    KnownBank { name: "Kutxa", entity_code: "2095" },
    KnownBank { name: "BancaMarch", entity_code: "0061" },
    KnownBank { name: "Deutsche Bank", entity_code: "0019" },
];

/// The known bank whose entity code this is, if any.
pub fn bank_for_entity_code(entity_code: &str) -> Option<&'static KnownBank> {
    KNOWN_BANKS.iter().find(|bank| bank.entity_code == entity_code)
}

/// Why a bank name cannot be used: it becomes part of Redis key names and hash tags.
pub fn check_bank_name(name: &str) -> Result<(), String> {
    const MAX_BANK_NAME_BYTES: usize = 64;
    if name.trim().is_empty() {
        return Err("the bank name is empty".to_string());
    }
    if name.trim() != name {
        return Err(format!("the bank name {name:?} has leading or trailing spaces"));
    }
    if name.len() > MAX_BANK_NAME_BYTES {
        return Err(format!("the bank name is longer than {MAX_BANK_NAME_BYTES} bytes"));
    }
    if let Some(bad) = name.chars().find(|c| matches!(c, '{' | '}' | ':') || c.is_control()) {
        return Err(format!(
            "the bank name {name:?} contains {bad:?}, which cannot appear in a Redis key name here"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_codes_are_unique_four_digit_codes() {
        for (i, bank) in KNOWN_BANKS.iter().enumerate() {
            assert_eq!(bank.entity_code.len(), 4);
            assert!(bank.entity_code.bytes().all(|b| b.is_ascii_digit()));
            assert!(check_bank_name(bank.name).is_ok());
            for other in &KNOWN_BANKS[i + 1..] {
                assert_ne!(bank.entity_code, other.entity_code);
                assert_ne!(bank.name, other.name);
            }
        }
        assert_eq!(bank_for_entity_code("0049").unwrap().name, "Santander");
        assert!(bank_for_entity_code("9999").is_none());
    }

    #[test]
    fn bank_names_that_would_break_keys_are_refused() {
        assert!(check_bank_name("Deutsche Bank").is_ok());
        assert!(check_bank_name("").is_err());
        assert!(check_bank_name(" ING").is_err());
        assert!(check_bank_name("A{B").is_err());
        assert!(check_bank_name("A:B").is_err());
        assert!(check_bank_name(&"x".repeat(65)).is_err());
    }
}
