//! What the database announces for the dashboard's live stream, typed: the triggers of
//! migrations 0002, 0003 and 0007 NOTIFY these channels with space-separated ids.

use crate::{DomainId, Notification, TenantId};

/// A domain row changed: `"<tenant> <domain> <op>"`.
pub const DOMAINS_CHANNEL: &str = "landlord_domains";
/// A timeline entry was added: `"<tenant> <domain>"`.
pub const EVENTS_CHANNEL: &str = "landlord_events";
/// An entry of a tenant's own log (`GET /v1/tenant/events`): `"<tenant> <id>"`.
pub const TENANT_EVENTS_CHANNEL: &str = "landlord_tenant_events";
/// Every channel a live stream listens on.
pub const LIVE_CHANNELS: [&str; 3] = [DOMAINS_CHANNEL, EVENTS_CHANNEL, TENANT_EVENTS_CHANNEL];

/// One announcement, for one tenant's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveNotice {
    /// The domain was created or changed, or (`deleted`) removed.
    Domain {
        tenant: TenantId,
        domain: DomainId,
        deleted: bool,
    },
    /// The domain's timeline has a new entry.
    Timeline { tenant: TenantId, domain: DomainId },
    /// The tenant's own log has entry `id`.
    Account { tenant: TenantId, id: i64 },
}

impl LiveNotice {
    /// The notice a notification carries; `None` for another channel or a payload this
    /// release does not read.
    pub fn parse(n: &Notification) -> Option<Self> {
        let mut parts = n.payload.split(' ');
        let tenant = TenantId::from_uuid(parts.next()?.parse().ok()?);
        match n.channel.as_str() {
            TENANT_EVENTS_CHANNEL => Some(Self::Account {
                tenant,
                id: parts.next()?.parse().ok()?,
            }),
            DOMAINS_CHANNEL => Some(Self::Domain {
                tenant,
                domain: parts.next()?.parse().ok()?,
                deleted: parts.next() == Some("deleted"),
            }),
            EVENTS_CHANNEL => Some(Self::Timeline {
                tenant,
                domain: parts.next()?.parse().ok()?,
            }),
            _ => None,
        }
    }

    pub fn tenant(&self) -> TenantId {
        match self {
            Self::Domain { tenant, .. }
            | Self::Timeline { tenant, .. }
            | Self::Account { tenant, .. } => *tenant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(channel: &str, payload: &str) -> Option<LiveNotice> {
        LiveNotice::parse(&Notification {
            channel: channel.into(),
            payload: payload.into(),
        })
    }

    const T: &str = "0190a8c2-7f55-7cc3-9a6e-1c2d3e4f5a6b";
    const D: &str = "0190a8c2-7f55-7cc3-9a6e-000000000001";

    #[test]
    fn payloads_of_each_channel_are_read() {
        let tenant = TenantId::from_uuid(T.parse().unwrap());
        let domain: DomainId = D.parse().unwrap();
        assert_eq!(
            notice(DOMAINS_CHANNEL, &format!("{T} {D} deleted")),
            Some(LiveNotice::Domain {
                tenant,
                domain,
                deleted: true
            })
        );
        assert_eq!(
            notice(DOMAINS_CHANNEL, &format!("{T} {D} updated")),
            Some(LiveNotice::Domain {
                tenant,
                domain,
                deleted: false
            })
        );
        assert_eq!(
            notice(EVENTS_CHANNEL, &format!("{T} {D}")),
            Some(LiveNotice::Timeline { tenant, domain })
        );
        assert_eq!(
            notice(TENANT_EVENTS_CHANNEL, &format!("{T} 42")),
            Some(LiveNotice::Account { tenant, id: 42 })
        );
    }

    #[test]
    fn unreadable_payloads_and_other_channels_are_none() {
        assert_eq!(notice(DOMAINS_CHANNEL, "not-a-uuid x"), None);
        assert_eq!(notice(EVENTS_CHANNEL, T), None);
        assert_eq!(notice(TENANT_EVENTS_CHANNEL, &format!("{T} x")), None);
        assert_eq!(notice("landlord_changes", &format!("{T} {D}")), None);
    }
}
