//! Who is in the class: the students, their accounts, and the sheet with their passwords.
//!
//! A class is `--class N` (students `student01` to `studentNN`) or a roster file:
//!
//! ```text
//! # one student per line: an ID (letters, digits, hyphens), then the name to show
//! alice   Alice Martin
//! bob
//! ```
//!
//! Each student gets the account `ID@lab.test` and a password drawn from the system's
//! cryptographic random generator (through the TLS provider, ring). The passwords go to one
//! place only: the class sheet, a file of mode 0600 the instructor hands out line by line.
//! They are never printed, logged or shown on the dashboard, and never in `Debug` output. A
//! sheet is never overwritten: at the next start the lab reads it back, so the passwords
//! students hold stay valid, and only students it lacks are appended (and said so).
//!
//! A session belongs to a student by the account it authenticated as (or whose valid
//! credentials it sent), else by its EHLO name: any label equal to the student's ID
//! (`EHLO alice`, `EHLO alice.no-pipelining.lab.test`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::accounts::Accounts;
use super::activity::Activity;
use super::server::LOCAL_DOMAIN;
use super::textfile::{self, FileError};
use crate::secret::Secret;

/// Longest student ID.
pub const ID_LIMIT: usize = 32;
/// Longest name shown for a student.
pub const NAME_LIMIT: usize = 60;
/// Most students in a class.
pub const MAX_STUDENTS: usize = 500;
/// The largest roster or sheet file read.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;
/// The first line of every class sheet: how a sheet is told from any other file.
pub const SHEET_MAGIC: &str = "# smtptui lab class sheet";
/// The sheet's name in a state directory, and in the current directory without one.
pub const SHEET_FILE: &str = "class-sheet.txt";
/// Characters of a generated password: no 0/O, 1/l/I, to be read off paper.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Labels too common in host names to be a student's ID (an EHLO name would match them).
const RESERVED: [&str; 10] = [
    "lab",
    "test",
    "localhost",
    "localdomain",
    "local",
    "mail",
    "smtp",
    "example",
    "com",
    "everyone",
];

/// One student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Student {
    /// The ID: a DNS label, the local part of the account and the EHLO name.
    pub id: String,
    /// The name shown on the dashboard, if the roster gives one.
    pub name: Option<String>,
}

impl Student {
    /// The account: `ID@lab.test`, lower case.
    pub fn account(&self) -> String {
        format!("{}@{LOCAL_DOMAIN}", self.id.to_ascii_lowercase())
    }
}

/// The students of a class, or "everyone" when the lab runs without a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    students: Vec<Student>,
    anonymous: bool,
}

impl Roster {
    /// No class: every session counts for one pseudo-student, "everyone", so a lab used
    /// alone still shows the exercises and their progress.
    pub fn anonymous() -> Self {
        Self {
            students: vec![Student {
                id: "everyone".to_owned(),
                name: Some("every session on this lab".to_owned()),
            }],
            anonymous: true,
        }
    }

    /// `--class N`: `student01` to `studentNN` (at least two digits).
    ///
    /// # Errors
    /// A message when N is 0 or above [`MAX_STUDENTS`].
    pub fn numbered(count: usize) -> Result<Self, String> {
        if count == 0 || count > MAX_STUDENTS {
            return Err(format!(
                "--class {count}: give the number of students, 1 to {MAX_STUDENTS}"
            ));
        }
        let width = count.to_string().len().max(2);
        Ok(Self {
            students: (1..=count)
                .map(|n| Student {
                    id: format!("student{n:0width$}"),
                    name: None,
                })
                .collect(),
            anonymous: false,
        })
    }

