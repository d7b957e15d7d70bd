//! Which server software answered, and the configuration change that fixes each finding in
//! that software's own terms.
//!
//! A fix is one sentence saying what to achieve, then how, for the server the greeting or the
//! EHLO reply named: Postfix, Exim, Dovecot, OpenSMTPD or Haraka. A server that does not say
//! what it is gets Postfix's setting, marked as such ("Postfix: ..."), as the most common one.
//! Everything here is pure text.

use std::fmt;

use super::smuggling::EndOfData;

/// The server software, as far as it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Postfix (`ESMTP Postfix` in the default banner).
    Postfix,
    /// Exim (`ESMTP Exim 4.96` in the default banner).
    Exim,
    /// Dovecot's submission service (`Dovecot ready.`).
    Dovecot,
    /// OpenSMTPD (`ESMTP OpenSMTPD`).
    OpenSmtpd,
    /// Haraka (`ESMTP Haraka/3.0.3 ready`).
    Haraka,
    /// Not named in the greeting or the EHLO reply.
    Unknown,
}

impl ServerKind {
    /// Every recognisable kind, in the order names are looked for.
    const NAMED: [(Self, &'static str); 5] = [
        (Self::Postfix, "postfix"),
        (Self::Exim, "exim"),
        (Self::Dovecot, "dovecot"),
        (Self::OpenSmtpd, "opensmtpd"),
        (Self::Haraka, "haraka"),
    ];

    /// The software's name as its documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postfix => "Postfix",
            Self::Exim => "Exim",
            Self::Dovecot => "Dovecot",
            Self::OpenSmtpd => "OpenSMTPD",
            Self::Haraka => "Haraka",
            Self::Unknown => "unknown",
        }
    }

    /// The server a text names, looking at whole words only (`Exim` in `ESMTP Exim 4.96`,
    /// `Haraka` in `Haraka/3.0.3`, never `exim` inside another word).
    pub fn named_in(text: &str) -> Option<Self> {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .find_map(|word| {
                Self::NAMED
                    .iter()
                    .find(|(_, name)| word.eq_ignore_ascii_case(name))
                    .map(|(kind, _)| *kind)
            })
    }

    /// How clients on the same machine or network may be treated differently from remote
    /// ones, for the note on audits made from a loopback or private address.
    pub fn local_trust(self) -> &'static str {
        match self {
            Self::Postfix => {
                "Postfix lets clients in mynetworks through permit_mynetworks (relay, and often \
                 no TLS or AUTH needed)"
            }
            Self::Exim => {
                "Exim ACLs commonly accept hosts in relay_from_hosts without AUTH, and conditions \
                 on $sender_host_address may differ"
            }
            Self::Dovecot => {
                "Dovecot counts a client on its own address or in login_trusted_networks as \
                 secure and lets it AUTH without TLS"
            }
            Self::OpenSmtpd => "OpenSMTPD rules written 'from local' apply only to local clients",
            Self::Haraka => {
                "Haraka's auth plugins (auth/flat_file) offer AUTH without TLS to private and \
                 loopback addresses"
            }
            Self::Unknown => {
                "servers often trust local clients: Postfix mynetworks, Dovecot counts its own \
                 address as secure, Haraka offers AUTH in cleartext to private addresses"
            }
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a finding asks to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// An MX without STARTTLS.
    OfferStartTlsMx,
    /// A submission port without STARTTLS.
    OfferStartTlsSubmission,
    /// AUTH offered or accepted before TLS.
    AuthOnlyInsideTls,
    /// A submission port that takes mail before TLS.
    RequireTlsForMail,
    /// An MX that refuses mail without TLS.
    MxMustNotRequireTls,
    /// An MX that refuses mail without AUTH.
    MxMustNotRequireAuth,
    /// STARTTLS advertised, then refused.
    StartTlsUnavailable,
    /// The handshake failed for a reason not pinned down.
    HandshakeFailed,
    /// Only TLS 1.0 or 1.1 on offer.
    OnlyOldTls,
    /// TLS 1.0 or 1.1 accepted next to newer versions.
    AlsoOldTls,
    /// TLS 1.2 offered, but with no cipher suite current clients accept.
    ModernCiphers,
    /// The chain does not verify.
    CertificateChain,
    /// The certificate does not name the server; the name audited.
    CertificateName(String),
    /// Expired or expiring.
    CertificateRenew,
    /// A weak key.
    CertificateKey,
    /// No AUTH inside TLS on submission.
    EnableAuthInsideTls,
    /// The pipelined NOOP ran inside TLS.
    InjectionVulnerable,
    /// Nothing on 465.
    ImplicitTls,
    /// Something on 465 that does not do implicit TLS.
    ImplicitTlsBroken,
    /// STARTTLS advertised again inside TLS.
    StartTlsAfterTls,
    /// Bytes after the 220 to STARTTLS and before the handshake.
    ResponseInjection,
    /// A probe could not finish.
    Incomplete,
    /// A probe could not tell which TLS versions the server accepts.
    VersionsUnknown,
    /// The injection probe could not finish.
    InjectionUnknown,
    /// The server ends a message at this non-standard end-of-data sequence (SMTP smuggling).
    Smuggling(EndOfData),
    /// The smuggling probe could not tell for a variant.
    SmugglingUnknown,
    /// The smuggling probe could not send its first test message.
    SmugglingNotSent(NotSentBecause),
}

