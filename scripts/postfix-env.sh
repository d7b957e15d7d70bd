#!/usr/bin/env bash
# postfix-env.sh: run a throw-away, loopback-only Postfix for smtptui's
# integration tests.
#
#   scripts/postfix-env.sh start DIR   install (if needed), configure, start; an
#                                      instance already running with the same
#                                      configuration is kept, not restarted
#   scripts/postfix-env.sh stop  DIR   stop the instance (no error if not running)
#
# DIR must be an absolute path. Everything the instance needs lives in it:
#   DIR/conf/                    instance config_directory: main.cf, master.cf
#                                (rewritten on every start). Kept apart from the
#                                queue because Postfix wants its config tree
#                                entirely root-owned.
#   DIR/tls/                     test CA + leaf certificates (kept once generated)
#   DIR/conf/sasl/               Cyrus SASL config (smtpd.conf) + sasldb2
#   DIR/password                 the SASL password (mode 600, kept once generated)
#   DIR/queue/, DIR/data/        Postfix queue and data directories
#   DIR/maillog                  Postfix log (there is no syslog daemon)
#   DIR/env                      sourceable KEY=value lines, written last
#                                (removed by stop and at the beginning of start)
#
# DIR/env keys:
#   POSTFIX_DIR         DIR itself
#   POSTFIX_CONFIG_DIR  the instance's config_directory (for postfix -c / postconf -c)
#   SMTP_HOST           127.0.0.1 (every listener)
#   TLS_SERVER_NAME     localhost: the name the good certificate is valid for
#                       (its SAN also has IP:127.0.0.1)
#   SUBMISSION_PORT     STARTTLS required (530 to MAIL before it), AUTH only after
#                       TLS, relay (any domain) only when authenticated
#   IMPLICIT_PORT       TLS from the first byte (port-465 style), AUTH, relay if authenticated
#   MX_PORT             STARTTLS optional, no AUTH, accepts *@lab.test, 554 relay denied otherwise
#   LEGACY_PORT         STARTTLS optional, AUTH PLAIN/LOGIN offered and accepted in cleartext
#   NOTLS_PORT          no STARTTLS at all (smtpd_tls_security_level=none), AUTH offered and
#                       accepted in cleartext: what a client meets behind a STARTTLS stripper
#   BROKENTLS_PORT      like LEGACY_PORT, but without a server certificate, so STARTTLS is
#                       offered and refused with 454 (Postfix's answer when TLS cannot start)
#   OPTIONAL_PORT       STARTTLS optional, AUTH offered only after TLS (smtpd_tls_auth_only=yes),
#                       mail accepted without TLS
#   EXPIRED_PORT        like MX_PORT, certificate expired 2020-02-01 (same CA, right name)
#   WRONGNAME_PORT      like MX_PORT, certificate only for WRONG_NAME (same CA)
#   WRONG_NAME          wrong.example
#   SMUGGLE_OPEN_PORT   like MX_PORT, smtpd_forbid_bare_newline=no: a dot line next to a bare
#                       LF ends the message (SMTP smuggling's receiving side)
#   SMUGGLE_STRICT_PORT like MX_PORT, smtpd_forbid_bare_newline=yes (an alias of normalize from
#                       3.7.10) with smtpd_forbid_bare_newline_exclusions empty, so loopback
#                       clients are not exempt: only <CR><LF>.<CR><LF> ends the message
#   SMUGGLE_REJECT_PORT like SMUGGLE_STRICT_PORT, smtpd_forbid_bare_newline=reject: a message
#                       with a bare LF is refused (550)
#   CA_FILE             PEM of the test CA that signed all server certificates
#   SMTP_USER           SASL login name (alice@lab.test)
#   PASSWORD_FILE       file holding the SASL password: 32 hex characters, no
#                       trailing newline, mode 600
#   MAIL_DOMAIN         lab.test, the only local (accepted) domain
#   MAILLOG             Postfix log file
#   EXTENSIONS_PORT     MX-style (no AUTH, mail for lab.test only) with SMTPUTF8 on and a
#                       message_size_limit of EXTENSIONS_SIZE_LIMIT bytes; every accepted
#                       message is put on hold instead of discarded, so a test can read it
#                       back (postcat -c POSTFIX_CONFIG_DIR -q ID) and delete it (postsuper -d)
#   EXTENSIONS_SIZE_LIMIT   that listener's message_size_limit
#   CCERT_PORT          asks for a client certificate (smtpd_tls_ask_ccert=yes, checked against
#                       CA_FILE) and relays for the one whose SHA-256 fingerprint is listed in
#                       relay_clientcerts (permit_tls_clientcerts); no AUTH; the certificate's
#                       subject and fingerprint are logged to MAILLOG
#   CLIENT_CERT, CLIENT_KEY   that client certificate (CN client.lab.test, same CA) and its key
#                       (mode 600)
#   CLIENT_FINGERPRINT  its SHA-256 fingerprint as Postfix writes it (AB:CD:...)
#   CRAM_PORT           like SUBMISSION_PORT (STARTTLS required, AUTH only inside TLS), with
#                       CRAM-MD5 enabled too (its own Cyrus configuration, smtpd-cram.conf:
#                       PLAIN LOGIN CRAM-MD5), against the same sasldb account
#   PROXY_PORT          MX-style behind a load balancer: every connection must begin with a
#                       HAProxy PROXY header (v1 or v2), whose source address Postfix takes as
#                       the client's (smtpd_upstream_proxy_protocol=haproxy)
#   XCLIENT_PORT        MX-style, with XCLIENT and XFORWARD authorized for 127.0.0.0/8, and
#                       the client address XCLIENT_REJECTED_ADDR refused at RCPT (so a test
#                       sees XCLIENT change the server's idea of the client)
#   XCLIENT_REJECTED_ADDR   192.0.2.66
#
# Ports are POSTFIX_BASE_PORT (default 20000) + the conventional port number:
#   MX 25, EXPIRED 26, WRONGNAME 27, SMUGGLE_OPEN 28, SMUGGLE_STRICT 29, SMUGGLE_REJECT 30,
#   IMPLICIT 465, SUBMISSION 587, LEGACY 588, NOTLS 589, BROKENTLS 590, OPTIONAL 591,
#   EXTENSIONS 592, CCERT 600, CRAM 601, PROXY 610, XCLIENT 611.
#
# Accepted mail is handed to Postfix's discard transport: nothing is delivered,
# no DNS is consulted, nothing leaves 127.0.0.1.