    /// Reads a roster file.
    ///
    /// # Errors
    /// [`FileError`] naming the file and line.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = textfile::read(path, MAX_FILE_BYTES, "the roster")?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses a roster: one student per line, an ID and optionally a name.
    ///
    /// # Errors
    /// [`FileError`] at the first problem.
    pub fn parse(name: &str, text: &str) -> Result<Self, FileError> {
        let mut students: Vec<(usize, Student)> = Vec::new();
        for (line, content) in textfile::content_lines(text) {
            let (id, rest) = content
                .split_once(char::is_whitespace)
                .map_or((content, ""), |(id, rest)| (id, rest.trim()));
            check_id(id).map_err(|m| FileError::at(name, line, m))?;
            if let Some((other, _)) = students.iter().find(|(_, s)| s.id.eq_ignore_ascii_case(id)) {
                return Err(FileError::at(
                    name,
                    line,
                    format!(
                        "the ID {id:?} is already on line {other}; give each student their own"
                    ),
                ));
            }
            if let Some(c) = textfile::control_character(rest) {
                return Err(FileError::at(
                    name,
                    line,
                    format!("a control character ({c:?}) in the name; remove it"),
                ));
            }
            if rest.chars().count() > NAME_LIMIT {
                return Err(FileError::at(
                    name,
                    line,
                    format!("the name is longer than {NAME_LIMIT} characters; shorten it"),
                ));
            }
            if students.len() >= MAX_STUDENTS {
                return Err(FileError::at(
                    name,
                    line,
                    format!("more than {MAX_STUDENTS} students; split the class"),
                ));
            }
            students.push((
                line,
                Student {
                    id: id.to_owned(),
                    name: (!rest.is_empty()).then(|| rest.replace('\t', " ")),
                },
            ));
        }
        if students.is_empty() {
            return Err(FileError::at(
                name,
                0,
                "no student in the roster; write one ID per line (e.g. 'alice  Alice Martin')",
            ));
        }
        Ok(Self {
            students: students.into_iter().map(|(_, s)| s).collect(),
            anonymous: false,
        })
    }

    /// Whether this is the "everyone" roster of a lab without a class.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The students, in roster order.
    pub fn students(&self) -> &[Student] {
        &self.students
    }

    /// How many students.
    pub fn len(&self) -> usize {
        self.students.len()
    }

    /// Whether there is no student (never, for a roster that parsed).
    pub fn is_empty(&self) -> bool {
        self.students.is_empty()
    }

    /// The student with this ID (any case).
    pub fn find(&self, id: &str) -> Option<usize> {
        if self.anonymous {
            return Some(0);
        }
        self.students
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// The student with this account (any case).
    pub fn by_account(&self, account: &str) -> Option<usize> {
        let (local, domain) = account.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(LOCAL_DOMAIN) || self.anonymous {
            return None;
        }
        self.find(local)
    }

    /// The student a session belongs to: by the account it authenticated as, else the one
    /// whose valid credentials it sent, else by a label of its EHLO name.
    pub fn identify(&self, activity: &Activity) -> Option<usize> {
        if self.anonymous {
            return Some(0);
        }
        if let Some(student) = activity
            .authenticated
            .as_deref()
            .and_then(|a| self.by_account(a))
            .or_else(|| {
                activity
                    .credentials_for
                    .as_deref()
                    .and_then(|a| self.by_account(a))
            })
        {
            return Some(student);
        }
        activity
            .names
            .iter()
            .flat_map(|name| name.split('.'))
            .find_map(|label| self.find(label))
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if !textfile::is_identifier(id, ID_LIMIT) {
        return Err(format!(
            "a student ID is 1 to {ID_LIMIT} letters, digits and hyphens (it becomes the EHLO name \
             and the account ID@{LOCAL_DOMAIN}); found {id:?}"
        ));
    }
    let lower = id.to_ascii_lowercase();
    if lower.starts_with("no-") {
        return Err(format!(
            "the ID {id:?} starts with 'no-', which in an EHLO name turns an extension off; choose another"
        ));
    }
    if RESERVED.contains(&lower.as_str()) {
        return Err(format!(
            "the ID {id:?} is too common in host names to tell a student by; choose another"
        ));
    }
    Ok(())
}

/// A student's line of the sheet.
#[derive(Clone)]
struct SheetLine {
    id: String,
    password: Secret,
}

impl std::fmt::Debug for SheetLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetLine")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The class's passwords, as the sheet holds them. `Debug` shows the IDs only.
#[derive(Clone, Default)]
pub struct ClassPasswords {
    lines: Vec<SheetLine>,
}

impl std::fmt::Debug for ClassPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.lines.iter().map(|l| &l.id))
            .finish()
    }
}

