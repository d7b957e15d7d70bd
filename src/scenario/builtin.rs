//! The example scenarios compiled into the binary, so that an installed smtptui (`cargo
//! install`, no source checkout) runs them by name: `smtptui run submission HOST:587`.
//!
//! They are the files of `assets/`, byte for byte; a name is the file's stem
//! (`submission-starttls`) or any prefix of it that names one scenario only (`submission`).
//! A file or directory of the same name in the working directory wins: a path is what a user
//! who has one means. The message file some of them send (`FILE message.eml`) is built in too,
//! and written to a private directory for the run (see [`Materialized`]).

use std::path::{Path, PathBuf};

use super::{Scenario, ScenarioError};

/// One scenario built into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name it is run by: the stem of its file in `assets/`.
    pub name: &'static str,
    /// The scenario's text, as in `assets/NAME.smtp`.
    pub text: &'static str,
}

impl Builtin {
    /// The scenario's first comment line, which says what it does.
    pub fn summary(&self) -> &'static str {
        self.text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix('#'))
            .map_or("", str::trim)
    }

    /// Whether it sends a built-in message file (a `FILE` line).
    fn sends_files(&self) -> bool {
        self.text.lines().any(|line| line.starts_with("FILE "))
    }
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            text: include_str!(concat!("../../assets/", $name, ".smtp")),
        }
    };
}

/// Every built-in scenario, in the order `smtptui scenarios` lists them.
pub const SCENARIOS: &[Builtin] = &[
    builtin!("submission-starttls"),
    builtin!("implicit-tls"),
    builtin!("mx-starttls"),
    builtin!("auth-before-starttls"),
    builtin!("pipelining"),
    builtin!("data-file"),
    builtin!("bdat-file"),
    builtin!("dsn-smtputf8"),
    builtin!("lmtp"),
];

/// The message files the built-in scenarios name, by the name their `FILE` lines use.
const FILES: &[(&str, &[u8])] = &[("message.eml", include_bytes!("../../assets/message.eml"))];

/// The built-in scenario `name` names: the exact name, or a prefix that only one name starts
/// with.
///
/// # Errors
/// A sentence for the user when nothing matches (listing the names) or several do (listing
/// those).
pub fn find(name: &str) -> Result<&'static Builtin, String> {
    if let Some(exact) = SCENARIOS.iter().find(|b| b.name == name) {
        return Ok(exact);
    }
    let matching: Vec<&Builtin> = SCENARIOS
        .iter()
        .filter(|b| !name.is_empty() && b.name.starts_with(name))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "{name:?} is neither a file nor a directory here, nor a built-in scenario; the \
             built-in ones are {} (smtptui scenarios lists them, smtptui scenarios NAME \
             prints one)",
            names(SCENARIOS.iter())
        )),
        several => Err(format!(
            "{name:?} could be the built-in scenario {}: write more of the name",
            names(several.iter().copied())
        )),
    }
}

fn names<'a>(scenarios: impl Iterator<Item = &'a Builtin>) -> String {
    scenarios.map(|b| b.name).collect::<Vec<_>>().join(", ")
}

/// A built-in scenario ready to run, with the private directory holding its message files
/// (removed when this is dropped).
#[derive(Debug)]
pub struct Materialized {
    /// The parsed and checked scenario; its `FILE` paths point into [`Materialized::files`].
    pub scenario: Scenario,
    /// The directory holding its message files, if it sends any: keep it as long as the
    /// scenario runs.
    pub files: Option<FilesDirectory>,
}

/// A directory this process made for a built-in scenario's message files, removed with what
/// it holds when dropped.
#[derive(Debug)]
pub struct FilesDirectory(PathBuf);

impl Drop for FilesDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parses `builtin` and, when it sends message files, writes them to a new directory only
/// the user can read, under `temp` (the system's temporary directory in the binary).
///
/// # Errors
/// [`ScenarioError`] when the directory cannot be made (a built-in scenario itself always
/// parses; a test holds every one to that).
pub fn materialize(builtin: &Builtin, temp: &Path) -> Result<Materialized, ScenarioError> {
    let name = format!("built-in {}", builtin.name);
    if !builtin.sends_files() {
        let scenario = Scenario::read(&name, builtin.text.as_bytes(), Path::new(""))?;
        return Ok(Materialized {
            scenario,
            files: None,
        });
    }
    let failed = |e: std::io::Error| ScenarioError {
        file: name.clone(),
        line: 0,
        message: format!(
            "cannot write its message file under {}: {e} (set TMPDIR to a writable directory)",
            temp.display()
        ),
    };
    let directory = FilesDirectory(private_directory(temp, builtin.name).map_err(failed)?);
    for (file, bytes) in FILES {
        std::fs::write(directory.0.join(file), bytes).map_err(failed)?;
    }
    let scenario = Scenario::read(&name, builtin.text.as_bytes(), &directory.0)?;
    Ok(Materialized {
        scenario,
        files: Some(directory),
    })
}

/// A new directory `smtptui-NAME-PID-N` under `temp`, mode 0700, never one that existed.
fn private_directory(temp: &Path, name: &str) -> std::io::Result<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    let mut attempt = 0u32;
    loop {
        let path = temp.join(format!("smtptui-{name}-{}-{attempt}", std::process::id()));
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)] // test assertions
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_its_files_are_found() {
        let temp = std::env::temp_dir();
        for builtin in SCENARIOS {
            let materialized = materialize(builtin, &temp).unwrap_or_else(|e| {
                panic!("{}: {}:{}: {}", builtin.name, e.file, e.line, e.message)
            });
            assert!(!materialized.scenario.steps.is_empty(), "{}", builtin.name);
            assert!(!builtin.summary().is_empty(), "{}", builtin.name);
            let directory = materialized.files.as_ref().map(|d| d.0.clone());
            drop(materialized);
            if let Some(directory) = directory {
                assert!(!directory.exists(), "{} is removed", directory.display());
            }
        }
    }

    #[test]
    fn every_asset_scenario_is_built_in() {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for entry in std::fs::read_dir(assets).expect("assets") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "smtp") {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                assert!(
                    SCENARIOS.iter().any(|b| b.name == stem),
                    "{stem} is not built in"
                );
            }
        }
    }

    #[test]
    fn names_match_exactly_or_by_a_unique_prefix() {
        assert_eq!(
            find("submission").map(|b| b.name),
            Ok("submission-starttls")
        );
        assert_eq!(find("mx").map(|b| b.name), Ok("mx-starttls"));
        assert_eq!(find("lmtp").map(|b| b.name), Ok("lmtp"));
        let unknown = find("sumbission").expect_err("no such name");
        assert!(
            unknown.contains("submission-starttls, implicit-tls"),
            "{unknown}"
        );
        assert!(find("").is_err());
        // "d" starts both data-file and dsn-smtputf8.
        let ambiguous = find("d").expect_err("ambiguous");
        assert!(ambiguous.contains("data-file, dsn-smtputf8"), "{ambiguous}");
    }
}
