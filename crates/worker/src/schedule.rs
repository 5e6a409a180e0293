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

/// When to renew without renewal information from the CA: when one third of the
/// lifetime remains (half for certificates shorter than 10 days), as Let's Encrypt
/// recommends, moved earlier by up to 1/30 of the lifetime (1/20 under 10 days) by
/// `random` in [0, 1) so certificates issued together do not renew together. Never later
/// than the recommendation.
pub fn renew_at(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    random: f64,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    let (at, spread) = if lifetime < time::Duration::days(10) {
        (not_before + lifetime / 2, lifetime / 20)
    } else {
        (not_before + lifetime * 2 / 3, lifetime / 30)
    };
    at - spread * random.clamp(0.0, 1.0)
}

/// A retry while a certificate is being renewed must come well before it expires:
/// `wait`, but at most a quarter of the time left (at least `floor`).
pub fn before_expiry(wait: Duration, until_expiry: Duration, floor: Duration) -> Duration {
    wait.min((until_expiry / 4).max(floor))
}

/// A duration as a person says it: "30 seconds", "1 hour", "3 hours", "7 days".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let unit = |n: u64, name: &str| {
        if n == 1 {
            format!("1 {name}")
        } else {
            format!("{n} {name}s")
        }
    };
    match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => unit(s / 86_400, "day"),
        _ if s >= 3600 && s.is_multiple_of(3600) => unit(s / 3600, "hour"),
        0..=119 => unit(s, "second"),
        120..=7199 => unit(s / 60, "minute"),
        7200..=172_799 => unit(s / 3600, "hour"),
        _ => unit(s / 86_400, "day"),
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
    fn durations_read_naturally() {
        let h = |s| human(Duration::from_secs(s));
        assert_eq!(
            [
                h(1),
                h(30),
                h(3600),
                h(10_800),
                h(604_800),
                h(600),
                h(86_400)
            ],
            [
                "1 second",
                "30 seconds",
                "1 hour",
                "3 hours",
                "7 days",
                "10 minutes",
                "1 day"
            ]
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
            renew_at(nb, nb + time::Duration::days(90), 0.0),
            nb + time::Duration::days(60)
        );
        assert_eq!(
            renew_at(nb, nb + time::Duration::hours(160), 0.0),
            nb + time::Duration::hours(80)
        );
        // Jitter only ever moves renewal earlier: up to 3 days for 90-day certificates,
        // 8 hours for 6-day ones.
        assert_eq!(
            renew_at(nb, nb + time::Duration::days(90), 0.5),
            nb + time::Duration::days(60) - time::Duration::hours(36)
        );
        assert_eq!(
            renew_at(nb, nb + time::Duration::hours(160), 1.0),
            nb + time::Duration::hours(72)
        );
    }

    #[test]
    fn retries_fit_before_expiry() {
        let day = Duration::from_secs(86_400);
        let min = Duration::from_secs(60);
        // Plenty of time: the backoff as it is.
        assert_eq!(before_expiry(day, 30 * day, min), day);
        // Two days left: at most every 12 hours.
        assert_eq!(before_expiry(day, 2 * day, min), day / 2);
        // Almost expired: never below the floor.
        assert_eq!(before_expiry(day, Duration::from_secs(10), min), min);
    }
}
