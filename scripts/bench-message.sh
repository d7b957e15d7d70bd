#!/usr/bin/env bash
# bench-message.sh: a large message through `smtptui run` and through swaks --data, side by
# side in the same sitting, to Postfix's smtp-sink on loopback; whole-process wall time and
# peak RSS from /usr/bin/time. A measurement, not a test: nothing here passes or fails.
#
#   scripts/bench-message.sh [SIZE_MIB] [PORT]     default 1024 MiB, port 27525
#
# Needs a release build (cargo build --release), /usr/sbin/smtp-sink (package postfix),
# swaks and GNU time. The message (headers, then a base64 body of 76-character lines, as an
# attachment would be) is written once to $BENCH_DIR (default /tmp/smtptui-bench) and kept.

set -euo pipefail

size_mib=${1:-1024}
port=${2:-27525}
dir=${BENCH_DIR:-/tmp/smtptui-bench}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
smtptui=$repo/target/release/smtptui

die() { echo "bench-message: $*" >&2; exit 1; }
[[ -x $smtptui ]] || die "no release build: run cargo build --release first"
[[ -x /usr/sbin/smtp-sink ]] || die "no /usr/sbin/smtp-sink (package postfix)"
command -v swaks >/dev/null || die "no swaks"
[[ -x /usr/bin/time ]] || die "no GNU time (/usr/bin/time)"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is in use; give another port"
fi

mkdir -p "$dir"
message=$dir/message-${size_mib}m.eml
if [[ ! -s $message ]]; then
    echo "writing a ${size_mib} MiB message to $message"
    python3 - "$message" "$size_mib" <<'EOF'
import base64, os, sys
path, target = sys.argv[1], int(sys.argv[2]) << 20
head = (b"From: alice@example.com\nTo: bob@lab.test\nSubject: a large message\n"
        b"Message-ID: <large@example.com>\nDate: Tue, 1 Dec 2026 00:00:00 +0000\n"
        b"MIME-Version: 1.0\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n\n")
raw = os.urandom(57 * 20000)
block = b"".join(base64.b64encode(raw[i:i + 57]) + b"\n" for i in range(0, len(raw), 57))
with open(path, "wb") as f:
    f.write(head)
    size = len(head)
    while size + len(block) <= target:
        f.write(block)
        size += len(block)
    rest = target - size
    f.write(block[: rest - rest % 77])
EOF
fi
cat >"$dir/message.smtp" <<EOF
S: 220
C: EHLO client.example
S: 250
C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@lab.test>
S: 250
C: DATA
S: 354
FILE $(basename "$message")
C: .
S: 250
C: QUIT
S: 221
EOF

/usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$port" 100 >/dev/null 2>&1 &
sink=$!
trap 'kill "$sink" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

measure() {
    local name=$1
    shift
    /usr/bin/time -f '%e %M' -o "$dir/$name.time" "$@" >"$dir/$name.out" 2>&1 ||
        die "$name failed (see $dir/$name.out)"
    read -r wall rss <"$dir/$name.time"
    printf '%-8s wall %7.2f s   peak RSS %9.1f MiB\n' "$name" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

echo "$(stat -c %s "$message") bytes, $(wc -l <"$message") lines, to smtp-sink on 127.0.0.1:$port"
measure smtptui "$smtptui" run "$dir/message.smtp" "127.0.0.1:$port" --timeout 120
measure swaks swaks --server "127.0.0.1:$port" --from alice@example.com --to bob@lab.test \
    --data "$message" --suppress-data