/// Why the smuggling probe could not send its test message, as far as the reply tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSentBecause {
    /// The port takes mail only after AUTH, which the probe never does.
    NeedsAuth,
    /// The server refused the recipient.
    Address,
    /// Anything else: no connection, a failed handshake, a refused MAIL or DATA.
    Other,
}

/// Where the fix for the certificate files goes, per server.
fn certificate_files(server: ServerKind) -> &'static str {
    match server {
        ServerKind::Postfix | ServerKind::Unknown => {
            "smtpd_tls_chain_files (key, then leaf and intermediates), or smtpd_tls_cert_file \
             holding leaf then intermediates, then postfix reload"
        }
        ServerKind::Exim => "tls_certificate (leaf then intermediates) and tls_privatekey",
        ServerKind::Dovecot => {
            "ssl_cert = </path/to/fullchain.pem (leaf then intermediates) and ssl_key, then \
             doveadm reload"
        }
        ServerKind::OpenSmtpd => {
            "pki NAME cert (leaf then intermediates) and pki NAME key, then restart smtpd"
        }
        ServerKind::Haraka => "cert (leaf then intermediates) and key in config/tls.ini",
    }
}

fn old_tls_off(server: ServerKind) -> &'static str {
    match server {
        ServerKind::Postfix | ServerKind::Unknown => {
            "smtpd_tls_protocols = >=TLSv1.2 and smtpd_tls_mandatory_protocols = >=TLSv1.2"
        }
        ServerKind::Exim => {
            "tls_require_ciphers = NORMAL:-VERS-TLS1.0:-VERS-TLS1.1 (GnuTLS, as Debian builds \
             it), or openssl_options = +no_tlsv1 +no_tlsv1_1 (OpenSSL builds)"
        }
        ServerKind::Dovecot => "ssl_min_protocol = TLSv1.2",
        ServerKind::OpenSmtpd => "protocols \"tlsv1.2,tlsv1.3\" on the listen line",
        ServerKind::Haraka => "minVersion=TLSv1.2 in config/tls.ini",
    }
}

