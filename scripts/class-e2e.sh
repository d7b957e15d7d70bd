#!/usr/bin/env bash
# End-to-end test of a workshop in a real terminal (tmux): `smtptui lab --class 30 --dashboard`
# with thirty students working at once, driven by this script as a room would, with smtptui,
# swaks and the lab's own status command as their clients.
#
# Every student sends a message through submission (smtptui run, their own password from the
# class sheet), provokes 552 and 530, pipelines three RCPTs and delivers to the MX (swaks);
# the odd ones fall for the strip attack (swaks --tls-optional), the even ones resist it
# (smtptui refuses AUTH without TLS); students 1-5 fall for refuse-tls and 6-10 for inject
# (swaks --tls-optional), and 1-10 retry through greylisting. Then the dashboard must show
# each row as the student worked, the attacks that worked with their lesson, and the counts;
# `e` exports, whose totals must match what the script did; `:exercises` in smtptui's UI
# lists a student's progress; no password of the sheet is ever on a screen or in an export;
# `q` asks before stopping, `y` stops, with exit status 0 and the final export written.
#
# Usage: scripts/class-e2e.sh [BINARY]   (default: target/debug/smtptui, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/smtptui}
[[ -x $bin ]] || cargo build --locked --quiet
bin=$(realpath "$bin")
for tool in tmux swaks; do
    if ! command -v "$tool" >/dev/null; then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
        else
            echo "class-e2e.sh: $tool is missing and installing it needs root" >&2
            exit 1
        fi
    fi
done

work=$(mktemp -d)
session=smtptui-class-$$
ui=smtptui-class-ui-$$
base=$((20000 + RANDOM % 20000))
cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    tmux kill-session -t "$ui" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

screen() { tmux capture-pane -p -t "${1:-$session}"; }
fail() {
    echo "class-e2e.sh: FAIL: $1" >&2
    echo "---- screen ----" >&2
    screen "${2:-$session}" >&2 || true
    exit 1
}
# Waits until the screen shows the text (fixed string), or fails.
expect() {
    local target=${2:-$session}
    for _ in $(seq 300); do
        screen "$target" | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    fail "expected on screen: $1" "$target"
}
# No password of the class sheet on the screen.
no_password() {
    local shot
    shot=$(screen "${1:-$session}")
    for id in "${ids[@]}"; do
        if grep -qF -- "${password[$id]}" <<<"$shot"; then fail "the password of $id is on the screen" "${1:-$session}"; fi
    done
}

tmux new-session -d -s "$session" -x 150 -y 50 \
    "cd $work && $bin lab --class 30 --dashboard --port-base $base --state-dir $work/state --export $work/final.json; echo \$? >$work/lab.status; echo lab-exited; sleep 60"
expect "class of 30"
expect "Passwords: $work/state/class-sheet.txt (hand out, never project)"
sheet=$work/state/class-sheet.txt
ca=$work/state/ca.pem
for _ in $(seq 50); do [[ -s $sheet && -s $ca ]] && break; sleep 0.1; done
[[ $(stat -c %a "$sheet") == 600 ]] || fail "the class sheet is not mode 600"
declare -A password
ids=()
while read -r id _account pass _; do
    ids+=("$id")
    password[$id]=$pass
