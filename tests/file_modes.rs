//! Files the tool says are readable by their owner only stay so when they already existed
//! with looser permissions: the mode is set on every open, not only on creation. (The
//! interactive UI's history, `:save` and `:record` files are checked in a real terminal by
//! scripts/tui-e2e.sh.)

#![cfg(unix)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

/// A one-session SMTP server on loopback: greets, answers QUIT with 221.
fn greeter() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut writer = stream.try_clone().expect("clone");
        let _ = writer.write_all(b"220 files.test ESMTP\r\n");
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let reply: &[u8] = if line.eq_ignore_ascii_case("QUIT") {
                b"221 bye\r\n"
            } else {
                b"250 ok\r\n"
            };
            if writer.write_all(reply).is_err() || reply.starts_with(b"221") {
                return;
            }
        }
    });
    port
}

fn mode(path: &std::path::Path) -> String {
    let mode = std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode();
    format!("{:o}", mode & 0o777)
}

/// `smtptui run --transcript FILE` over a FILE that exists with mode 0644: the transcript is
/// written, and the file ends readable by its owner only.
#[test]
fn run_transcript_over_a_world_readable_file_is_made_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("quit.smtp");
    std::fs::write(&scenario, "S: 220\nC: NOOP\nS: 250\nC: QUIT\nS: 221\n").expect("written");
    let transcript = dir.path().join("transcript.txt");
    std::fs::write(&transcript, "an older transcript\n").expect("written");
    std::fs::set_permissions(&transcript, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let port = greeter();
    let output = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .arg("run")
        .arg(&scenario)
        .arg(format!("127.0.0.1:{port}"))
        .arg("--transcript")
        .arg(&transcript)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&transcript).expect("read");
    assert!(text.contains("NOOP") && !text.contains("older"), "{text}");
    assert_eq!(mode(&transcript), "600", "the transcript must be private");
}
