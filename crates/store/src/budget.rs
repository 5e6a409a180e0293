//! CA budgets: Landlord's own mirror of a CA's rate limits, so a busy platform queues
//! instead of being refused (and locked out) by the CA.
//!
//! Everything asked of a CA goes into `ca_ledger`. Before a new order, the worker
//! reserves it here: under a per-CA transaction-scoped advisory lock, it counts the
//! ledger rows inside each budget's sliding window and either records the order or says
//! which budget is spent and when its oldest entry leaves the window.
//!
//! What counts, mirroring Let's Encrypt (FIELD-NOTES §2):
//! - new orders per account: every new order that is not a renewal;
//! - certificates per registered domain (eTLD+1): counted when the order is placed, so
//!   orders in flight reserve their share; an order that fails still counts until it
//!   leaves the window (conservative: Let's Encrypt counts issued certificates);
//! - failed validations per hostname: every refusal by the CA.
//!
//! - a tenant's share of the new orders per account: no tenant places more than
//!   `tenant_share_percent` of a window's budget (at least one order), so one tenant
//!   registering hundreds of names cannot starve every other tenant's first certificate.
//!   Round-robin among due domains would not do: the budget may be spent before the
//!   second tenant even arrives.
//!
//! Renewals are exempt from the first two and the share (Let's Encrypt exempts renewals of the same
//! identifiers from them, and ARI renewals naming what they replace from every limit).

use std::time::Duration;

use time::OffsetDateTime;

use crate::{DomainId, Result, Store, TenantId};

/// At most `limit` events per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
}

impl Budget {
    /// Parse `N/DURATION` (`300/3h`, `50/7d`, `5/1h`, `2/30s`) or `off`.
    pub fn parse(s: &str) -> std::result::Result<Option<Budget>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || {
            format!("`{s}` is not a budget: write N/DURATION, e.g. 300/3h, 50/7d or 5/1h, or `off`")
        };
        let (n, window) = s.split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (amount, unit) = window.split_at(split);
        let amount: u64 = amount.parse().map_err(|_| bad())?;
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        if limit == 0 || amount == 0 {
            return Err(format!(
                "`{s}`: a budget needs a limit and a window above zero (or `off`)"
            ));
        }
        Ok(Some(Budget {
            limit,
            window: Duration::from_secs(amount * unit_secs),
        }))
    }
}

/// The budgets one CA is held to; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub orders_per_account: Option<Budget>,
    pub certificates_per_registered_domain: Option<Budget>,
    pub failed_validations_per_hostname: Option<Budget>,
    /// The most of `orders_per_account` one tenant may use per window, in percent; 100
    /// turns the share off (a single-tenant deployment).
    pub tenant_share_percent: u8,
}

impl Budgets {
    /// The share of `orders_per_account` one tenant may place per window, when shares
    /// apply: at least one order.
    pub fn tenant_share(&self) -> Option<Budget> {
        let budget = self.orders_per_account?;
        if self.tenant_share_percent >= 100 {
            return None;
        }
        let limit = (u64::from(budget.limit) * u64::from(self.tenant_share_percent) / 100).max(1);
        Some(Budget {
            limit: u32::try_from(limit).unwrap_or(budget.limit),
            window: budget.window,
        })
    }
}

impl Default for Budgets {
    /// Let's Encrypt's published limits.
    fn default() -> Self {
        Budgets {
            orders_per_account: Some(Budget {
                limit: 300,
                window: Duration::from_secs(3 * 3600),
            }),
            certificates_per_registered_domain: Some(Budget {
                limit: 50,
                window: Duration::from_secs(7 * 86_400),
            }),
            failed_validations_per_hostname: Some(Budget {
                limit: 5,
                window: Duration::from_secs(3600),
            }),
            tenant_share_percent: 50,
        }
    }
}

/// Which budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    OrdersPerAccount,
    /// The tenant placed its share of `OrdersPerAccount`.
    TenantShare,
    CertificatesPerRegisteredDomain,
    FailedValidationsPerHostname,
}

/// The answer to "may this order be placed now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Recorded in the ledger; place the order.
    Granted,
    /// Wait: `kind` is spent (`used` of `budget`) until `until`.
    Queued {
        kind: BudgetKind,
        budget: Budget,
        used: i64,
        until: OffsetDateTime,
    },
}

/// One order about to be placed.
#[derive(Debug, Clone)]
pub struct OrderRequest<'a> {
    pub ca: &'a str,
    pub tenant_id: TenantId,
    pub domain_id: DomainId,
    pub hostname: &'a str,
    pub registered_domain: &'a str,
    pub renewal: bool,
}