done < <(grep -v '^#' "$sheet")
[[ ${#ids[@]} -eq 30 ]] || fail "the sheet holds ${#ids[@]} students, not 30"
no_password

submission=$((base + 587)) mx=$((base + 25)) strip=$((base + 602)) refuse=$((base + 603)) inject=$((base + 601))
count=$work/sessions
touch "$count"
# One session by one client; its line in $count says whether it should be an attack that worked.
client() {
    local kind=$1
    shift
    "$@" >>"$work/clients.log" 2>&1 || true
    echo "$kind" >>"$count"
}
scenario() {
    local id=$1 name=$2
    local file=$work/$id-$name.smtp
    case $name in
        size) printf 'S: 220\nC: EHLO %s\nS: 250 SIZE\nC: MAIL FROM:<%s@lab.test> SIZE=99999999\nS: 552 5.3.4\nC: QUIT\nS: 221\n' "$id" "$id" ;;
        tls-first) printf 'S: 220\nC: EHLO %s\nS: 250\nC: MAIL FROM:<%s@lab.test>\nS: 530 5.7.0\nC: QUIT\nS: 221\n' "$id" "$id" ;;
        strip) printf 'S: 220\nC: EHLO %s\nS: 250 STARTTLS\nC: STARTTLS\nS: 220\nC: EHLO %s\nS: 250 AUTH\nC: AUTH PLAIN\nS: 235\n' "$id" "$id" ;;
        grey-1) printf 'S: 220\nC: EHLO %s\nS: 250\nC: MAIL FROM:<%s@lab.test>\nS: 250\nC: RCPT TO:<greylist@lab.test>\nS: 450 4.7.1\nC: QUIT\nS: 221\n' "$id" "$id" ;;
        grey-2) printf 'S: 220\nC: EHLO %s\nS: 250\nC: MAIL FROM:<%s@lab.test>\nS: 250\nC: RCPT TO:<greylist@lab.test>\nS: 250\nC: DATA\nS: 354\nC: Subject: retry\nC:\nC: again\nC: .\nS: 250\nC: QUIT\nS: 221\n' "$id" "$id" ;;
    esac >"$file"
    echo "$file"
}
swaks_to() {
    local id=$1 port=$2
    shift 2
    swaks --server 127.0.0.1 --port "$port" --ehlo "$id" --from "$id@lab.test" --timeout 20 "$@"
}
student() {
    local n=$1 id=$2
    local pass=${password[$id]}
    client ok env SMTPTUI_PASSWORD="$pass" "$bin" run assets/submission-starttls.smtp "127.0.0.1:$submission" \
        --ca-file "$ca" --servername localhost --user "$id@lab.test"
    client ok "$bin" run "$(scenario "$id" size)" "127.0.0.1:$mx"
    client ok "$bin" run "$(scenario "$id" tls-first)" "127.0.0.1:$submission"
    client ok swaks_to "$id" "$mx" --pipeline --to "a@lab.test,b@lab.test,c@lab.test"
    if ((n % 2)); then
        client attack swaks_to "$id" "$strip" --tls-optional --auth LOGIN --auth-user "$id@lab.test" \
            --auth-password "$pass" --to bob@lab.test
    else
        # smtptui stops where STARTTLS is missing: nothing crosses.
        client ok env SMTPTUI_PASSWORD="$pass" "$bin" run "$(scenario "$id" strip)" "127.0.0.1:$strip" \
            --ca-file "$ca" --servername localhost --user "$id@lab.test"
    fi
    if ((n <= 5)); then
        client attack swaks_to "$id" "$refuse" --tls-optional --auth LOGIN --auth-user "$id@lab.test" \
            --auth-password "$pass" --to bob@lab.test
    elif ((n <= 10)); then
        client attack swaks_to "$id" "$inject" --tls-optional --auth LOGIN --auth-user "$id@lab.test" \
            --auth-password "$pass" --to bob@lab.test
    fi
    if ((n <= 10)); then
        client ok "$bin" run "$(scenario "$id" grey-1)" "127.0.0.1:$mx"
        client ok "$bin" run "$(scenario "$id" grey-2)" "127.0.0.1:$mx"
    fi
}

started=$(date +%s%N)
pids=()
for n in $(seq 30); do
    student "$n" "${ids[$((n - 1))]}" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
total=$(wc -l <"$count")
attacks=$(grep -c attack "$count")
echo "class-e2e.sh: 30 students, $total sessions in ${elapsed_ms} ms, $attacks of them falling for an attack"

