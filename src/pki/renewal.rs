//! When to renew, and how long to wait after a failure. All times are Unix seconds; `now` is
//! always passed in so every rule is testable with an injected clock.

use sha2::{Digest, Sha256};

/// How the renew window is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewBefore {
    /// Fixed time before expiry.
    Duration(i64),
    /// Percentage of the actual lifetime remaining when renewal starts.
    Percentage(u8),
    /// Renew after 2/3 of the actual lifetime.
    Default,
}

/// Jitter never exceeds this many seconds, whatever the lifetime.
pub const MAX_JITTER_SECS: i64 = 3600;
/// Jitter never exceeds this share of the time between notBefore and the unjittered renewal.
pub const JITTER_SHARE: f64 = 0.1;

/// The unjittered renewal time for a certificate valid from `not_before` to `not_after`.
///
/// A `renewBefore` at least as long as the real lifetime (the issuer granted less than asked)
/// falls back to the default, so a capped certificate does not renew in a loop.
pub fn base_renewal_time(not_before: i64, not_after: i64, renew_before: RenewBefore) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    let before = match renew_before {
        RenewBefore::Duration(secs) if secs > 0 && secs < lifetime => secs,
        RenewBefore::Percentage(p) if (1..=99).contains(&p) => lifetime * i64::from(p) / 100,
        _ => lifetime / 3,
    };
    not_after - before
}

/// Renewal time with a deterministic per-certificate jitter, always earlier than the base
/// time and never earlier than `not_before`: a fleet issued together spreads its renewals
/// instead of hitting the issuer at once, and one certificate always gets the same offset.
/// Never earlier than [`renewal_floor`] either. `issued_at`: when the operator wrote the
/// certificate, if known.
pub fn renewal_time(
    identity: &str,
    not_before: i64,
    not_after: i64,
    renew_before: RenewBefore,
    issued_at: Option<i64>,
) -> i64 {
    let base = base_renewal_time(not_before, not_after, renew_before);
    let room = (base - not_before).max(0) as f64;
    let max_jitter = (room * JITTER_SHARE).min(MAX_JITTER_SECS as f64);
    let jittered = base - (max_jitter * unit_fraction(identity)) as i64;
    jittered.max(renewal_floor(not_before, not_after, issued_at))
}

/// A certificate is never renewed before this share (1/10) of its lifetime has passed since
/// it was issued.
pub const MIN_AGE_DIVISOR: i64 = 10;

/// The earliest renewal time of a certificate valid from `not_before` to `not_after` and
/// issued at `issued_at`: a tenth of its lifetime after it was issued.
///
/// Without it a renew window that leaves almost nothing of the lifetime (`duration: 5m` with
/// `renewBeforePercentage: 99` renews 3 s in), or an issuer that backdates notBefore (Vault by
/// 30 s), puts a fresh certificate's renewal time before the moment it was issued, and the
/// operator would re-issue it about once a second. The issuance time comes from the Secret
/// (the operator records it); it is trusted only between notBefore and the middle of the
/// lifetime, and notBefore stands in when it is unknown.
pub fn renewal_floor(not_before: i64, not_after: i64, issued_at: Option<i64>) -> i64 {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    let issued = issued_at
        .unwrap_or(not_before)
        .clamp(not_before, not_before.saturating_add(lifetime / 2));
    issued.saturating_add(lifetime / MIN_AGE_DIVISOR)
}

