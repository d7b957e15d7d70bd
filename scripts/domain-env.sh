#!/usr/bin/env bash
# domain-env.sh: the mail domains of the domain audit's tests, on loopback: a real
# authoritative DNS server (Knot, from Debian's packages) serving a signed test root and
# signed and unsigned zones below it, MX hosts that are real Postfix listeners on
# 127.0.0.2-127.0.0.5 and [::1], port 25, with certificates that match and that do not
# match their TLSA records, and the MTA-STS policy hosts (mta-sts.<domain>) as a real HTTPS
# server (nginx, from Debian's packages) on 127.0.0.6 and [::1], port 443, with
# certificates from the same test CA.
#
#   scripts/domain-env.sh start DIR   install (if needed), generate keys and certificates
#                                     (kept once made), write the zones and the policies,
#                                     start Knot, the Postfix instance and nginx; each one
#                                     already running with the same configuration is kept
#   scripts/domain-env.sh stop  DIR   stop them (no error if not running)
#
# This Postfix is an instance of its own (DIR/postfix), next to the one of
# scripts/postfix-env.sh, which it never touches.
#
# The zones (all under the test root, whose key is the trust anchor):
#   good.test       signed; MX 10 mx1.good.test (127.0.0.2 and ::1, TLSA 3 1 1 of its key
#                   and of the next key), MX 20 mx2.good.test (127.0.0.3, TLSA 2 1 1 of the
#                   test CA, which its chain includes)
#   mismatch.test   signed; MX 10 mx.mismatch.test (127.0.0.4), whose TLSA 3 1 1 names
#                   another key than the one it presents
#   unsigned.test   an insecure delegation (no DS); MX 10 mx.unsigned.test (127.0.0.5)
#   nullmx.test     signed; MX 0 . (RFC 7505)
#   nomx.test       signed; no MX, A 127.0.0.2: the implicit MX
#   renewal.test    signed; MX 10 mx.renewal.test (127.0.0.2), one TLSA 3 0 1 of the
#                   whole certificate (breaks at renewal, no second record)
#   four.test       signed; four MX hosts: mx1.good, mx2.good, mx.mismatch, mx.unsigned
#   bogus.test      signed, but its DS at the parent names another digest: bogus
#
# MTA-STS (RFC 8461: `_mta-sts` TXT and https://mta-sts.<domain>/.well-known/mta-sts.txt)
# and TLS-RPT (RFC 8460: `_smtp._tls` TXT), all in signed zones:
#   good.test       enforce, mx: *.good.test; TLS-RPT to mailto:; policy host on 127.0.0.6
#                   and ::1
#   four.test       enforce, every one of its four MX hosts listed; TLS-RPT to https:
#   sts.test        MX mx1.good.test and mx.unsigned.test; enforce, mx: mx1.good.test and
#                   *.test (one label only: mx.unsigned.test is not listed); max_age 3600
#   certname.test   MX mail.certname.test (127.0.0.3, whose certificate names
#                   mx2.good.test only), listed in an enforce policy
#   testing.test    testing, mx2.good.test not listed; policy host on ::1 only; a TLS-RPT
#                   record without a URI scheme
#   none.test       mode none
#   maxage.test     enforce, max_age above RFC 8461's maximum
#   badcert.test    the policy host presents a certificate for www.badcert.test
#   redirect.test   the policy URL answers 301 to good.test's policy
#   ctype.test      the policy is served as text/html
#   badid.test      `v=STSv1; id=` with a character the id may not hold
#   hostile.test    its policy host is 127.0.0.7, where no server runs: the tests put their
#                   own misbehaving HTTPS server there
#
# DIR/env keys:
#   DNS_RESOLVER      127.0.0.1:PORT where Knot answers (UDP and TCP)
#   TRUST_ANCHOR      the test root's DNSKEY, in zone-file form (--trust-anchor)
#   CA_FILE           the CA that signed every MX certificate (--ca-file)
#   MX1_IP MX1_IP6 MX2_IP MISMATCH_IP UNSIGNED_IP   the MX listeners' addresses
#   MX1_TLSA          the 3 1 1 record data of mx1.good.test's key
#   POLICY_IP POLICY_IP6   where nginx serves the MTA-STS policies (port 443)
#   HOSTILE_POLICY_IP      mta-sts.hostile.test's address, left to the tests (port 443)
#   MAILLOG           the Postfix instance's log
#   KNOT_LOG          Knot's log
#   NGINX_LOG         nginx's error log