/// How each server stops ending messages at a non-standard end-of-data sequence. Postfix
/// splits lines only at <LF> (its smtpd keeps <CR>.<CR> inside the message, even with
/// smtpd_forbid_bare_newline = no), and Exim's CVE-2023-51766 notes name only sequences with a
/// bare <LF>, so a server of theirs that ends a message at <CR>.<CR> most likely has something
/// else answering in front of it.
fn smuggling_recipe(variant: EndOfData, server: ServerKind) -> &'static str {
    let bare_cr = variant == EndOfData::CrDotCr;
    match server {
        ServerKind::Postfix | ServerKind::Unknown if bare_cr => {
            "Postfix itself never takes a bare <CR> for a line end, so what ended the message \
             answers in front of it (a proxy, a filter, or another server on this port): make \
             that end messages only at <CR><LF>.<CR><LF>"
        }
        ServerKind::Postfix | ServerKind::Unknown => {
            "smtpd_forbid_bare_newline = normalize, the default from Postfix 3.9 (Postfix \
             3.5.24, 3.6.14, 3.7.10, 3.8.5 and later take it too, with yes as its alias; on \
             3.5.23, 3.6.13, 3.7.9 and 3.8.4 set yes, which there rejects bare <LF>; older \
             releases must be upgraded, with smtpd_data_restrictions = reject_unauth_pipelining \
             meanwhile), and keep smtpd_forbid_bare_newline_exclusions (default $mynetworks) to \
             clients you trust, since they stay exempt"
        }
        ServerKind::Exim if bare_cr => {
            "Exim's CVE-2023-51766 notes name only sequences with a bare <LF>, so look for \
             what ended the message in front of it (a proxy, a filter, or another server on \
             this port) and make that end messages only at <CR><LF>.<CR><LF>"
        }
        ServerKind::Exim => {
            "upgrade to Exim 4.97.1 or later, or to a distribution package with the \
             CVE-2023-51766 fix backported; until then Exim's notes on that CVE give a \
             workaround: stop advertising CHUNKING (chunking_advertise_hosts =) or PIPELINING \
             (pipelining_advertise_hosts =) to incoming connections, so that smuggled \
             commands trip the synchronisation check"
        }
        ServerKind::Dovecot => {
            "Dovecot's submission service takes mail from its users, and smuggled mail arrives \
             at the MX from other servers: probe the MTA's port 25; upgrade Dovecot to 2.4.5 or \
             later anyway, as older releases relay <CR>.<CR> unchanged (CVE-2026-33604)"
        }
        ServerKind::OpenSmtpd | ServerKind::Haraka => {
            "upgrade to the current release and look in its release notes for SMTP smuggling \
             (CVE-2023-51764 and its kin); if the probe still fails, report it to the project"
        }
    }
}

