//! Reading and validating the accounts file and the banks file, all of it, before anything is
//! written to Redis.
//!
//! The accounts file is the seed's format: a header `iban,bank,name,ammount` (the seed's spelling;
//! `amount` is accepted too) and one account per line. Every problem found is reported with the
//! file, the line and the field, up to [`MAX_REPORTED_ERRORS`] of them, so a user can fix a file in
//! one pass. A UTF-8 byte order mark and CRLF line ends are accepted.

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ledger::banks::check_bank_name;
use crate::ledger::iban;
use crate::ledger::money::{MAX_TOTAL_CENTS, add_cents};

/// How many problems one report lists before it stops counting them one by one.
pub const MAX_REPORTED_ERRORS: usize = 20;
/// The accounts file's columns, in order, as the seed spells them.
pub const ACCOUNTS_HEADER: [&str; 4] = ["iban", "bank", "name", "ammount"];
/// The most accounts one file may hold (the directory lists and memory are sized by it).
pub const MAX_ACCOUNTS: usize = 50_000_000;
/// The most banks one banks file may hold.
pub const MAX_BANKS: usize = 1_000;

/// One account as the file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub iban: String,
    /// Index into [`AccountsFile::banks`].
    pub bank: usize,
    pub name: String,
    pub balance_cents: i64,
}

/// A fully validated accounts file and the banks it may name.
#[derive(Debug, Clone)]
pub struct AccountsFile {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex: recorded by `init`, checked by `consume`.
    pub sha256: String,
    pub banks: Vec<String>,
    pub accounts: Vec<Account>,
    pub total_cents: i64,
}

/// One problem at one place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub field: Option<&'static str>,
    pub message: String,
}

/// Why a file cannot be loaded. Its text names the file, and each line and field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The file cannot be opened or read at all.
    Unreadable { path: PathBuf, reason: String },
    /// The file was read, and these problems were found in it.
    Invalid { path: PathBuf, problems: Vec<Problem>, more: usize },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Unreadable { path, reason } => {
                write!(f, "cannot read {}: {reason}", path.display())
            }
            FileError::Invalid { path, problems, more } => {
                let total = problems.len() + more;
                let noun = if total == 1 { "problem" } else { "problems" };
                write!(f, "{} has {total} {noun}; nothing was written:", path.display())?;
                for problem in problems {
                    write!(f, "\n  {}:{}: ", path.display(), problem.line)?;
                    if let Some(field) = problem.field {
                        write!(f, "field '{field}': ")?;
                    }
                    write!(f, "{}", problem.message)?;
                }
                if *more > 0 {
                    write!(f, "\n  ... and {more} more")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for FileError {}

/// Collects problems, keeping the first [`MAX_REPORTED_ERRORS`] and counting the rest.
struct Problems {
    path: PathBuf,
    kept: Vec<Problem>,
    more: usize,
}

impl Problems {
    fn new(path: &Path) -> Problems {
        Problems { path: path.to_path_buf(), kept: Vec::new(), more: 0 }
    }

    fn add(&mut self, line: u64, field: Option<&'static str>, message: String) {
        if self.kept.len() < MAX_REPORTED_ERRORS {
            self.kept.push(Problem { line, field, message });
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    fn into_error(self) -> FileError {
        FileError::Invalid { path: self.path, problems: self.kept, more: self.more }
    }
}

fn read_file(path: &Path, what_to_do: &str) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|e| FileError::Unreadable {
        path: path.to_path_buf(),
        reason: format!("{e} ({what_to_do})"),
    })
}

/// Reads CSV records one at a time with the line each is really on. Row lengths are left to the
/// caller (a ragged row is reported, not a parser error); a CSV error ends the reading.
struct Records<'a> {
    reader: csv::Reader<&'a [u8]>,
    lines: LineCounter<'a>,
    record: csv::ByteRecord,
}

impl<'a> Records<'a> {
    fn new(text: &'a [u8]) -> Records<'a> {
        Records {
            reader: csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text),
            lines: LineCounter { text, byte: 0, line: 1 },
            record: csv::ByteRecord::new(),
        }
    }

    /// The next record and its line, or `None` at the end or after an unreadable record.
    fn next(&mut self, problems: &mut Problems) -> Option<(u64, &csv::ByteRecord)> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let start = self.record.position().map_or(0, |p| p.byte());
                Some((self.lines.line_of(start, problems), &self.record))
            }
            Ok(false) => None,
            Err(e) => {
                problems.add(
                    e.position().map_or(0, |p| p.line()),
                    None,
                    format!("unreadable CSV: {e}"),
                );
                None
            }
        }
    }
}

