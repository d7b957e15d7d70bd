#!/usr/bin/env bash
# exim-env.sh: run a throw-away, loopback-only Exim 4 (Debian's exim4-daemon-light, built
# with GnuTLS) for smtptui's integration tests, next to the Postfix of postfix-env.sh.
#
#   scripts/exim-env.sh start DIR   install (if needed), configure, (re)start
#   scripts/exim-env.sh stop  DIR   stop the instance (no error if not running)
#
# The exim4 packages conflict with postfix, so Exim is not installed: its package is
# downloaded with `apt-get download` and unpacked into DIR/pkg with `dpkg-deb -x`; its
# libraries (GnuTLS and friends) do install next to Postfix. The binary's compiled-in user
# Debian-exim is created when missing, as exim4-base's own install would.
#
# DIR must be an absolute path. Everything the instance needs lives in it:
#   DIR/pkg/                   the unpacked exim4-daemon-light package
#   DIR/exim.conf              the configuration (rewritten on every start)
#   DIR/tls/                   a test CA and an RSA leaf for localhost, 127.0.0.1, 127.0.0.2
#   DIR/password               the AUTH password (mode 600, kept once generated)
#   DIR/spool/, DIR/log/       Exim's spool and logs (mainlog, paniclog, rejectlog)
#   DIR/env                    sourceable KEY=value lines, written last
#
# DIR/env keys:
#   EXIM_DIR             DIR itself
#   SMTP_HOST            127.0.0.1 (every listener)
#   TLS_SERVER_NAME      localhost
#   CA_FILE              PEM of the test CA
#   SMTP_USER, PASSWORD_FILE   the account (PLAIN and LOGIN, only where AUTH is offered)
#   SUBMISSION_PORT      STARTTLS; AUTH offered only inside TLS (server_advertise_condition);
#                        MAIL before TLS refused by an ACL: "550 Must issue a STARTTLS command first"
#   LEGACY_PORT          STARTTLS optional; AUTH offered and accepted in cleartext; mail accepted
#   OLDTLS_PORT          STARTTLS offered, but GnuTLS limited to TLS 1.0 and 1.1
#                        (tls_require_ciphers); no AUTH; mail accepted
#   MAINLOG              Exim's main log
#
# Ports are EXIM_BASE_PORT (default 21000) + 587, 588, 589.
# Accepted mail is thrown away (a :blackhole: router): nothing leaves 127.0.0.1.

set -euo pipefail

readonly PROG=exim-env
# shellcheck source=scripts/env-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/env-common.sh"
readonly HOST=127.0.0.1
readonly GOOD_NAME=localhost
readonly MAIL_DOMAIN=lab.test
readonly SMTP_USER=alice@lab.test
readonly EXIM_USER=Debian-exim
readonly BANNER_TIMEOUT=20
readonly LIBRARIES=(libdb5.3 libgnutls30 libgnutls-dane0 libidn12 libidn2-0 libnsl2 libpcre2-8-0 libcrypt1 openssl)
readonly OLD_TLS_PRIORITY='NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0'



