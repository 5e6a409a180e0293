//! Ids of the rows a tenant names in URLs. Minted by the store for new rows; read from
//! the database or from a request (an id in a URL is only a name: every query also takes
//! the caller's [`TenantId`](crate::TenantId)). Distinct types, so a site's id cannot be
//! passed where a domain's is meant.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id (UUIDv7: ordered by creation).
            pub(crate) fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Any id, for unit tests that need one without a database.
            #[cfg(feature = "testing")]
            pub fn for_tests(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

row_id!(
    /// The id of a domain.
    DomainId
);
row_id!(
    /// The id of a site.
    SiteId
);
row_id!(
    /// The id of a deploy.
    DeploymentId
);
