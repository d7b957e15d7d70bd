//! Any program run to its end with a hard deadline: the binary with arguments a test builds
//! itself (several scenarios, the config file, `send`, the trust stores), or swaks beside it.
//! Both pipes are read on threads of their own, so a program that fills one while the test
//! waits on the other cannot stall the run, and one that hangs is killed at the deadline.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of a program gave.
pub struct Ran {
    /// The exit code; `None` when killed (by a signal or at the deadline).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// The command line, for diagnostics.
    pub cmdline: String,
}

impl Ran {
    /// Everything about the run, for an assertion message.
    pub fn dump(&self) -> String {
        format!(
            "$ {}\nexit={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.dump());
        self
    }

    /// Asserts that stdout or stderr holds `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "no {needle:?} in the output\n{}",
            self.dump()
        );
        self
    }
}

/// Runs `command` with `stdin` written to it, and kills it at `deadline`.
pub fn run(mut command: Command, stdin: &[u8], deadline: Duration) -> Ran {
    let cmdline = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    // Written on a thread and then closed, so the program sees the end of its input.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Ran {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        cmdline,
    }
}
