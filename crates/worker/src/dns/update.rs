//! DNS-01 records written over RFC 2136 dynamic updates, TSIG-signed (RFC 8945): the
//! interface BIND, Knot and PowerDNS speak, and what lego, certbot and cert-manager use.
//! The messages, TSIG signing and the verification of the server's signed answers are
//! hickory-proto's; this module sends them over UDP (one datagram each way, retried once),
//! maps the server's answers to plain-words problems, and checks that a record is visible
//! on the zone's authoritative servers (queried directly, never through a cache) before a
//! CA is asked to look. A refusal is often answered with an unsigned TSIG (empty MAC, the
//! TSIG error set): its response code is read then, since nothing is accepted from it.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use hickory_proto::op::{Message, Query, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType, TSigner};
use tokio::net::UdpSocket;

/// Zone and record names, as this module's functions take them.
pub use hickory_proto::rr::Name;

/// TTL of the challenge records: short, as they live for one validation.
const TXT_TTL: u32 = 60;
/// Allowed clock difference between us and the server for TSIG (RFC 8945 suggests 300 s).
const TSIG_FUDGE: u16 = 300;

/// A TSIG key: `name:algorithm:base64-secret` (`LANDLORD_DNS_UPDATE_TSIG`), the algorithm
/// one of `hmac-sha256`, `hmac-sha384`, `hmac-sha512`. The secret is never printed.
#[derive(Clone)]
pub struct TsigKey {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TsigKey({} {}, secret hidden)",
            self.name, self.algorithm
        )
    }
}

impl FromStr for TsigKey {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let mut parts = raw.splitn(3, ':');
        let (Some(name), Some(algorithm), Some(secret)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(
                "expected name:algorithm:base64-secret, e.g. landlord:hmac-sha256:c2VjcmV0…".into(),
            );
        };
        let name = Name::from_ascii(name)
            .ok()
            .filter(|n| !n.is_root())
            .ok_or_else(|| format!("{name:?} is not a key name"))?;
        let algorithm = match algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => {
                return Err(format!(
                    "algorithm {other:?} is not accepted: use hmac-sha256, hmac-sha384 or hmac-sha512"
                ));
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| "the secret is not base64".to_owned())?;
        if secret.len() < 16 {
            return Err("the secret is shorter than 16 bytes".into());
        }
        Ok(Self {
            name,
            algorithm,
            secret,
        })
    }
}

/// Why a record could not be written, removed or checked, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "the DNS server {server} did not answer ({detail}); check LANDLORD_DNS_UPDATE_SERVER (or LANDLORD_DNS_UPDATE_CHECK_SERVERS) and that it answers over UDP"
    )]
    Unreachable { server: SocketAddr, detail: String },
    #[error(
        "the DNS server {server} refused our TSIG signature ({rcode}): the key name, algorithm or secret in LANDLORD_DNS_UPDATE_TSIG is not the one it knows"
    )]
    Tsig { server: SocketAddr, rcode: String },
    #[error(
        "the DNS server {server} refused to update zone {zone} ({rcode}): it does not serve that zone as its primary, or it does not know the key in LANDLORD_DNS_UPDATE_TSIG or let it update that zone"
    )]
    Refused {
        server: SocketAddr,
        zone: String,
        rcode: String,
    },
    #[error("the DNS server {server} answered {rcode} to the update of {name}")]
    Failed {
        server: SocketAddr,
        name: String,
        rcode: String,
    },
    #[error("{name} is not inside zone {zone}")]
    OutOfZone { name: String, zone: String },
}

/// Writes and removes TXT records over RFC 2136, and checks them on the zone's servers.
#[derive(Clone)]
pub struct DnsUpdater {
    server: SocketAddr,
    signer: TSigner,
    check_servers: Vec<SocketAddr>,
    timeout: Duration,
}

impl fmt::Debug for DnsUpdater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsUpdater")
            .field("server", &self.server)
            .field("key", &self.signer.signer_name().to_string())
            .field("check_servers", &self.check_servers)
            .finish()
    }
}

