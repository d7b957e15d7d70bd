#!/usr/bin/env bash
# sender-env.sh: a sending Postfix for the tests of the lab's grade profile (the lab as the MX
# of a test domain, grading the client that delivers to it).
#
#   scripts/sender-env.sh start DIR   install (if needed), configure and start everything; an
#                                     instance already running with the same configuration is
#                                     kept, not restarted
#   scripts/sender-env.sh stop  DIR   stop it (no error if not running)
#
# What runs, all on loopback and all from Debian's packages:
#   - Knot serving grade.test, signed, on 127.0.0.1:DNS_PORT: mx.grade.test A 127.0.0.1 and
#     _GRADE_PORT._tcp.mx.grade.test TLSA 3 1 1 <the MX key>, the key the tests give the lab;
#   - Unbound on RESOLVER_IP:53, validating grade.test with its key as trust anchor, so that
#     answers about it carry the AD bit;
#   - a Postfix instance with no listener, only a queue and four smtp transports, one per
#     level, each with its own EHLO name (the lab tells senders apart by address and name):
#         none.grade.test     -> [127.0.0.1]:GRADE_PORT  smtp_tls_security_level = none
#         may.grade.test      -> [127.0.0.1]:GRADE_PORT  may
#         encrypt.grade.test  -> [127.0.0.1]:GRADE_PORT  encrypt
#         verify.grade.test   -> [127.0.0.1]:GRADE_PORT  verify, the name mx.grade.test
#         dane.grade.test     -> [mx.grade.test]:GRADE_PORT  dane (smtp_dns_support_level=dnssec)
#     The Postfix master runs in a mount namespace of its own where /etc/resolv.conf is
#     DIR/resolv.conf (nameserver RESOLVER_IP, options trust-ad: glibc passes the AD bit on
#     only then). The machine's /etc/resolv.conf is never touched.
#
# The lab itself is started by the tests (smtptui lab --profile grade --listen
# grade=127.0.0.1:GRADE_PORT --grade-name mx.grade.test --grade-ca CA_FILE --grade-ca-key
# CA_KEY --grade-key MX_KEY ...), so a test sees its own lab.
#
# DIR/env keys:
#   SENDER_DIR         DIR itself (the tests take DIR/test.lock while they use the instance)
#   SENDER_CONFIG_DIR  the Postfix instance's config_directory (sendmail -C, postqueue -c)
#   GRADE_PORT         where the tests' lab must listen (127.0.0.1)
#   MX_NAME            mx.grade.test
#   CA_FILE, CA_KEY    the CA the sender trusts (smtp_tls_CAfile), and its key for the lab
#   MX_KEY             the MX key its TLSA record names
#   TLSA_SHA256        that record's data after `3 1 1`: the SHA-256 of the key
#   DOMAINS            the level domains, comma-separated: none.grade.test,...,dane.grade.test
#   MAILLOG            the Postfix log
#   RESOLVER_LOG       Unbound's log
#
# Ports: SENDER_BASE_PORT (default 20000) + 625 for the lab, + 626 for Knot; Unbound on
# SENDER_RESOLVER_IP (default 127.0.0.62) port 53, since resolv.conf names no port. A second
# instance needs both changed.

set -euo pipefail

readonly PROG=sender-env
# shellcheck source=scripts/env-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/env-common.sh"
readonly PACKAGES=(postfix knot unbound openssl)
readonly ZONE=grade.test
readonly MX_NAME=mx.grade.test
readonly LEVELS=(none may encrypt verify dane)
readonly DEFAULT_CONFIG_DIR=/etc/postfix

