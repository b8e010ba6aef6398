//! Moving the leaves of a replaced CA without a storm: each leaf has its own moment in the
//! rotation window (the renewal jitter's stable per-certificate fraction), and each issuer
//! re-issues at most `rotationRateLimit` leaves per second for a CA change.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::issuer::IssuerId;
use crate::pki::inspect::CertInfo;
use crate::pki::renewal;

/// What a leaf's decision needs to know of its CA issuer: the CA that signs now, and the
/// renewed one that signs from a known time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerCa {
    pub current: CertInfo,
    /// Since when `current` signs in place of another CA (leaves written before it and not
    /// signed by it move); a CA's own notBefore when nothing was replaced.
    pub since: i64,
    /// The renewed CA and when it starts signing.
    pub next: Option<(CertInfo, i64)>,
    /// Seconds over which leaves move.
    pub window: i64,
    /// Whether a rotation is under way (Publishing or MovingLeaves): then every leaf issued
    /// has the issuer count again at once (else its periodic look does, so a fleet's initial
    /// issuance costs no issuer status writes).
    pub rotating: bool,
}

impl IssuerCa {
    /// The CA leaves must end up on, and since when.
    pub fn target(&self) -> (&CertInfo, i64) {
        match &self.next {
            Some((next, at)) => (next, *at),
            None => (&self.current, self.since),
        }
    }
}

/// When the leaf `identity` moves to a CA that signs since `since`: a stable moment in the
/// window, so a fleet does not re-issue in the same second.
pub fn move_due(identity: &str, since: i64, window: i64) -> i64 {
    let offset = (renewal::unit_fraction(identity) * window.max(0) as f64) as i64;
    since.saturating_add(offset)
}

/// Per-issuer memory shared by the issuer controller (which writes it) and the Certificate
/// controller (which reads it): no API call per leaf.
#[derive(Default)]
pub struct Rotations {
    cas: Mutex<HashMap<IssuerId, Arc<IssuerCa>>>,
    limiters: Mutex<HashMap<IssuerId, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl Rotations {
    pub fn set(&self, id: &IssuerId, ca: IssuerCa, rate_limit: u32) {
        if let Ok(mut cas) = self.cas.lock() {
            cas.insert(id.clone(), Arc::new(ca));
        }
        if let Ok(mut limiters) = self.limiters.lock() {
            let rate = NonZeroU32::new(rate_limit).unwrap_or(NonZeroU32::MIN);
            let same = limiters.get(id).is_some_and(|(r, _)| *r == rate.get());
            if !same {
                let limiter = RateLimiter::direct(Quota::per_second(rate));
                limiters.insert(id.clone(), (rate.get(), Arc::new(limiter)));
            }
        }
    }

    pub fn get(&self, id: &IssuerId) -> Option<Arc<IssuerCa>> {
        self.cas.lock().ok()?.get(id).cloned()
    }

    /// Forget an issuer that is not a CA issuer (any more).
    pub fn forget(&self, id: &IssuerId) {
        if let Ok(mut cas) = self.cas.lock() {
            cas.remove(id);
        }
        if let Ok(mut limiters) = self.limiters.lock() {
            limiters.remove(id);
        }
    }

    /// Forget the issuers that no longer exist.
    pub fn retain(&self, exists: impl Fn(&IssuerId) -> bool) {
        if let Ok(mut cas) = self.cas.lock() {
            cas.retain(|id, _| exists(id));
        }
        if let Ok(mut limiters) = self.limiters.lock() {
            limiters.retain(|id, _| exists(id));
        }
    }

    /// Take one of the issuer's re-issue permits for a CA change, or say how long to wait.
    pub fn admit(&self, id: &IssuerId) -> Result<(), Duration> {
        let limiter = self
            .limiters
            .lock()
            .ok()
            .and_then(|l| l.get(id).map(|(_, l)| l.clone()));
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_spread_over_the_window() {
        let dues: Vec<i64> = (0..200)
            .map(|i| move_due(&format!("ns/leaf-{i}"), 1000, 100))
            .collect();
        assert!(dues.iter().all(|d| (1000..1100).contains(d)));
        let early = dues.iter().filter(|d| **d < 1050).count();
        assert!(
            (60..140).contains(&early),
            "{early} of 200 in the first half"
        );
        assert_eq!(move_due("ns/a", 1000, 100), move_due("ns/a", 1000, 100));
        assert_eq!(move_due("ns/a", 1000, 0), 1000);
    }

    #[test]
    fn re_issues_are_rate_limited_per_issuer() {
        let rotations = Rotations::default();
        let (a, b) = (IssuerId::cluster_issuer("a"), IssuerId::cluster_issuer("b"));
        assert_eq!(
            rotations.admit(&a),
            Ok(()),
            "an unknown issuer is not limited"
        );
        let ca = IssuerCa {
            current: dummy(),
            since: 0,
            next: None,
            window: 0,
            rotating: false,
        };
        rotations.set(&a, ca.clone(), 3);
        rotations.set(&b, ca, 3);
        let admitted = (0..10).filter(|_| rotations.admit(&a).is_ok()).count();
        assert_eq!(admitted, 3, "a burst of at most the rate");
        assert!(rotations.admit(&a).unwrap_err() <= Duration::from_secs(1));
        assert_eq!(
            rotations.admit(&b),
            Ok(()),
            "each issuer has its own budget"
        );
    }

    fn dummy() -> CertInfo {
        CertInfo {
            der: vec![],
            serial: String::new(),
            not_before: 0,
            not_after: 0,
            subject: String::new(),
            issuer: String::new(),
            common_name: None,
            organizations: vec![],
            organizational_units: vec![],
            countries: vec![],
            localities: vec![],
            provinces: vec![],
            dns_names: Default::default(),
            ip_addresses: Default::default(),
            uris: Default::default(),
            emails: Default::default(),
            is_ca: true,
            usages: Default::default(),
            key: None,
            public_key_info: vec![],
            subject_key_id: None,
            authority_key_id: None,
        }
    }
}