/// Splits off a UTF-8 byte order mark, which spreadsheet programs like to write.
fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn field_str<'a>(
    record: &'a csv::ByteRecord,
    index: usize,
    name: &'static str,
    line: u64,
    problems: &mut Problems,
) -> Option<&'a str> {
    match std::str::from_utf8(&record[index]) {
        Ok(text) if text.contains(['\n', '\r']) => {
            problems.add(line, Some(name), "contains a line break".to_string());
            None
        }
        Ok(text) => Some(text),
        Err(_) => {
            problems.add(
                line,
                Some(name),
                "is not valid UTF-8: save the file as UTF-8".to_string(),
            );
            None
        }
    }
}

/// Reads the banks file: a header `bank`, then one unique bank name per line.
pub fn read_banks(path: &Path) -> Result<Vec<String>, FileError> {
    let bytes =
        read_file(path, "the banks file is written by `interbank gen`, beside the accounts")?;
    let mut problems = Problems::new(path);
    let mut banks: Vec<String> = Vec::new();
    let mut records = Records::new(strip_bom(&bytes));
    let mut header_seen = false;
    while let Some((line, record)) = records.next(&mut problems) {
        if !header_seen {
            header_seen = true;
            if record.len() != 1 || record[0].trim_ascii() != b"bank" {
                problems.add(line, None, "the header must be the single column `bank`".to_string());
                break;
            }
            continue;
        }
        if record.len() != 1 {
            problems.add(
                line,
                None,
                format!("has {} fields; a banks file has one column", record.len()),
            );
            continue;
        }
        let Some(name) = field_str(record, 0, "bank", line, &mut problems) else {
            continue;
        };
        if let Err(why) = check_bank_name(name) {
            problems.add(line, Some("bank"), why);
        } else if banks.iter().any(|b| b == name) {
            problems.add(line, Some("bank"), format!("{name:?} is listed twice"));
        } else if banks.len() == MAX_BANKS {
            problems.add(line, None, format!("more than {MAX_BANKS} banks"));
            break;
        } else {
            banks.push(name.to_string());
        }
    }
    if !header_seen {
        problems.add(
            1,
            None,
            "the file is empty: expected the header `bank` and one bank per line".to_string(),
        );
    } else if problems.is_empty() && banks.is_empty() {
        problems.add(1, None, "lists no bank".to_string());
    }
    if problems.is_empty() { Ok(banks) } else { Err(problems.into_error()) }
}

/// Turns the byte offset where the CSV reader says a record starts into the line it is really on.
/// The reader skips blank lines silently and reports the record at the first of them; this
/// counter reports each blank line as a problem and counts lines itself, in one pass.
struct LineCounter<'a> {
    text: &'a [u8],
    byte: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of the record starting at byte `record_start` of the text. An offset past the end
    /// (which the reader does not give) counts as the end, so no byte beyond it is ever read.
    fn line_of(&mut self, record_start: u64, problems: &mut Problems) -> u64 {
        let end = self.text.len();
        let mut start = usize::try_from(record_start).map_or(end, |start| start.min(end));
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        let mut line_begin = self.byte;
        for at in self.byte..start {
            if self.text[at] == b'\n' {
                if matches!(&self.text[line_begin..at], b"" | b"\r") {
                    problems.add(self.line, None, "the line is empty: remove it".to_string());
                }
                self.line += 1;
                line_begin = at + 1;
            }
        }
        self.byte = start;
        self.line
    }
}