set -euo pipefail

readonly PROG=postfix-env
# shellcheck source=scripts/env-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/env-common.sh"
readonly MAIL_DOMAIN=lab.test
readonly SASL_USER=alice
readonly SMTP_USER="${SASL_USER}@${MAIL_DOMAIN}"
readonly GOOD_NAME=localhost
readonly WRONG_NAME=wrong.example
readonly HOST=127.0.0.1
readonly BANNER_TIMEOUT=20 # seconds to wait for all listeners
readonly DEFAULT_CONFIG_DIR=/etc/postfix
readonly EXTENSIONS_SIZE_LIMIT=1000000
readonly XCLIENT_REJECTED_ADDR=192.0.2.66
# swaks needs Net::SSLeay (only a Recommends) for --tls; the other recommends
# (python3, ...) are skipped to keep the one-time install small.
readonly PACKAGES=(postfix sasl2-bin libsasl2-modules swaks libnet-ssleay-perl openssl)



# ---------------------------------------------------------------- arguments

parse_args() {
    [[ $# -eq 2 ]] || usage
    ACTION=$1
    DIR=$2
    [[ $ACTION == start || $ACTION == stop ]] || usage
    [[ $DIR == /* ]] || die "DIR must be an absolute path (got '$DIR')"
    # Postfix compares config directories textually; normalise "//" and a
    # trailing "/" so alternate_config_directories matches what we pass to -c.
    DIR=$(realpath -m -- "$DIR")
    [[ $DIR != "$DEFAULT_CONFIG_DIR" && $DIR != / ]] || die "refusing to use $DIR as DIR"
    # Postfix parameter lists split on whitespace and commas, and DIR/env must
    # stay trivially parseable (no quoting), so keep DIR to plain characters.
    [[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain A-Z a-z 0-9 . _ / + - (got '$DIR')"

    local base=${POSTFIX_BASE_PORT:-20000}
    if ! [[ $base =~ ^[0-9]{4,5}$ ]] || ((10#$base < 1024 || 10#$base + 611 > 65535)); then
        die "POSTFIX_BASE_PORT must be a number in 1024..64924 (got '$base')"
    fi
    base=$((10#$base))
    MX_PORT=$((base + 25))
    EXPIRED_PORT=$((base + 26))
    WRONGNAME_PORT=$((base + 27))
    SMUGGLE_OPEN_PORT=$((base + 28))
    SMUGGLE_STRICT_PORT=$((base + 29))
    SMUGGLE_REJECT_PORT=$((base + 30))
    IMPLICIT_PORT=$((base + 465))
    SUBMISSION_PORT=$((base + 587))
    LEGACY_PORT=$((base + 588))
    NOTLS_PORT=$((base + 589))
    BROKENTLS_PORT=$((base + 590))
    OPTIONAL_PORT=$((base + 591))
    EXTENSIONS_PORT=$((base + 592))
    CCERT_PORT=$((base + 600))
    CRAM_PORT=$((base + 601))
    PROXY_PORT=$((base + 610))
    XCLIENT_PORT=$((base + 611))
    ALL_PORTS=("$SUBMISSION_PORT" "$IMPLICIT_PORT" "$MX_PORT" "$LEGACY_PORT" "$EXPIRED_PORT" "$WRONGNAME_PORT"
        "$NOTLS_PORT" "$BROKENTLS_PORT" "$OPTIONAL_PORT" "$EXTENSIONS_PORT" "$SMUGGLE_OPEN_PORT"
        "$SMUGGLE_STRICT_PORT" "$SMUGGLE_REJECT_PORT" "$CCERT_PORT" "$CRAM_PORT"
        "$PROXY_PORT" "$XCLIENT_PORT")

    CONF_DIR=$DIR/conf
    TLS_DIR=$DIR/tls
    # Debian's smtpd looked for "$config_directory/sasl/smtpd.conf" and ignored
    # cyrus_sasl_config_path (seen with strace), so the SASL files live there;
    # cyrus_sasl_config_path is set to the same place for other builds.
    SASL_DIR=$CONF_DIR/sasl
    SASLDB=$SASL_DIR/sasldb2
    PASSWORD_FILE=$DIR/password
    MAILLOG=$DIR/maillog
    QUEUE_DIR=$DIR/queue
    DATA_DIR=$DIR/data
    CA_FILE=$TLS_DIR/ca.pem
    CLIENT_CERT=$TLS_DIR/client.pem
    CLIENT_KEY=$TLS_DIR/client.key
}


# ---------------------------------------------------------------- install


install_packages() {
    have_packages "${PACKAGES[@]}" && return 0
    [[ $(id -u) -eq 0 ]] || die "Postfix is not installed and installing it needs root"
    command -v apt-get >/dev/null || die "Postfix is not installed and apt-get is unavailable"
    log "installing ${PACKAGES[*]} (log: $DIR/install.log)"
    # Without a preseed the postfix package asks which configuration to use.
    # "No configuration" leaves the default instance unconfigured and stopped.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=120 install --no-install-recommends "${PACKAGES[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$DIR/install.log" 2>&1; then
        # Most likely cause on a fresh machine: no package lists yet.
        DEBIAN_FRONTEND=noninteractive apt-get -q update >>"$DIR/install.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$DIR/install.log" 2>&1 ||
            die "apt-get install ${PACKAGES[*]} failed (see $DIR/install.log)" "$DIR/install.log"
    fi
    have_packages "${PACKAGES[@]}" || die "packages still missing after apt-get install (see $DIR/install.log)"
}

# ---------------------------------------------------------------- certificates

# OpenSSL 3.0 (Debian 12) cannot back-date with `openssl x509 -req` (no
# -not_before/-not_after before 3.4) and faketime is not available, so all
# leaves are issued with a minimal `openssl ca`, whose -startdate/-enddate can
# produce an already-expired certificate.
write_openssl_config() {
    cat >"$TLS_DIR/ca/openssl.cnf" <<EOF
[ ca ]
default_ca = test_ca

[ test_ca ]
dir              = $TLS_DIR/ca
database         = \$dir/index.txt
new_certs_dir    = \$dir/issued
serial           = \$dir/serial
certificate      = $TLS_DIR/ca.pem
private_key      = $TLS_DIR/ca.key
default_md       = sha256
policy           = policy_any
unique_subject   = no
copy_extensions  = none
email_in_dn      = no

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt             = no

[ req_dn ]
CN = unused

[ ca_ext ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
EOF
}

# issue_leaf NAME CN SAN [openssl-ca date options...]; the extended key usage is
# $EKU (default serverAuth).
issue_leaf() {
    local name=$1 cn=$2 san=$3 eku=${EKU:-serverAuth}
    shift 3
    local ext=$TLS_DIR/ca/$name.ext
    cat >"$ext" <<EOF
[ leaf_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = $eku
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName         = $san
EOF
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/$name.key"
    openssl req -new -config "$TLS_DIR/ca/openssl.cnf" -key "$TLS_DIR/$name.key" \
        -subj "/CN=$cn" -out "$TLS_DIR/ca/$name.csr"
    openssl ca -batch -notext -config "$TLS_DIR/ca/openssl.cnf" \
        -in "$TLS_DIR/ca/$name.csr" -out "$TLS_DIR/$name.pem" \
        -extfile "$ext" -extensions leaf_ext "$@"
}

certs_usable() {
    local f
    for f in ca good expired wrongname client; do
        [[ -s $TLS_DIR/$f.pem && -s $TLS_DIR/$f.key ]] || return 1
    done
    # Regenerate if the CA or the good leaf is about to expire (7 days).
    openssl x509 -noout -checkend 604800 -in "$TLS_DIR/ca.pem" >/dev/null &&
        openssl x509 -noout -checkend 604800 -in "$TLS_DIR/good.pem" >/dev/null
}

generate_certs() {
    certs_usable && return 0
    CONFIG_CHANGED=1
    log "generating test CA and certificates in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR/ca/issued"
    chmod 755 "$TLS_DIR"
    (
        umask 077 # private keys: root only (Postfix reads them as root before dropping privileges)
        exec 2>>"$TLS_DIR/ca/openssl.log"
        : >"$TLS_DIR/ca/index.txt"
        openssl rand -hex 16 >"$TLS_DIR/ca/serial"
        write_openssl_config
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/ca.key"
        openssl req -x509 -new -config "$TLS_DIR/ca/openssl.cnf" -extensions ca_ext \
            -key "$TLS_DIR/ca.key" -subj "/O=smtptui tests/CN=smtptui test CA" \
            -days 3650 -sha256 -out "$TLS_DIR/ca.pem"
        issue_leaf good "$GOOD_NAME" "DNS:$GOOD_NAME, IP:$HOST" -days 3650
        issue_leaf expired "$GOOD_NAME" "DNS:$GOOD_NAME, IP:$HOST" \
            -startdate 20200101000000Z -enddate 20200201000000Z
        issue_leaf wrongname "$WRONG_NAME" "DNS:$WRONG_NAME" -days 3650
        EKU=clientAuth issue_leaf client client.lab.test "DNS:client.lab.test" -days 3650
    ) || die "certificate generation failed (see $TLS_DIR/ca/openssl.log)" "$TLS_DIR/ca/openssl.log"
    chmod 644 "$TLS_DIR"/*.pem
}

# The client certificate's SHA-256 fingerprint, as Postfix logs and matches it.
client_fingerprint() {
    openssl x509 -noout -fingerprint -sha256 -in "$CLIENT_CERT" | sed 's/^.*=//'
}

# ---------------------------------------------------------------- SASL

setup_sasl() {
    mkdir -p "$SASL_DIR"
    chmod 755 "$SASL_DIR"
    local password=
    [[ -s $PASSWORD_FILE ]] && password=$(<"$PASSWORD_FILE")
    [[ -n $password ]] || password=$(openssl rand -hex 16)
    # Hex only (no quoting trouble anywhere) and no trailing newline, so a
    # test can use the file's bytes as they are.
    (umask 077 && printf '%s' "$password" >"$PASSWORD_FILE")
    chmod 600 "$PASSWORD_FILE"

    # smtpd reads <sasl dir>/smtpd.conf (the name comes from smtpd_sasl_path=smtpd).
    install_file "$SASL_DIR/smtpd.conf" 644 <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $SASLDB
EOF
    # The CRAM listener names this one (smtpd_sasl_path=smtpd-cram). CRAM-MD5 needs the
    # password itself on the server, which sasldb keeps.
    install_file "$SASL_DIR/smtpd-cram.conf" 644 <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN CRAM-MD5
sasldb_path: $SASLDB
EOF

    # (Re)set the password every start so the file and the database never
    # disagree. The account is stored as user "alice", realm "lab.test"; a
    # client logging in as "alice@lab.test" is split into exactly that.
    printf '%s\n' "$password" |
        saslpasswd2 -p -c -f "$SASLDB" -u "$MAIL_DOMAIN" "$SASL_USER" ||
        die "saslpasswd2 could not create the SASL account in $SASLDB"
    # smtpd runs as user postfix and must read the database.
    chown root:postfix "$SASLDB"
    chmod 640 "$SASLDB"
}

# ---------------------------------------------------------------- Postfix config

# Set to 1 when start changed anything a running instance has already read
# (main.cf, master.cf, the SASL configuration, the certificates): only then is
# the instance restarted.
CONFIG_CHANGED=0

# install_file DEST MODE: write stdin to DEST, but keep the old file (and its
# mtime) when the content is unchanged. A freshly written main.cf is
# back-dated by a few seconds: Postfix commands pause ~2 s when main.cf is
# younger than that (so running daemons can notice edits); we restart the
# whole instance anyway, so the pause is pure waste on every start.
install_file() {
    local dest=$1 mode=$2 tmp="$1.new"
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 0
    fi
    touch -d "@$(($(date +%s) - 10))" "$tmp"
    mv -f "$tmp" "$dest"
    CONFIG_CHANGED=1
}

write_main_cf() {
    install_file "$CONF_DIR/main.cf" 644 <<EOF
# Generated by scripts/postfix-env.sh on every start; edits are overwritten.
compatibility_level = 3.6
config_directory = $CONF_DIR
queue_directory = $QUEUE_DIR
data_directory = $DATA_DIR
multi_instance_name = smtptui
syslog_name = postfix-smtptui

# Logging without syslog: the postlog service in master.cf writes this file.
maillog_file = $MAILLOG
maillog_file_prefixes = /var, /dev/stdout, $DIR

# Loopback only, no DNS, no outside network.
inet_interfaces = $HOST
inet_protocols = ipv4
myhostname = $GOOD_NAME
mydomain = $MAIL_DOMAIN
myorigin = $MAIL_DOMAIN
smtputf8_enable = no
biff = no
smtpd_peername_lookup = no

# 127.0.0.1 must not be trusted for relaying: the MX-style listener has to
# answer "554 5.7.1 Relay access denied" to a loopback client.
mynetworks =
relay_domains =
smtpd_relay_restrictions = reject_unauth_destination

# Accept any recipient in lab.test and throw every message away.
mydestination = $MAIL_DOMAIN
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:
default_transport = discard:
relay_transport = discard:
virtual_transport = discard:

# Tests make deliberate protocol errors; do not slow them down.
smtpd_error_sleep_time = 0s

# TLS defaults (each listener overrides in master.cf).
smtpd_tls_chain_files = $TLS_DIR/good.key, $TLS_DIR/good.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes

# SASL (enabled per listener in master.cf).
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $SASL_DIR
smtpd_sasl_auth_enable = no
smtpd_sasl_local_domain =
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
broken_sasl_auth_clients = no
EOF
}

write_master_cf() {
    local good="$TLS_DIR/good.key,$TLS_DIR/good.pem"
    install_file "$CONF_DIR/master.cf" 644 <<EOF
# Generated by scripts/postfix-env.sh on every start; edits are overwritten.
# chroot (5th column) is "n" everywhere: the instance lives outside any chroot
# and smtpd must read $SASLDB directly.
#
# service type  private unpriv  chroot  wakeup  maxproc command + args

# SUBMISSION: STARTTLS required, AUTH only after TLS, relay only when authenticated.
$HOST:$SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/submission
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject

# IMPLICIT: the same, but TLS from the first byte (port-465 style).
$HOST:$IMPLICIT_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/implicit
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject

# MX: opportunistic TLS, no AUTH, accepts mail for $MAIL_DOMAIN only.
$HOST:$MX_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/mx
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination

# LEGACY: the unsafe submission setup: AUTH offered and accepted in cleartext.
$HOST:$LEGACY_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/legacy
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject

# NOTLS: no STARTTLS at all, AUTH in cleartext (what a STARTTLS stripper leaves).
$HOST:$NOTLS_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/notls
  -o smtpd_tls_security_level=none
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject

# BROKENTLS: like LEGACY, but with no server certificate while client
# certificates are asked for, Postfix cannot set up TLS: STARTTLS is offered
# and answered "454 4.7.0 TLS not available due to local problem".
$HOST:$BROKENTLS_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/brokentls
  -o smtpd_tls_chain_files=
  -o smtpd_tls_ask_ccert=yes
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject

# OPTIONAL: STARTTLS optional, AUTH only inside TLS, mail accepted without it.
$HOST:$OPTIONAL_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/optional
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination

# EXPIRED: MX-style, presents a leaf that expired in 2020 (same test CA).
$HOST:$EXPIRED_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/expired
  -o smtpd_tls_chain_files=$TLS_DIR/expired.key,$TLS_DIR/expired.pem
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination

# WRONGNAME: MX-style, presents a leaf for $WRONG_NAME only (same test CA).
$HOST:$WRONGNAME_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/wrongname
  -o smtpd_tls_chain_files=$TLS_DIR/wrongname.key,$TLS_DIR/wrongname.pem
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination

# EXTENSIONS: MX-style with SMTPUTF8 and a small message_size_limit; accepted
# messages are held (not discarded) so that tests can compare them byte for byte.
$HOST:$EXTENSIONS_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/extensions
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtputf8_enable=yes
  -o message_size_limit=$EXTENSIONS_SIZE_LIMIT
  -o smtpd_end_of_data_restrictions=check_client_access,static:HOLD

# SMUGGLE_OPEN: MX-style, a dot line next to a bare LF ends the message (SMTP smuggling).
$HOST:$SMUGGLE_OPEN_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/smuggle-open
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_forbid_bare_newline=no

# SMUGGLE_STRICT: MX-style, only <CR><LF>.<CR><LF> ends the message; the exclusions
# (default \$mynetworks, which would exempt loopback clients on most hosts) are emptied.
$HOST:$SMUGGLE_STRICT_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/smuggle-strict
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_forbid_bare_newline=yes
  -o smtpd_forbid_bare_newline_exclusions=

# SMUGGLE_REJECT: as SMUGGLE_STRICT, but a message with a bare LF is refused.
$HOST:$SMUGGLE_REJECT_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/smuggle-reject
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_forbid_bare_newline=reject
  -o smtpd_forbid_bare_newline_exclusions=

# CCERT: asks for a client certificate and relays for the one listed by fingerprint.
$HOST:$CCERT_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/ccert
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_tls_ask_ccert=yes
  -o smtpd_tls_CAfile=$CA_FILE
  -o smtpd_tls_fingerprint_digest=sha256
  -o smtpd_tls_loglevel=2
  -o relay_clientcerts=texthash:$CONF_DIR/relay_clientcerts
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=permit_tls_clientcerts,reject_unauth_destination

# CRAM: like SUBMISSION, with CRAM-MD5 offered as well (its own Cyrus configuration).
$HOST:$CRAM_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/cram
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_path=smtpd-cram
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject

# PROXY: MX-style behind a load balancer: each connection begins with a PROXY
# header (v1 or v2), and the address it claims is the client's.
$HOST:$PROXY_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/proxy
  -o smtpd_upstream_proxy_protocol=haproxy
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination

# XCLIENT: MX-style, XCLIENT and XFORWARD allowed from loopback; the client
# address $XCLIENT_REJECTED_ADDR (only reachable by XCLIENT) is refused at RCPT.
$HOST:$XCLIENT_PORT inet n - n - - smtpd
  -o syslog_name=postfix-smtptui/xclient
  -o smtpd_tls_chain_files=$good
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=no
  -o smtpd_authorized_xclient_hosts=127.0.0.0/8
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
  -o smtpd_client_restrictions=check_client_access,inline:{$XCLIENT_REJECTED_ADDR=REJECT}
  -o smtpd_relay_restrictions=reject_unauth_destination

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
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
local      unix  -       n       n       -       -       local
virtual    unix  -       n       n       -       -       virtual
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
# Needed because maillog_file is set and there is no syslog.
postlog    unix-dgram n  -       n       -       1       postlogd
EOF
}

prepare_dirs() {
    # The postfix user must be able to reach the queue and sasl directories.
    chmod 755 "$DIR"
    if ! runuser -u postfix -- test -x "$DIR" 2>/dev/null; then
        die "user postfix cannot traverse $DIR (check permissions of its parent directories)"
    fi
    postfix_instance_dirs "$CONF_DIR" "$QUEUE_DIR" "$DATA_DIR" "$MAILLOG"
}

# Set to 1 when main.cf itself changed: some of its settings (inet_interfaces, ...) need
# a restart, while everything else a running instance picks up with a reload.
MAIN_CF_CHANGED=0

configure_instance() {
    local changed_before=$CONFIG_CHANGED
    CONFIG_CHANGED=0
    write_main_cf
    MAIN_CF_CHANGED=$CONFIG_CHANGED
    write_master_cf
    printf '%s client.lab.test\n' "$(client_fingerprint)" | install_file "$CONF_DIR/relay_clientcerts" 644
    if ((changed_before)); then
        CONFIG_CHANGED=1
    fi
}

# ---------------------------------------------------------------- start/stop

# proc_alive PID: running and not a zombie. Zombies matter here: in some
# containers PID 1 never reaps orphans, so an exited master lingers as <defunct>.
proc_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # drop "pid (comm) ", comm may contain spaces
    [[ ${stat%% *} != Z ]]
}

master_pid() {
    local pidfile=$QUEUE_DIR/pid/master.pid pid
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc 0-9 <"$pidfile")
    [[ -n $pid ]] && proc_alive "$pid" || return 1
    # Guard against a recycled pid belonging to something else.
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == master ]] || return 1
    echo "$pid"
}

# group_alive PGID: any live (non-zombie) process left in the master's process
# group? The master is a session leader and all its daemons share its group.
group_alive() {
    ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

stop_instance() {
    local pid i
    pid=$(master_pid) || return 0
    log "stopping Postfix instance $DIR (master pid $pid)"
    # This is what `postfix stop` does, minus its whole-second polling: SIGTERM
    # makes the master stop its children and exit. Wait for the whole process
    # group: an smtpd that outlives the master still holds the listening
    # sockets, and the next start would find its ports busy.
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        group_alive "$pid" || return 0
        sleep 0.05
    done
    log "Postfix processes did not exit after SIGTERM; killing them"
    kill -KILL -- "-$pid" 2>/dev/null || true
    sleep 0.2
}

port_open() {
    # bash's /dev/tcp connect: refused at once when nobody listens.
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

check_ports_free() {
    local p
    for p in "${ALL_PORTS[@]}"; do
        if port_open "$p"; then
            die "port $HOST:$p is already in use (another program or another postfix-env DIR); choose another POSTFIX_BASE_PORT"
        fi
    done
}

# banner_ok PORT [implicit]: true when the listener sends a 220 greeting.
banner_ok() {
    local port=$1 mode=${2:-plain} line
    if [[ $mode == proxy ]]; then
        # A load balancer's PROXY header first: without it the server says nothing.
        line=$(
            exec 3<>"/dev/tcp/$HOST/$port" || exit 1
            printf 'PROXY TCP4 127.0.0.1 127.0.0.1 1024 %s\r\n' "$port" >&3
            IFS= read -r -t 5 reply <&3 || exit 1
            printf 'QUIT\r\n' >&3
            printf '%s' "$reply"
        ) 2>/dev/null || return 1
    elif [[ $mode == implicit ]]; then
        # TLS handshake first; send QUIT so the server closes the connection.
        # (-quiet implies -ign_eof: keep reading until the server closes after 221.)
        line=$(printf 'QUIT\r\n' | timeout 5 openssl s_client -quiet \
            -connect "$HOST:$port" -servername "$GOOD_NAME" 2>/dev/null | head -n 1) || true
    else
        line=$(
            exec 3<>"/dev/tcp/$HOST/$port" || exit 1
            IFS= read -r -t 5 reply <&3 || exit 1
            printf 'QUIT\r\n' >&3
            printf '%s' "$reply"
        ) 2>/dev/null || return 1
    fi
    [[ $line == 220* ]]
}

# fail_started REASON: a started instance is not usable; keep the log tail for
# the report, stop the instance (no half-working server left behind), die.
fail_started() {
    tail -n 25 "$MAILLOG" >"$DIR/start-failure.log" 2>/dev/null || true
    stop_instance >/dev/null 2>&1 || true
    die "$1" "$DIR/start-failure.log"
}

# all_banners_ok: every listener answers with its 220 right now.
all_banners_ok() {
    local p
    for p in "${ALL_PORTS[@]}"; do
        if [[ $p == "$IMPLICIT_PORT" ]]; then
            banner_ok "$p" implicit || return 1
        elif [[ $p == "$PROXY_PORT" ]]; then
            banner_ok "$p" proxy || return 1
        else
            banner_ok "$p" || return 1
        fi
    done
}

wait_for_listeners() {
    local deadline=$((SECONDS + BANNER_TIMEOUT)) pending p
    local -A implicit=(["$IMPLICIT_PORT"]=implicit ["$PROXY_PORT"]=proxy)
    pending=("${ALL_PORTS[@]}")
    while ((${#pending[@]})); do
        local still=()
        for p in "${pending[@]}"; do
            if [[ -n ${implicit[$p]:-} ]]; then
                banner_ok "$p" "${implicit[$p]}" || still+=("$p")
            else
                banner_ok "$p" || still+=("$p")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        ((${#pending[@]})) || break
        if ((SECONDS >= deadline)); then
            fail_started "Postfix listeners on port(s) ${pending[*]} gave no 220 banner within ${BANNER_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

# `postfix start` runs Postfix's own integrity check first (it creates missing
# queue directories with the right owners), then waits for the master to
# initialise. With maillog_file set, Postfix commands send their complaints to
# postlogd, which is not running yet when startup fails, and only copy them to
# stderr when it is a terminal. So on failure, rerun `postfix check` under
# script(1) to get a tty, and add whatever reached the log.
start_instance() {
    local out before reason
    before=$(stat -c %s "$MAILLOG" 2>/dev/null || echo 0)
    # 9>&-: the master must not inherit our lock descriptor.
    if ! out=$(postfix -c "$CONF_DIR" start 2>&1 9>&-); then
        {
            printf '%s\n' "$out"
            script -qec "postfix -c '$CONF_DIR' check" /dev/null 2>&1 | tr -d '\r' || true
            tail -c +"$((before + 1))" "$MAILLOG"
        } | grep -v '^$' >"$DIR/start-failure.log" || true
        reason=$(grep -m1 -E 'fatal|error' "$DIR/start-failure.log" || head -n 1 "$DIR/start-failure.log" || true)
        reason=${reason#*]: } # drop "date host program[pid]: "
        stop_instance >/dev/null 2>&1 || true
        die "postfix -c $CONF_DIR start failed: ${reason:-no details}" "$DIR/start-failure.log"
    fi
}

# reload_instance: a running instance whose main.cf is unchanged takes a new master.cf,
# certificates or SASL configuration with `postfix reload`: the master keeps the listening
# sockets of the services it already runs and lets running smtpd processes finish their
# sessions, so test runs in other checkouts that use the instance are not cut off. Only
# ports that the previous env file does not list must be free. Fails (and changes nothing)
# when that cannot be checked; fails after the reload when a listener does not answer.
reload_instance() {
    local old=$DIR/env p known deadline
    ((MAIN_CF_CHANGED == 0)) && [[ -r $old ]] || return 1
    known=" $(grep -E '^[A-Z_]+_PORT=' "$old" | cut -d= -f2 | tr '\n' ' ')"
    for p in "${ALL_PORTS[@]}"; do
        if [[ $known != *" $p "* ]] && port_open "$p"; then
            log "port $HOST:$p is taken by another program; restarting instead of reloading"
            return 1
        fi
    done
    log "reloading Postfix instance $DIR with its new configuration"
    postfix -c "$CONF_DIR" reload >/dev/null 2>&1 9>&- || return 1
    deadline=$((SECONDS + BANNER_TIMEOUT))
    until all_banners_ok; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

write_env() {
    local tmp=$DIR/env.tmp
    # Plain KEY=value lines, no quoting needed (DIR's characters are checked):
    # sourceable by sh and trivial to parse from Rust.
    {
        printf '%s=%s\n' \
            POSTFIX_DIR "$DIR" \
            POSTFIX_CONFIG_DIR "$CONF_DIR" \
            SMTP_HOST "$HOST" \
            TLS_SERVER_NAME "$GOOD_NAME" \
            SUBMISSION_PORT "$SUBMISSION_PORT" \
            IMPLICIT_PORT "$IMPLICIT_PORT" \
            MX_PORT "$MX_PORT" \
            LEGACY_PORT "$LEGACY_PORT" \
            NOTLS_PORT "$NOTLS_PORT" \
            BROKENTLS_PORT "$BROKENTLS_PORT" \
            OPTIONAL_PORT "$OPTIONAL_PORT" \
            EXPIRED_PORT "$EXPIRED_PORT" \
            WRONGNAME_PORT "$WRONGNAME_PORT" \
            WRONG_NAME "$WRONG_NAME" \
            SMUGGLE_OPEN_PORT "$SMUGGLE_OPEN_PORT" \
            SMUGGLE_STRICT_PORT "$SMUGGLE_STRICT_PORT" \
            SMUGGLE_REJECT_PORT "$SMUGGLE_REJECT_PORT" \
            CA_FILE "$CA_FILE" \
            SMTP_USER "$SMTP_USER" \
            PASSWORD_FILE "$PASSWORD_FILE" \
            MAIL_DOMAIN "$MAIL_DOMAIN" \
            MAILLOG "$MAILLOG" \
            QUEUE_DIR "$QUEUE_DIR" \
            EXTENSIONS_PORT "$EXTENSIONS_PORT" \
            EXTENSIONS_SIZE_LIMIT "$EXTENSIONS_SIZE_LIMIT" \
            PROXY_PORT "$PROXY_PORT" \
            XCLIENT_PORT "$XCLIENT_PORT" \
            XCLIENT_REJECTED_ADDR "$XCLIENT_REJECTED_ADDR" \
            CCERT_PORT "$CCERT_PORT" \
            CRAM_PORT "$CRAM_PORT" \
            CLIENT_CERT "$CLIENT_CERT" \
            CLIENT_KEY "$CLIENT_KEY" \
            CLIENT_FINGERPRINT "$(client_fingerprint)"
    } >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$DIR/env"
}

cmd_start() {
    mkdir -p "$DIR"
    install_packages
    register_postfix_instance "$CONF_DIR"
    prepare_dirs
    generate_certs
    setup_sasl
    configure_instance
    # A running instance with the same configuration is kept: test runs in other
    # checkouts start it concurrently and must not cut each other's connections.
    if ((CONFIG_CHANGED == 0)) && master_pid >/dev/null && all_banners_ok; then
        write_env
        log "Postfix instance $DIR is already up with this configuration; env: $DIR/env"
        return
    fi
    if master_pid >/dev/null && reload_instance; then
        write_env
        log "Postfix instance $DIR is up with its new configuration (reloaded); env: $DIR/env"
        return
    fi
    rm -f "$DIR/env" # never leave a stale description behind a failed start
    stop_instance
    check_ports_free
    start_instance
    wait_for_listeners
    write_env
    log "Postfix instance $DIR is up (submission $SUBMISSION_PORT, implicit $IMPLICIT_PORT, mx $MX_PORT, legacy $LEGACY_PORT, expired $EXPIRED_PORT, wrongname $WRONGNAME_PORT, notls $NOTLS_PORT, brokentls $BROKENTLS_PORT, optional $OPTIONAL_PORT, extensions $EXTENSIONS_PORT, smuggle-open $SMUGGLE_OPEN_PORT, smuggle-strict $SMUGGLE_STRICT_PORT, smuggle-reject $SMUGGLE_REJECT_PORT, ccert $CCERT_PORT, cram $CRAM_PORT, proxy $PROXY_PORT, xclient $XCLIENT_PORT); env: $DIR/env"
}

cmd_stop() {
    if [[ -d $DIR ]] && command -v postfix >/dev/null; then
        stop_instance
    fi
    rm -f "$DIR/env"
}

main() {
    parse_args "$@"
    take_lock postfix
    "cmd_$ACTION"
}

main "$@"