/// A stable number in [0, 1) derived from a string (SHA-256, so it is the same on every
/// platform and release, unlike `DefaultHasher`).
pub fn unit_fraction(identity: &str) -> f64 {
    let digest = Sha256::digest(identity.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// First retry delay after a failure.
pub const BACKOFF_BASE_SECS: i64 = 5;
/// Longest retry delay.
pub const BACKOFF_MAX_SECS: i64 = 600;

/// Delay before retry number `attempts` (1 = first failure): exponential from
/// [`BACKOFF_BASE_SECS`] up to [`BACKOFF_MAX_SECS`], and never more than a quarter of the
/// validity the current certificate has left, so a short-lived certificate cannot expire
/// while the operator waits out a backoff. At least one second.
pub fn backoff_secs(attempts: u32, now: i64, current_not_after: Option<i64>) -> i64 {
    let exponent = attempts.saturating_sub(1).min(20);
    let mut delay = (BACKOFF_BASE_SECS << exponent).min(BACKOFF_MAX_SECS);
    if let Some(not_after) = current_not_after {
        let remaining = not_after - now;
        if remaining > 0 {
            delay = delay.min(remaining / 4);
        }
    }
    delay.max(1)
}

/// [`backoff_secs`] shortened by up to a quarter, by an amount fixed per certificate: a fleet
/// that failed together (a CA outage, AWS throttling) does not retry in lockstep, and every
/// look at one certificate computes the same retry time.
pub fn jittered_backoff_secs(
    identity: &str,
    attempts: u32,
    now: i64,
    current_not_after: Option<i64>,
) -> i64 {
    let delay = backoff_secs(attempts, now, current_not_after);
    let cut = (delay as f64 * 0.25 * unit_fraction(identity)) as i64;
    (delay - cut).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    #[test]
    fn backoff_jitter_spreads_a_fleet_but_is_stable_per_certificate() {
        let delays: std::collections::BTreeSet<i64> = (0..50)
            .map(|i| jittered_backoff_secs(&format!("ns/agent-{i}"), 5, 0, None))
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
        assert!(delays.iter().all(|d| (60..=80).contains(d)), "{delays:?}");
        assert_eq!(
            jittered_backoff_secs("ns/a", 3, 0, None),
            jittered_backoff_secs("ns/a", 3, 0, None)
        );
    }

    #[test]
    fn default_renews_at_two_thirds() {
        assert_eq!(
            base_renewal_time(0, 90 * HOUR, RenewBefore::Default),
            60 * HOUR
        );
    }

    #[test]
    fn fixed_renew_before() {
        assert_eq!(
            base_renewal_time(0, 24 * HOUR, RenewBefore::Duration(8 * HOUR)),
            16 * HOUR
        );
    }

    #[test]
    fn renew_before_longer_than_granted_lifetime_falls_back_to_default() {
        // Asked 24h with renewBefore 8h, the issuer capped the certificate at 6h.
        assert_eq!(
            base_renewal_time(0, 6 * HOUR, RenewBefore::Duration(8 * HOUR)),
            4 * HOUR
        );
    }

    #[test]
    fn percentage_of_actual_lifetime() {
        assert_eq!(base_renewal_time(0, 300, RenewBefore::Percentage(98)), 6);
        assert_eq!(
            base_renewal_time(1000, 1100, RenewBefore::Percentage(25)),
            1075
        );
    }

    #[test]
    fn jitter_is_bounded_deterministic_and_spreads_a_fleet() {
        let (nb, na) = (0, 90 * 24 * HOUR);
        let base = base_renewal_time(nb, na, RenewBefore::Default);
        let times: Vec<i64> = (0..1000)
            .map(|i| renewal_time(&format!("ns/cert-{i}"), nb, na, RenewBefore::Default, None))
            .collect();
        for t in &times {
            assert!(*t <= base && *t >= base - MAX_JITTER_SECS);
        }
        assert_eq!(
            times[7],
            renewal_time("ns/cert-7", nb, na, RenewBefore::Default, None)
        );
        // 1,000 certificates over 3,600 one-second slots: about 870 distinct slots expected.
        let distinct: std::collections::BTreeSet<_> = times.iter().collect();
        assert!(
            distinct.len() > 800,
            "only {} distinct renewal times",
            distinct.len()
        );
    }

    #[test]
    fn jitter_never_goes_before_not_before_nor_the_floor() {
        for i in 0..200 {
            // 98% of 300 s would renew 6 s in; the floor (a tenth: 30 s) holds instead.
            let t = renewal_time(
                &format!("c{i}"),
                100,
                400,
                RenewBefore::Percentage(98),
                None,
            );
            assert_eq!(t, 130, "{t}");
            let t = renewal_time(
                &format!("c{i}"),
                100,
                100 + 90 * HOUR,
                RenewBefore::Percentage(98),
                None,
            );
            assert!(t >= 100 + 9 * HOUR, "a tenth of the lifetime: {t}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_secs(1, 0, None), 5);
        assert_eq!(backoff_secs(2, 0, None), 10);
        assert_eq!(backoff_secs(4, 0, None), 40);
        assert_eq!(backoff_secs(50, 0, None), BACKOFF_MAX_SECS);
    }

    #[test]
    fn backoff_is_bounded_by_remaining_validity() {
        // 2 minutes left: never wait more than 30 s.
        assert_eq!(backoff_secs(10, 1000, Some(1120)), 30);
        // Already expired: the remaining validity no longer bounds it.
        assert_eq!(backoff_secs(3, 1000, Some(900)), 20);
        // Seconds left: still retry, at least every second.
        assert_eq!(backoff_secs(3, 1000, Some(1002)), 1);
    }

    #[test]
    fn a_fresh_certificate_is_never_due_at_once() {
        // Vault backdates notBefore 30 s; 5 minutes with renewBeforePercentage 99 would renew
        // 3 s after notBefore, i.e. 27 s before the certificate was even issued.
        let issued_at = 1_800_000_000;
        let (not_before, not_after) = (issued_at - 30, issued_at + 300);
        for identity in ["ns/a", "ns/b", "ns/c", "ns/d"] {
            let at = renewal_time(
                identity,
                not_before,
                not_after,
                RenewBefore::Percentage(99),
                Some(issued_at),
            );
            assert!(
                at >= issued_at + 33,
                "{identity}: renews at {at}, issued at {issued_at}"
            );
            assert!(at < not_after, "{identity}: renews before expiry");
        }
        // The floor never delays an ordinary renewal.
        let day = 24 * HOUR;
        let at = renewal_time("ns/a", 0, day, RenewBefore::Default, Some(0));
        assert!(at >= 2 * day / 3 - HOUR && at <= 2 * day / 3, "{at}");
        // A recorded issuance time is believed only up to the middle of the lifetime.
        assert_eq!(renewal_floor(0, 1000, Some(5000)), 600);
        assert_eq!(renewal_floor(0, 1000, Some(-50)), 100);
    }
}