fn check_header(record: &csv::ByteRecord) -> Result<(), String> {
    let names: Vec<String> =
        record.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
    let expected_amount = ["ammount", "amount"];
    let ok = names.len() == 4
        && names[..3].iter().zip(&ACCOUNTS_HEADER[..3]).all(|(a, b)| a == b)
        && expected_amount.contains(&names[3].as_str());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the header is `{}`; expected `iban,bank,name,ammount` (or `amount`)",
            names.join(",")
        ))
    }
}

fn parse_balance(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("is empty: give the balance in cents, e.g. 2106".to_string());
    }
    let digits = trimmed.strip_prefix(['-', '+']).unwrap_or(trimmed);
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') || digits.is_empty() {
        return Err(format!("{trimmed:?} is not a number: give the balance in cents, e.g. 2106"));
    }
    if digits.contains('.') {
        return Err(format!(
            "{trimmed:?} is fractional: balances are whole cents (write 12.50 as 1250)"
        ));
    }
    if trimmed.starts_with('-') && digits.bytes().any(|b| b != b'0') {
        return Err(format!("{trimmed:?} is negative: an account cannot start below zero"));
    }
    trimmed
        .parse::<i64>()
        .map_err(|_| format!("{trimmed:?} does not fit in a 64-bit integer of cents"))
}

/// Reads and checks an accounts file against a list of banks. Nothing is returned unless the
/// whole file is valid.
pub fn read_accounts(path: &Path, banks: Vec<String>) -> Result<AccountsFile, FileError> {
    let bytes = read_file(path, "make one with `interbank gen` or give its path with --accounts")?;
    let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let mut problems = Problems::new(path);
    let mut rows = RowChecker::new(&banks);
    let end = read_rows(strip_bom(&bytes), &mut rows, &mut problems);
    check_end(&end, rows.accounts.len(), &mut problems);
    if !problems.is_empty() {
        return Err(problems.into_error());
    }
    let RowChecker { accounts, total_cents, .. } = rows;
    Ok(AccountsFile { path: path.to_path_buf(), sha256, banks, accounts, total_cents })
}

/// How the reading of the rows ended: whether there was a header, and the last line read.
struct End {
    header_seen: bool,
    last_line: u64,
}

/// Reads the header, then every row into `rows`, until the end of the file, a wrong header, an
/// unreadable record or too many accounts.
fn read_rows(text: &[u8], rows: &mut RowChecker<'_>, problems: &mut Problems) -> End {
    let mut records = Records::new(text);
    let mut end = End { header_seen: false, last_line: 0 };
    while let Some((line, record)) = records.next(problems) {
        end.last_line = line;
        if !end.header_seen {
            end.header_seen = true;
            if let Err(why) = check_header(record) {
                problems.add(line, None, why);
                break;
            }
        } else if rows.check(line, record, problems).is_break() {
            break;
        }
    }
    end
}

/// The file as a whole: it has a header and, if every row is valid, at least two accounts.
fn check_end(end: &End, accounts: usize, problems: &mut Problems) {
    if !end.header_seen {
        problems.add(
            1,
            None,
            "the file is empty: expected the header `iban,bank,name,ammount`".to_string(),
        );
    } else if problems.is_empty() && accounts < 2 {
        problems.add(
            end.last_line.max(1),
            None,
            "a transfer needs at least two accounts".to_string(),
        );
    }
}

/// One row's four fields, each valid UTF-8 without a line break.
struct Row<'r> {
    iban: &'r str,
    bank: &'r str,
    name: &'r str,
    amount: &'r str,
}

impl<'r> Row<'r> {
    /// The row's fields, or `None` once each unreadable one is reported.
    fn read(record: &'r csv::ByteRecord, line: u64, problems: &mut Problems) -> Option<Row<'r>> {
        let [iban, bank, name, amount] =
            [0, 1, 2, 3].map(|i| field_str(record, i, ACCOUNTS_HEADER[i], line, problems));
        Some(Row { iban: iban?, bank: bank?, name: name?, amount: amount? })
    }
}

/// What the rows read so far add up to: the valid accounts, the IBANs seen and the total.
struct RowChecker<'b> {
    banks: &'b [String],
    bank_index: HashMap<&'b str, usize>,
    first_line_of: HashMap<String, u64>,
    accounts: Vec<Account>,
    total_cents: i64,
    total_overflowed: bool,
}

