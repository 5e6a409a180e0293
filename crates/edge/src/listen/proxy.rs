//! PROXY protocol v2 (HAProxy's binary header) on the edge listeners, for an edge behind a
//! TCP load balancer: the header a trusted balancer sends first carries the visitor's
//! address, which the per-client cap, the logs and the limits then see. Parsing is the
//! `ppp` crate's; what is trusted and when a connection is refused is ours.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use ppp::v2::{Addresses, Command, Header, PROTOCOL_PREFIX};
use tokio::io::{AsyncRead, AsyncReadExt};

/// `LANDLORD_PROXY_PROTOCOL=v2` with `LANDLORD_PROXY_TRUSTED`: every connection must come
/// from a trusted sender and start with a v2 header; any other is closed unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    pub trusted: Vec<IpNet>,
}

impl ProxyPolicy {
    /// Whether `ip` (IPv4-mapped IPv6 taken as IPv4) may send headers.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }
}

/// The fixed part of a v2 header: the 12-byte signature, version and command, family and
/// protocol, and the length of the rest.
const FIXED: usize = 16;
/// The most bytes after the fixed part this edge reads (addresses take at most 216; the
/// rest would be TLVs, which it does not use).
const MAX_REST: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("the connection did not start with a PROXY protocol v2 header")]
    Missing,
    #[error("the PROXY header announces {0} bytes, more than the {MAX_REST} accepted")]
    TooLong(usize),
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// Read one v2 header from the start of `stream` (exactly its bytes, nothing after it).
/// `Some(client)` for a proxied TCP connection; `None` for the balancer's own (`LOCAL`,
/// health checks) or an address family without one (the connection's peer stands).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyError> {
    let mut buf = vec![0u8; FIXED];
    let io = |e: std::io::Error| ProxyError::Io(e.to_string());
    stream.read_exact(&mut buf).await.map_err(io)?;
    if buf[..PROTOCOL_PREFIX.len()] != *PROTOCOL_PREFIX {
        return Err(ProxyError::Missing);
    }
    let rest = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if rest > MAX_REST {
        return Err(ProxyError::TooLong(rest));
    }
    buf.resize(FIXED + rest, 0);
    stream.read_exact(&mut buf[FIXED..]).await.map_err(io)?;
    let header =
        Header::try_from(buf.as_slice()).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    if header.command == Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, IPv4, IPv6, Protocol, Version};

    fn header(command: Command, addresses: Addresses) -> Vec<u8> {
        Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_client_address_is_read_and_nothing_after_it() {
        let mut bytes = header(
            Command::Proxy,
            IPv4::new([198, 51, 100, 7], [192, 0, 2, 1], 50_123, 443).into(),
        );
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut reader = bytes.as_slice();
        let client = read_header(&mut reader).await.unwrap();
        assert_eq!(client, Some("198.51.100.7:50123".parse().unwrap()));
        assert_eq!(reader, b"GET / HTTP/1.1\r\n");

        let v6 = header(
            Command::Proxy,
            IPv6::new(
                "2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap(),
                "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap(),
                4000,
                443,
            )
            .into(),
        );
        assert_eq!(
            read_header(&mut v6.as_slice()).await.unwrap(),
            Some("[2001:db8::7]:4000".parse().unwrap())
        );
        let local = header(Command::Local, Addresses::Unspecified);
        assert_eq!(read_header(&mut local.as_slice()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let plain = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
        assert_eq!(
            read_header(&mut plain.as_slice()).await,
            Err(ProxyError::Missing)
        );
        // PROXY protocol v1 (text) is not v2.
        let v1 = b"PROXY TCP4 198.51.100.7 192.0.2.1 50123 443\r\n";
        assert_eq!(
            read_header(&mut v1.as_slice()).await,
            Err(ProxyError::Missing)
        );
        let mut long = PROTOCOL_PREFIX.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            read_header(&mut long.as_slice()).await,
            Err(ProxyError::TooLong(65_535))
        );
        let truncated = &header(
            Command::Proxy,
            IPv4::new([198, 51, 100, 7], [192, 0, 2, 1], 1, 2).into(),
        )[..20];
        assert!(matches!(
            read_header(&mut &truncated[..]).await,
            Err(ProxyError::Io(_))
        ));
    }

    #[test]
    fn trust_is_by_network_with_mapped_addresses_as_ipv4() {
        let policy = ProxyPolicy {
            trusted: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        assert!(policy.trusts("10.1.2.3".parse().unwrap()));
        assert!(policy.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(policy.trusts("::1".parse().unwrap()));
        assert!(!policy.trusts("192.0.2.1".parse().unwrap()));
    }
}
