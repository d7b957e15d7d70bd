#!/usr/bin/env bash
# dovecot-env.sh: run a throw-away, loopback-only Dovecot submission service (RFC 6409) and
# LMTP server (RFC 2033) for smtptui's integration tests, next to the Postfix of
# postfix-env.sh (the packages do not conflict; submission relays to that Postfix's MX
# listener, though the tests send no mail that way).
#
#   scripts/dovecot-env.sh start DIR   install (if needed), configure, (re)start
#   scripts/dovecot-env.sh stop  DIR   stop the instance (no error if not running)
#
# Dovecot counts a connection whose client address equals the server's own address as
# secure (no TLS needed for plaintext AUTH). Two listeners therefore sit on 127.0.0.2 and
# 127.0.0.3: a loopback client connects to them from 127.0.0.1 and is judged as a remote
# one. The third sits on 127.0.0.1 and shows how differently the same settings answer a
# local client.
#
# DIR must be an absolute path. Everything the instance needs lives in it:
#   DIR/dovecot.conf           the configuration (rewritten on every start)
#   DIR/tls/                   a test CA and a leaf for localhost, 127.0.0.1-3
#   DIR/users, DIR/password    the accounts (passwd-file) and alice's password (mode 600)
#   DIR/token                  alice's OAuth 2.0 access token (mode 600)
#   DIR/introspect.py          the token-introspection endpoint Dovecot's oauth2 passdb asks
#                              (RFC 7662 style, Authorization: Bearer), on loopback; its log is
#                              DIR/introspect.log (no token in it)
#   DIR/run/, DIR/state/       base_dir and state_dir
#   DIR/state/home/USER/       each LMTP recipient's home, mail in Maildir/
#   DIR/dovecot.log            every log line
#   DIR/env                    sourceable KEY=value lines, written last
#
# DIR/env keys:
#   DOVECOT_DIR          DIR itself
#   TLS_SERVER_NAME      localhost
#   CA_FILE              PEM of the test CA
#   SMTP_USER, PASSWORD_FILE   the account
#   SUBMISSION_HOST, SUBMISSION_PORT   127.0.0.2: ssl = required, disable_plaintext_auth = yes
#   PLAINTEXT_HOST, PLAINTEXT_PORT     127.0.0.3: ssl = yes, disable_plaintext_auth = no
#                                      (AUTH in cleartext; MAIL before AUTH gets
#                                      "530 5.7.0 Authentication required")
#   LOCAL_HOST, LOCAL_PORT             127.0.0.1: the submission settings, but the client
#                                      shares the server's address and is trusted
#   LMTP_SOCKET                        LMTP on a UNIX domain socket (mode 0666)
#   LMTP_HOST, LMTP_PORT               LMTP on TCP, 127.0.0.1
#   LMTP_USER                          a recipient LMTP delivers to (alice@lab.test)
#   LMTP_FULL_USER                     a recipient whose mailbox is over quota: accepted
#                                      at RCPT, refused after the message (552 5.2.2)
#   MAIL_HOME                          the directory of the recipients' homes
#   TOKEN_FILE                         alice's access token: OAUTHBEARER and XOAUTH2 are
#                                      offered on every submission listener (with PLAIN and
#                                      LOGIN) and checked by the oauth2 passdb against
#                                      INTROSPECTION_URL, which answers active only for it
#   INTROSPECTION_URL                  http://127.0.0.1:(base + 590)/introspect
#   LOG                  the log file
#
# Ports are DOVECOT_BASE_PORT (default 22000) + 587, 588, 589, + 24 for LMTP and + 590 for
# the introspection endpoint.

set -euo pipefail

readonly PROG=dovecot-env
# shellcheck source=scripts/env-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/env-common.sh"
readonly GOOD_NAME=localhost
readonly SMTP_USER=alice@lab.test
readonly SUBMISSION_HOST=127.0.0.2
readonly PLAINTEXT_HOST=127.0.0.3
readonly LOCAL_HOST=127.0.0.1
readonly BANNER_TIMEOUT=20
readonly LMTP_USER=alice@lab.test
readonly LMTP_FULL_USER=full@lab.test
readonly PACKAGES=(dovecot-core dovecot-submissiond dovecot-lmtpd openssl python3)