set -euo pipefail

readonly PROG=domain-env
# shellcheck source=scripts/env-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/env-common.sh"
readonly PACKAGES=(knot postfix openssl nginx)
readonly DNS_HOST=127.0.0.1
readonly MX1_IP=127.0.0.2 MX1_IP6=::1 MX2_IP=127.0.0.3 MISMATCH_IP=127.0.0.4 UNSIGNED_IP=127.0.0.5
readonly POLICY_IP=127.0.0.6 POLICY_IP6=::1 HOSTILE_POLICY_IP=127.0.0.7
# Every domain with an MTA-STS policy host; the policy host certificate names each
# mta-sts.<domain> but badcert.test's.
readonly STS_DOMAINS=(good four sts certname testing none maxage redirect ctype badid)
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
    DNS_PORT=${DOMAIN_DNS_PORT:-20053}
    [[ $DNS_PORT =~ ^[0-9]{4,5}$ ]] || die "DOMAIN_DNS_PORT must be a port number (got '$DNS_PORT')"
    TLS_DIR=$DIR/tls
    KNOT_DIR=$DIR/knot
    PF_DIR=$DIR/postfix
    PF_CONF=$PF_DIR/conf
    MAILLOG=$PF_DIR/maillog
    NGINX_DIR=$DIR/nginx
    # What changed since the last start, each server restarted only for its own.
    CHANGED_KNOT=0 CHANGED_POSTFIX=0 CHANGED_NGINX=0
}

install_packages() {
    have_packages "${PACKAGES[@]}" && return 0
    [[ $(id -u) -eq 0 ]] || die "Knot, Postfix and nginx are not installed and installing them needs root"
    command -v apt-get >/dev/null || die "Knot, Postfix and nginx are not installed and apt-get is unavailable"
    mkdir -p "$DIR"
    log "installing ${PACKAGES[*]} (log: $DIR/install.log)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # The packages' own services stay stopped (nginx's would listen on port 80 of every
    # interface): only the instances below run. policy-rc.d is Debian's switch for that.
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

# install_file DEST MODE SERVER: stdin to DEST, keeping the old file when unchanged; notes a
# change for SERVER (knot, postfix, nginx, or none when the file is read at every use).
install_file() {
    local dest=$1 mode=$2 server=$3 tmp="$1.new"
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 0
    fi
    touch -d "@$(($(date +%s) - 10))" "$tmp"
    mv -f "$tmp" "$dest"
    changed "$server"
}

# changed SERVER...: SERVER must restart to see its new configuration.
changed() {
    local server
    for server in "$@"; do
        case $server in
        knot) CHANGED_KNOT=1 ;;
        postfix) CHANGED_POSTFIX=1 ;;
        nginx) CHANGED_NGINX=1 ;;
        none) ;;
        *) die "unknown server $server" ;;
        esac
    done
}

# ---------------------------------------------------------------- certificates

spki_sha256() { openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
key_spki_sha256() { openssl pkey -in "$1" -pubout -outform DER | sha256sum | cut -d' ' -f1; }
cert_sha256() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }

