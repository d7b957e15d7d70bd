//! Fetching a domain's MTA-STS policy as RFC 8461 §3.3 has senders fetch it: one HTTPS GET
//! of `https://mta-sts.<domain>/.well-known/mta-sts.txt`, the certificate verified against
//! the web PKI (and `--ca-file`) for the policy host's name and nothing accepted without,
//! no redirect followed, the body bounded ([`MAX_BODY`]), each step with its own timeout and
//! the whole fetch with a deadline.
//!
//! Only bytes move here: the HTTP is read by [`super::http::ResponseReader`], and what the
//! answer means is decided by [`super::mta_sts::policy_from`].

use std::net::IpAddr;
use std::sync::PoisonError;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::dns::Dns;
use super::http::{self, Limits, Progress, Response, ResponseReader};
use super::mta_sts::{MAX_BODY, POLICY_PATH, PolicyFetch, PolicyUnavailable, policy_host};
use crate::proto::escape::escape_str;
use crate::tls::{TrustSettings, Verification, client_config};

/// HTTPS.
const PORT: u16 = 443;
/// The most the status line and headers may take.
const HEAD_LIMIT: usize = 16 * 1024;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Trust anchors added to the web PKI's (`--ca-file`), for private and test setups.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The most each step may take: the connection, the handshake, each read (`--timeout`).
    pub step_timeout: Duration,
    /// The most the whole fetch may take.
    pub deadline: Duration,
}

/// Fetches the policy of `domain` (lower case, no final dot).
pub async fn fetch(dns: &Dns, domain: &str, config: &FetchConfig) -> PolicyFetch {
    match timeout(config.deadline, fetch_within(dns, domain, config)).await {
        Ok(fetch) => fetch,
        Err(_) => PolicyFetch::Failed(PolicyUnavailable::TimedOut(config.deadline)),
    }
}

async fn fetch_within(dns: &Dns, domain: &str, config: &FetchConfig) -> PolicyFetch {
    use PolicyUnavailable as U;
    let fail = PolicyFetch::Failed;
    let step = config.step_timeout;
    let host = policy_host(domain);
    let (a, aaaa) = tokio::join!(dns.a(&host), dns.aaaa(&host));
    let addresses: Vec<IpAddr> = a.records().iter().chain(aaaa.records()).copied().collect();
    if addresses.is_empty() {
        return fail(U::NoAddress(format!(
            "{host}: A {}, AAAA {}",
            a.describe(),
            aaaa.describe()
        )));
    }
    // The first address that takes the connection serves the fetch.
    let mut refused = Vec::new();
    let mut connected = None;
    for ip in addresses {
        match timeout(step, TcpStream::connect((ip, PORT))).await {
            Ok(Ok(stream)) => {
                connected = Some((ip, stream));
                break;
            }
            Ok(Err(error)) => refused.push(format!("{}: {error}", target(ip))),
            Err(_) => refused.push(format!(
                "{}: no connection within {}s",
                target(ip),
                step.as_secs()
            )),
        }
    }
    let Some((address, tcp)) = connected else {
        return fail(U::Unreachable(escape_str(&refused.join("; "))));
    };
    let trust = TrustSettings {
        extra_roots: config.extra_roots.clone(),
        continue_unverified: false,
        client_identity: None,
        roots: Default::default(),
    };
    let (client, verdict) = match client_config(&trust) {
        Ok(pair) => pair,
        Err(error) => return fail(U::Tls(error.to_string())),
    };
    let Ok(name) = ServerName::try_from(host.clone()) else {
        return fail(U::Tls(format!("{} is not a DNS name", escape_str(&host))));
    };
    let mut tls = match timeout(step, TlsConnector::from(client).connect(name, tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            let recorded = verdict
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return fail(match recorded {
                Some(Verification::Failed(problem)) => U::Certificate(problem),
                _ => U::Tls(escape_str(&error.to_string())),
            });
        }
        Err(_) => {
            return fail(U::Tls(format!("no handshake within {}s", step.as_secs())));
        }
    };
    let request = http::request(&host, POLICY_PATH);
    match timeout(step, async {
        tls.write_all(&request).await?;
        tls.flush().await
    })
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return fail(U::Unreachable(escape_str(&error.to_string()))),
        Err(_) => return fail(U::TimedOut(step)),
    }
    let mut reader = ResponseReader::new(Limits {
        head: HEAD_LIMIT,
        body: MAX_BODY,
    });
    let mut buffer = vec![0u8; 8192];
    loop {
        let read = match timeout(step, tls.read(&mut buffer)).await {
            Ok(Ok(read)) => read,
            // A close without TLS's close_notify could be a truncation by the path.
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(error)) => return fail(U::Unreachable(escape_str(&error.to_string()))),
            Err(_) => return fail(U::TimedOut(step)),
        };
        if read == 0 {
            return match reader.finish() {
                Ok(response) => answered(address, response),
                Err(error) => fail(U::Http(error)),
            };
        }
        match reader.feed(&buffer[..read]) {
            Ok(Progress::Done(response)) => return answered(address, response),
            Ok(Progress::NeedMore) => {
                // Only a 200 carries a policy: the rest of another answer does not matter.
                if let Some(head) = reader.head().filter(|h| h.status != 200) {
                    return answered(
                        address,
                        Response {
                            head: head.clone(),
                            body: Vec::new(),
                        },
                    );
                }
            }
            Err(error) => return fail(U::Http(error)),
        }
    }
}

fn answered(address: IpAddr, response: Response) -> PolicyFetch {
    let Response { head, body } = response;
    PolicyFetch::Answered {
        address,
        status: head.status,
        reason: head.reason.clone(),
        content_type: head.header("content-type").map(str::to_owned),
        location: head.header("location").map(str::to_owned),
        body,
    }
}

fn target(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{PORT}"),
        IpAddr::V6(v6) => format!("[{v6}]:{PORT}"),
    }
}