impl ClassPasswords {
    /// Adds every student of `roster` to `accounts`, with the password the sheet gives.
    pub fn add_to(&self, roster: &Roster, accounts: &mut Accounts) {
        for student in roster.students() {
            if let Some(line) = self
                .lines
                .iter()
                .find(|l| l.id.eq_ignore_ascii_case(&student.id))
            {
                accounts.insert(&student.account(), line.password.clone());
            }
        }
    }

    /// How many students have a password.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// What preparing the sheet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetOutcome {
    /// A new sheet was written.
    Created,
    /// An existing sheet was read back; these students were appended to it (new
    /// passwords), and its mode was tightened to 0600 if it was wider.
    Reused {
        /// IDs added.
        added: Vec<String>,
        /// Whether the file was readable by others and was set to 0600.
        tightened: bool,
    },
}

/// Why the sheet could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// It exists and is something else.
    #[error(
        "{path} exists and is not a smtptui class sheet (its first line is not '{SHEET_MAGIC}'); it is left as it is: give another file with --sheet FILE"
    )]
    NotASheet {
        /// The file.
        path: String,
    },
    /// A line of it could not be read.
    #[error(transparent)]
    Syntax(#[from] FileError),
    /// Reading or writing it failed.
    #[error("cannot write the class sheet {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The directory it should go in does not exist.
    #[error(
        "cannot write the class sheet {path}: its directory does not exist; create it or give another file with --sheet FILE"
    )]
    NoDirectory {
        /// The file.
        path: String,
    },
    /// The system's random generator failed.
    #[error("cannot draw random passwords from the system: {0}")]
    Random(String),
}

/// Where the sheet goes by default: in the state directory, else in the current directory.
pub fn default_sheet_path(state_dir: Option<&Path>) -> PathBuf {
    match state_dir {
        Some(dir) => dir.join(SHEET_FILE),
        None => PathBuf::from(SHEET_FILE),
    }
}

/// A fresh password: 12 characters of a 32-letter alphabet (60 bits) in groups of four.
///
/// # Errors
/// [`SheetError::Random`] when the system's generator fails.
pub fn generate_password() -> Result<Secret, SheetError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 12]);
    crate::tls::crypto_provider()
        .secure_random
        .fill(&mut bytes[..])
        .map_err(|e| SheetError::Random(format!("{e:?}")))?;
    let mut password = String::with_capacity(14);
    for (index, byte) in bytes.iter().enumerate() {
        if index > 0 && index % 4 == 0 {
            password.push('-');
        }
        // 256 is a multiple of 32: taking the low five bits keeps every letter equally likely.
        password.push(char::from(ALPHABET[usize::from(byte & 31)]));
    }
    Ok(Secret::new(password))
}