impl DnsUpdater {
    /// Updates go to `server`, signed with `key`; records are checked on `check_servers`
    /// (the update server when empty).
    pub fn new(
        server: SocketAddr,
        key: &TsigKey,
        check_servers: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let signer = TSigner::new(
            key.secret.clone(),
            key.algorithm.clone(),
            key.name.clone(),
            TSIG_FUDGE,
        )
        .map_err(|e| format!("the TSIG key cannot sign: {e}"))?;
        let check_servers = match check_servers.is_empty() {
            true => vec![server],
            false => check_servers,
        };
        Ok(Self {
            server,
            signer,
            check_servers,
            timeout,
        })
    }

    /// Send `message` to `server` (signed with our key when `signed`) and read the answer:
    /// a signed answer must verify; an unsigned one is only believed when it refuses.
    async fn exchange(
        &self,
        server: SocketAddr,
        mut message: Message,
        signed: bool,
    ) -> Result<Message, UpdateError> {
        let unreachable = |detail: String| UpdateError::Unreachable { server, detail };
        message.metadata.id = rand::random();
        let request_mac = match signed {
            true => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                message
                    .finalize(&self.signer, now)
                    .map_err(|e| unreachable(format!("cannot sign the request: {e}")))?;
                message.signature.as_ref().map(|tsig| tsig.data.mac.clone())
            }
            false => None,
        };
        let bytes = message
            .to_vec()
            .map_err(|e| unreachable(format!("cannot encode the request: {e}")))?;
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        socket
            .connect(server)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut buf = vec![0u8; 4096];
        let mut last = String::from("no answer");
        for _ in 0..2 {
            if let Err(e) = socket.send(&bytes).await {
                last = e.to_string();
                continue;
            }
            let received = tokio::time::timeout(self.timeout, async {
                loop {
                    let n = socket.recv(&mut buf).await?;
                    match Message::from_vec(&buf[..n]) {
                        Ok(answer) if answer.metadata.id == message.metadata.id => {
                            return Ok::<_, std::io::Error>((answer, n));
                        }
                        _ => continue, // not ours: keep waiting
                    }
                }
            })
            .await;
            match received {
                Ok(Ok((answer, n))) => {
                    return self.believe(server, answer, &buf[..n], request_mac.as_deref());
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("no answer within {:?}", self.timeout),
            }
        }
        Err(unreachable(last))
    }

    /// `answer` if it can be believed: signed with our key when the request was signed
    /// (an unsigned or badly signed answer is only taken as a refusal, never as success).
    fn believe(
        &self,
        server: SocketAddr,
        answer: Message,
        raw: &[u8],
        request_mac: Option<&[u8]>,
    ) -> Result<Message, UpdateError> {
        let Some(request_mac) = request_mac else {
            return Ok(answer);
        };
        let tsig = answer.signature.as_ref().map(|s| &s.data);
        match tsig.and_then(|t| t.error.as_ref()) {
            // BADKEY: a key the server does not know, or (Knot) one its ACL does not let
            // update this zone; the refusal's response code says the rest (see `judge`).
            Some(TsigError::BadKey) if answer.metadata.response_code != ResponseCode::NoError => {
                return Ok(answer);
            }
            Some(error) => {
                return Err(UpdateError::Tsig {
                    server,
                    rcode: format!("{error:?}"),
                });
            }
            None => {}
        }
        match tsig {
            Some(t) if !t.mac.is_empty() => {
                self.signer
                    .verify_message_byte(raw, Some(request_mac), true)
                    .map_err(|e| UpdateError::Tsig {
                        server,
                        rcode: format!("the answer's signature does not verify: {e}"),
                    })?;
                Ok(answer)
            }
            // Unsigned: believable only as a refusal (it cannot make us think we succeeded).
            _ if answer.metadata.response_code != ResponseCode::NoError => Ok(answer),
            _ => Err(UpdateError::Tsig {
                server,
                rcode: "an unsigned answer to a signed update".into(),
            }),
        }
    }

