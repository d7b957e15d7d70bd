#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs formatting, lints and
# every test. It is what CI runs (.ci/run) and what the README tells a new contributor to run.
#
# What it installs: the rustfmt and clippy components, and (as root, from Debian's packages)
# Postfix with Cyrus SASL and swaks for the real-server tests (scripts/postfix-env.sh), tshark and
# tcpdump to decrypt a captured session with a key log, and two
# other MTAs for the audit's tests: Exim 4 unpacked next to Postfix (scripts/exim-env.sh) and
# Dovecot's submission service (scripts/dovecot-env.sh), and for the domain audit Knot serving
# signed test zones with MX hosts as a second Postfix instance and the MTA-STS policy hosts
# as nginx (scripts/domain-env.sh), and a sending Postfix with Knot and Unbound for the lab's grade
# profile (scripts/sender-env.sh).
# Without root the real-server tests say why and skip; under CI (CI=true) they must run.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true

postfix_dir=${SMTPTUI_POSTFIX_DIR:-/tmp/smtptui-postfix}
if [[ $(id -u) -eq 0 ]] && bash scripts/postfix-env.sh start "$postfix_dir"; then
    export SMTPTUI_POSTFIX_ENV="$postfix_dir/env"
elif [[ ${CI:-} == true ]]; then
    echo "test.sh: Postfix could not be started, and CI requires the real-server tests" >&2
    exit 1
else
    echo "test.sh: Postfix is not available here (needs root and Debian packages); those tests will skip" >&2
fi

# The key log test captures a STARTTLS session on loopback with tcpdump and decrypts it with
# tshark (Debian's packages). wireshark-common asks whether users outside the wireshark group
# may capture: answered no beforehand, so the install never stops to ask.
if [[ $(id -u) -eq 0 ]] && ! { command -v tshark && command -v tcpdump; } >/dev/null 2>&1; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    capture_tools=(apt-get -y -q -o DPkg::Lock::Timeout=120 install --no-install-recommends tshark tcpdump)
    if ! DEBIAN_FRONTEND=noninteractive "${capture_tools[@]}" >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${capture_tools[@]}" >/dev/null ||
            echo "test.sh: tshark and tcpdump could not be installed; the capture test will skip (or fail under CI)" >&2
    fi
fi

# start_mta NAME SCRIPT DIR VARIABLE: starts another real MTA and passes its env file on.
start_mta() {
    if [[ $(id -u) -eq 0 ]] && bash "scripts/$2" start "$3"; then
        export "$4=$3/env"
    elif [[ ${CI:-} == true ]]; then
        echo "test.sh: $1 could not be started, and CI requires the real-server tests" >&2
        exit 1
    else
        echo "test.sh: $1 is not available here (needs root and Debian packages); those tests will skip" >&2
    fi
}
start_mta Exim exim-env.sh "${SMTPTUI_EXIM_DIR:-/tmp/smtptui-exim}" SMTPTUI_EXIM_ENV
start_mta Dovecot dovecot-env.sh "${SMTPTUI_DOVECOT_DIR:-/tmp/smtptui-dovecot}" SMTPTUI_DOVECOT_ENV
# The domain audit's mail domains: Knot with signed test zones, MX listeners on 127.0.0.2 and up,
# the MTA-STS policy hosts (nginx) on 127.0.0.6 and [::1] port 443.
start_mta "Knot, the MX hosts and nginx" domain-env.sh "${SMTPTUI_DOMAIN_DIR:-/tmp/smtptui-domain}" SMTPTUI_DOMAIN_ENV
# The grade profile's sender: a Postfix with one transport per smtp_tls_security_level, Knot with
# the signed grade.test zone (the MX's TLSA) on port 20626, a validating Unbound on 127.0.0.62:53.
start_mta "the sending Postfix, Knot and Unbound" sender-env.sh "${SMTPTUI_SENDER_DIR:-/tmp/smtptui-sender}" SMTPTUI_SENDER_ENV

# Test tools from Debian's packages: a real JUnit consumer (python3-junitparser) reads
# `smtptui run --junit` reports back in tests/run_many.rs, and man (man-db) renders the manual
# pages in tests/install.rs.
if [[ $(id -u) -eq 0 ]] && ! { /usr/bin/python3 -c 'import junitparser' 2>/dev/null && command -v man >/dev/null; }; then
    apt=(apt-get -y -q -o DPkg::Lock::Timeout=120 install --no-install-recommends python3-junitparser man-db)
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null 2>&1 ||
            echo "test.sh: python3-junitparser and man-db could not be installed" >&2
    fi
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Every public item is documented with working links (missing_docs is on in Cargo.toml).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
# Library, binary and integration tests (benches are run separately with cargo bench).
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --locked --lib --bins --tests 2>&1 | tee "$results"
# The interactive UI in a real terminal (tmux), against the lab.
bash scripts/tui-e2e.sh
echo "test result: ok. 1 passed; 0 failed; 0 ignored (tui-e2e.sh)" >>"$results"
# A workshop in a real terminal: the dashboard with thirty students at once.
bash scripts/class-e2e.sh
echo "test result: ok. 1 passed; 0 failed; 0 ignored (class-e2e.sh)" >>"$results"

# A short smoke of every fuzz target (scripts/fuzz.sh runs them as long as asked), where the
# nightly toolchain cargo-fuzz needs is installed. A crash fails the run.
if cargo +nightly --version >/dev/null 2>&1; then
    bash scripts/fuzz.sh "${SMTPTUI_FUZZ_SECONDS:-10}"
    echo "test result: ok. 1 passed; 0 failed; 0 ignored (fuzz.sh smoke)" >>"$results"
else
    echo "test.sh: no nightly toolchain here; the fuzz smoke is skipped" >&2
fi

# One closing line for the whole run, summed over every suite above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) g += $(i-1) } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, g }' "$results"