impl Store {
    /// Reserve a new order against `budgets`, or say which is spent and until when.
    pub async fn reserve_order(
        &self,
        budgets: &Budgets,
        order: &OrderRequest<'_>,
    ) -> Result<Reservation> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("ca-budget:{}", order.ca))
            .execute(&mut *tx)
            .await?;
        // (kind, budget, column, value): renewals are exempt from the first two.
        let mut checks: Vec<(BudgetKind, Budget, &str, &str, &str)> = Vec::new();
        if !order.renewal {
            if let Some(b) = budgets.orders_per_account {
                checks.push((BudgetKind::OrdersPerAccount, b, "order", "ca", order.ca));
            }
            if let Some(b) = budgets.tenant_share() {
                checks.push((BudgetKind::TenantShare, b, "order", "tenant_id", ""));
            }
            if let Some(b) = budgets.certificates_per_registered_domain {
                checks.push((
                    BudgetKind::CertificatesPerRegisteredDomain,
                    b,
                    "order",
                    "registered_domain",
                    order.registered_domain,
                ));
            }
        }
        if let Some(b) = budgets.failed_validations_per_hostname {
            checks.push((
                BudgetKind::FailedValidationsPerHostname,
                b,
                "failed_validation",
                "hostname",
                order.hostname,
            ));
        }
        for (kind, budget, entry_kind, column, value) in checks {
            let sql = match column {
                "ca" => SPENT_BY_CA,
                "tenant_id" => SPENT_BY_TENANT,
                "registered_domain" => SPENT_BY_REGISTERED_DOMAIN,
                _ => SPENT_BY_HOSTNAME,
            };
            // Entries in the window, and when the oldest one that must leave for a new
            // entry to fit (the limit-th newest) leaves it.
            let query = sqlx::query_as(sql).bind(order.ca).bind(entry_kind);
            let query = match column {
                "tenant_id" => query.bind(order.tenant_id.to_string()),
                _ => query.bind(value.to_owned()),
            };
            let (used, until): (i64, Option<OffsetDateTime>) = query
                .bind(budget.window.as_secs_f64())
                .bind(i64::from(budget.limit))
                .fetch_one(&mut *tx)
                .await?;
            if used >= i64::from(budget.limit) {
                let until = until.unwrap_or_else(|| OffsetDateTime::now_utc() + budget.window);
                return Ok(Reservation::Queued {
                    kind,
                    budget,
                    used,
                    until,
                });
            }
        }
        record(&mut tx, "order", order).await?;
        // Nothing older than a week matters to any budget Let's Encrypt publishes; keep a
        // month for the operator's curiosity.
        sqlx::query("DELETE FROM ca_ledger WHERE ca = $1 AND at < now() - interval '30 days'")
            .bind(order.ca)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Reservation::Granted)
    }

    /// Record a validation the CA refused.
    pub async fn record_failed_validation(&self, order: &OrderRequest<'_>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        record(&mut conn, "failed_validation", order).await
    }
}

/// Append one ledger entry of `kind` for `order`.
async fn record(conn: &mut sqlx::PgConnection, kind: &str, order: &OrderRequest<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO ca_ledger (ca, kind, hostname, registered_domain, domain_id, renewal, \
             tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order.ca)
    .bind(kind)
    .bind(order.hostname)
    .bind(order.registered_domain)
    .bind(order.domain_id)
    .bind(order.renewal)
    .bind(order.tenant_id)
    .execute(conn)
    .await?;
    Ok(())
}

macro_rules! spent {
    ($filter:literal) => {
        concat!(
            "WITH w AS (SELECT at FROM ca_ledger WHERE ca = $1 AND kind = $2 AND ",
            $filter,
            " AND at > now() - make_interval(secs => $4)) \
             SELECT (SELECT count(*) FROM w), \
                 (SELECT at FROM w ORDER BY at DESC OFFSET $5 - 1 LIMIT 1) \
                     + make_interval(secs => $4)"
        )
    };
}
// Renewal orders are exempt from the order and registered-domain budgets; every failed
// validation counts.
const SPENT_BY_CA: &str = spent!("ca = $3 AND NOT renewal");
const SPENT_BY_TENANT: &str = spent!("tenant_id = $3::uuid AND NOT renewal");
const SPENT_BY_REGISTERED_DOMAIN: &str = spent!("registered_domain = $3 AND NOT renewal");
const SPENT_BY_HOSTNAME: &str = spent!("hostname = $3");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        assert_eq!(
            Budget::parse("300/3h"),
            Ok(Some(Budget {
                limit: 300,
                window: Duration::from_secs(10_800)
            }))
        );
        assert_eq!(
            Budget::parse(" 2/30s "),
            Ok(Some(Budget {
                limit: 2,
                window: Duration::from_secs(30)
            }))
        );
        assert_eq!(Budget::parse("off"), Ok(None));
        for bad in [
            "", "300", "300/", "/3h", "x/3h", "3/3", "3/3w", "0/1h", "3/0h", "-1/1h",
        ] {
            assert!(Budget::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