parse_args() {
    [[ $# -eq 2 ]] || usage
    ACTION=$1
    DIR=$2
    [[ $ACTION == start || $ACTION == stop ]] || usage
    [[ $DIR == /* ]] || die "DIR must be an absolute path (got '$DIR')"
    DIR=$(realpath -m -- "$DIR")
    [[ $DIR != / ]] || die "refusing to use / as DIR"
    # Exim lists and the env file need no quoting with these characters.
    [[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain A-Z a-z 0-9 . _ / + - (got '$DIR')"
    local base=${EXIM_BASE_PORT:-21000}
    if ! [[ $base =~ ^[0-9]{4,5}$ ]] || ((10#$base < 1024 || 10#$base + 589 > 65535)); then
        die "EXIM_BASE_PORT must be a number in 1024..64946 (got '$base')"
    fi
    base=$((10#$base))
    SUBMISSION_PORT=$((base + 587))
    LEGACY_PORT=$((base + 588))
    OLDTLS_PORT=$((base + 589))
    ALL_PORTS=("$SUBMISSION_PORT" "$LEGACY_PORT" "$OLDTLS_PORT")
    PKG_DIR=$DIR/pkg
    EXIM=$PKG_DIR/usr/sbin/exim4
    CONF=$DIR/exim.conf
    TLS_DIR=$DIR/tls
    CA_FILE=$TLS_DIR/ca.pem
    PASSWORD_FILE=$DIR/password
    SPOOL_DIR=$DIR/spool
    LOG_DIR=$DIR/log
    MAINLOG=$LOG_DIR/mainlog
    PID_FILE=$DIR/exim.pid
}


# ---------------------------------------------------------------- install


apt_quiet() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=120 "$@" >>"$DIR/install.log" 2>&1
}

install_exim() {
    if ! have_packages "${LIBRARIES[@]}"; then
        [[ $(id -u) -eq 0 ]] || die "Exim's libraries are not installed and installing them needs root"
        log "installing ${LIBRARIES[*]} (log: $DIR/install.log)"
        apt_quiet -y install --no-install-recommends "${LIBRARIES[@]}" ||
            { apt_quiet update || true; apt_quiet -y install --no-install-recommends "${LIBRARIES[@]}"; } ||
            die "apt-get install ${LIBRARIES[*]} failed (see $DIR/install.log)" "$DIR/install.log"
    fi
    if [[ ! -x $EXIM ]]; then
        command -v apt-get >/dev/null || die "apt-get is needed to download exim4-daemon-light"
        local download=$DIR/download
        rm -rf "$download" "$PKG_DIR"
        mkdir -p "$download"
        # apt's download user must be able to write there.
        chmod 777 "$download"
        log "downloading exim4-daemon-light into $download (log: $DIR/install.log)"
        (cd "$download" && apt_quiet download exim4-daemon-light) ||
            { apt_quiet update || true; (cd "$download" && apt_quiet download exim4-daemon-light); } ||
            die "apt-get download exim4-daemon-light failed (see $DIR/install.log)" "$DIR/install.log"
        dpkg-deb -x "$download"/exim4-daemon-light_*.deb "$PKG_DIR" ||
            die "dpkg-deb -x of exim4-daemon-light failed"
        rm -rf "$download"
    fi
    [[ -x $EXIM ]] || die "no exim4 binary at $EXIM after unpacking"
    if ! getent passwd "$EXIM_USER" >/dev/null; then
        [[ $(id -u) -eq 0 ]] || die "user $EXIM_USER is missing and creating it needs root"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$EXIM_USER" || die "cannot create user $EXIM_USER"
    fi
}

# ---------------------------------------------------------------- certificates, account

certs_usable() {
    [[ -s $CA_FILE && -s $TLS_DIR/good.pem && -s $TLS_DIR/good.key ]] &&
        openssl x509 -noout -checkend 604800 -in "$CA_FILE" >/dev/null &&
        openssl x509 -noout -checkend 604800 -in "$TLS_DIR/good.pem" >/dev/null
}

generate_certs() {
    certs_usable && return 0
    log "generating a test CA and certificate in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    (
        umask 077
        exec 2>>"$TLS_DIR/openssl.log"
        cd "$TLS_DIR"
        openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/O=smtptui tests/CN=smtptui Exim test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        # RSA: TLS 1.0 and 1.1 (the old-TLS listener) sign with it as GnuTLS allows there.
        openssl req -new -newkey rsa:2048 -nodes -keyout good.key -out good.csr -subj "/CN=$GOOD_NAME"
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$GOOD_NAME,IP:127.0.0.1,IP:127.0.0.2" >good.ext
        openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -sha256 -extfile good.ext -out good.pem
    ) || die "certificate generation failed (see $TLS_DIR/openssl.log)" "$TLS_DIR/openssl.log"
    chmod 755 "$TLS_DIR"
    chmod 644 "$TLS_DIR"/*.pem
    # Exim reads the key as its own user after giving up root.
    chgrp "$EXIM_USER" "$TLS_DIR/good.key"
    chmod 640 "$TLS_DIR/good.key"
}

setup_account() {
    local password=
    [[ -s $PASSWORD_FILE ]] && password=$(<"$PASSWORD_FILE")
    [[ -n $password ]] || password=$(openssl rand -hex 16)
    (umask 077 && printf '%s' "$password" >"$PASSWORD_FILE")
    PASSWORD=$password
}

# ---------------------------------------------------------------- configuration

# Writes the configuration to $CONF.new; cmd_start decides whether it replaces $CONF.
write_config() {
    local tmp=$CONF.new
    # The password goes into the configuration (hex only): the file is root's, mode 640 for Exim.
    cat >"$tmp" <<EOF
# Generated by scripts/exim-env.sh on every start; edits are overwritten.
primary_hostname = $GOOD_NAME
qualify_domain = $MAIL_DOMAIN
domainlist local_domains = $MAIL_DOMAIN
spool_directory = $SPOOL_DIR
log_file_path = $LOG_DIR/%slog
pid_file_path = $PID_FILE
# Exim re-executes itself (deliveries); the unpacked binary is not at its built-in path.
exim_path = $EXIM
keep_environment =
# Loopback only, no DNS, no ident.
local_interfaces = <; $HOST
daemon_smtp_ports = $SUBMISSION_PORT : $LEGACY_PORT : $OLDTLS_PORT
host_lookup =
rfc1413_hosts =
smtp_banner = \$smtp_active_hostname ESMTP Exim \$version_number \$tod_full

# TLS everywhere; the old-TLS listener only speaks TLS 1.0 and 1.1 (GnuTLS priority string).
tls_advertise_hosts = *
tls_certificate = $TLS_DIR/good.pem
tls_privatekey = $TLS_DIR/good.key
tls_require_ciphers = \${if =={\$received_port}{$OLDTLS_PORT}{$OLD_TLS_PRIORITY}{NORMAL}}

acl_smtp_mail = acl_check_mail
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_mail:
  # Submission: no mail before STARTTLS (the ACL's own wording, with Exim's default 550).
  deny    condition = \${if =={\$received_port}{$SUBMISSION_PORT}}
          !encrypted = *
          message = Must issue a STARTTLS command first
  accept

acl_check_rcpt:
  accept  authenticated = *
  accept  domains = +local_domains
  deny    message = relay not permitted

begin routers

blackhole:
  driver = redirect
  data = :blackhole:

begin transports

begin authenticators

# AUTH: on the submission listener only inside TLS; on the legacy one in cleartext too;
# none on the old-TLS listener.
PLAIN:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and{{eq{\$auth2}{$SMTP_USER}}{eq{\$auth3}{$PASSWORD}}}}
  server_set_id = \$auth2
  server_advertise_condition = \${if or{{=={\$received_port}{$LEGACY_PORT}}{and{{def:tls_in_cipher}{=={\$received_port}{$SUBMISSION_PORT}}}}}}

LOGIN:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = \${if and{{eq{\$auth1}{$SMTP_USER}}{eq{\$auth2}{$PASSWORD}}}}
  server_set_id = \$auth1
  server_advertise_condition = \${if or{{=={\$received_port}{$LEGACY_PORT}}{and{{def:tls_in_cipher}{=={\$received_port}{$SUBMISSION_PORT}}}}}}
EOF
    chown "root:$EXIM_USER" "$tmp"
    chmod 640 "$tmp"
}

prepare_dirs() {
    chmod 755 "$DIR"
    if ! runuser -u "$EXIM_USER" -- test -x "$DIR" 2>/dev/null; then
        die "user $EXIM_USER cannot traverse $DIR (check permissions of its parent directories)"
    fi
    mkdir -p "$SPOOL_DIR" "$LOG_DIR"
    chown "$EXIM_USER:$EXIM_USER" "$SPOOL_DIR" "$LOG_DIR"
    chmod 750 "$SPOOL_DIR" "$LOG_DIR"
}

# ---------------------------------------------------------------- start/stop

daemon_pid() {
    local pid
    [[ -r $PID_FILE ]] || return 1
    pid=$(tr -dc 0-9 <"$PID_FILE")
    [[ -n $pid ]] || return 1
    # Alive, not a zombie, and still an exim (pids are recycled).
    local stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == exim4 ]] || return 1
    echo "$pid"
}

stop_instance() {
    local pid i
    pid=$(daemon_pid) || return 0
    log "stopping Exim instance $DIR (daemon pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        daemon_pid >/dev/null || break
        sleep 0.05
    done
    rm -f "$PID_FILE"
}

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

banner_ok() {
    local line
    line=$(
        exec 3<>"/dev/tcp/$HOST/$1" || exit 1
        IFS= read -r -t 5 reply <&3 || exit 1
        printf 'QUIT\r\n' >&3
        printf '%s' "$reply"
    ) 2>/dev/null || return 1
    [[ $line == 220* ]]
}

start_instance() {
    local p
    for p in "${ALL_PORTS[@]}"; do
        port_open "$p" && die "port $HOST:$p is already in use; choose another EXIM_BASE_PORT"
    done
    "$EXIM" -C "$CONF" -bV >"$DIR/check.log" 2>&1 ||
        die "Exim rejects its configuration $CONF" "$DIR/check.log"
    # -bd detaches and writes the pid file; 9>&-: the daemon must not keep our lock.
    "$EXIM" -C "$CONF" -bd 9>&- >"$DIR/start.log" 2>&1 ||
        die "exim4 -bd failed" "$DIR/start.log"
    local deadline=$((SECONDS + BANNER_TIMEOUT))
    for p in "${ALL_PORTS[@]}"; do
        until banner_ok "$p"; do
            if ((SECONDS >= deadline)); then
                cat "$LOG_DIR/paniclog" "$MAINLOG" >"$DIR/start-failure.log" 2>/dev/null || true
                stop_instance >/dev/null 2>&1 || true
                die "Exim listener on port $p gave no 220 banner within ${BANNER_TIMEOUT}s" "$DIR/start-failure.log"
            fi
            sleep 0.2
        done
    done
}

write_env() {
    local tmp=$DIR/env.tmp
    printf '%s=%s\n' \
        EXIM_DIR "$DIR" \
        SMTP_HOST "$HOST" \
        TLS_SERVER_NAME "$GOOD_NAME" \
        CA_FILE "$CA_FILE" \
        SMTP_USER "$SMTP_USER" \
        PASSWORD_FILE "$PASSWORD_FILE" \
        SUBMISSION_PORT "$SUBMISSION_PORT" \
        LEGACY_PORT "$LEGACY_PORT" \
        OLDTLS_PORT "$OLDTLS_PORT" \
        MAINLOG "$MAINLOG" >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$DIR/env"
}

all_banners_ok() {
    local p
    for p in "${ALL_PORTS[@]}"; do
        banner_ok "$p" || return 1
    done
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "starting Exim (its daemon runs as Debian-exim) needs root"
    mkdir -p "$DIR"
    install_exim
    prepare_dirs
    generate_certs
    setup_account
    write_config
    # A running instance with the same configuration is kept: test runs that start it
    # concurrently must not cut each other's connections.
    if daemon_pid >/dev/null && cmp -s "$CONF.new" "$CONF" && all_banners_ok; then
        rm -f "$CONF.new"
        write_env
        log "Exim instance $DIR is already up with this configuration; env: $DIR/env"
        return
    fi
    rm -f "$DIR/env"
    stop_instance
    mv -f "$CONF.new" "$CONF"
    start_instance
    write_env
    log "Exim instance $DIR is up (submission $SUBMISSION_PORT, legacy $LEGACY_PORT, old TLS $OLDTLS_PORT); env: $DIR/env"
}

cmd_stop() {
    [[ -d $DIR ]] && stop_instance
    rm -f "$DIR/env"
}

main() {
    parse_args "$@"
    take_lock exim
    "cmd_$ACTION"
}

main "$@"
