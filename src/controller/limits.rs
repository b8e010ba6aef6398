//! Per-issuer limits for remote backends (Vault, AWS Private CA), so one broken backend cannot
//! starve every tenant: at most a share of the workers may wait on one issuer's backend, and a
//! circuit breaker fails fast while that backend is known to be unreachable.
//!
//! The breaker is pure (times are passed in); the gate around it holds the state per issuer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::issuer::IssuerId;

/// First cool-down after the backend was found unreachable; doubles per consecutive failure.
pub const COOL_DOWN_BASE: Duration = Duration::from_secs(5);
/// Longest cool-down: a recovered backend is noticed within this (the issuer's own readiness
/// check closes the breaker sooner).
pub const COOL_DOWN_MAX: Duration = Duration::from_secs(60);

/// Whether a call may go to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The backend is believed healthy.
    Closed,
    /// The cool-down is over: this one call probes the backend; others still fail fast.
    Probe,
    /// Fail fast until `until`.
    Open { until: Instant },
}

/// A circuit breaker: closed while calls succeed; open for a growing cool-down after a call
/// found the backend unreachable; then half-open, letting one probe through.
#[derive(Debug, Default, Clone)]
pub struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.open_until {
            None => Admission::Closed,
            Some(until) if now < until => Admission::Open { until },
            Some(until) if self.probing => Admission::Open {
                until: until.max(now) + COOL_DOWN_BASE,
            },
            Some(_) => {
                self.probing = true;
                Admission::Probe
            }
        }
    }

    /// The backend answered (whatever it said): close.
    pub fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    /// The backend could not be reached: open for the next cool-down.
    pub fn unreachable(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let exponent = self.consecutive_failures.saturating_sub(1).min(8);
        let cool_down = COOL_DOWN_BASE
            .saturating_mul(1 << exponent)
            .min(COOL_DOWN_MAX);
        self.open_until = Some(now + cool_down);
        self.probing = false;
    }

    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }
}

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The issuer's share of workers is busy: look again shortly (not a failure).
    Busy,
    /// The backend is known to be unreachable until then.
    Unreachable { until: Instant },
}

struct IssuerState {
    permits: Arc<Semaphore>,
    breaker: Breaker,
    /// When a call through this gate last came back (or the gate was made).
    last_answer: Instant,
}

/// A caller waits for a permit only while the backend answers: when every permit is taken and
/// nothing came back for this long, the calls in flight are hanging and waiting would only
/// hold another worker.
pub const ANSWERING_WITHIN: Duration = Duration::from_secs(1);

/// The gate every remote backend call of an issuer passes.
pub struct Gates {
    per_issuer: usize,
    issuers: Mutex<HashMap<IssuerId, IssuerState>>,
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates")
            .field("per_issuer", &self.per_issuer)
            .finish_non_exhaustive()
    }
}

/// A call in flight to an issuer's backend; report how it went before dropping it.
pub struct Pass {
    _permit: OwnedSemaphorePermit,
}

impl Gates {
    /// `per_issuer`: how many calls one issuer's backend may hold at once (at least one).
    pub fn new(per_issuer: usize) -> Self {
        Gates {
            per_issuer: per_issuer.max(1),
            issuers: Mutex::new(HashMap::new()),
        }
    }

    /// Let a call to `issuer`'s backend through, or say why not. Fails fast while the backend
    /// is known to be unreachable; otherwise waits at most `wait` for one of the issuer's
    /// permits (a healthy backend frees them within milliseconds).
    pub async fn enter(&self, issuer: &IssuerId, wait: Duration) -> Result<Pass, Refusal> {
        let permits = {
            let Ok(mut issuers) = self.issuers.lock() else {
                return Err(Refusal::Busy);
            };
            let per_issuer = self.per_issuer;
            let state = issuers
                .entry(issuer.clone())
                .or_insert_with(|| IssuerState {
                    permits: Arc::new(Semaphore::new(per_issuer)),
                    breaker: Breaker::default(),
                    last_answer: Instant::now(),
                });
            if let Some(until) = state.breaker.open_until.filter(|u| Instant::now() < *u) {
                return Err(Refusal::Unreachable { until });
            }
            let hanging = state.permits.available_permits() == 0
                && state.last_answer.elapsed() > ANSWERING_WITHIN;
            if hanging {
                return Err(Refusal::Busy);
            }
            state.permits.clone()
        };
        let permit = tokio::time::timeout(wait, permits.acquire_owned())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        // Admitted only now, holding a permit: a probe is granted to a call that will be made.
        let Ok(mut issuers) = self.issuers.lock() else {
            return Err(Refusal::Busy);
        };
        let admission = issuers
            .get_mut(issuer)
            .map_or(Admission::Closed, |s| s.breaker.admit(Instant::now()));
        match admission {
            Admission::Open { until } => Err(Refusal::Unreachable { until }),
            Admission::Closed | Admission::Probe => Ok(Pass { _permit: permit }),
        }
    }