/// Opens the class sheet at `path`, or writes a new one: every student of `roster` has a
/// password afterwards. An existing sheet is read back, never rewritten; students it lacks
/// are appended with new passwords. A new sheet is created with mode 0600 and never replaces
/// a file that appeared meanwhile.
///
/// # Errors
/// [`SheetError`] naming the file and what to do.
pub fn prepare_sheet(
    path: &Path,
    roster: &Roster,
) -> Result<(ClassPasswords, SheetOutcome), SheetError> {
    let name = path.display().to_string();
    let io = |source| SheetError::Io {
        path: name.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => {
            let text = textfile::read(path, MAX_FILE_BYTES, "the class sheet")?;
            let mut passwords = parse_sheet(&name, &text)?;
            let tightened = tighten(path).map_err(io)?;
            let mut added = Vec::new();
            let mut appended = zeroize::Zeroizing::new(String::new());
            for student in roster.students() {
                if passwords
                    .lines
                    .iter()
                    .any(|l| l.id.eq_ignore_ascii_case(&student.id))
                {
                    continue;
                }
                let password = generate_password()?;
                appended.push_str(&sheet_line(student, &password));
                passwords.lines.push(SheetLine {
                    id: student.id.clone(),
                    password,
                });
                added.push(student.id.clone());
            }
            if !appended.is_empty() {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                file.write_all(appended.as_bytes()).map_err(io)?;
            }
            Ok((passwords, SheetOutcome::Reused { added, tightened }))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut passwords = ClassPasswords::default();
            let mut text = zeroize::Zeroizing::new(sheet_header());
            for student in roster.students() {
                let password = generate_password()?;
                text.push_str(&sheet_line(student, &password));
                passwords.lines.push(SheetLine {
                    id: student.id.clone(),
                    password,
                });
            }
            let mut file = create_private(path).map_err(|error| {
                if error.kind() == std::io::ErrorKind::NotFound {
                    SheetError::NoDirectory { path: name.clone() }
                } else {
                    io(error)
                }
            })?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok((passwords, SheetOutcome::Created))
        }
        Err(error) => Err(io(error)),
    }
}

/// Creates a file readable by its owner only, failing if it exists.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Sets the sheet to 0600 when others could read it; returns whether it did.
fn tighten(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            return Ok(true);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(false)
}

fn sheet_header() -> String {
    format!(
        "{SHEET_MAGIC}: each student's account and password. Keep this file private (mode 0600),\n\
         # never on the projector; hand each student their own line. The lab reads it back at its\n\
         # next start, so the passwords stay the same; delete it for new ones.\n\
         # Each student logs in with their account and says EHLO with their ID (EHLO alice, or\n\
         # alice.no-pipelining.lab.test), so sessions without AUTH count for them too.\n\
         # Exercises and progress: smtptui lab-status HOST ID, :exercises in smtptui, or\n\
         # XEXERCISES in any session with the lab.\n\
         #\n\
         # ID                 ACCOUNT                        PASSWORD        NAME\n"
    )
}

fn sheet_line(student: &Student, password: &Secret) -> zeroize::Zeroizing<String> {
    let line = zeroize::Zeroizing::new(format!(
        "{:<18} {:<30} {:<15} {}",
        student.id,
        student.account(),
        password.expose(),
        student.name.as_deref().unwrap_or("")
    ));
    zeroize::Zeroizing::new(format!("{}\n", line.trim_end()))
}

