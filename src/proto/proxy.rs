//! HAProxy's PROXY protocol headers (versions 1 and 2), which a client behind a load balancer
//! finds in front of the first SMTP byte: the address the proxy says the connection came from.
//!
//! Pure: the header is built from addresses given as values; the driver writes it before
//! anything else on the connection. See <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::{IpAddr, SocketAddr};

/// Which version of the PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Version 1: one human-readable line, `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// Version 2: a binary header with a 12-byte signature.
    V2,
}

/// A PROXY header to send before the first SMTP byte: the connection's claimed source and
/// its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Version 1 or 2.
    pub version: ProxyVersion,
    /// The client address the proxy claims.
    pub source: SocketAddr,
    /// The address the client connected to, as the proxy saw it.
    pub destination: SocketAddr,
}

/// The 12 bytes that begin every version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Why a header cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The source and destination are not of the same address family.
    #[error(
        "the PROXY source {claimed} and destination {destination} are not of the same address \
         family: give both as IPv4 or both as IPv6"
    )]
    MixedFamilies {
        /// The claimed source.
        claimed: SocketAddr,
        /// The destination.
        destination: SocketAddr,
    },
}

impl ProxyHeader {
    /// A header, after checking that both addresses are of one family.
    ///
    /// # Errors
    /// [`ProxyError::MixedFamilies`] for an IPv4 source with an IPv6 destination or the reverse.
    pub fn new(
        version: ProxyVersion,
        source: SocketAddr,
        destination: SocketAddr,
    ) -> Result<Self, ProxyError> {
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is that IPv4 address.
        let (source, destination) = (canonical(source), canonical(destination));
        if source.is_ipv4() != destination.is_ipv4() {
            return Err(ProxyError::MixedFamilies {
                claimed: source,
                destination,
            });
        }
        Ok(Self {
            version,
            source,
            destination,
        })
    }

    /// The header's bytes, as they go on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.version {
            ProxyVersion::V1 => self.v1_line().into_bytes(),
            ProxyVersion::V2 => {
                let mut bytes = V2_SIGNATURE.to_vec();
                // Version 2, command PROXY.
                bytes.push(0x21);
                let mut addresses = Vec::with_capacity(36);
                let family = match (self.source.ip(), self.destination.ip()) {
                    (IpAddr::V4(source), IpAddr::V4(destination)) => {
                        addresses.extend_from_slice(&source.octets());
                        addresses.extend_from_slice(&destination.octets());
                        // AF_INET, STREAM.
                        0x11
                    }
                    (source, destination) => {
                        addresses.extend_from_slice(&v6(source).octets());
                        addresses.extend_from_slice(&v6(destination).octets());
                        // AF_INET6, STREAM.
                        0x21
                    }
                };
                addresses.extend_from_slice(&self.source.port().to_be_bytes());
                addresses.extend_from_slice(&self.destination.port().to_be_bytes());
                bytes.push(family);
                // At most 36 bytes of addresses: the length always fits.
                let length = u16::try_from(addresses.len()).unwrap_or(u16::MAX);
                bytes.extend_from_slice(&length.to_be_bytes());
                bytes.extend_from_slice(&addresses);
                bytes
            }
        }
    }

    /// The header in words for the transcript: version 1 as its line, version 2 decoded.
    pub fn describe(&self) -> String {
        match self.version {
            ProxyVersion::V1 => format!(
                "PROXY protocol v1 header sent before any SMTP byte: {}",
                self.v1_line().trim_end()
            ),
            ProxyVersion::V2 => format!(
                "PROXY protocol v2 header sent before any SMTP byte ({} bytes): {} from {} to {}",
                self.to_bytes().len(),
                if self.source.is_ipv4() {
                    "TCP over IPv4"
                } else {
                    "TCP over IPv6"
                },
                self.source,
                self.destination
            ),
        }
    }

    fn v1_line(&self) -> String {
        format!(
            "PROXY {} {} {} {} {}\r\n",
            if self.source.is_ipv4() {
                "TCP4"
            } else {
                "TCP6"
            },
            self.source.ip(),
            self.destination.ip(),
            self.source.port(),
            self.destination.port()
        )
    }
}

fn canonical(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn version_1_is_one_line() {
        let header = ProxyHeader::new(
            ProxyVersion::V1,
            addr("192.0.2.7:40000"),
            addr("127.0.0.1:25"),
        )
        .unwrap();
        assert_eq!(
            header.to_bytes(),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n"
        );
        let header =
            ProxyHeader::new(ProxyVersion::V1, addr("[2001:db8::7]:1"), addr("[::1]:25")).unwrap();
        assert_eq!(header.to_bytes(), b"PROXY TCP6 2001:db8::7 ::1 1 25\r\n");
    }

    #[test]
    fn version_2_is_the_binary_layout() {
        let header = ProxyHeader::new(
            ProxyVersion::V2,
            addr("192.0.2.7:40000"),
            addr("127.0.0.1:25"),
        )
        .unwrap();
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 7, 127, 0, 0, 1]);
        expected.extend_from_slice(&40000u16.to_be_bytes());
        expected.extend_from_slice(&25u16.to_be_bytes());
        assert_eq!(header.to_bytes(), expected);
        let header =
            ProxyHeader::new(ProxyVersion::V2, addr("[2001:db8::7]:1"), addr("[::1]:25")).unwrap();
        let bytes = header.to_bytes();
        assert_eq!(bytes.len(), 16 + 36);
        assert_eq!(&bytes[12..16], &[0x21, 0x21, 0, 36]);
    }

    #[test]
    fn families_must_agree() {
        assert!(ProxyHeader::new(ProxyVersion::V1, addr("192.0.2.7:1"), addr("[::1]:25")).is_err());
        // An IPv4-mapped IPv6 address is the IPv4 address.
        let header = ProxyHeader::new(
            ProxyVersion::V1,
            addr("[::ffff:192.0.2.7]:1"),
            addr("127.0.0.1:25"),
        )
        .unwrap();
        assert_eq!(
            header.to_bytes(),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 1 25\r\n"
        );
    }
}