    /// What a call (or the issuer's readiness check) found: the backend answered, or not.
    /// Returns true when this opened the breaker (the issuer should be looked at again).
    pub fn record(&self, issuer: &IssuerId, reachable: bool, now: Instant) -> bool {
        let Ok(mut issuers) = self.issuers.lock() else {
            return false;
        };
        let Some(state) = issuers.get_mut(issuer) else {
            return false;
        };
        state.last_answer = now;
        if reachable {
            state.breaker.succeeded();
            false
        } else {
            let was_open = state.breaker.is_open();
            state.breaker.unreachable(now);
            !was_open
        }
    }

    /// Forget issuers that no longer exist.
    pub fn retain(&self, exists: impl Fn(&IssuerId) -> bool) {
        if let Ok(mut issuers) = self.issuers.lock() {
            issuers.retain(|k, _| exists(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_on_unreachable_grows_and_probes_once() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.admit(t0), Admission::Closed);
        b.unreachable(t0);
        assert!(matches!(
            b.admit(t0 + Duration::from_secs(1)),
            Admission::Open { .. }
        ));
        // After the cool-down one probe goes through; the others still fail fast.
        let later = t0 + COOL_DOWN_BASE;
        assert_eq!(b.admit(later), Admission::Probe);
        assert!(matches!(b.admit(later), Admission::Open { .. }));
        // The probe failed too: a longer cool-down.
        b.unreachable(later);
        assert!(matches!(
            b.admit(later + COOL_DOWN_BASE),
            Admission::Open { .. }
        ));
        assert_eq!(b.admit(later + 2 * COOL_DOWN_BASE), Admission::Probe);
        b.succeeded();
        assert_eq!(b.admit(later + 2 * COOL_DOWN_BASE), Admission::Closed);
    }

    #[test]
    fn the_cool_down_is_capped() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..40 {
            b.unreachable(t0);
        }
        assert_eq!(b.admit(t0 + COOL_DOWN_MAX), Admission::Probe);
    }

    #[tokio::test]
    async fn an_issuer_gets_its_share_of_workers_and_no_more() {
        let gates = Gates::new(2);
        let wait = Duration::from_millis(20);
        let (v, other) = (IssuerId::issuer("ns", "v"), IssuerId::issuer("ns", "other"));
        let a = gates.enter(&v, wait).await.expect("first");
        let _b = gates.enter(&v, wait).await.expect("second");
        assert_eq!(gates.enter(&v, wait).await.err(), Some(Refusal::Busy));
        // Another issuer is not affected.
        assert!(gates.enter(&other, wait).await.is_ok());
        drop(a);
        assert!(gates.enter(&v, wait).await.is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_backend_fails_fast_until_it_answers_again() {
        let gates = Gates::new(4);
        let (now, wait) = (Instant::now(), Duration::from_millis(20));
        let i = IssuerId::cluster_issuer("i");
        drop(gates.enter(&i, wait).await);
        assert!(gates.record(&i, false, now), "opening is reported once");
        assert!(!gates.record(&i, false, now));
        assert!(matches!(
            gates.enter(&i, wait).await.err(),
            Some(Refusal::Unreachable { .. })
        ));
        gates.record(&i, true, now);
        assert!(gates.enter(&i, wait).await.is_ok());
    }
}
