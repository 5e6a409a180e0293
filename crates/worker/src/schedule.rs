//! When to look at a domain again. Pure functions of the attempt count and the clock,
//! so they are tested without sleeping.

use std::time::Duration;

use time::OffsetDateTime;

/// DNS re-check backoff while a domain does not point at us: 15 s, 30 s, 1 min, 2 min,
/// 5 min, 10 min, then every 30 min; once the domain is 7 days old, daily (Cloudflare for
/// SaaS gives up after 7 days; we keep checking, rarely).
pub fn dns_retry(attempts: i32, age: Duration) -> Duration {
    const STEPS: [u64; 6] = [15, 30, 60, 120, 300, 600];
    if age >= Duration::from_secs(7 * 86_400) {
        return Duration::from_secs(86_400);
    }
    let i = usize::try_from(attempts.max(0)).unwrap_or(usize::MAX);
    Duration::from_secs(STEPS.get(i).copied().unwrap_or(1800))
}

/// After a CA refusal: Let's Encrypt's recommended 1 min, 10 min, 100 min, then daily.
/// Each refusal is a failed validation, and LE allows 5 per hostname per hour; this
/// schedule makes at most 3 in any hour.
pub fn ca_retry(failures: i32) -> Duration {
    match failures {
        i32::MIN..=1 => Duration::from_secs(60),
        2 => Duration::from_secs(600),
        3 => Duration::from_secs(6000),
        _ => Duration::from_secs(86_400),
    }
}

/// A transient failure (DNS timeout, CA unreachable): retry soon, a little later each time.
pub fn transient_retry(attempts: i32) -> Duration {
    Duration::from_secs(10 * 2u64.pow(attempts.clamp(0, 6) as u32)).min(Duration::from_secs(600))
}

/// When to renew: when one third of the lifetime remains (half for certificates shorter
/// than 10 days), as Let's Encrypt recommends.
pub fn renew_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    if lifetime < time::Duration::days(10) {
        not_before + lifetime / 2
    } else {
        not_before + lifetime * 2 / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dns_backoff_grows_and_caps() {
        let young = Duration::from_secs(60);
        let secs: Vec<u64> = (0..9).map(|n| dns_retry(n, young).as_secs()).collect();
        assert_eq!(secs, [15, 30, 60, 120, 300, 600, 1800, 1800, 1800]);
        assert_eq!(
            dns_retry(3, Duration::from_secs(8 * 86_400)).as_secs(),
            86_400
        );
    }

    #[test]
    fn ca_backoff_follows_lets_encrypt() {
        let secs: Vec<u64> = (1..=5).map(|n| ca_retry(n).as_secs()).collect();
        assert_eq!(secs, [60, 600, 6000, 86_400, 86_400]);
    }

    #[test]
    fn renewal_at_two_thirds_or_half() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(
            renew_at(nb, nb + time::Duration::days(90)),
            nb + time::Duration::days(60)
        );
        assert_eq!(
            renew_at(nb, nb + time::Duration::hours(160)),
            nb + time::Duration::hours(80)
        );
    }
}