parse_args() {
    [[ $# -eq 2 ]] || usage
    ACTION=$1
    DIR=$2
    [[ $ACTION == start || $ACTION == stop ]] || usage
    [[ $DIR == /* ]] || die "DIR must be an absolute path (got '$DIR')"
    DIR=$(realpath -m -- "$DIR")
    [[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain A-Z a-z 0-9 . _ / + - (got '$DIR')"
    [[ $DIR != / ]] || die "refusing to use / as DIR"
    local base=${SENDER_BASE_PORT:-20000}
    [[ $base =~ ^[0-9]{4,5}$ ]] && ((base + 626 < 65536)) || die "SENDER_BASE_PORT must be a port number below 64910 (got '$base')"
    RESOLVER_IP=${SENDER_RESOLVER_IP:-127.0.0.62}
    [[ $RESOLVER_IP =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "SENDER_RESOLVER_IP must be a loopback address 127.x.y.z (got '$RESOLVER_IP')"
    GRADE_PORT=$((base + 625))
    DNS_PORT=$((base + 626))
    TLS_DIR=$DIR/tls
    KNOT_DIR=$DIR/knot
    UNBOUND_DIR=$DIR/unbound
    PF_DIR=$DIR/postfix
    PF_CONF=$PF_DIR/conf
    MAILLOG=$PF_DIR/maillog
}

install_packages() {
    have_packages "${PACKAGES[@]}" && return 0
    [[ $(id -u) -eq 0 ]] || die "Postfix, Knot and Unbound are not installed and installing them needs root"
    command -v apt-get >/dev/null || die "Postfix, Knot and Unbound are not installed and apt-get is unavailable"
    mkdir -p "$DIR"
    log "installing ${PACKAGES[*]} (log: $DIR/install.log)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # The packages' own services stay stopped (Unbound's would take port 53): only the
    # instances below run. policy-rc.d is Debian's switch for that.
    local policy=/usr/sbin/policy-rc.d made_policy=0 ok=1
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=120 install --no-install-recommends "${PACKAGES[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$DIR/install.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get -q update >>"$DIR/install.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$DIR/install.log" 2>&1 || ok=0
    fi
    ((made_policy == 0)) || rm -f "$policy"
    ((ok)) || die "apt-get install ${PACKAGES[*]} failed (see $DIR/install.log)" "$DIR/install.log"
    have_packages "${PACKAGES[@]}" || die "packages still missing after apt-get install"
}

# ---------------------------------------------------------------- keys

keys() {
    mkdir -p "$TLS_DIR"
    if [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/ca.key && -s $TLS_DIR/mx.key ]] &&
        openssl x509 -noout -checkend 604800 -in "$TLS_DIR/ca.pem" >/dev/null; then
        return 0
    fi
    log "generating the sender's trusted CA and the MX key in $TLS_DIR"
    (
        umask 077
        exec 2>>"$TLS_DIR/openssl.log" >&2
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$TLS_DIR/ca.key" -subj "/O=smtptui tests/CN=smtptui grade test CA" \
            -days 3650 -sha256 -out "$TLS_DIR/ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/mx.key"
    ) || die "key generation failed (see $TLS_DIR/openssl.log)" "$TLS_DIR/openssl.log"
    chmod 755 "$TLS_DIR"
    chmod 644 "$TLS_DIR/ca.pem"
}

# ---------------------------------------------------------------- Knot

knot_conf() {
    mkdir -p "$KNOT_DIR/zones" "$KNOT_DIR/run" "$KNOT_DIR/db"
    cat >"$KNOT_DIR/knot.conf" <<EOF
# Generated by scripts/sender-env.sh on every start.
server:
    rundir: $KNOT_DIR/run
    listen: 127.0.0.1@$DNS_PORT
    user: root:root
log:
  - target: $KNOT_DIR/knot.log
    any: info
database:
    storage: $KNOT_DIR/db
    kasp-db: $KNOT_DIR/kasp
policy:
  - id: fixed
    manual: on
    single-type-signing: on
    algorithm: ecdsap256sha256
template:
  - id: default
    storage: $KNOT_DIR/zones
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: $ZONE.
    file: $KNOT_DIR/zones/$ZONE.zone
    dnssec-signing: on
    dnssec-policy: fixed
EOF
    local km=(keymgr -c "$KNOT_DIR/knot.conf" "$ZONE.")
    if [[ -z $("${km[@]}" list 2>/dev/null) ]]; then
        "${km[@]}" generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >/dev/null ||
            die "keymgr could not generate the key of $ZONE"
    fi
    TLSA="3 1 1 $(openssl pkey -in "$TLS_DIR/mx.key" -pubout -outform DER | sha256sum | cut -d' ' -f1)"
    {
        printf '$TTL 300\n$ORIGIN %s.\n' "$ZONE"
        printf '@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n'
        printf 'mx A 127.0.0.1\n_%s._tcp.mx TLSA %s\n' "$GRADE_PORT" "$TLSA"
        local level
        for level in "${LEVELS[@]}"; do
            printf '%s MX 10 mx\n' "$level"
        done
    } >"$KNOT_DIR/zones/$ZONE.zone"
    "${km[@]}" dnskey | sed 's/ DNSKEY / IN DNSKEY /' >"$UNBOUND_DIR/anchor.key"
}

pid_of() { # pid_of FILE COMM: the live process named in FILE, if it is COMM
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    echo "$pid"
}

# stop_pid FILE COMM: SIGTERM to the process named in FILE, waiting for it to go.
stop_pid() {
    local pid i
    pid=$(pid_of "$1" "$2") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_of "$1" "$2" >/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
}

start_knot() {
    knotd -c "$KNOT_DIR/knot.conf" -d 9>&- || die "knotd could not start" "$KNOT_DIR/knot.log"
    local i
    for ((i = 0; i < 100; i++)); do
        knotc -c "$KNOT_DIR/knot.conf" zone-status "$ZONE." 2>/dev/null | grep -q 'serial: 1' && return 0
        sleep 0.1
    done
    die "Knot did not load $ZONE within 10 s" "$KNOT_DIR/knot.log"
}

# ---------------------------------------------------------------- Unbound

unbound_conf() {
    mkdir -p "$UNBOUND_DIR"
    cat >"$UNBOUND_DIR/unbound.conf" <<EOF
# Generated by scripts/sender-env.sh on every start: a validating resolver for grade.test only.
server:
    interface: $RESOLVER_IP
    port: 53
    do-ip6: no
    username: ""
    chroot: ""
    directory: "$UNBOUND_DIR"
    pidfile: "$UNBOUND_DIR/unbound.pid"
    logfile: "$UNBOUND_DIR/unbound.log"
    use-syslog: no
    verbosity: 1
    val-log-level: 2
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-file: "$UNBOUND_DIR/anchor.key"
    # .test is one of Unbound's default local zones (RFC 6761): let this one through.
    local-zone: "test." nodefault
stub-zone:
    name: "$ZONE."
    stub-addr: 127.0.0.1@$DNS_PORT
remote-control:
    control-enable: no
EOF
    printf 'nameserver %s\noptions trust-ad\n' "$RESOLVER_IP" >"$DIR/resolv.conf"
}

start_unbound() {
    unbound-checkconf "$UNBOUND_DIR/unbound.conf" >"$UNBOUND_DIR/checkconf.log" 2>&1 ||
        die "unbound-checkconf refused the configuration" "$UNBOUND_DIR/checkconf.log"
    unbound -c "$UNBOUND_DIR/unbound.conf" 9>&- >"$UNBOUND_DIR/start.log" 2>&1 ||
        die "unbound could not start" "$UNBOUND_DIR/start.log"
    local i
    for ((i = 0; i < 50; i++)); do
        pid_of "$UNBOUND_DIR/unbound.pid" unbound >/dev/null && return 0
        sleep 0.1
    done
    die "unbound did not start within 5 s" "$UNBOUND_DIR/unbound.log"
}

# ---------------------------------------------------------------- Postfix

postfix_conf() {
    postfix_instance_dirs "$PF_CONF" "$PF_DIR/queue" "$PF_DIR/data" "$MAILLOG"
    chmod 755 "$DIR" "$PF_DIR"
    cat >"$PF_CONF/main.cf" <<EOF
# Generated by scripts/sender-env.sh on every start: a sender only (no smtpd).
compatibility_level = 3.6
config_directory = $PF_CONF
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
multi_instance_name = smtptui-sender
syslog_name = postfix-smtptui-sender
maillog_file = $MAILLOG
maillog_file_prefixes = /var, /dev/stdout, $PF_DIR
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = sender.grade.test
mydomain = grade.test
myorigin = sender.grade.test
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
transport_maps = texthash:$PF_CONF/transport
# Anything else is not ours to send.
default_transport = error:not a test domain of sender-env.sh
smtp_tls_CAfile = $TLS_DIR/ca.pem
smtp_tls_loglevel = 1
smtp_dns_support_level = dnssec
smtp_host_lookup = dns
# The tests flush the queue to make Postfix retry at once rather than wait.
minimal_backoff_time = 1s
maximal_backoff_time = 10s
queue_run_delay = 1s
smtp_connect_timeout = 10s
bounce_queue_lifetime = 1h
maximal_queue_lifetime = 1h
EOF
    local level host
    : >"$PF_CONF/transport.new"
    for level in "${LEVELS[@]}"; do
        host="[127.0.0.1]"
        [[ $level == dane ]] && host="[$MX_NAME]"
        printf '%s.%s grade-%s:%s:%s\n' "$level" "$ZONE" "$level" "$host" "$GRADE_PORT" >>"$PF_CONF/transport.new"
    done
    mv -f "$PF_CONF/transport.new" "$PF_CONF/transport"
    cat >"$PF_CONF/master.cf" <<EOF
# Generated by scripts/sender-env.sh on every start: no listener, one smtp transport per level,
# each with an EHLO name of its own so the lab grades them apart.
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
smtp       unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
grade-none    unix - - n - - smtp -o smtp_helo_name=none.sender.grade.test -o smtp_tls_security_level=none
grade-may     unix - - n - - smtp -o smtp_helo_name=may.sender.grade.test -o smtp_tls_security_level=may
grade-encrypt unix - - n - - smtp -o smtp_helo_name=encrypt.sender.grade.test -o smtp_tls_security_level=encrypt
grade-verify  unix - - n - - smtp -o smtp_helo_name=verify.sender.grade.test -o smtp_tls_security_level=verify -o smtp_tls_verify_cert_match=$MX_NAME
grade-dane    unix - - n - - smtp -o smtp_helo_name=dane.sender.grade.test -o smtp_tls_security_level=dane
EOF
}

stop_postfix() {
    local pid i
    pid=$(pid_of "$PF_DIR/queue/pid/master.pid" master) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        ps -eo pgid=,stat= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }' || return 0
        sleep 0.05
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}

start_postfix() {
    # A mount namespace of its own: /etc/resolv.conf there is DIR/resolv.conf. The master and
    # every daemon it starts stay in it; nothing outside sees the change.
    if ! unshare -m --propagation private sh -c \
        'mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start' \
        sh "$DIR/resolv.conf" "$PF_CONF" >"$DIR/start-failure.log" 2>&1 9>&-; then
        tail -n 20 "$MAILLOG" >>"$DIR/start-failure.log" 2>/dev/null || true
        die "postfix -c $PF_CONF start (in its own mount namespace) failed" "$DIR/start-failure.log"
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        pid_of "$PF_DIR/queue/pid/master.pid" master >/dev/null && return 0
        sleep 0.1
    done
    die "the sender Postfix did not start within 10 s" "$MAILLOG"
}

# ---------------------------------------------------------------- checks

# The resolver must validate grade.test, as the DANE test needs: the AD bit on the MX's TLSA.
check_resolver() {
    command -v kdig >/dev/null || return 0
    local answer i
    for ((i = 0; i < 30; i++)); do
        answer=$(kdig @"$RESOLVER_IP" +dnssec +time=1 +retry=0 "_$GRADE_PORT._tcp.$MX_NAME" TLSA 2>/dev/null || true)
        [[ $answer =~ Flags:[a-z\ ]*\ ad\; ]] && return 0
        sleep 0.1
    done
    printf '%s\n' "$answer" >"$DIR/resolver-check.log"
    die "Unbound does not validate $ZONE (no AD bit on the TLSA answer)" "$DIR/resolver-check.log"
}

write_env() {
    local tmp=$DIR/env.tmp domains=() level
    for level in "${LEVELS[@]}"; do
        domains+=("$level.$ZONE")
    done
    {
        printf '%s=%s\n' \
            SENDER_DIR "$DIR" \
            SENDER_CONFIG_DIR "$PF_CONF" \
            GRADE_PORT "$GRADE_PORT" \
            MX_NAME "$MX_NAME" \
            CA_FILE "$TLS_DIR/ca.pem" \
            CA_KEY "$TLS_DIR/ca.key" \
            MX_KEY "$TLS_DIR/mx.key" \
            TLSA_SHA256 "${TLSA#3 1 1 }" \
            DOMAINS "$(IFS=,; echo "${domains[*]}")" \
            MAILLOG "$MAILLOG" \
            RESOLVER_LOG "$UNBOUND_DIR/unbound.log"
    } >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$DIR/env"
}

stop_all() {
    stop_postfix
    stop_pid "$UNBOUND_DIR/unbound.pid" unbound
    [[ -f $KNOT_DIR/knot.conf ]] && knotc -c "$KNOT_DIR/knot.conf" stop >/dev/null 2>&1 || true
    stop_pid "$KNOT_DIR/run/knot.pid" knotd
}

# The configuration as written, to tell whether a running instance can be kept.
config_sum() {
    # Missing files (a first start) read as nothing.
    {
        cat "$KNOT_DIR/knot.conf" "$KNOT_DIR/zones/$ZONE.zone" "$UNBOUND_DIR/unbound.conf" \
            "$UNBOUND_DIR/anchor.key" "$DIR/resolv.conf" "$PF_CONF/main.cf" "$PF_CONF/master.cf" \
            "$PF_CONF/transport" 2>/dev/null || true
    } | sha256sum
}

all_running() {
    pid_of "$PF_DIR/queue/pid/master.pid" master >/dev/null &&
        pid_of "$UNBOUND_DIR/unbound.pid" unbound >/dev/null &&
        pid_of "$KNOT_DIR/run/knot.pid" knotd >/dev/null
}

cmd_start() {
    local before
    mkdir -p "$DIR"
    install_packages
    keys
    mkdir -p "$UNBOUND_DIR"
    before=$(config_sum)
    knot_conf
    unbound_conf
    register_postfix_instance "$PF_CONF"
    postfix_conf
    # A running instance with the same configuration is kept: a test of another checkout
    # may be using it.
    if [[ $before == "$(config_sum)" ]] && all_running; then
        write_env
        log "sending Postfix $PF_CONF is already up with this configuration; env: $DIR/env"
        return
    fi
    rm -f "$DIR/env"
    stop_all
    start_knot
    start_unbound
    check_resolver
    # What an earlier run left in the queue would be delivered to this run's lab.
    postsuper -c "$PF_CONF" -d ALL >/dev/null 2>&1 || true
    start_postfix
    write_env
    log "sending Postfix $PF_CONF is up (levels ${LEVELS[*]} to 127.0.0.1:$GRADE_PORT), Knot on 127.0.0.1:$DNS_PORT, Unbound on $RESOLVER_IP:53; env: $DIR/env"
}

cmd_stop() {
    [[ -d $DIR ]] && stop_all
    rm -f "$DIR/env"
}

main() {
    parse_args "$@"
    take_lock sender
    "cmd_$ACTION"
}

main "$@"