impl Fix {
    /// What to achieve, in words that hold for every server.
    fn goal(&self) -> String {
        match self {
            Self::OfferStartTlsMx => {
                "offer STARTTLS with a certificate, without requiring it (RFC 3207)".to_owned()
            }
            Self::OfferStartTlsSubmission => "protect submission with TLS: STARTTLS required \
                 before AUTH and mail, or implicit TLS on 465 (RFC 8314 §3.3)"
                .to_owned(),
            Self::AuthOnlyInsideTls => {
                "offer and accept AUTH only inside TLS (RFC 4954 §4, RFC 8314 §5)".to_owned()
            }
            Self::RequireTlsForMail => {
                "refuse mail before TLS on submission (RFC 8314 §3.3 and §4.1)".to_owned()
            }
            Self::MxMustNotRequireTls => "accept mail without TLS on an MX, as senders that \
                 cannot do TLS must still deliver (RFC 3207 §4); to ask senders for TLS, publish \
                 MTA-STS (RFC 8461) or DANE (RFC 7672) instead"
                .to_owned(),
            Self::MxMustNotRequireAuth => "accept mail for your domains from other servers \
                 without AUTH; if users submit mail on this port, audit it with --role submission"
                .to_owned(),
            Self::StartTlsUnavailable => "make STARTTLS work where it is advertised (the \
                 server's log says why it refused)"
                .to_owned(),
            Self::HandshakeFailed => "make the TLS handshake work with current clients (TLS 1.2 \
                 or 1.3, ECDHE with AES-GCM or ChaCha20); the server's log names its side of the \
                 failure"
                .to_owned(),
            Self::OnlyOldTls => "offer TLS 1.2 and 1.3 and drop TLS 1.0 and 1.1 (RFC 8996); \
                 upgrade the TLS library if it has no TLS 1.2"
                .to_owned(),
            Self::AlsoOldTls => "drop TLS 1.0 and 1.1 (RFC 8996)".to_owned(),
            Self::ModernCiphers => "offer ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 \
                 on TLS 1.2 (and TLS 1.3); current clients refuse CBC-only and RSA key exchange \
                 suites"
                .to_owned(),
            Self::CertificateChain => {
                "install a certificate from a CA the clients trust, with its intermediates"
                    .to_owned()
            }
            Self::CertificateName(name) => format!(
                "use a certificate whose subjectAltName includes {name}, or audit by a name on \
                 the certificate (--servername)"
            ),
            Self::CertificateRenew => "renew the certificate and automate renewal".to_owned(),
            Self::CertificateKey => {
                "issue a new certificate with an RSA 2048+ or EC P-256 key".to_owned()
            }
            Self::EnableAuthInsideTls => {
                "offer AUTH inside TLS, so users can authenticate to submit mail".to_owned()
            }
            Self::InjectionVulnerable => "upgrade the SMTP server software: it must discard \
                 commands read before the TLS handshake (RFC 3207 §4.2)"
                .to_owned(),
            Self::ImplicitTls => {
                "offer implicit TLS for submission on 465 (RFC 8314 §3.3)".to_owned()
            }
            Self::ImplicitTlsBroken => "make the port speak TLS from the first byte, or stop \
                 listening there (RFC 8314 §3.3)"
                .to_owned(),
            Self::StartTlsAfterTls => "find what answers EHLO inside TLS: the server must stop \
                 advertising STARTTLS once TLS is up (RFC 3207 §4.2); a proxy or filter in front \
                 of it may be rewriting the EHLO reply, or the software needs an upgrade"
                .to_owned(),
            Self::ResponseInjection => "find what sent cleartext bytes after the 220 to \
                 STARTTLS: a firewall or proxy that inspects SMTP, or an attacker on the path; \
                 the server itself must send nothing more before the handshake (RFC 3207 §4)"
                .to_owned(),
            Self::Incomplete => "run the audit again; if it stops at the same step, the \
                 transcript (--transcript FILE) shows the exchange and the server's log says why \
                 it ended the session"
                .to_owned(),
            Self::VersionsUnknown => "run the audit again to learn which TLS versions the \
                 server accepts; the transcript (--transcript FILE) shows where the probe stopped"
                .to_owned(),
            Self::InjectionUnknown => "run the audit again to learn whether commands pipelined \
                 behind STARTTLS are discarded; the transcript (--transcript FILE) shows where the \
                 probe stopped"
                .to_owned(),
            Self::Smuggling(_) => "end a message only at <CR><LF>.<CR><LF> (RFC 5321 \
                 §4.1.1.4), never at a dot line next to a bare <LF> or <CR>"
                .to_owned(),
            Self::SmugglingUnknown => "run the audit again with --smuggling-to; the transcript \
                 (--transcript FILE) shows where the probe stopped, and a message in the mailbox \
                 whose subject says SMUGGLED means the server ran the smuggled commands"
                .to_owned(),
            Self::SmugglingNotSent(NotSentBecause::NeedsAuth) => "probe the MX (port 25) with \
                 --smuggling-to instead: smuggled mail arrives there, from other servers, and \
                 the probe never authenticates, so a port that takes mail only after AUTH \
                 cannot be probed"
                .to_owned(),
            Self::SmugglingNotSent(NotSentBecause::Address) => "give --smuggling-to an address \
                 at a domain this server receives mail for (an MX refuses other domains)"
                .to_owned(),
            Self::SmugglingNotSent(NotSentBecause::Other) => "run the audit again; the \
                 transcript (--transcript FILE) shows where the probe stopped"
                .to_owned(),
        }
    }