parse_args() {
    [[ $# -eq 2 ]] || usage
    ACTION=$1
    DIR=$2
    [[ $ACTION == start || $ACTION == stop ]] || usage
    [[ $DIR == /* ]] || die "DIR must be an absolute path (got '$DIR')"
    DIR=$(realpath -m -- "$DIR")
    [[ $DIR != / && $DIR != /etc/dovecot ]] || die "refusing to use $DIR as DIR"
    [[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain A-Z a-z 0-9 . _ / + - (got '$DIR')"
    local base=${DOVECOT_BASE_PORT:-22000}
    if ! [[ $base =~ ^[0-9]{4,5}$ ]] || ((10#$base < 1024 || 10#$base + 590 > 65535)); then
        die "DOVECOT_BASE_PORT must be a number in 1024..64945 (got '$base')"
    fi
    base=$((10#$base))
    SUBMISSION_PORT=$((base + 587))
    PLAINTEXT_PORT=$((base + 588))
    LOCAL_PORT=$((base + 589))
    LMTP_PORT=$((base + 24))
    INTROSPECTION_PORT=$((base + 590))
    INTROSPECTION_URL=http://$LOCAL_HOST:$INTROSPECTION_PORT/introspect
    # Where submission relays (the MX listener of postfix-env.sh by default); only used if
    # a test ever sends a message.
    RELAY_PORT=${DOVECOT_RELAY_PORT:-20025}
    [[ $RELAY_PORT =~ ^[0-9]{1,5}$ ]] || die "DOVECOT_RELAY_PORT must be a port number"
    CONF=$DIR/dovecot.conf
    TLS_DIR=$DIR/tls
    CA_FILE=$TLS_DIR/ca.pem
    PASSWORD_FILE=$DIR/password
    TOKEN_FILE=$DIR/token
    USERS_FILE=$DIR/users
    OAUTH2_CONF=$DIR/oauth2.conf.ext
    INTROSPECT=$DIR/introspect.py
    RUN_DIR=$DIR/run
    STATE_DIR=$DIR/state
    MAIL_HOME=$STATE_DIR/home
    LMTP_SOCKET=$RUN_DIR/lmtp
    LOG=$DIR/dovecot.log
}


# ---------------------------------------------------------------- install


apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=120 install \
        --no-install-recommends "${PACKAGES[@]}" >>"$DIR/install.log" 2>&1
}

install_packages() {
    have_packages "${PACKAGES[@]}" && return 0
    [[ $(id -u) -eq 0 ]] || die "Dovecot is not installed and installing it needs root"
    command -v apt-get >/dev/null || die "Dovecot is not installed and apt-get is unavailable"
    log "installing ${PACKAGES[*]} (log: $DIR/install.log)"
    # The package would start the system-wide Dovecot (submission on port 587 of every
    # interface). A policy-rc.d that says no, for the time of the install only, keeps
    # the machine as it was; an existing policy is left alone.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from smtptui scripts/dovecot-env.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local ok=
    apt_install || { DEBIAN_FRONTEND=noninteractive apt-get -q update >>"$DIR/install.log" 2>&1 || true; apt_install; } && ok=1
    [[ -n $made_policy ]] && rm -f "$policy"
    [[ -n $ok ]] || die "apt-get install ${PACKAGES[*]} failed (see $DIR/install.log)" "$DIR/install.log"
    have_packages "${PACKAGES[@]}" || die "packages still missing after apt-get install (see $DIR/install.log)"
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
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -out ca.pem -days 3650 -subj "/O=smtptui tests/CN=smtptui Dovecot test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout good.key \
            -out good.csr -subj "/CN=$GOOD_NAME"
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=DNS:$GOOD_NAME,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3" >good.ext
        openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -sha256 -extfile good.ext -out good.pem
    ) || die "certificate generation failed (see $TLS_DIR/openssl.log)" "$TLS_DIR/openssl.log"
    chmod 755 "$TLS_DIR"
    chmod 644 "$TLS_DIR"/*.pem
}

setup_account() {
    local password=
    [[ -s $PASSWORD_FILE ]] && password=$(<"$PASSWORD_FILE")
    [[ -n $password ]] || password=$(openssl rand -hex 16)
    (umask 077 && printf '%s' "$password" >"$PASSWORD_FILE")
    # The second account only receives: a password nobody knows, and a quota of one byte, so
    # LMTP accepts it at RCPT and refuses the message for it after the final dot.
    (
        umask 027
        printf '%s:{PLAIN}%s::::::\n' "$SMTP_USER" "$password"
        printf '%s:{PLAIN}%s::::::userdb_quota_rule=*:storage=1B\n' "$LMTP_FULL_USER" "$(openssl rand -hex 16)"
    ) >"$USERS_FILE.new"
    # Kept when unchanged but for the random password: a rewrite alone is no reason to restart.
    if [[ -s $USERS_FILE ]] && cmp -s <(head -n 1 "$USERS_FILE.new") <(head -n 1 "$USERS_FILE") &&
        [[ $(wc -l <"$USERS_FILE") -eq 2 ]]; then
        rm -f "$USERS_FILE.new"
    else
        mv -f "$USERS_FILE.new" "$USERS_FILE"
    fi
    chgrp dovecot "$USERS_FILE"
    local token=
    [[ -s $TOKEN_FILE ]] && token=$(<"$TOKEN_FILE")
    [[ -n $token ]] || token=$(openssl rand -hex 24)
    (umask 077 && printf '%s' "$token" >"$TOKEN_FILE")
}

# ---------------------------------------------------------------- OAuth 2.0 introspection

# A token-introspection endpoint for the oauth2 passdb: Dovecot asks it with the client's
# token as "Authorization: Bearer"; it answers active, with the account's name, only for
# the token in TOKEN_FILE. Python's standard library only, loopback only.
write_introspect() {
    cat >"$INTROSPECT.new" <<'EOF'
"""Token introspection for the test Dovecot's oauth2 passdb (written by dovecot-env.sh)."""
import hmac
import http.server
import json
import sys

host, port, token_file, user, log_file = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
with open(token_file, encoding="ascii") as f:
    TOKEN = f.read().strip()


class Introspect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        header = self.headers.get("Authorization", "")
        given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        active = bool(given) and hmac.compare_digest(given.encode(), TOKEN.encode())
        body = {"active": True, "username": user} if active else {"active": False}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with open(log_file, "a", encoding="ascii") as log:
            log.write(f"introspection: token {'active' if active else 'refused'}\n")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((host, port), Introspect).serve_forever()
EOF
    chmod 644 "$INTROSPECT.new"
    mv -f "$INTROSPECT.new" "$INTROSPECT"
    cat >"$OAUTH2_CONF" <<EOF
introspection_mode = auth
introspection_url = $INTROSPECTION_URL
username_attribute = username
active_attribute = active
active_value = true
EOF
    chmod 644 "$OAUTH2_CONF"
}

introspect_pid() {
    local pid
    [[ -r $DIR/introspect.pid ]] || return 1
    pid=$(tr -dc 0-9 <"$DIR/introspect.pid")
    [[ -n $pid ]] && grep -q introspect.py "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

stop_introspect() {
    local pid
    pid=$(introspect_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$DIR/introspect.pid"
}

start_introspect() {
    stop_introspect
    port_open "$LOCAL_HOST" "$INTROSPECTION_PORT" &&
        die "$LOCAL_HOST $INTROSPECTION_PORT is already in use; choose another DOVECOT_BASE_PORT"
    # 9>&-: the server must not keep our lock.
    nohup /usr/bin/python3 "$INTROSPECT" "$LOCAL_HOST" "$INTROSPECTION_PORT" "$TOKEN_FILE" \
        "$SMTP_USER" "$DIR/introspect.log" 9>&- >>"$DIR/introspect.log" 2>&1 &
    echo $! >"$DIR/introspect.pid"
    local deadline=$((SECONDS + BANNER_TIMEOUT))
    until port_open "$LOCAL_HOST" "$INTROSPECTION_PORT"; do
        ((SECONDS < deadline)) || die "the introspection endpoint did not start" "$DIR/introspect.log"
        sleep 0.1
    done
}

# ---------------------------------------------------------------- configuration

# Writes the configuration to $CONF.new; cmd_start decides whether it replaces $CONF.
write_config() {
    local tmp=$CONF.new
    cat >"$tmp" <<EOF
# Generated by scripts/dovecot-env.sh on every start; edits are overwritten.
instance_name = smtptui-dovecot
base_dir = $RUN_DIR
state_dir = $STATE_DIR
log_path = $LOG
info_log_path = $LOG
protocols = submission lmtp
listen = $LOCAL_HOST
hostname = $GOOD_NAME
shutdown_clients = yes

ssl_cert = <$TLS_DIR/good.pem
ssl_key = <$TLS_DIR/good.key
ssl_min_protocol = TLSv1.2

# The submission listener's settings; the plaintext one overrides them below.
ssl = required
disable_plaintext_auth = yes
auth_mechanisms = plain login oauthbearer xoauth2

passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $USERS_FILE
}
# OAUTHBEARER and XOAUTH2: the token is checked by the introspection endpoint.
passdb {
  driver = oauth2
  mechanisms = oauthbearer xoauth2
  args = $OAUTH2_CONF
}
userdb {
  driver = passwd-file
  args = username_format=%u $USERS_FILE
  default_fields = uid=dovecot gid=dovecot home=$MAIL_HOME/%n
}

# LMTP delivers into each recipient's Maildir as the dovecot user (a system account, below
# the default first_valid_uid); the quota makes one recipient's mailbox full.
mail_location = maildir:~/Maildir
first_valid_uid = $(id -u dovecot)
first_valid_gid = $(id -g dovecot)
protocol lmtp {
  mail_plugins = quota
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=100M
}

submission_relay_host = 127.0.0.1
submission_relay_port = $RELAY_PORT
submission_relay_trusted = no
submission_relay_ssl = no

service submission-login {
  inet_listener submission {
    address = $SUBMISSION_HOST
    port = $SUBMISSION_PORT
  }
  inet_listener plaintext {
    address = $PLAINTEXT_HOST
    port = $PLAINTEXT_PORT
  }
  inet_listener local {
    address = $LOCAL_HOST
    port = $LOCAL_PORT
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = $LOCAL_HOST
    port = $LMTP_PORT
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  # Tests open several connections at once from one address.
  client_limit = 1000
}

# The unsafe setting, where a connection arrives on $PLAINTEXT_HOST.
local $PLAINTEXT_HOST {
  ssl = yes
  disable_plaintext_auth = no
}
EOF
    chmod 644 "$tmp"
}

prepare_dirs() {
    chmod 755 "$DIR"
    mkdir -p "$RUN_DIR" "$STATE_DIR" "$MAIL_HOME"
    chmod 755 "$RUN_DIR" "$STATE_DIR"
    chown dovecot:dovecot "$MAIL_HOME"
    chmod 755 "$MAIL_HOME"
    touch "$LOG"
}

# ---------------------------------------------------------------- start/stop

master_pid() {
    local pidfile=$RUN_DIR/master.pid pid stat
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc 0-9 <"$pidfile")
    [[ -n $pid ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dovecot ]] || return 1
    echo "$pid"
}

stop_instance() {
    local pid i
    pid=$(master_pid) || return 0
    log "stopping Dovecot instance $DIR (master pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        master_pid >/dev/null || return 0
        sleep 0.05
    done
    log "Dovecot did not exit after SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
}

port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

banner_ok() {
    local line
    line=$(
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        IFS= read -r -t 5 reply <&3 || exit 1
        printf 'QUIT\r\n' >&3
        printf '%s' "$reply"
    ) 2>/dev/null || return 1
    [[ $line == 220* ]]
}

LISTENERS=()

start_instance() {
    LISTENERS=("$SUBMISSION_HOST $SUBMISSION_PORT" "$PLAINTEXT_HOST $PLAINTEXT_PORT" "$LOCAL_HOST $LOCAL_PORT"
        "$LOCAL_HOST $LMTP_PORT")
    local l
    for l in "${LISTENERS[@]}"; do
        # shellcheck disable=SC2086 # "host port"
        port_open $l && die "$l is already in use; choose another DOVECOT_BASE_PORT"
    done
    doveconf -c "$CONF" >/dev/null 2>"$DIR/check.log" ||
        die "Dovecot rejects its configuration $CONF" "$DIR/check.log"
    # 9>&-: the master must not keep our lock.
    dovecot -c "$CONF" 9>&- >"$DIR/start.log" 2>&1 || die "dovecot -c $CONF failed" "$DIR/start.log"
    local deadline=$((SECONDS + BANNER_TIMEOUT))
    for l in "${LISTENERS[@]}"; do
        # shellcheck disable=SC2086
        until banner_ok $l; do
            if ((SECONDS >= deadline)); then
                stop_instance >/dev/null 2>&1 || true
                die "Dovecot listener $l gave no 220 banner within ${BANNER_TIMEOUT}s" "$LOG"
            fi
            sleep 0.2
        done
    done
    [[ -S $LMTP_SOCKET ]] || die "Dovecot made no LMTP socket at $LMTP_SOCKET" "$LOG"
}

write_env() {
    local tmp=$DIR/env.tmp
    printf '%s=%s\n' \
        DOVECOT_DIR "$DIR" \
        TLS_SERVER_NAME "$GOOD_NAME" \
        CA_FILE "$CA_FILE" \
        SMTP_USER "$SMTP_USER" \
        PASSWORD_FILE "$PASSWORD_FILE" \
        SUBMISSION_HOST "$SUBMISSION_HOST" \
        SUBMISSION_PORT "$SUBMISSION_PORT" \
        PLAINTEXT_HOST "$PLAINTEXT_HOST" \
        PLAINTEXT_PORT "$PLAINTEXT_PORT" \
        LOCAL_HOST "$LOCAL_HOST" \
        LOCAL_PORT "$LOCAL_PORT" \
        LMTP_SOCKET "$LMTP_SOCKET" \
        LMTP_HOST "$LOCAL_HOST" \
        LMTP_PORT "$LMTP_PORT" \
        LMTP_USER "$LMTP_USER" \
        LMTP_FULL_USER "$LMTP_FULL_USER" \
        MAIL_HOME "$MAIL_HOME" \
        TOKEN_FILE "$TOKEN_FILE" \
        INTROSPECTION_URL "$INTROSPECTION_URL" \
        LOG "$LOG" >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$DIR/env"
}

all_banners_ok() {
    banner_ok "$SUBMISSION_HOST" "$SUBMISSION_PORT" &&
        banner_ok "$PLAINTEXT_HOST" "$PLAINTEXT_PORT" &&
        banner_ok "$LOCAL_HOST" "$LOCAL_PORT" &&
        banner_ok "$LOCAL_HOST" "$LMTP_PORT" &&
        [[ -S $LMTP_SOCKET ]]
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "starting Dovecot (its master process runs as root) needs root"
    mkdir -p "$DIR"
    install_packages
    prepare_dirs
    generate_certs
    setup_account
    write_introspect
    introspect_pid >/dev/null || start_introspect
    write_config
    # A running instance with the same configuration is kept: test runs that start it
    # concurrently must not cut each other's connections.
    if master_pid >/dev/null && cmp -s "$CONF.new" "$CONF" && all_banners_ok; then
        rm -f "$CONF.new"
        write_env
        log "Dovecot instance $DIR is already up with this configuration; env: $DIR/env"
        return
    fi
    rm -f "$DIR/env"
    stop_instance
    mv -f "$CONF.new" "$CONF"
    start_instance
    write_env
    log "Dovecot instance $DIR is up (submission $SUBMISSION_HOST:$SUBMISSION_PORT, plaintext $PLAINTEXT_HOST:$PLAINTEXT_PORT, local $LOCAL_HOST:$LOCAL_PORT, lmtp $LOCAL_HOST:$LMTP_PORT and $LMTP_SOCKET); env: $DIR/env"
}

cmd_stop() {
    [[ -d $DIR ]] && stop_instance
    [[ -d $DIR ]] && stop_introspect
    rm -f "$DIR/env"
}

main() {
    parse_args "$@"
    take_lock dovecot
    "cmd_$ACTION"
}

main "$@"