fn parse_sheet(name: &str, text: &str) -> Result<ClassPasswords, SheetError> {
    let text_start = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text_start.starts_with(SHEET_MAGIC) {
        return Err(SheetError::NotASheet {
            path: name.to_owned(),
        });
    }
    let mut passwords = ClassPasswords::default();
    for (line, content) in textfile::content_lines(text) {
        let mut words = content.split_whitespace();
        let (Some(id), Some(account), Some(password)) = (words.next(), words.next(), words.next())
        else {
            return Err(FileError::at(
                name,
                line,
                "expected 'ID ACCOUNT PASSWORD [NAME]'; fix the line or delete the sheet for new passwords",
            )
            .into());
        };
        check_id(id).map_err(|m| FileError::at(name, line, m))?;
        let expected = format!("{}@{LOCAL_DOMAIN}", id.to_ascii_lowercase());
        if !account.eq_ignore_ascii_case(&expected) {
            return Err(FileError::at(
                name,
                line,
                format!("the account of {id} must be {expected}; fix the line"),
            )
            .into());
        }
        if passwords
            .lines
            .iter()
            .any(|l| l.id.eq_ignore_ascii_case(id))
        {
            return Err(
                FileError::at(name, line, format!("{id} has a second line; keep one")).into(),
            );
        }
        passwords.lines.push(SheetLine {
            id: id.to_owned(),
            password: Secret::new(password.to_owned()),
        });
    }
    Ok(passwords)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_classes() {
        let roster = Roster::numbered(30).expect("30");
        assert_eq!(roster.students()[0].id, "student01");
        assert_eq!(roster.students()[29].account(), "student30@lab.test");
        assert_eq!(
            Roster::numbered(100).expect("100").students()[0].id,
            "student001"
        );
        assert!(Roster::numbered(0).is_err());
    }

    #[test]
    fn roster_errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("alice\nbob\nAlice x\n", 3, "already on line 1"),
            ("alice\nb_b\n", 2, "letters, digits and hyphens"),
            ("no-pipelining\n", 1, "starts with 'no-'"),
            ("mail\n", 1, "too common"),
            ("# nobody\n", 0, "no student"),
            ("carol Carol\x07\n", 1, "control character"),
        ];
        for (text, line, needle) in cases {
            let error = Roster::parse("roster.txt", text).expect_err(text);
            assert_eq!(error.line, *line, "{error}");
            assert!(error.to_string().contains(needle), "{error}");
        }
        let roster = Roster::parse("r", "alice   Alice Martin\nbob\n").expect("parses");
        assert_eq!(roster.students()[0].name.as_deref(), Some("Alice Martin"));
        assert_eq!(roster.students()[1].name, None);
    }

    #[test]
    fn sessions_are_told_by_account_then_ehlo_name() {
        let roster = Roster::parse("r", "alice\nbob\n").expect("parses");
        let mut activity = Activity::default();
        assert_eq!(roster.identify(&activity), None);
        activity.name("bob.no-pipelining.lab.test");
        assert_eq!(roster.identify(&activity), Some(1));
        activity.credentials_for("ALICE@lab.test");
        assert_eq!(roster.identify(&activity), Some(0));
        activity.authenticated("bob@lab.test");
        assert_eq!(roster.identify(&activity), Some(1));
        let mut stranger = Activity::default();
        stranger.name("alice-laptop.example.com");
        stranger.authenticated("alice@example.com");
        assert_eq!(roster.identify(&stranger), None);
        assert_eq!(Roster::anonymous().identify(&stranger), Some(0));
    }

    #[test]
    fn passwords_are_random_and_readable() {
        let a = generate_password().expect("random");
        let b = generate_password().expect("random");
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.len(), 14);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c == b'-' || ALPHABET.contains(&c))
        );
    }

    #[test]
    fn the_sheet_is_private_reused_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sheet.txt");
        let roster = Roster::numbered(3).expect("3");
        let (first, outcome) = prepare_sheet(&path, &roster).expect("created");
        assert_eq!(outcome, SheetOutcome::Created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains(first.lines[0].password.expose()));
        // Read back: the same passwords; a bigger class appends.
        let bigger = Roster::numbered(4).expect("4");
        let (again, outcome) = prepare_sheet(&path, &bigger).expect("reused");
        assert_eq!(
            outcome,
            SheetOutcome::Reused {
                added: vec!["student04".to_owned()],
                tightened: false
            }
        );
        for (a, b) in again.lines.iter().zip(&first.lines) {
            assert_eq!((&a.id, a.password.expose()), (&b.id, b.password.expose()));
        }
        assert_eq!(again.len(), 4);
        let mut accounts = Accounts::empty();
        again.add_to(&bigger, &mut accounts);
        assert!(accounts.check(
            "student02@lab.test",
            first.lines[1].password.expose().as_bytes()
        ));
        // Anything else is left alone.
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "my notes\n").expect("write");
        assert!(matches!(
            prepare_sheet(&other, &roster),
            Err(SheetError::NotASheet { .. })
        ));
        assert_eq!(std::fs::read_to_string(&other).expect("read"), "my notes\n");
    }
}
