#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs formatting, lints and
# every test. It is what CI runs (.ci/run) and what the README tells a new contributor to run.
#
# What it installs: the rustfmt and clippy components, and (as root, from Debian's packages)
# Postfix with Cyrus SASL and swaks for the real-server tests (scripts/postfix-env.sh).
# Without root the Postfix tests say why and skip; under CI (CI=true) they must run.
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

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
# The interactive UI in a real terminal (tmux), against the lab.
bash scripts/tui-e2e.sh
