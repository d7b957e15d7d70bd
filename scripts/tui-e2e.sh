#!/usr/bin/env bash
# End-to-end tests of the interactive UI in a real terminal (tmux), against the lab's
# submission profile. Asserts on the captured screen, on the terminal's state and on files.
#
# 1. A session: AUTH before STARTTLS opens the guard dialog, whose Enter runs STARTTLS, EHLO
#    inside TLS and the AUTH PLAIN by itself, up to the password typed into the hidden prompt;
#    the password and its base64 typed as commands are refused and stay out of the history (Up
#    and the file); a line fixed in its middle with the editing keys; a paste without
#    bracketed paste sends nothing until asked, Enter keeping its first line; a message; a
#    pasted group sent on 'p' as one pipelined group (the lab's log shows it as one) and its
#    message from a file with :send-file (a summary on screen, the file's lines not, the lab
#    receiving it with CRLF); :record records until :record stop and :save writes, neither
#    replacing a file without '!'; quit. The password is never on the screen.
#    The history file, which existed with mode 0644 and more lines than the limit, ends 0600
#    and bounded; so do the :save and :record files that existed 0644.
# 2. `smtptui demo` at 80x24: F4 shows the lab's own log beside the transcript, with what the
#    server received marked plain, then tls.
# 3. Signals: SIGHUP, SIGINT, SIGQUIT and SIGTERM sent to `smtptui HOST` and to `smtptui
#    demo` leave the terminal restored (primary screen, no mouse tracking, cursor shown,
#    `icanon echo`) and the exit status 128 + the signal's number.
#
# Usage: scripts/tui-e2e.sh [BINARY]   (default: target/debug/smtptui, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/smtptui}
[[ -x $bin ]] || cargo build --locked --quiet
bin=$(realpath "$bin")
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
password_b64=$(printf %s "$password" | base64)
sessions=()
cleanup() {
    for s in "${sessions[@]}"; do tmux kill-session -t "$s" 2>/dev/null || true; done
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

# Starts a tmux session running COMMAND in its pane; then the pane's shell writes the exit
# status and the terminal settings to files and shows the status on screen.
start() {
    local name=$1 command=$2 width=${3:-100} height=${4:-30}
    sessions+=("$name")
    tmux new-session -d -s "$name" -x "$width" -y "$height" \
        "$command; echo \$? >$work/$name.status; stty -a >$work/$name.stty; echo smtptui-exited=\$(cat $work/$name.status); sleep 60"
}
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
mode_of() { stat -c %a "$1"; }

# ---- 1. A session ----------------------------------------------------------------------------
export XDG_DATA_HOME=$work/data
history_file=$XDG_DATA_HOME/smtptui/history/127.0.0.1_$port
mkdir -p "$(dirname "$history_file")"
# A history from before the limit was kept, readable by everyone: it must end bounded, private.
for i in $(seq 1500); do echo "NOOP old-$i"; done >"$history_file"
printf 'old\n' >"$work/saved.txt"
printf 'old\n' >"$work/recorded.smtp"
chmod 0644 "$history_file" "$work/saved.txt" "$work/recorded.smtp"

start "$session" "XDG_DATA_HOME=$XDG_DATA_HOME $bin 127.0.0.1:$port --ca-file $work/ca.pem --servername localhost"

expect "S: 220"
line "EHLO e2e.client"
expect "250-STARTTLS"
line "AUTH PLAIN"
expect "credential guard"
expect "Base64 is an encoding, not encryption"
# Enter: the safe way runs by itself up to the user name of the AUTH that was asked for.
keys Enter
expect "user>"
expect "TLS established"
expect "certificate verified"
expect "250-AUTH"
grep -q "tls   C: EHLO e2e.client" "$work/lab.log" || fail "the EHLO inside TLS did not reach the lab"
line "student@lab.test"
expect "password (hidden)>"
tmux send-keys -t "$session" -l -- "$password"
no_password
keys Enter
expect "S: 235"
expect "hidden>"
no_password
# The password, then its base64, typed where a command goes: refused, nothing sent, not kept.
line "$password"
expect "repeats credentials"
line "$password_b64"
for _ in $(seq 100); do
    [[ $(screen | grep -cF "repeats credentials") -ge 2 ]] && break
    sleep 0.1
done
[[ $(screen | grep -cF "repeats credentials") -ge 2 ]] || fail "the base64 of the password was not refused"
if screen | grep -qF -- "$password_b64"; then fail "the base64 of the password is on the screen"; fi
keys Up
expect "> AUTH PLAIN"
keys Up
expect "> EHLO e2e.client"
keys C-u
line "MAIL FROM:<student@lab.test>"
expect "S: 250 2.1.0"
# A typo fixed in the middle of the line: the missing R at the start, then Enter.
tmux send-keys -t "$session" -l -- "CPT TO:<friend@example.com>"
expect "> CPT TO:<friend@example.com>"
keys C-a
tmux send-keys -t "$session" -l -- "R"
keys Enter
expect "S: 250 2.1.5"
# Two lines pasted by a terminal without bracketed paste: nothing is sent; the dialog asks,
# and Enter keeps the first line.
tmux set-buffer -b e2e "NOOP pasted-one
NOOP pasted-two
"
tmux paste-buffer -b e2e -t "$session"
expect "2 command lines were pasted. Nothing is sent yet."
grep -q "pasted-" "$work/lab.log" && fail "a pasted line was sent before the choice"
keys Enter
expect "only the first was kept"
expect "> NOOP pasted-one"
grep -q "pasted-" "$work/lab.log" && fail "a pasted line was sent"
keys C-u
line "DATA"
expect "S: 354"
line "Subject: e2e"
line ""
line "Hello from the tmux test."
line "."
expect "queued as"
no_password
# A group pasted (bracketed this time) and sent on 'p': one write, each reply in its place.
tmux set-buffer -b e2e "MAIL FROM:<student@lab.test>
RCPT TO:<second@example.com>
RCPT TO:<third@example.com>
DATA
"
tmux paste-buffer -p -b e2e -t "$session"
expect "4 command lines were pasted"
keys p
expect "S: 354"
for _ in $(seq 50); do
    grep -q "pipelined group: 4 commands in one write (MAIL RCPT RCPT DATA)" "$work/lab.log" && break
    sleep 0.1
done
grep -q "pipelined group: 4 commands in one write (MAIL RCPT RCPT DATA)" "$work/lab.log" ||
    fail "the lab did not see the pasted group as one"
# Its message from a file written on Unix: a summary on screen, not the lines.
printf 'Subject: from a file\n\nline-from-the-file\n.starts with a dot\n' >"$work/message.eml"
line ":send-file $work/message.eml"
expect "message from $work/message.eml: 64 bytes, 4 lines"
for _ in $(seq 50); do
    [[ $(screen | grep -cF "queued as") -ge 2 ]] && break
    sleep 0.1
done
[[ $(screen | grep -cF "queued as") -ge 2 ]] || fail "the message from the file was not queued"
# The summary quotes the first three lines; the fourth is nowhere, on screen or as a line sent.
if screen | grep -qF "starts with a dot"; then fail "a line of the file is on the screen"; fi
# The lab took 64 bytes: every line ended by CRLF, the leading dot unstuffed.
grep -q "(64 bytes, authenticated as student@lab.test, over TLS)" "$work/lab.log" ||
    fail "the lab did not receive the file's message with CRLF line endings"
# The files exist: nothing replaces them without '!'.
line ":save $work/saved.txt"
expect "it exists and was left as it is"
grep -qx old "$work/saved.txt" || fail ":save replaced a file without '!'"
line ":save! $work/saved.txt"
expect "written to $work/saved.txt"
line ":record! $work/recorded.smtp"
expect "recording to $work/recorded.smtp"
# A reply no earlier line on the screen has ('250 2.0.0 Ok' would match the message's), so
# the next line is typed only once it came.
line "HELO recorded-live"
expect "S: 250 lab.test"
line ":record stop"
expect "recording stopped"
grep -qx "C: HELO recorded-live" "$work/recorded.smtp" || fail "the recording missed a command sent after it started"
grep -qx "C: MAIL FROM:<student@lab.test>" "$work/recorded.smtp" || fail "the recording lacks the session before it started"
for secret in "$password" "$password_b64"; do
    if grep -rqF -- "$secret" "$XDG_DATA_HOME" 2>/dev/null; then fail "a secret is in the history file"; fi
done
keys Escape
# Esc sends QUIT, the UI leaves on the 221 and the terminal is restored.
expect "smtptui-exited=0"
grep -q "QUIT" "$work/lab.log" || fail "the lab never received QUIT"
# The lab's start-up table prints its workshop password on purpose; its session log must not.
if sed -n '/Session log/,$p' "$work/lab.log" | grep -qF -- "$password"; then
    fail "the password is in the lab's session log"
fi
for file in "$history_file" "$work/saved.txt" "$work/recorded.smtp"; do
    [[ $(mode_of "$file") == 600 ]] || fail "$file has mode $(mode_of "$file"), not 600"
done
lines=$(wc -l <"$history_file")
[[ $lines -eq 1000 ]] || fail "the history file has $lines lines, not the limit of 1000"
tail -n 1 "$history_file" | grep -qxF ":record stop" ||
    fail "the newest line is not last in the history file: $(tail -n 1 "$history_file")"
grep -qxF "MAIL FROM:<student@lab.test>" "$history_file" || fail "a sent command is missing from the history"
! grep -qxF "NOOP old-1" "$history_file" || fail "the oldest lines were kept past the limit"
echo "tui-e2e.sh: ok: guard dialog's safe way, hidden password, refused secrets kept out of history, line editing, unbracketed paste, message, pasted group pipelined, :send-file, live recording, no file replaced unasked, private files, bounded history, quit"

# ---- 2. The demo at 80x24 shows the lab's log -----------------------------------------------
session=smtptui-e2e-$$-demo
start "$session" "$bin demo" 80 24
expect "S: 220"
keys F4
expect "the lab's log"
line "EHLO e2e.demo"
expect "250-STARTTLS"
expect "plain C: EHLO e2e.demo"
line "STARTTLS"
expect "TLS established"
line "EHLO e2e.demo"
expect "tls   C: EHLO e2e.demo"
keys Escape
expect "smtptui-exited=0"
tmux kill-session -t "$session"
echo "tui-e2e.sh: ok: the demo shows the lab's log at 80x24, plain then tls"

# ---- 3. Signals ------------------------------------------------------------------------------
# Each signal ends the UI with the terminal as it was before, and status 128 + N.
signal_test() {
    local what=$1 signal=$2 number=$3 command=$4
    session=smtptui-e2e-$$-$what-$signal
    start "$session" "sh -c 'echo \$\$ >$work/$session.pid; exec $command'"
    expect "S: 220"
    [[ $(tmux display -p -t "$session" '#{alternate_on}') == 1 ]] || fail "the UI is not on the alternate screen"
    kill -s "$signal" "$(cat "$work/$session.pid")"
    expect "smtptui-exited="
    local status state
    status=$(cat "$work/$session.status")
    [[ $status -eq $((128 + number)) ]] ||
        fail "$what after SIG$signal exited $status, not $((128 + number))"
    state=$(tmux display -p -t "$session" 'alternate=#{alternate_on} mouse=#{mouse_any_flag} cursor=#{cursor_flag}')
    [[ $state == "alternate=0 mouse=0 cursor=1" ]] ||
        fail "$what after SIG$signal left the terminal with $state"
    grep -qw -- "-icanon" "$work/$session.stty" && fail "$what after SIG$signal left the terminal in raw mode (-icanon)"
    grep -qw -- "-echo" "$work/$session.stty" && fail "$what after SIG$signal left echo off"
    grep -qw -- "icanon" "$work/$session.stty" || fail "no icanon in stty -a after SIG$signal"
    tmux kill-session -t "$session"
}
for entry in HUP:1 INT:2 QUIT:3 TERM:15; do
    signal_test host "${entry%:*}" "${entry#*:}" \
        "$bin 127.0.0.1:$port --ca-file $work/ca.pem --servername localhost"
    signal_test demo "${entry%:*}" "${entry#*:}" "$bin demo"
done
echo "tui-e2e.sh: ok: SIGHUP, SIGINT, SIGQUIT, SIGTERM restore the terminal and exit 128+N (host and demo)"
