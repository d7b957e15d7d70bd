//! What an installed binary gives without the source checkout, through a copy of the binary
//! run from an empty directory: the built-in scenarios, the demo, shell completions loaded
//! into a real bash (and zsh where it is installed), and manual pages rendered by `man -l`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test assertions

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the binary in a directory of its own, away from the checkout, and an empty
/// working directory.
struct Installed {
    binary: PathBuf,
    cwd: tempfile::TempDir,
    _bin: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let bin = tempfile::tempdir().unwrap();
        let binary = bin.path().join("smtptui");
        std::fs::copy(support::bin(), &binary).unwrap();
        Installed {
            binary,
            cwd: tempfile::tempdir().unwrap(),
            _bin: bin,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .current_dir(self.cwd.path())
            .env_remove("CARGO_MANIFEST_DIR")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The scenarios and their message file are in the binary: listed, printed, and run against
/// the demo's own lab from an empty directory.
#[test]
fn an_installed_binary_has_its_scenarios_and_its_demo() {
    let installed = Installed::new();
    let listed = installed.run(&["scenarios"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains("bdat-file"),
        "{}",
        text(&listed.stdout)
    );
    let printed = installed.run(&["scenarios", "bdat"]);
    assert!(text(&printed.stdout).contains("FILE message.eml"));
    let demo = installed.run(&["demo", "--headless"]);
    assert!(
        demo.status.success(),
        "{}{}",
        text(&demo.stdout),
        text(&demo.stderr)
    );
    assert!(
        std::fs::read_dir(installed.cwd.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing is left in the working directory"
    );
}

/// bash loads the completion script, registers it for smtptui, and completes subcommands and
/// options from it.
#[test]
fn bash_completion_loads_and_completes_subcommands_and_options() {
    let installed = Installed::new();
    let script = installed.run(&["completions", "bash"]);
    assert!(script.status.success(), "{}", text(&script.stderr));
    let file = installed.cwd.path().join("smtptui.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let probe = format!(
        "source {file}\ncomplete -p smtptui\n\
         COMP_WORDS=(smtptui ru); COMP_CWORD=1; COMP_LINE='smtptui ru'; COMP_POINT=10\n\
         _smtptui smtptui ru smtptui; echo \"first: ${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(smtptui run --ju); COMP_CWORD=2; COMP_LINE='smtptui run --ju'; COMP_POINT=16\n\
         _smtptui smtptui --ju run; echo \"option: ${{COMPREPLY[*]}}\"\n",
        file = file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("-F _smtptui smtptui"), "{shown}");
    assert!(shown.contains("first: run"), "{shown}");
    assert!(shown.contains("option: --junit"), "{shown}");
}

/// zsh, where installed, loads the completion function without an error.
#[test]
fn zsh_completion_loads_where_zsh_is_installed() {
    if !have("zsh") {
        eprintln!("skipping: zsh is not installed");
        return;
    }
    let installed = Installed::new();
    let dir = installed.cwd.path().join("functions");
    std::fs::create_dir(&dir).unwrap();
    let script = installed.run(&["completions", "zsh"]);
    std::fs::write(dir.join("_smtptui"), &script.stdout).unwrap();
    let probe = format!(
        "fpath=({} $fpath); autoload -Uz compinit && compinit -u && autoload -Uz _smtptui && \
         whence -w _smtptui",
        dir.display()
    );
    let out = Command::new("zsh")
        .args(["-f", "-c", &probe])
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("_smtptui: function"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `man -l` renders the page `smtptui man` prints, and each page `smtptui man --dir` writes,
/// with the options of each command, and groff has nothing to warn about.
#[test]
fn the_manual_pages_render_with_man() {
    if !have("man") {
        let reason = "man is not installed (package man-db)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}");
        }
        eprintln!("skipping: {reason}");
        return;
    }
    let installed = Installed::new();
    let page = installed.run(&["man"]);
    assert!(page.status.success(), "{}", text(&page.stderr));
    let main = installed.cwd.path().join("smtptui.1");
    std::fs::write(&main, &page.stdout).unwrap();
    let dir = installed.cwd.path().join("man1");
    let written = installed.run(&["man", "--dir", &dir.display().to_string()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert!(
        text(&written.stdout).contains("smtptui-run.1"),
        "{}",
        text(&written.stdout)
    );
    let render = |page: &Path| {
        let out = Command::new("man")
            .args(["--warnings", "-l", &page.display().to_string()])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr),
            "",
            "groff warnings for {}",
            page.display()
        );
        text(&out.stdout)
    };
    let shown = render(&main);
    assert!(shown.contains("SMTPTUI"), "{shown}");
    assert!(shown.contains("--servername"), "{shown}");
    let run = render(&dir.join("smtptui-run.1"));
    assert!(run.contains("--junit"), "{run}");
    assert!(run.contains("--jobs"), "{run}");
    let audit = render(&dir.join("smtptui-audit.1"));
    assert!(audit.contains("--smuggling-to"), "{audit}");
}