# The dashboard counts every session once it ended.
expect "$total sessions"
expect "$attacks attacks worked"
no_password
shot=$(screen)
grep -qF "the strip attack worked" <<<"$shot" || grep -qF "the inject attack worked" <<<"$shot" ||
    grep -qF "the refuse-tls attack worked" <<<"$shot" || fail "no attack in the feed"
grep -qF "LESSON:" <<<"$shot" || fail "no lesson in the feed"
# Rows as each student worked: exercises 1-5 done by all, 7 done (fell on odd rows), 6 for
# the first ten, 8 or 9 fell for 1-10.
row() { grep -oE "$1 [^│]*" <<<"$shot" | head -1; }
[[ $(row student30) == *"✓  ✓  ✓  ✓  ✓  ·  ✓  ·  ·    6/9   ·"* ]] || fail "student30's row: $(row student30)"
[[ $(row student29) == *"✓  ✓  ✓  ✓  ✓  · !!  ·  ·    6/9   1"* ]] || fail "student29's row: $(row student29)"
[[ $(row student01) == *"✓  ✓  ✓  ✓  ✓  ✓ !! !!  ·    8/9   2"* ]] || fail "student01's row: $(row student01)"
[[ $(row student06) == *"✓  ✓  ✓  ✓  ✓  ✓  ✓  · !!    8/9   1"* ]] || fail "student06's row: $(row student06)"

# Export now: the totals are what the script did, and nothing secret is in the files.
tmux send-keys -t "$session" e
expect "Exported:"
json=$(ls "$work"/class-results-*.json)
csv=$(ls "$work"/class-results-*.csv)
python3 - "$json" "$total" "$attacks" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
total, attacks = int(sys.argv[2]), int(sys.argv[3])
t = data["totals"]
assert t["sessions"] == total, f"{t['sessions']} sessions counted, {total} run"
assert t["attacks_worked"] == attacks, f"{t['attacks_worked']} attacks counted, {attacks} run"
assert t["unidentified"] == 0, f"{t['unidentified']} sessions not told apart"
assert len(data["students"]) == 30
for n, s in enumerate(data["students"], 1):
    expected = 8 if n <= 10 else 5
    assert s["sessions"] == expected, f"{s['id']}: {s['sessions']} sessions, not {expected}"
    assert s["alarms"] == (n % 2) + (1 if n <= 10 else 0), f"{s['id']}: {s['alarms']} alarms"
EOF
[[ $(grep -c '^student[0-9]' "$csv") -eq 30 ]] || fail "the CSV has not 30 student rows"
for id in "${ids[@]}"; do
    if grep -qF -- "${password[$id]}" "$json" "$csv"; then fail "the password of $id is in an export"; fi
done

# The log screen, and back.
tmux send-keys -t "$session" l
expect "The lab's log"
expect "VERDICT"
no_password
tmux send-keys -t "$session" Escape
expect "Notable events"

# A student asks for their list from smtptui's UI.
export XDG_DATA_HOME=$work/data
tmux new-session -d -s "$ui" -x 100 -y 40 \
    "XDG_DATA_HOME=$XDG_DATA_HOME $bin 127.0.0.1:$mx --ca-file $ca --servername localhost; sleep 60"
expect "220 lab.test ESMTP" "$ui"
tmux send-keys -t "$ui" -l ":exercises student03"
tmux send-keys -t "$ui" Enter
expect "Exercises for student03: 8 of 9 done" "$ui"
no_password "$ui"
tmux send-keys -t "$ui" C-c

# q asks first; anything but y keeps the lab; y stops it for everyone.
tmux send-keys -t "$session" q
expect "Stop the lab for everyone?"
tmux send-keys -t "$session" n
expect "The lab goes on."
tmux send-keys -t "$session" q
expect "Stop the lab for everyone?"
tmux send-keys -t "$session" y
expect "lab-exited"
[[ $(cat "$work/lab.status") == 0 ]] || fail "the lab ended with status $(cat "$work/lab.status")"
[[ -s $work/final.json ]] || fail "the export at stop was not written"
expect "The class at the end:"
no_password
echo "class-e2e.sh: ok"
