# Shared by the real-server test environments (postfix-env.sh, exim-env.sh, dovecot-env.sh):
# messages, usage, the lock that serialises runs, and the package check. Sourced, not run;
# the sourcing script sets PROG (its name) before using these.

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# die REASON [DETAIL_FILE]: any detail (a log tail) comes first and the one-line reason is
# always the LAST stderr line: the tests' support code reports exactly that line when it
# skips or fails.
die() {
    if [[ $# -ge 2 && -s $2 ]]; then
        printf '%s: --- last lines of %s ---\n' "$PROG" "$2" >&2
        tail -n 25 "$2" | sed 's/^/    /' >&2
    fi
    printf '%s: error: %s\n' "$PROG" "$1" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop DIR   (DIR: absolute path)" >&2
    exit 2
}

# take_lock NAME: serialises every run of one environment script. Parallel test binaries may
# call it at once, and apt/dpkg, the servers' shared files and the ports are global.
take_lock() {
    local lockdir=/run/lock
    [[ -d $lockdir && -w $lockdir ]] || lockdir=/tmp
    exec 9>"$lockdir/smtptui-$1-env.lock"
    flock -w 300 9 || die "timed out waiting for another $PROG run to finish"
}

# have_packages PKG...: every one of them is installed (dpkg's view).
have_packages() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || return 1
        [[ $status == installed ]] || return 1
    done
}