# leaf NAME SAN...: a P-256 key and a leaf from the test CA, valid ten years.
leaf() {
    local name=$1 san
    shift
    san=$(printf 'DNS:%s,' "$@")
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TLS_DIR/$name.key" -subj "/CN=$1" -out "$TLS_DIR/$name.csr"
    openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 3650 -sha256 -out "$TLS_DIR/$name.pem" -extfile <(printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=${san%,}")
    # Postfix reads the key, then the leaf, then the chain up to and including the CA:
    # DANE-TA(2) needs the anchor in the chain (RFC 7672 §3.1.2).
    cat "$TLS_DIR/$name.key" "$TLS_DIR/$name.pem" "$TLS_DIR/ca.pem" >"$TLS_DIR/$name.chain"
    chmod 600 "$TLS_DIR/$name.chain" "$TLS_DIR/$name.key"
}

generate_certs() {
    if [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/unsigned.chain && -s $TLS_DIR/next.key ]] &&
        openssl x509 -noout -checkend 604800 -in "$TLS_DIR/ca.pem" >/dev/null; then
        policy_certs
        return 0
    fi
    log "generating the test CA and the MX certificates in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    (
        umask 077
        exec 2>>"$TLS_DIR/openssl.log" >&2
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$TLS_DIR/ca.key" -subj "/O=smtptui tests/CN=smtptui domain test CA" \
            -days 3650 -sha256 -out "$TLS_DIR/ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        leaf mx1 mx1.good.test nomx.test mx.renewal.test
        leaf mx2 mx2.good.test
        leaf mismatch mx.mismatch.test
        leaf unsigned mx.unsigned.test
        # The next key of mx1: published ahead (the rollover record), and the key
        # mismatch.test's TLSA names instead of the one its server presents.
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/next.key"
    ) || die "certificate generation failed (see $TLS_DIR/openssl.log)" "$TLS_DIR/openssl.log"
    chmod 755 "$TLS_DIR"
    chmod 644 "$TLS_DIR"/*.pem
    changed knot postfix nginx
    policy_certs
}

# The MTA-STS policy hosts' certificates, from the same CA: one naming every
# mta-sts.<domain> of STS_DOMAINS, and one for www.badcert.test that nginx presents for
# mta-sts.badcert.test. Made when missing or when the names changed; the MX certificates
# stay as they are.
policy_certs() {
    local names=() d
    for d in "${STS_DOMAINS[@]}"; do
        names+=("mta-sts.$d.test")
    done
    [[ -s $TLS_DIR/sts.fullchain && -s $TLS_DIR/badcert.fullchain &&
        $(cat "$TLS_DIR/sts.names" 2>/dev/null) == "${names[*]}" ]] && return 0
    log "generating the MTA-STS policy hosts' certificates in $TLS_DIR"
    (
        umask 077
        exec 2>>"$TLS_DIR/openssl.log" >&2
        leaf sts "${names[@]}"
        leaf badcert www.badcert.test
        # nginx reads the leaf and its chain from one file, the key from another.
        cat "$TLS_DIR/sts.pem" "$TLS_DIR/ca.pem" >"$TLS_DIR/sts.fullchain"
        cat "$TLS_DIR/badcert.pem" "$TLS_DIR/ca.pem" >"$TLS_DIR/badcert.fullchain"
    ) || die "certificate generation failed (see $TLS_DIR/openssl.log)" "$TLS_DIR/openssl.log"
    printf '%s\n' "${names[*]}" >"$TLS_DIR/sts.names"
    chmod 644 "$TLS_DIR"/*.pem
    changed nginx
}

# ---------------------------------------------------------------- Knot

knot_conf() {
    install_file "$KNOT_DIR/knot.conf" 644 knot <<EOF
# Generated by scripts/domain-env.sh on every start.
server:
    rundir: $KNOT_DIR/run
    listen: $DNS_HOST@$DNS_PORT
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
  - domain: .
    file: $KNOT_DIR/zones/root.zone
    dnssec-signing: on
    dnssec-policy: fixed
  - domain: test.
    file: $KNOT_DIR/zones/test.zone
    dnssec-signing: on
    dnssec-policy: fixed
  - domain: bogus.test.
    file: $KNOT_DIR/zones/bogus.test.zone
    dnssec-signing: on
    dnssec-policy: fixed
  - domain: unsigned.test.
    file: $KNOT_DIR/zones/unsigned.test.zone
EOF
}

knot_keys() {
    local zone
    for zone in . test. bogus.test.; do
        if [[ -z $(keymgr -c "$KNOT_DIR/knot.conf" "$zone" list 2>/dev/null) ]]; then
            keymgr -c "$KNOT_DIR/knot.conf" "$zone" generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >/dev/null ||
                die "keymgr could not generate the key of $zone"
            changed knot
        fi
    done
}

# ---------------------------------------------------------------- MTA-STS policies

# policy DOMAIN: stdin is DOMAIN's policy file; writes it where nginx serves it and prints
# the id its TXT record gives (the start of its SHA-256: a new policy, a new id).
policy() {
    install_file "$NGINX_DIR/www/$1.txt" 644 none
    sha256sum <"$NGINX_DIR/www/$1.txt" | cut -c1-20
}

# The policy files, and the test zone's MTA-STS and TLS-RPT records (in STS_RECORDS).
policies() {
    mkdir -p "$NGINX_DIR/www"
    chmod 755 "$NGINX_DIR" "$NGINX_DIR/www"
    local id d
    STS_RECORDS=""
    # sts_domain NAME ID: the TXT record and the policy host's address.
    sts_domain() {
        STS_RECORDS+="_mta-sts.$1 TXT \"v=STSv1; id=$2\""$'\n'
        STS_RECORDS+="mta-sts.$1 A $POLICY_IP"$'\n'
    }
    id=$(printf 'version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 604800\n' | policy good)
    sts_domain good "$id"
    STS_RECORDS+="mta-sts.good AAAA $POLICY_IP6"$'\n'
    STS_RECORDS+='_smtp._tls.good TXT "v=TLSRPTv1; rua=mailto:tls-reports@good.test"'$'\n'
    # CRLF line ends, as RFC 8461 §3.2 describes the file.
    id=$(printf 'version: STSv1\r\nmode: enforce\r\nmx: *.good.test\r\nmx: mx.mismatch.test\r\nmx: mx.unsigned.test\r\nmax_age: 604800\r\n' |
        policy four)
    sts_domain four "$id"
    STS_RECORDS+='_smtp._tls.four TXT "v=TLSRPTv1;rua=https://reports.four.test/tlsrpt"'$'\n'
    id=$(printf 'version: STSv1\nmode: enforce\nmx: mx1.good.test\nmx: *.test\nmax_age: 3600\n' | policy sts)
    sts_domain sts "$id"
    id=$(printf 'version: STSv1\nmode: enforce\nmx: mail.certname.test\nmax_age: 604800\n' | policy certname)
    sts_domain certname "$id"
    id=$(printf 'version: STSv1\nmode: testing\nmx: mx1.good.test\nmax_age: 86400\n' | policy testing)
    # Its policy host has an IPv6 address only.
    STS_RECORDS+="_mta-sts.testing TXT \"v=STSv1; id=$id\""$'\n'"mta-sts.testing AAAA $POLICY_IP6"$'\n'
    STS_RECORDS+='_smtp._tls.testing TXT "v=TLSRPTv1; rua=tls-reports@testing.test"'$'\n'
    id=$(printf 'version: STSv1\nmode: none\nmax_age: 86400\n' | policy none)
    sts_domain none "$id"
    id=$(printf 'version: STSv1\nmode: enforce\nmx: mx1.good.test\nmax_age: 31557601\n' | policy maxage)
    sts_domain maxage "$id"
    # A good policy behind each broken way of serving it.
    id=$(printf 'version: STSv1\nmode: enforce\nmx: mx1.good.test\nmax_age: 604800\n' | policy mx1only)
    for d in badcert redirect ctype; do
        sts_domain "$d" "$id"
    done
    # An ISO date is a common id, and not a valid one: letters and digits only (RFC 8461 §3.1).
    sts_domain badid 2026-05-01
    STS_RECORDS+="_mta-sts.hostile TXT \"v=STSv1; id=hostile1\""$'\n'
    STS_RECORDS+="mta-sts.hostile A $HOSTILE_POLICY_IP"$'\n'
}

# ---------------------------------------------------------------- DNS zones

zones() {
    local km=(keymgr -c "$KNOT_DIR/knot.conf") ds_test ds_bogus mx1 next ca mx1cert
    ds_test=$("${km[@]}" test. ds | awk '$5 == 2')
    [[ -n $ds_test ]] || die "keymgr gave no SHA-256 DS record for test."

    # The digest of bogus.test.'s own key, with its last digit changed: the chain breaks.
    # keymgr prints `NAME DS TAG ALGORITHM DIGEST-TYPE DIGEST`.
    ds_bogus=$("${km[@]}" bogus.test. ds | awk '$5 == 2 { d = $6; l = substr(d, length(d)); \
        $6 = substr(d, 1, length(d) - 1) (l == "0" ? "1" : "0"); print }')
    mx1=$(spki_sha256 "$TLS_DIR/mx1.pem")
    next=$(key_spki_sha256 "$TLS_DIR/next.key")
    ca=$(spki_sha256 "$TLS_DIR/ca.pem")
    mx1cert=$(cert_sha256 "$TLS_DIR/mx1.pem")
    MX1_TLSA="3 1 1 $mx1"
    install_file "$KNOT_DIR/zones/root.zone" 644 knot <<EOF
\$TTL 300
. SOA ns.test. hostmaster.test. 1 3600 600 86400 300
. NS ns.test.
test. NS ns.test.
ns.test. A $DNS_HOST
$ds_test
EOF
    install_file "$KNOT_DIR/zones/test.zone" 644 knot <<EOF
\$TTL 300
\$ORIGIN test.
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
ns A $DNS_HOST
good MX 10 mx1.good
good MX 20 mx2.good
mx1.good A $MX1_IP
mx1.good AAAA $MX1_IP6
_25._tcp.mx1.good TLSA 3 1 1 $mx1
_25._tcp.mx1.good TLSA 3 1 1 $next
mx2.good A $MX2_IP
_25._tcp.mx2.good TLSA 2 1 1 $ca
mismatch MX 10 mx.mismatch
mx.mismatch A $MISMATCH_IP
_25._tcp.mx.mismatch TLSA 3 1 1 $next
unsigned NS ns.unsigned
ns.unsigned A $DNS_HOST
nullmx MX 0 .
nomx A $MX1_IP
renewal MX 10 mx.renewal
mx.renewal A $MX1_IP
_25._tcp.mx.renewal TLSA 3 0 1 $mx1cert
four MX 10 mx1.good
four MX 20 mx2.good
four MX 30 mx.mismatch
four MX 40 mx.unsigned
bogus NS ns.bogus
ns.bogus A $DNS_HOST
$ds_bogus
sts MX 10 mx1.good
sts MX 20 mx.unsigned
certname MX 10 mail.certname
mail.certname A $MX2_IP
testing MX 10 mx1.good
testing MX 20 mx2.good
none MX 10 mx1.good
maxage MX 10 mx1.good
badcert MX 10 mx1.good
redirect MX 10 mx1.good
ctype MX 10 mx1.good
badid MX 10 mx1.good
hostile MX 10 mx1.good
$STS_RECORDS
EOF
    install_file "$KNOT_DIR/zones/unsigned.test.zone" 644 knot <<EOF
\$TTL 300
\$ORIGIN unsigned.test.
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
ns A $DNS_HOST
@ MX 10 mx
mx A $UNSIGNED_IP
EOF
    install_file "$KNOT_DIR/zones/bogus.test.zone" 644 knot <<EOF
\$TTL 300
\$ORIGIN bogus.test.
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
ns A $DNS_HOST
@ MX 10 mx
mx A $MX1_IP
EOF
    "${km[@]}" . dnskey | sed 's/ DNSKEY / IN DNSKEY /' >"$DIR/root.key.new"
    echo >>"$DIR/root.key.new"
    mv -f "$DIR/root.key.new" "$DIR/root.key"
}

knot_pid() {
    local pid
    [[ -r $KNOT_DIR/run/knot.pid ]] || return 1
    pid=$(tr -dc 0-9 <"$KNOT_DIR/run/knot.pid")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == knotd ]] || return 1
    echo "$pid"
}

knot_answers() {
    command -v kdig >/dev/null || { timeout 2 knotc -c "$KNOT_DIR/knot.conf" zone-status test. >/dev/null 2>&1; return; }
    # Not piped into grep -q: under pipefail, kdig killed by SIGPIPE would read as no answer.
    [[ $(kdig @"$DNS_HOST" -p "$DNS_PORT" +time=1 +retry=0 good.test MX 2>/dev/null) == *'status: NOERROR'* ]]
}

stop_knot() {
    knot_pid >/dev/null || return 0
    knotc -c "$KNOT_DIR/knot.conf" stop >/dev/null 2>&1 || kill "$(knot_pid)" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        knot_pid >/dev/null || return 0
        sleep 0.1
    done
}

start_knot() {
    mkdir -p "$KNOT_DIR/run" "$KNOT_DIR/db"
    knotd -c "$KNOT_DIR/knot.conf" -d 9>&- || die "knotd could not start" "$KNOT_DIR/knot.log"
    local i
    for ((i = 0; i < 100; i++)); do
        if knotc -c "$KNOT_DIR/knot.conf" zone-status bogus.test. 2>/dev/null | grep -q 'serial: 1' &&
            knotc -c "$KNOT_DIR/knot.conf" zone-status test. 2>/dev/null | grep -q 'serial: 1'; then
            return 0
        fi
        sleep 0.1
    done
    die "Knot did not load the zones within 10 s" "$KNOT_DIR/knot.log"
}

# ---------------------------------------------------------------- Postfix

postfix_conf() {
    postfix_instance_dirs "$PF_CONF" "$PF_DIR/queue" "$PF_DIR/data" "$MAILLOG"
    chmod 755 "$DIR" "$PF_DIR"
    install_file "$PF_CONF/main.cf" 644 postfix <<EOF
# Generated by scripts/domain-env.sh on every start.
compatibility_level = 3.6
config_directory = $PF_CONF
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
multi_instance_name = smtptui-domain
syslog_name = postfix-smtptui-domain
maillog_file = $MAILLOG
maillog_file_prefixes = /var, /dev/stdout, $PF_DIR
# The listeners in master.cf name their addresses; Postfix checks inet_interfaces against
# the configured interfaces, where 127.0.0.2 and up are not listed.
inet_interfaces = all
inet_protocols = all
myhostname = mx.test
mydestination = good.test, mismatch.test, unsigned.test, four.test, nomx.test, renewal.test, bogus.test
mynetworks =
relay_domains =
smtpd_relay_restrictions = reject_unauth_destination
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:
default_transport = discard:
smtputf8_enable = no
biff = no
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0s
smtpd_tls_security_level = may
smtpd_sasl_auth_enable = no
EOF
    install_file "$PF_CONF/master.cf" 644 postfix <<EOF
# Generated by scripts/domain-env.sh on every start. One MX host per address, port 25.
$MX1_IP:25 inet n - n - - smtpd
  -o smtpd_tls_chain_files=$TLS_DIR/mx1.chain
[$MX1_IP6]:25 inet n - n - - smtpd
  -o smtpd_tls_chain_files=$TLS_DIR/mx1.chain
$MX2_IP:25 inet n - n - - smtpd
  -o smtpd_tls_chain_files=$TLS_DIR/mx2.chain
$MISMATCH_IP:25 inet n - n - - smtpd
  -o smtpd_tls_chain_files=$TLS_DIR/mismatch.chain
$UNSIGNED_IP:25 inet n - n - - smtpd
  -o smtpd_tls_chain_files=$TLS_DIR/unsigned.chain
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
EOF
}

postfix_pid() {
    local pid
    [[ -r $PF_DIR/queue/pid/master.pid ]] || return 1
    pid=$(tr -dc 0-9 <"$PF_DIR/queue/pid/master.pid")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == master ]] || return 1
    [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    echo "$pid"
}

banner() { (exec 3<>"/dev/tcp/$1/25" && IFS= read -r -t 5 line <&3 && printf 'QUIT\r\n' >&3 && [[ $line == 220* ]]) 2>/dev/null; }

all_banners() {
    local ip
    for ip in "$MX1_IP" "$MX2_IP" "$MISMATCH_IP" "$UNSIGNED_IP" "$MX1_IP6"; do
        banner "$ip" || return 1
    done
}

stop_postfix() {
    local pid i
    pid=$(postfix_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        ps -eo pgid=,stat= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }' || return 0
        sleep 0.05
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}

start_postfix() {
    local out i
    if ! out=$(postfix -c "$PF_CONF" start 2>&1 9>&-); then
        printf '%s\n' "$out" >"$DIR/start-failure.log"
        tail -n 20 "$MAILLOG" >>"$DIR/start-failure.log" 2>/dev/null || true
        die "postfix -c $PF_CONF start failed" "$DIR/start-failure.log"
    fi
    for ((i = 0; i < 100; i++)); do
        all_banners && return 0
        sleep 0.2
    done
    tail -n 20 "$MAILLOG" >"$DIR/start-failure.log" 2>/dev/null || true
    stop_postfix
    die "the MX listeners gave no 220 banner within 20 s" "$DIR/start-failure.log"
}

# ---------------------------------------------------------------- nginx

# server_block DOMAIN POLICY [CERT] [LOCATION...]: the HTTPS server of mta-sts.DOMAIN.test,
# serving POLICY's file as text/plain (or as LOCATION says) with the certificate CERT (sts).
server_block() {
    local domain=$1 policy=$2 cert=${3:-sts}
    shift 3 2>/dev/null || shift $#
    local location=("$@")
    if [[ ${#location[@]} -eq 0 ]]; then
        location=("types { }" "default_type text/plain;" "alias $NGINX_DIR/www/$policy.txt;")
    fi
    printf '    server {\n'
    printf '        listen %s:443 ssl;\n        listen [%s]:443 ssl;\n' "$POLICY_IP" "$POLICY_IP6"
    printf '        server_name mta-sts.%s.test;\n' "$domain"
    printf '        ssl_certificate %s;\n        ssl_certificate_key %s;\n' \
        "$TLS_DIR/$cert.fullchain" "$TLS_DIR/$cert.key"
    printf '        location = /.well-known/mta-sts.txt {\n'
    printf '            %s\n' "${location[@]}"
    printf '        }\n    }\n'
}

nginx_conf() {
    mkdir -p "$NGINX_DIR/tmp"
    {
        cat <<EOF
# Generated by scripts/domain-env.sh on every start: the MTA-STS policy hosts.
daemon on;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events {
    worker_connections 64;
}
http {
    access_log $NGINX_DIR/access.log;
    client_body_temp_path $NGINX_DIR/tmp/body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;
    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
    default_type application/octet-stream;
    # Any other name: nothing to serve.
    server {
        listen $POLICY_IP:443 ssl default_server;
        listen [$POLICY_IP6]:443 ssl default_server;
        ssl_certificate $TLS_DIR/sts.fullchain;
        ssl_certificate_key $TLS_DIR/sts.key;
        return 404;
    }
EOF
        local d
        for d in good four sts certname testing none maxage; do
            server_block "$d" "$d"
        done
        server_block badid mx1only
        # The certificate of the web site, not of the policy host.
        server_block badcert mx1only badcert
        # Redirects are not followed (RFC 8461 §3.3), even to a good policy.
        server_block redirect mx1only sts "return 301 https://mta-sts.good.test/.well-known/mta-sts.txt;"
        # RFC 8461 §3.2 wants text/plain.
        server_block ctype mx1only sts "types { }" "default_type text/html;" \
            "alias $NGINX_DIR/www/mx1only.txt;"
        echo "}"
    } | install_file "$NGINX_DIR/nginx.conf" 644 nginx
}

nginx_cmd() { nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" "$@"; }

nginx_pid() {
    local pid
    [[ -r $NGINX_DIR/nginx.pid ]] || return 1
    pid=$(tr -dc 0-9 <"$NGINX_DIR/nginx.pid")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == nginx ]] || return 1
    echo "$pid"
}

# Both listeners accept connections.
nginx_answers() {
    (exec 3<>"/dev/tcp/$POLICY_IP/443") 2>/dev/null && (exec 3<>"/dev/tcp/$POLICY_IP6/443") 2>/dev/null
}

stop_nginx() {
    local pid i
    pid=$(nginx_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        nginx_pid >/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
}

start_nginx() {
    local out i
    if ! out=$(nginx_cmd -t 2>&1); then
        printf '%s\n' "$out" >"$DIR/start-failure.log"
        die "nginx rejects $NGINX_DIR/nginx.conf" "$DIR/start-failure.log"
    fi
    nginx_cmd 9>&- 2>>"$NGINX_DIR/error.log" || die "nginx could not start" "$NGINX_DIR/error.log"
    for ((i = 0; i < 100; i++)); do
        nginx_pid >/dev/null && nginx_answers && return 0
        sleep 0.1
    done
    die "nginx did not listen on $POLICY_IP:443 and [$POLICY_IP6]:443 within 10 s" "$NGINX_DIR/error.log"
}

write_env() {
    {
        printf '%s=%s\n' \
            DNS_RESOLVER "$DNS_HOST:$DNS_PORT" \
            TRUST_ANCHOR "$DIR/root.key" \
            CA_FILE "$TLS_DIR/ca.pem" \
            MX1_IP "$MX1_IP" MX1_IP6 "$MX1_IP6" MX2_IP "$MX2_IP" \
            MISMATCH_IP "$MISMATCH_IP" UNSIGNED_IP "$UNSIGNED_IP" \
            MX1_TLSA "$MX1_TLSA" \
            POLICY_IP "$POLICY_IP" POLICY_IP6 "$POLICY_IP6" HOSTILE_POLICY_IP "$HOSTILE_POLICY_IP" \
            MAILLOG "$MAILLOG" \
            KNOT_LOG "$KNOT_DIR/knot.log" \
            NGINX_LOG "$NGINX_DIR/error.log"
    } >"$DIR/env.tmp"
    mv -f "$DIR/env.tmp" "$DIR/env"
}

cmd_start() {
    mkdir -p "$DIR" "$KNOT_DIR/zones" "$KNOT_DIR/run" "$KNOT_DIR/db" "$NGINX_DIR"
    install_packages
    generate_certs
    knot_conf
    knot_keys
    policies
    zones
    register_postfix_instance "$PF_CONF"
    postfix_conf
    nginx_conf
    # Each server is restarted only when its own configuration changed or it is not up, so
    # runs that share this directory keep the others as they are.
    local kept=() started=()
    if ((CHANGED_KNOT == 0)) && knot_pid >/dev/null && knot_answers; then
        kept+=(Knot)
    else
        rm -f "$DIR/env"
        stop_knot
        start_knot
        started+=("Knot on $DNS_HOST:$DNS_PORT")
    fi
    if ((CHANGED_POSTFIX == 0)) && postfix_pid >/dev/null && all_banners; then
        kept+=("the MX listeners")
    else
        rm -f "$DIR/env"
        stop_postfix
        start_postfix
        started+=("MX listeners on $MX1_IP $MX2_IP $MISMATCH_IP $UNSIGNED_IP [$MX1_IP6] port 25")
    fi
    if ((CHANGED_NGINX == 0)) && nginx_pid >/dev/null && nginx_answers; then
        kept+=(nginx)
    else
        rm -f "$DIR/env"
        stop_nginx
        start_nginx
        started+=("nginx on $POLICY_IP and [$POLICY_IP6] port 443")
    fi
    write_env
    ((${#kept[@]} == 0)) || log "already up with this configuration: $(printf '%s; ' "${kept[@]}")"
    ((${#started[@]} == 0)) || log "started: $(printf '%s; ' "${started[@]}")"
    log "env: $DIR/env"
}

cmd_stop() {
    if [[ -d $DIR ]]; then
        command -v knotc >/dev/null && stop_knot
        command -v postfix >/dev/null && stop_postfix
        command -v nginx >/dev/null && stop_nginx
    fi
    rm -f "$DIR/env"
}

main() {
    parse_args "$@"
    take_lock domain
    "cmd_$ACTION"
}

main "$@"