    /// How, in the server's terms; `None` when the fix is the same for every server.
    fn recipe(&self, server: ServerKind) -> Option<String> {
        use ServerKind::{Dovecot, Exim, Haraka, OpenSmtpd, Postfix, Unknown};
        let text: String = match (self, server) {
            (Self::OfferStartTlsMx, Postfix | Unknown) => "smtpd_tls_security_level = may with \
                 smtpd_tls_chain_files (or smtpd_tls_cert_file and smtpd_tls_key_file)"
                .into(),
            (Self::OfferStartTlsMx, Exim) => "tls_advertise_hosts = * with tls_certificate and \
                 tls_privatekey (Debian: MAIN_TLS_ENABLE = yes)"
                .into(),
            (Self::OfferStartTlsMx, Dovecot) => "ssl = yes with ssl_cert and ssl_key; Dovecot \
                 submission is for users, mail from other servers belongs on the MTA's port 25"
                .into(),
            (Self::OfferStartTlsMx, OpenSmtpd) => {
                "listen on ... tls pki NAME, with pki NAME cert and key".into()
            }
            (Self::OfferStartTlsMx, Haraka) => {
                "the tls plugin in config/plugins, with key and cert in config/tls.ini".into()
            }
            (Self::OfferStartTlsSubmission, Postfix | Unknown) => "smtpd_tls_security_level = \
                 encrypt with smtpd_tls_chain_files on the submission listener, or a submissions \
                 service on 465 with -o smtpd_tls_wrappermode=yes"
                .into(),
            (Self::OfferStartTlsSubmission, Exim) => "tls_advertise_hosts = * with \
                 tls_certificate and tls_privatekey, and tls_on_connect_ports = 465"
                .into(),
            (Self::OfferStartTlsSubmission, Dovecot) => {
                "ssl = required with ssl_cert and ssl_key".into()
            }
            (Self::OfferStartTlsSubmission, OpenSmtpd) => {
                "listen on ... port submission tls-require pki NAME auth".into()
            }
            (Self::OfferStartTlsSubmission, Haraka) => {
                "the tls plugin in config/plugins, with key and cert in config/tls.ini".into()
            }
            (Self::AuthOnlyInsideTls, Postfix | Unknown) => "smtpd_tls_auth_only = yes (or \
                 smtpd_tls_security_level = encrypt) on this listener"
                .into(),
            (Self::AuthOnlyInsideTls, Exim) => "server_advertise_condition = ${if \
                 def:tls_in_cipher} in every authenticator (Exim refuses AUTH for a mechanism it \
                 did not advertise)"
                .into(),
            (Self::AuthOnlyInsideTls, Dovecot) => "disable_plaintext_auth = yes \
                 (auth_allow_cleartext = no from 2.4) or ssl = required; a client on Dovecot's \
                 own address or in login_trusted_networks counts as secure and may still AUTH \
                 without TLS"
                .into(),
            (Self::AuthOnlyInsideTls, OpenSmtpd) => "listen on ... tls-require pki NAME auth; \
                 OpenSMTPD itself offers AUTH only inside TLS, so check what answers on this port"
                .into(),
            (Self::AuthOnlyInsideTls, Haraka) => "keep the tls plugin enabled and use an auth \
                 plugin that offers AUTH only after STARTTLS; auth/flat_file also offers it in \
                 cleartext to private and loopback addresses"
                .into(),
            (Self::RequireTlsForMail, Postfix | Unknown) => {
                "smtpd_tls_security_level = encrypt on the submission listener".into()
            }
            (Self::RequireTlsForMail, Exim) => "in acl_smtp_mail (or acl_smtp_rcpt), for the \
                 submission port: deny !encrypted = * with message = Must issue a STARTTLS \
                 command first"
                .into(),
            (Self::RequireTlsForMail, Dovecot) => {
                "ssl = required (Dovecot submission takes mail only after AUTH)".into()
            }
            (Self::RequireTlsForMail, OpenSmtpd) => {
                "tls-require on the submission listen line".into()
            }
            (Self::RequireTlsForMail, Haraka) => "relay only for authenticated clients, with an \
                 auth plugin that offers AUTH only after STARTTLS"
                .into(),
            (Self::MxMustNotRequireTls, Postfix | Unknown) => "smtpd_tls_security_level = may \
                 on the MX (encrypt only on submission ports)"
                .into(),
            (Self::MxMustNotRequireTls, Exim) => "drop the deny !encrypted = * ACL statement for \
                 port 25 (keep tls_advertise_hosts = *)"
                .into(),
            (Self::MxMustNotRequireTls | Self::MxMustNotRequireAuth, Dovecot) => "Dovecot \
                 submission is not an MX: mail from other servers belongs on the MTA's port 25; \
                 audit this port with --role submission"
                .into(),
            (Self::MxMustNotRequireTls, OpenSmtpd) => {
                "listen on ... tls pki NAME (not tls-require) on port 25".into()
            }
            (Self::MxMustNotRequireTls, Haraka) => {
                "remove the rule or plugin that refuses mail without TLS on port 25".into()
            }
            (Self::MxMustNotRequireAuth, Postfix | Unknown) => "on the port-25 listener, \
                 smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, \
                 reject_unauth_destination and no restriction that demands SASL for your own \
                 domains"
                .into(),
            (Self::MxMustNotRequireAuth, Exim) => "in acl_smtp_rcpt, accept mail for \
                 +local_domains before any authenticated = * requirement"
                .into(),
            (Self::MxMustNotRequireAuth, OpenSmtpd) => "a match from any for domain <yours> \
                 rule, and no auth on the port-25 listen line"
                .into(),
            (Self::MxMustNotRequireAuth, Haraka) => {
                "accept your domains with rcpt_to.in_host_list, without requiring AUTH".into()
            }
            (Self::StartTlsUnavailable, Postfix | Unknown) => "smtpd_tls_chain_files (or \
                 smtpd_tls_cert_file and smtpd_tls_key_file) must name a readable certificate \
                 and key"
                .into(),
            (Self::StartTlsUnavailable, Exim) => "tls_certificate and tls_privatekey must be \
                 readable by the Exim user"
                .into(),
            (Self::StartTlsUnavailable, Dovecot) => {
                "ssl_cert and ssl_key must name a readable certificate and key".into()
            }
            (Self::StartTlsUnavailable, OpenSmtpd) => {
                "the pki cert and key files must be readable".into()
            }
            (Self::StartTlsUnavailable, Haraka) => {
                "key and cert in config/tls.ini must be readable".into()
            }
            (Self::HandshakeFailed, Postfix | Unknown) => "check smtpd_tls_chain_files, \
                 smtpd_tls_protocols, smtpd_tls_mandatory_protocols and smtpd_tls_ciphers"
                .into(),
            (Self::HandshakeFailed, Exim) => {
                "check tls_certificate, tls_privatekey and tls_require_ciphers".into()
            }
            (Self::HandshakeFailed, Dovecot) => {
                "check ssl_cert, ssl_key, ssl_min_protocol and ssl_cipher_list".into()
            }
            (Self::HandshakeFailed, OpenSmtpd) => {
                "check the pki files and the listen line's ciphers and protocols".into()
            }
            (Self::HandshakeFailed, Haraka) => {
                "check key, cert, ciphers and minVersion in config/tls.ini".into()
            }
            (Self::OnlyOldTls | Self::AlsoOldTls, server) => old_tls_off(server).into(),
            (Self::ModernCiphers, Postfix | Unknown) => "smtpd_tls_ciphers = medium (the \
                 default) and no smtpd_tls_exclude_ciphers that removes AESGCM or ECDHE"
                .into(),
            (Self::ModernCiphers, Exim) => "tls_require_ciphers = NORMAL (GnuTLS), or an \
                 OpenSSL cipher list that includes ECDHE+AESGCM"
                .into(),
            (Self::ModernCiphers, Dovecot) => {
                "ssl_cipher_list: the default, or a list that includes ECDHE+AESGCM".into()
            }
            (Self::ModernCiphers, OpenSmtpd) => {
                "the listen line's ciphers: the default, or a list with ECDHE+AESGCM".into()
            }
            (Self::ModernCiphers, Haraka) => {
                "ciphers in config/tls.ini: remove it, or include ECDHE+AESGCM".into()
            }
            (Self::CertificateChain | Self::CertificateKey, server) => {
                certificate_files(server).into()
            }
            (Self::CertificateName(_), Postfix | Unknown) => {
                "smtpd_tls_chain_files (or smtpd_tls_cert_file)".into()
            }
            (Self::CertificateName(_), Exim) => {
                "tls_certificate (which may depend on $tls_in_sni)".into()
            }
            (Self::CertificateName(_), Dovecot) => {
                "ssl_cert (local_name blocks for other names)".into()
            }
            (Self::CertificateName(_), OpenSmtpd) => "the pki NAME of the listen line".into(),
            (Self::CertificateName(_), Haraka) => {
                "config/tls/ holds one bundle per name (SNI)".into()
            }
            (Self::CertificateRenew, Postfix | Unknown) => "replace the files named by \
                 smtpd_tls_chain_files (or smtpd_tls_cert_file), then postfix reload"
                .into(),
            (Self::CertificateRenew, Exim) => "replace the tls_certificate and tls_privatekey \
                 files (Exim picks up changed files; restart the daemon if it does not)"
                .into(),
            (Self::CertificateRenew, Dovecot) => {
                "replace the ssl_cert and ssl_key files, then doveadm reload".into()
            }
            (Self::CertificateRenew, OpenSmtpd) => {
                "replace the pki cert and key files, then restart smtpd".into()
            }
            (Self::CertificateRenew, Haraka) => {
                "replace the certificate files, then restart Haraka".into()
            }
            (Self::EnableAuthInsideTls, Postfix | Unknown) => "smtpd_sasl_auth_enable = yes on \
                 the submission listener (master.cf -o)"
                .into(),
            (Self::EnableAuthInsideTls, Exim) => "authenticators (plaintext PLAIN and LOGIN, or \
                 the dovecot driver) with server_advertise_condition = ${if def:tls_in_cipher}"
                .into(),
            (Self::EnableAuthInsideTls, Dovecot) => {
                "auth_mechanisms = plain login with a passdb".into()
            }
            (Self::EnableAuthInsideTls, OpenSmtpd) => "auth on the submission listen line".into(),
            (Self::EnableAuthInsideTls, Haraka) => {
                "an auth plugin (auth/flat_file, auth/auth_proxy, ...) in config/plugins".into()
            }
            (Self::InjectionVulnerable, Postfix | Unknown) => {
                "every Postfix release since March 2011 does".into()
            }
            (Self::InjectionVulnerable, _) => "upgrade to a current release".into(),
            (Self::ImplicitTls | Self::ImplicitTlsBroken, Postfix | Unknown) => "a \
                 'submissions' (or 'smtps') service in master.cf with -o \
                 smtpd_tls_wrappermode=yes and -o smtpd_sasl_auth_enable=yes"
                .into(),
            (Self::ImplicitTls | Self::ImplicitTlsBroken, Exim) => {
                "daemon_smtp_ports = 25 : 465 : 587 and tls_on_connect_ports = 465".into()
            }
            (Self::ImplicitTls | Self::ImplicitTlsBroken, Dovecot) => "an inet_listener \
                 submissions { port = 465, ssl = yes } in service submission-login"
                .into(),
            (Self::ImplicitTls | Self::ImplicitTlsBroken, OpenSmtpd) => {
                "listen on ... port smtps smtps pki NAME auth".into()
            }
            (Self::ImplicitTls | Self::ImplicitTlsBroken, Haraka) => "add port 465 to listen in \
                 config/smtp.ini (smtps_port, 465 by default, is served with TLS from the first \
                 byte)"
                .into(),
            (Self::Smuggling(variant), server) => smuggling_recipe(*variant, server).into(),
            (
                Self::StartTlsAfterTls
                | Self::ResponseInjection
                | Self::Incomplete
                | Self::VersionsUnknown
                | Self::InjectionUnknown
                | Self::SmugglingUnknown
                | Self::SmugglingNotSent(_),
                _,
            ) => return None,
        };
        Some(text)
    }