impl<'b> RowChecker<'b> {
    fn new(banks: &'b [String]) -> RowChecker<'b> {
        RowChecker {
            banks,
            bank_index: banks.iter().enumerate().map(|(i, b)| (b.as_str(), i)).collect(),
            first_line_of: HashMap::new(),
            accounts: Vec::new(),
            total_cents: 0,
            total_overflowed: false,
        }
    }

    /// Checks one row, keeping its account if it is valid; breaks once the file holds too many.
    fn check(
        &mut self,
        line: u64,
        record: &csv::ByteRecord,
        problems: &mut Problems,
    ) -> ControlFlow<()> {
        if record.len() != ACCOUNTS_HEADER.len() {
            let message =
                format!("has {} fields; expected 4 (iban,bank,name,ammount)", record.len());
            problems.add(line, None, message);
            return ControlFlow::Continue(());
        }
        if self.accounts.len() == MAX_ACCOUNTS {
            problems.add(line, None, format!("more than {MAX_ACCOUNTS} accounts in one file"));
            return ControlFlow::Break(());
        }
        let row = Row::read(record, line, problems);
        let account = row.and_then(|row| self.account(line, &row, problems));
        self.accounts.extend(account);
        ControlFlow::Continue(())
    }

    /// The account of a row, once every field is checked and every problem reported.
    fn account(&mut self, line: u64, row: &Row<'_>, problems: &mut Problems) -> Option<Account> {
        let iban_ok = self.check_iban(line, row.iban, problems);
        let bank = self.bank_of(line, row.bank, problems);
        let name_ok = check_name(line, row.name, problems);
        let balance = self.add_balance(line, row.amount, problems);
        let (true, Some(bank), true, Some(balance_cents)) = (iban_ok, bank, name_ok, balance)
        else {
            return None;
        };
        let (iban, name) = (row.iban.to_string(), row.name.to_string());
        Some(Account { iban, bank, name, balance_cents })
    }

    /// Whether the IBAN is valid and not already on an earlier line.
    fn check_iban(&mut self, line: u64, iban_text: &str, problems: &mut Problems) -> bool {
        if let Err(why) = iban::validate(iban_text) {
            problems.add(line, Some("iban"), format!("{iban_text:?} {why}"));
            return false;
        }
        if let Some(first) = self.first_line_of.get(iban_text) {
            let message = format!("{iban_text} already appears on line {first}");
            problems.add(line, Some("iban"), message);
            return false;
        }
        self.first_line_of.insert(iban_text.to_string(), line);
        true
    }

    /// The index of the bank, if the banks file lists it.
    fn bank_of(&self, line: u64, bank_text: &str, problems: &mut Problems) -> Option<usize> {
        let bank = self.bank_index.get(bank_text).copied();
        if bank.is_none() {
            let known = self.banks.join(", ");
            let message = format!("{bank_text:?} is not in the banks file (known: {known})");
            problems.add(line, Some("bank"), message);
        }
        bank
    }

    /// The balance, if it is valid and the total with it stays exact for the script.
    fn add_balance(
        &mut self,
        line: u64,
        amount_text: &str,
        problems: &mut Problems,
    ) -> Option<i64> {
        match parse_balance(amount_text) {
            Ok(balance) => self.add_to_total(line, balance, problems),
            Err(why) => {
                problems.add(line, Some("ammount"), why);
                None
            }
        }
    }

    /// Adds a balance to the total, if the total stays exact; only the first line that takes it
    /// too far is reported.
    fn add_to_total(&mut self, line: u64, balance: i64, problems: &mut Problems) -> Option<i64> {
        let total = add_cents(self.total_cents, balance).filter(|&t| t <= MAX_TOTAL_CENTS);
        if let Some(total) = total {
            self.total_cents = total;
            return Some(balance);
        }
        if !self.total_overflowed {
            problems.add(
                line,
                Some("ammount"),
                format!(
                    "the balances up to this line add up to more than {MAX_TOTAL_CENTS} cents, \
                     the largest total the transfer script computes exactly (2^53 - 1)"
                ),
            );
        }
        self.total_overflowed = true;
        None
    }
}

/// Whether the account holder's name has more than blanks.
fn check_name(line: u64, name_text: &str, problems: &mut Problems) -> bool {
    let ok = !name_text.trim().is_empty();
    if !ok {
        problems.add(line, Some("name"), "is empty: give the account holder's name".to_string());
    }
    ok
}

/// The banks file that goes with an accounts file: `banks.csv` in the same folder.
pub fn default_banks_path(accounts_path: &Path) -> PathBuf {
    accounts_path.parent().unwrap_or(Path::new(".")).join("banks.csv")
}

/// Reads the banks file and then the accounts file, checking both entirely.
pub fn load(accounts_path: &Path, banks_path: Option<&Path>) -> Result<AccountsFile, FileError> {
    let banks_path =
        banks_path.map_or_else(|| default_banks_path(accounts_path), Path::to_path_buf);
    let banks = read_banks(&banks_path)?;
    read_accounts(accounts_path, banks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_set, vec};
    use proptest::prelude::*;
    use std::io::Write;

    const GOOD_A: &str = "ES9121000418450200051332";
    const GOOD_B: &str = "ES0804244907769990166862";

    fn banks() -> Vec<String> {
        vec!["CaixaBank".to_string(), "Kutxa".to_string()]
    }

    fn check(contents: &[u8]) -> Result<AccountsFile, FileError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents).unwrap();
        read_accounts(file.path(), banks())
    }

    fn problems(contents: &[u8]) -> Vec<Problem> {
        match check(contents) {
            Err(FileError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn one_problem(contents: &str) -> Problem {
        let found = problems(contents.as_bytes());
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap()
    }

    fn with_rows(rows: &str) -> String {
        format!("iban,bank,name,ammount\n{GOOD_A},CaixaBank,Ana,100\n{rows}")
    }

    #[test]
    fn a_good_file_loads_with_bom_crlf_and_either_spelling() {
        let text = format!(
            "\u{feff}iban,bank,name,amount\r\n{GOOD_A},CaixaBank,Ana Ruiz,100\r\n{GOOD_B},Kutxa,Bo,0\r\n"
        );
        let file = check(text.as_bytes()).unwrap();
        assert_eq!(file.accounts.len(), 2);
        assert_eq!(file.total_cents, 100);
        assert_eq!(
            file.accounts[1],
            Account { iban: GOOD_B.into(), bank: 1, name: "Bo".into(), balance_cents: 0 }
        );
        assert_eq!(file.sha256.len(), 64);
    }

    #[test]
    fn each_bad_row_names_line_and_field() {
        let cases: &[(&str, u64, Option<&str>, &str)] = &[
            ("ES9221000418450200051332,Kutxa,Bo,1\n", 3, Some("iban"), "check digits 92"),
            (&format!("{GOOD_A},Kutxa,Bo,1\n"), 3, Some("iban"), "already appears on line 2"),
            (
                &format!("{GOOD_B},Nope,Bo,1\n"),
                3,
                Some("bank"),
                "\"Nope\" is not in the banks file",
            ),
            (&format!("{GOOD_B},Kutxa,Bo,-5\n"), 3, Some("ammount"), "is negative"),
            (&format!("{GOOD_B},Kutxa,Bo,1.5\n"), 3, Some("ammount"), "is fractional"),
            (&format!("{GOOD_B},Kutxa,Bo,abc\n"), 3, Some("ammount"), "is not a number"),
            (
                &format!("{GOOD_B},Kutxa,Bo,99999999999999999999\n"),
                3,
                Some("ammount"),
                "does not fit in a 64-bit",
            ),
            (
                &format!("{GOOD_B},Kutxa,Bo,9007199254740992\n"),
                3,
                Some("ammount"),
                "add up to more than",
            ),
            (&format!("{GOOD_B},Kutxa,Bo\n"), 3, None, "has 3 fields; expected 4"),
            (&format!("{GOOD_B},Kutxa,Bo,1,extra\n"), 3, None, "has 5 fields"),
            (&format!("\n{GOOD_B},Kutxa,Bo,1\n"), 3, None, "the line is empty"),
            (&format!("{GOOD_B},Kutxa,,1\n"), 3, Some("name"), "is empty"),
        ];
        for (rows, line, field, text) in cases {
            let problem = one_problem(&with_rows(rows));
            assert_eq!(problem.line, *line, "{rows}: {problem:?}");
            assert_eq!(problem.field, *field, "{rows}: {problem:?}");
            assert!(problem.message.contains(text), "{rows}: {problem:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_named() {
        let mut text = with_rows("").into_bytes();
        text.extend_from_slice(GOOD_B.as_bytes());
        text.extend_from_slice(b",Kutxa,B\xff,1\n");
        let found = problems(&text);
        assert_eq!(found[0].field, Some("name"));
        assert!(found[0].message.contains("not valid UTF-8"));
    }

    #[test]
    fn header_empty_file_and_single_account_are_refused() {
        assert!(
            one_problem("iban,bank,name\n").message.contains("expected `iban,bank,name,ammount`")
        );
        assert!(one_problem("").message.contains("the file is empty"));
        assert!(one_problem(&with_rows("")).message.contains("at least two accounts"));
    }

    #[test]
    fn many_problems_are_counted_and_the_text_names_the_file() {
        let rows: String = (0..30).map(|_| "bad,Kutxa,Bo,1\n").collect();
        let err = check(with_rows(&rows).as_bytes()).unwrap_err();
        let FileError::Invalid { problems, more, .. } = &err else { panic!("{err:?}") };
        assert_eq!(problems.len(), MAX_REPORTED_ERRORS);
        assert_eq!(*more, 10);
        let text = err.to_string();
        assert!(text.contains("has 30 problems; nothing was written"), "{text}");
        assert!(text.contains(":3: field 'iban': \"bad\""), "{text}");
        assert!(text.ends_with("... and 10 more"), "{text}");
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err =
            read_accounts(Path::new("/nonexistent/accounts.csv"), banks()).unwrap_err().to_string();
        assert!(err.starts_with("cannot read /nonexistent/accounts.csv"), "{err}");
        assert!(err.contains("interbank gen"), "{err}");
    }

    #[test]
    fn banks_file_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banks.csv");
        std::fs::write(&path, "bank\nING\nBBVA\n").unwrap();
        assert_eq!(read_banks(&path).unwrap(), vec!["ING", "BBVA"]);
        std::fs::write(&path, "bank\nING\nING\n").unwrap();
        assert!(read_banks(&path).unwrap_err().to_string().contains("listed twice"));
        std::fs::write(&path, "name\nING\n").unwrap();
        assert!(read_banks(&path).unwrap_err().to_string().contains("single column `bank`"));
        std::fs::write(&path, "").unwrap();
        assert!(read_banks(&path).unwrap_err().to_string().contains("empty"));
    }

    /// Bytes that look like an accounts file more often than random ones do: a header, then
    /// IBANs, banks, names and amounts (good and bad), separators, quotes and stray bytes; or
    /// random bytes; or a valid file damaged in one place.
    fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop::sample::select(vec![
            GOOD_A,
            GOOD_B,
            "ES9221000418450200051332",
            "CaixaBank",
            "Kutxa",
            "Nope",
            "Ana",
            "",
            " ",
            ",",
            "\n",
            "\r\n",
            "\r",
            "\"",
            "100",
            "-5",
            "-0",
            "+7",
            "1.5",
            "99999999999999999999",
            "9007199254740991",
            "\u{feff}",
            "\u{e9}",
        ]);
        let start = prop::sample::select(vec!["", "\u{feff}", "iban,bank,name,ammount\n"]);
        let bytes =
            (start, vec(token, 0..60), vec(any::<u8>(), 0..3)).prop_map(|(start, tokens, junk)| {
                [start.as_bytes(), tokens.concat().as_bytes(), &junk].concat()
            });
        prop_oneof![bytes, vec(any::<u8>(), 0..512), spliced_valid_file()]
    }

    /// A valid file with a few bytes replaced, removed or inserted at one place, or cut there.
    fn spliced_valid_file() -> impl Strategy<Value = Vec<u8>> {
        let splice =
            (any::<prop::sample::Index>(), 0..3usize, vec(any::<u8>(), 0..3), any::<bool>());
        (valid_rows(), splice).prop_map(|(rows, (at, removed, inserted, cut))| {
            let mut bytes = accounts_file(&rows, "ammount", false, false);
            let at = at.index(bytes.len());
            if cut {
                bytes.truncate(at);
            } else {
                bytes.splice(at..(at + removed).min(bytes.len()), inserted);
            }
            bytes
        })
    }

    /// Valid rows: distinct Spanish IBANs, a listed bank, a name with more than blanks, and a
    /// balance spelled in one of the ways a person may write it, small enough for any total.
    fn valid_rows() -> impl Strategy<Value = Vec<(Account, String)>> {
        let numbers = btree_set((0u32..10_000, 0u32..10_000, 0u64..10_000_000_000), 2..40);
        let name = "[^\r\n]{1,12}".prop_filter("more than blanks", |n| !n.trim().is_empty());
        let balance = (0..=MAX_TOTAL_CENTS / 40, 0..4usize).prop_map(|(cents, spelling)| {
            let text = [format!("{cents}"), format!("+{cents}"), format!("0{cents}")];
            let text = text.into_iter().nth(spelling).unwrap_or(format!(" {cents} "));
            (cents, text)
        });
        let details = vec((0..banks().len(), name, balance), 40);
        (numbers, details).prop_map(|(numbers, details)| {
            numbers
                .into_iter()
                .zip(details)
                .map(|((entity, branch, number), (bank, name, (balance_cents, text)))| {
                    let iban = iban::spanish(
                        &format!("{entity:04}"),
                        &format!("{branch:04}"),
                        &format!("{number:010}"),
                    );
                    (Account { iban, bank, name, balance_cents }, text)
                })
                .collect()
        })
    }

    /// An accounts file of these rows, written by a CSV writer (which quotes where needed).
    fn accounts_file(rows: &[(Account, String)], amount: &str, bom: bool, crlf: bool) -> Vec<u8> {
        let terminator = if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
        let mut writer = csv::WriterBuilder::new().terminator(terminator).from_writer(Vec::new());
        writer.write_record(["iban", "bank", "name", amount]).unwrap();
        for (account, balance) in rows {
            let bank = &banks()[account.bank];
            writer.write_record([&account.iban, bank, &account.name, balance]).unwrap();
        }
        let text = writer.into_inner().unwrap();
        if bom { [&b"\xEF\xBB\xBF"[..], &text].concat() } else { text }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_give_accounts_or_problems(contents in file_bytes()) {
            match check(&contents) {
                Ok(file) => {
                    prop_assert!(file.accounts.len() >= 2);
                    let total: i64 = file.accounts.iter().map(|a| a.balance_cents).sum();
                    prop_assert_eq!(file.total_cents, total);
                    prop_assert!(file.accounts.iter().all(|a| iban::validate(&a.iban).is_ok()));
                }
                Err(FileError::Invalid { path, problems, more }) => {
                    prop_assert!(!problems.is_empty() && problems.len() <= MAX_REPORTED_ERRORS);
                    prop_assert!(more == 0 || problems.len() == MAX_REPORTED_ERRORS);
                    let text = FileError::Invalid { path: path.clone(), problems, more }.to_string();
                    prop_assert!(text.starts_with(&path.display().to_string()), "{}", text);
                }
                Err(unreadable) => prop_assert!(false, "{unreadable}"),
            }
        }

        #[test]
        fn valid_rows_load_as_exactly_those_accounts(
            rows in valid_rows(),
            amount in prop::sample::select(vec!["ammount", "amount"]),
            bom in any::<bool>(),
            crlf in any::<bool>(),
        ) {
            let file = check(&accounts_file(&rows, amount, bom, crlf)).unwrap();
            let expected: Vec<Account> = rows.iter().map(|(account, _)| account.clone()).collect();
            prop_assert_eq!(file.total_cents, expected.iter().map(|a| a.balance_cents).sum::<i64>());
            prop_assert_eq!(file.accounts, expected);
            prop_assert_eq!(file.banks, banks());
        }
    }
}
