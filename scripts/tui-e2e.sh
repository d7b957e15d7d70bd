#!/usr/bin/env bash
# End-to-end test of the interactive UI in a real terminal (tmux): against the lab's
# submission profile, AUTH before STARTTLS opens the guard dialog, Esc cancels, STARTTLS,
# EHLO, AUTH PLAIN with the password typed into the hidden prompt, a message, quit.
# Asserts on the captured screen, and that the password never appears on it.
#
# Usage: scripts/tui-e2e.sh [BINARY]   (default: target/debug/smtptui, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/smtptui}
[[ -x $bin ]] || cargo build --locked --quiet
if ! command -v tmux >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get install -y -qq tmux >/dev/null
    else
        echo "tui-e2e.sh: tmux is missing and installing it needs root" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
session=smtptui-e2e-$$
port=$((20000 + RANDOM % 20000))
password=practice-only
cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    [[ -n ${lab_pid:-} ]] && kill "$lab_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" lab --profile submission --listen "127.0.0.1:$port" --state-dir "$work" \
    >"$work/lab.log" 2>&1 &
lab_pid=$!
for _ in $(seq 50); do
    [[ -s $work/ca.pem ]] && grep -q "$port" "$work/lab.log" && break
    sleep 0.1
done

export XDG_DATA_HOME=$work/data
tmux new-session -d -s "$session" -x 100 -y 30 \
    "XDG_DATA_HOME=$XDG_DATA_HOME $bin 127.0.0.1:$port --ca-file $work/ca.pem --servername localhost; echo smtptui-exited=\$?; sleep 60"

screen() { tmux capture-pane -p -t "$session"; }
fail() {
    echo "tui-e2e.sh: FAIL: $1" >&2
    echo "---- screen ----" >&2
    screen >&2
    exit 1
}
# Waits until the screen shows the text (fixed string), or fails.
expect() {
    for _ in $(seq 100); do
        screen | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    fail "expected on screen: $1"
}
keys() { tmux send-keys -t "$session" "$@"; }
line() { tmux send-keys -t "$session" -l -- "$1"; tmux send-keys -t "$session" Enter; }
no_password() {
    if screen | grep -qF -- "$password"; then fail "the password is on the screen"; fi
}

expect "S: 220"
line "EHLO e2e.client"
expect "250-STARTTLS"
line "AUTH PLAIN"
expect "credential guard"
expect "Base64 is an encoding, not encryption"
keys Enter
expect "EHLO again, then AUTH PLAIN"
expect "TLS established"
expect "certificate verified"
line "EHLO e2e.client"
expect "250-AUTH"
line "AUTH PLAIN"
expect "user>"
line "student@lab.test"
expect "password (hidden)>"
tmux send-keys -t "$session" -l -- "$password"
no_password
keys Enter
expect "S: 235"
expect "hidden>"
no_password
line "MAIL FROM:<student@lab.test>"
expect "S: 250 2.1.0"
line "RCPT TO:<friend@example.com>"
expect "S: 250 2.1.5"
line "DATA"
expect "S: 354"
line "Subject: e2e"
line ""
line "Hello from the tmux test."
line "."
expect "queued as"
no_password
if grep -rqF -- "$password" "$XDG_DATA_HOME" 2>/dev/null; then fail "the password is in the history file"; fi
keys Escape
# Esc sends QUIT, the UI leaves on the 221 and the terminal is restored.
expect "smtptui-exited=0"
grep -q "QUIT" "$work/lab.log" || fail "the lab never received QUIT"
# The lab's start-up table prints its workshop password on purpose; its session log must not.
if sed -n '/Session log/,$p' "$work/lab.log" | grep -qF -- "$password"; then
    fail "the password is in the lab's session log"
fi
echo "tui-e2e.sh: ok (guard dialog, STARTTLS, hidden password, message, quit)"
