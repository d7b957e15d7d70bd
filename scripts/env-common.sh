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

# register_postfix_instance CONF_DIR: `postfix -c CONF_DIR` is only honoured when CONF_DIR is
# listed in alternate_config_directories of the *default* main.cf. With "No configuration"
# there may be no default main.cf at all; a minimal, loopback-only one is made, never started.
# Other listed directories that still exist are kept (tests may use throw-away DIRs; the list
# must not grow forever), then CONF_DIR is added. Needs DEFAULT_CONFIG_DIR.
register_postfix_instance() {
    local conf=$1 main=$DEFAULT_CONFIG_DIR/main.cf current d wanted
    mkdir -p "$DEFAULT_CONFIG_DIR"
    if [[ ! -e $main ]]; then
        cat >"$main" <<EOF
# Minimal default instance created by smtptui's test scripts (scripts/*-env.sh) so
# that alternate Postfix instances can be used. This instance is not started.
compatibility_level = 3.6
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
EOF
    fi
    current=$(postconf -c "$DEFAULT_CONFIG_DIR" -h alternate_config_directories 2>/dev/null || true)
    wanted=()
    for d in ${current//,/ }; do
        [[ $d != "$conf" && -e $d/main.cf ]] && wanted+=("$d")
    done
    wanted+=("$conf")
    if [[ "${wanted[*]}" != "$current" ]]; then
        postconf -c "$DEFAULT_CONFIG_DIR" -e "alternate_config_directories = ${wanted[*]}"
        # A just-modified default main.cf makes every Postfix command pause ~2 s; the change
        # only matters to the instance about to be started, so back-date it a little.
        touch -d "@$(($(date +%s) - 10))" "$main"
    fi
}

# postfix_instance_dirs CONF_DIR QUEUE_DIR DATA_DIR MAILLOG: a Postfix instance's directories
# as Postfix wants them: the configuration and the queue directory root-owned (Postfix makes the
# queue's subdirectories), the data directory the postfix user's alone, and the log file.
postfix_instance_dirs() {
    local conf=$1 queue=$2 data=$3 log=$4
    mkdir -p "$conf" "$queue" "$data"
    chown root:root "$conf" "$queue"
    chmod 755 "$conf" "$queue"
    chown postfix:postfix "$data"
    chmod 700 "$data"
    touch "$log"
}
