//! Admission: the connection caps, and accepting with back-off.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::Limits;
use super::proxy::ProxyPolicy;

/// Who a connection counts against: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.into()),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
    /// PROXY protocol required, and the peer is not a trusted sender.
    ProxyUntrusted,
    /// PROXY protocol required, and no valid header arrived in time.
    ProxyHeader,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
            Refusal::ProxyUntrusted => "proxy_untrusted",
            Refusal::ProxyHeader => "proxy_header",
        }
    }

    /// Count a refusal of this listener's.
    pub fn count(self, listener: &'static str) {
        metrics::counter!("landlord_connections_refused_total",
            "listener" => listener, "reason" => self.label())
        .increment(1);
    }
}

/// Counts the open connections of one listener, in all and per client.
pub struct Gate {
    name: &'static str,
    max: usize,
    max_per_client: usize,
    /// Behind a TCP load balancer: who may connect, and send the client's address first.
    proxy: Option<ProxyPolicy>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<Client, usize>,
}

impl Gate {
    pub fn new(name: &'static str, limits: &Limits) -> Arc<Gate> {
        Arc::new(Gate {
            name,
            max: limits.max_connections.max(1),
            max_per_client: limits.max_connections_per_ip.max(1),
            proxy: limits.proxy.clone(),
            open: Mutex::default(),
        })
    }

    /// Admit a connection from `ip`, or say which cap it would exceed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut permit = self.admit_peer()?;
        permit.claim(ip)?;
        Ok(permit)
    }

    /// Admit a connection against the listener's cap only: its client is known later (from
    /// a PROXY header), and [`Permit::claim`] counts it then.
    fn admit_peer(self: &Arc<Self>) -> Result<Permit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max {
            return Err(Refusal::MaxConnections);
        }
        open.total += 1;
        drop(open);
        metrics::gauge!("landlord_connections_open", "listener" => self.name).increment(1.0);
        Ok(Permit {
            gate: self.clone(),
            client: None,
        })
    }

    /// The PROXY policy of this listener, if any.
    pub fn proxy(&self) -> Option<&ProxyPolicy> {
        self.proxy.as_ref()
    }

    /// Open connections now (for tests).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One admitted connection; dropping it frees its slot.
pub struct Permit {
    gate: Arc<Gate>,
    /// Who it counts against, once known.
    client: Option<Client>,
}

impl Permit {
    /// Count this connection against the client `ip`'s cap (once).
    pub fn claim(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.client.is_some() {
            return Ok(());
        }
        let client = Client::of(ip);
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.per_client.entry(client).or_insert(0);
        if *mine >= self.gate.max_per_client {
            if *mine == 0 {
                open.per_client.remove(&client);
            }
            return Err(Refusal::MaxConnectionsPerIp);
        }
        *mine += 1;
        self.client = Some(client);
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(client) = self.client
            && let Some(n) = open.per_client.get_mut(&client)
        {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&client);
            }
        }
        drop(open);
        metrics::gauge!("landlord_connections_open", "listener" => self.gate.name).decrement(1.0);
    }
}

/// A listener behind its gate, with back-off on resource exhaustion.
pub struct Acceptor {
    listener: TcpListener,
    gate: Arc<Gate>,
    backoff: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Acceptor {
    pub fn new(listener: TcpListener, gate: Arc<Gate>) -> Acceptor {
        Acceptor {
            listener,
            gate,
            backoff: BACKOFF_MIN,
            last_logged: None,
            suppressed: 0,
        }
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The next admitted connection. Connections over a cap are closed here; accept
    /// errors are counted, and exhausted resources make it wait before trying again.
    /// Cancel-safe.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, Permit) {
        let name = self.gate.name;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = BACKOFF_MIN;
                    // Behind a balancer, the client is counted once its header is read.
                    let admitted = match &self.gate.proxy {
                        None => self.gate.admit(peer.ip()),
                        Some(p) if p.trusts(peer.ip()) => self.gate.admit_peer(),
                        Some(_) => Err(Refusal::ProxyUntrusted),
                    };
                    match admitted {
                        Ok(permit) => {
                            metrics::counter!("landlord_connections_total", "listener" => name)
                                .increment(1);
                            return (stream, peer, permit);
                        }
                        Err(refusal) => {
                            refusal.count(name);
                            // Closed before reading anything: RST rather than a lingering FIN.
                            let _ = stream.set_zero_linger();
                            drop(stream);
                        }
                    }
                }
                Err(e) if exhausted(&e) => {
                    metrics::counter!("landlord_accept_errors_total",
                        "listener" => name, "error" => "resources")
                    .increment(1);
                    self.log_throttled(&e);
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    // Per-connection failures (the peer reset before accept, ...).
                    metrics::counter!("landlord_accept_errors_total",
                        "listener" => name, "error" => "other")
                    .increment(1);
                    tracing::debug!(listener = name, error = %e, "accept failed");
                }
            }
        }
    }

    fn log_throttled(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self.last_logged.is_some_and(|at| now - at < LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            listener = self.gate.name,
            error = %e,
            also_since_last_report = self.suppressed,
            "cannot accept connections (out of file descriptors or memory); backing off"
        );
        self.last_logged = Some(now);
        self.suppressed = 0;
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin.
fn exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_64s() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            Client::of(ip("192.0.2.7")),
            Client::of(ip("::ffff:192.0.2.7"))
        );
        assert_ne!(Client::of(ip("192.0.2.7")), Client::of(ip("192.0.2.8")));
        assert_eq!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn the_gate_caps_each_client_and_the_listener() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let gate = Gate::new("test", &limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::MaxConnectionsPerIp));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(c).err(), Some(Refusal::MaxConnections));
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _c1 = gate.admit(c).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::MaxConnections));
    }
}