    /// Add the TXT record `name` = `value` to `zone` (other values of `name` stay: several
    /// validations of one name may be in flight).
    pub async fn add_txt(&self, zone: &Name, name: &Name, value: &str) -> Result<(), UpdateError> {
        let record = txt_record(zone, name, value)?;
        let message = update_message::append(record.into(), zone.clone(), false, false);
        let answer = self.exchange(self.server, message, true).await?;
        self.judge(zone, name, answer.metadata.response_code)
    }

    /// Remove the TXT record `name` = `value` from `zone` (nothing happens when absent).
    pub async fn remove_txt(
        &self,
        zone: &Name,
        name: &Name,
        value: &str,
    ) -> Result<(), UpdateError> {
        let record = txt_record(zone, name, value)?;
        let message = update_message::delete_by_rdata(record.into(), zone.clone(), false);
        let answer = self.exchange(self.server, message, true).await?;
        self.judge(zone, name, answer.metadata.response_code)
    }

    /// Whether every check server answers `name` TXT with `value` (each is asked
    /// directly; recursion is asked for, so a resolver may be listed too).
    pub async fn txt_visible(&self, name: &Name, value: &str) -> Result<bool, UpdateError> {
        for &server in &self.check_servers {
            let mut message = Message::query();
            message.add_query(Query::query(name.clone(), RecordType::TXT));
            message.metadata.recursion_desired = true;
            let answer = self.exchange(server, message, false).await?;
            let found = answer.answers.iter().any(|r| match &r.data {
                RData::TXT(txt) => txt_text(txt) == value,
                _ => false,
            });
            if !found {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The update's outcome, in words.
    fn judge(&self, zone: &Name, name: &Name, rcode: ResponseCode) -> Result<(), UpdateError> {
        let server = self.server;
        match rcode {
            ResponseCode::NoError => Ok(()),
            ResponseCode::BADSIG | ResponseCode::BADKEY | ResponseCode::BADTIME => {
                Err(UpdateError::Tsig {
                    server,
                    rcode: rcode.to_string(),
                })
            }
            ResponseCode::Refused | ResponseCode::NotAuth | ResponseCode::NotZone => {
                Err(UpdateError::Refused {
                    server,
                    zone: zone.to_string(),
                    rcode: rcode.to_string(),
                })
            }
            other => Err(UpdateError::Failed {
                server,
                name: name.to_string(),
                rcode: other.to_string(),
            }),
        }
    }
}

fn txt_record(zone: &Name, name: &Name, value: &str) -> Result<Record, UpdateError> {
    if !zone.zone_of(name) {
        return Err(UpdateError::OutOfZone {
            name: name.to_string(),
            zone: zone.to_string(),
        });
    }
    let mut record = Record::from_rdata(
        name.clone(),
        TXT_TTL,
        RData::TXT(TXT::new(vec![value.to_owned()])),
    );
    record.dns_class = DNSClass::IN;
    Ok(record)
}

fn txt_text(txt: &TXT) -> String {
    txt.txt_data
        .iter()
        .map(|part| String::from_utf8_lossy(part))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsig_keys_parse_and_hide_their_secret() {
        let key: TsigKey = "landlord:hmac-sha256:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
            .parse()
            .unwrap();
        assert_eq!(key.name.to_ascii(), "landlord");
        assert!(!format!("{key:?}").contains("c2Vj"));
        for bad in [
            "landlord",
            "landlord:hmac-md5:c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
            "landlord:hmac-sha256:not base64!",
            "landlord:hmac-sha256:c2hvcnQ=",
        ] {
            assert!(bad.parse::<TsigKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn records_outside_the_zone_are_refused_before_sending() {
        let zone = Name::from_ascii("acme.example.net.").unwrap();
        let name = Name::from_ascii("_acme-challenge.shop.example.com.").unwrap();
        assert!(matches!(
            txt_record(&zone, &name, "x"),
            Err(UpdateError::OutOfZone { .. })
        ));
    }
}