    /// The whole fix for this server: the goal, then the setting in its terms. A server that
    /// did not say what it is gets Postfix's setting, named as Postfix's.
    pub fn text(&self, server: ServerKind) -> String {
        let goal = self.goal();
        match self.recipe(server) {
            None => goal,
            Some(recipe) => {
                let name = match server {
                    ServerKind::Unknown => ServerKind::Postfix.name(),
                    known => known.name(),
                };
                format!("{goal}. {name}: {recipe}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_recognised_by_whole_words_in_what_they_say() {
        assert_eq!(
            ServerKind::named_in("mail.example ESMTP Exim 4.96 Tue, 01 Dec 2026"),
            Some(ServerKind::Exim)
        );
        assert_eq!(
            ServerKind::named_in("localhost Dovecot (Debian) ready."),
            Some(ServerKind::Dovecot)
        );
        assert_eq!(
            ServerKind::named_in("mx ESMTP Haraka/3.0.3 ready"),
            Some(ServerKind::Haraka)
        );
        assert_eq!(
            ServerKind::named_in("mx.example ESMTP OpenSMTPD"),
            Some(ServerKind::OpenSmtpd)
        );
        assert_eq!(
            ServerKind::named_in("localhost ESMTP Postfix (Debian/GNU)"),
            Some(ServerKind::Postfix)
        );
        assert_eq!(ServerKind::named_in("maximum.example ESMTP"), None);
        assert_eq!(
            ServerKind::named_in("mx Hello, Haraka is at your service."),
            Some(ServerKind::Haraka)
        );
    }

    #[test]
    fn fixes_name_the_recognised_server_and_postfix_otherwise() {
        let exim = Fix::AuthOnlyInsideTls.text(ServerKind::Exim);
        assert!(exim.contains("Exim: server_advertise_condition"), "{exim}");
        assert!(!exim.contains("smtpd_"), "{exim}");
        let dovecot = Fix::AuthOnlyInsideTls.text(ServerKind::Dovecot);
        assert!(
            dovecot.contains("disable_plaintext_auth = yes"),
            "{dovecot}"
        );
        let unknown = Fix::AuthOnlyInsideTls.text(ServerKind::Unknown);
        assert!(
            unknown.contains(". Postfix: smtpd_tls_auth_only = yes"),
            "{unknown}"
        );
        for server in [
            ServerKind::Postfix,
            ServerKind::Exim,
            ServerKind::Dovecot,
            ServerKind::OpenSmtpd,
            ServerKind::Haraka,
        ] {
            let text = Fix::OnlyOldTls.text(server);
            assert!(text.contains(&format!("{}: ", server.name())), "{text}");
            if server != ServerKind::Postfix {
                assert!(!text.contains("smtpd_"), "{text}");
            }
        }
    }
}
