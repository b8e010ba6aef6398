//! Leader election on a `coordination.k8s.io/v1` Lease: of several replicas only the holder
//! runs the controllers (and so writes); the others wait, and take over once the holder has
//! not renewed for a whole lease duration.
//!
//! # Why two leaders cannot write at once
//!
//! All times below are on monotonic clocks (`Instant`, Linux `CLOCK_MONOTONIC`), never on the
//! timestamps inside the Lease, so skew between nodes' wall clocks plays no part.
//!
//! * **A standby** takes over only after it has seen the Lease unchanged (same holder, same
//!   renew time) for a whole lease duration `D` on its own clock, counted from the moment it
//!   *observed* the last change. It observes a renewal only after the API server accepted it,
//!   and the server accepts it only after the leader sent it: so a standby takes over no
//!   earlier than `D` after the leader *sent* its last successful renewal. Its takeover is an
//!   update carrying the resourceVersion it read, so if the leader renewed in between, the
//!   takeover fails; two candidates racing for an expired lease cannot both win either.
//! * **The leader** counts from the moment it *sent* its last successful renewal (taken
//!   before the request, so a delay in sending only makes it more careful). It holds the lease
//!   for the renew deadline `R < D` after that instant, and no longer: [`Guard::is_leading`]
//!   turns false at that instant, and the process exits (as cert-manager does; see
//!   [`Leadership::exit_when_lost`]) when it has not renewed by then, or as soon as it sees
//!   another holder. Each renewal attempt is bounded by a timeout, so a stalled connection
//!   cannot hold the renewer past the deadline; attempts are retried until the deadline.
//!
//! So the leader stops writing at `sent + R`, and a standby starts at `sent + D` at the
//! earliest. The margin `D − R` (5 s with the defaults, 15 s and 10 s) covers a write that
//! passed the guard just before the deadline and is still on its way to the API server, and
//! any difference in the rate of the two machines' clocks.
//!
//! `CLOCK_MONOTONIC` keeps counting while a process is stopped (SIGSTOP, a frozen container),
//! so a leader resumed after a long pause sees at once, in [`Guard::is_leading`], that its
//! lease is gone, and its watchdog thread exits the process within a few milliseconds. What
//! no guard can cover is a write that passed the check and was then frozen before it
//! reached the API server (or a request held in a stalled network and delivered after the
//! process is gone): that is why the Secret writes themselves are conditional on what their
//! decision read (the controllers' part). A suspended *machine* (whose monotonic clock
//! stops) and someone deleting or editing the Lease by hand are outside this argument too;
//! the conditional writes cover them.
//!
//! A clean shutdown (SIGTERM) lets in-flight work finish while the lease is still renewed,
//! then hands the lease back so a standby takes over at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// A holder that has not renewed for this long has lost the lease (written to the Lease in
    /// whole seconds; standbys go by what the Lease says).
    pub lease_duration: Duration,
    /// The holder stops (the guard turns false, the process exits) when it has not renewed
    /// for this long, counted from when it sent its last successful renewal. Shorter than
    /// `lease_duration`: see the module documentation.
    pub renew_deadline: Duration,
    /// How often the holder renews (and a standby looks at the Lease twice as often).
    pub renew_every: Duration,
}

/// The renew deadline used when none is given: two thirds of the lease duration as the Lease
/// records it, in whole seconds (10 s of the default 15 s: client-go's and cert-manager's
/// ratio). A renewal sent on time that fails leaves the leader another renewal period to
/// retry, and a third of the lease is the margin between the leader stopping and a standby
/// starting.
pub fn default_renew_deadline(lease_duration: Duration) -> Duration {
    Duration::from_secs(lease_duration.as_secs()) * 2 / 3
}

/// Settings under which leader election could not be safe.
#[derive(Debug, thiserror::Error)]
pub enum InvalidConfig {
    #[error(
        "the leader-election lease duration ({lease:?}) must be at least 1s (it is written to the Lease in whole seconds)"
    )]
    LeaseTooShort { lease: Duration },
    #[error(
        "the leader-election renew deadline ({deadline:?}) must be shorter than the lease duration as the Lease records it ({lease}s): a leader must stop before a standby may take over"
    )]
    DeadlineNotBeforeLease { deadline: Duration, lease: i32 },
    #[error(
        "the leader-election renew deadline ({deadline:?}) must be longer than the renewal period ({renew_every:?}, a third of the lease duration): otherwise the leader gives up before it even tries to renew"
    )]
    DeadlineNotAfterRenewal {
        deadline: Duration,
        renew_every: Duration,
    },
}

impl Config {
    /// Check that the timing is safe: `renew_every < renew_deadline < lease_duration` (the
    /// latter as written to the Lease, in whole seconds).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let lease = lease_seconds(self);
        if lease < 1 {
            return Err(InvalidConfig::LeaseTooShort {
                lease: self.lease_duration,
            });
        }
        if self.renew_deadline >= Duration::from_secs(u64::from(lease.unsigned_abs())) {
            return Err(InvalidConfig::DeadlineNotBeforeLease {
                deadline: self.renew_deadline,
                lease,
            });
        }
        if self.renew_deadline <= self.renew_every {
            return Err(InvalidConfig::DeadlineNotAfterRenewal {
                deadline: self.renew_deadline,
                renew_every: self.renew_every,
            });
        }
        Ok(())
    }
}

/// Whether this replica may write now. Cheap to clone and to call (two atomic loads and a
/// clock read); call it immediately before every write to the cluster, and skip the write
/// (requeue) when it returns false.
///
/// From [`Leadership::guard`]: true only while this replica holds the lease and its last
/// successful renewal was sent less than the renew deadline ago on the monotonic clock, which
/// keeps running while the process is stopped, so a process resumed after a pause sees the
/// time that passed. Once false it stays false (the process is about to exit).
/// From [`Guard::unelected`]: always true (leader election off, a single replica).
#[derive(Clone)]
pub struct Guard(Option<Arc<Held>>);

/// The shared state behind an elected [`Guard`].
struct Held {
    /// The instant the renewals are counted from (when the winning acquisition was sent).
    origin: Instant,
    /// When the last successful renewal was sent, in nanoseconds after `origin`.
    renewed: AtomicU64,
    /// Cleared when the lease is lost or handed back.
    holding: AtomicBool,
    /// Set when the lease is handed back on a clean shutdown (not a loss).
    released: AtomicBool,
    /// Why the renewer gave the lease up, if it did.
    lost: std::sync::Mutex<Option<Lost>>,
    renew_deadline: Duration,
}

impl Guard {
    /// The guard of a process without leader election: always leading.
    pub fn unelected() -> Guard {
        Guard(None)
    }

    /// True while this replica may write; see [`Guard`].
    pub fn is_leading(&self) -> bool {
        self.is_leading_at(Instant::now())
    }

    fn is_leading_at(&self, now: Instant) -> bool {
        let Some(held) = &self.0 else {
            return true;
        };
        held.holding.load(Ordering::SeqCst) && holds(self.renewed_at(), now, held.renew_deadline)
    }

    /// A guard for a lease whose acquisition was sent at `sent`.
    fn leading(sent: Instant, renew_deadline: Duration) -> Guard {
        Guard(Some(Arc::new(Held {
            origin: sent,
            renewed: AtomicU64::new(0),
            holding: AtomicBool::new(true),
            released: AtomicBool::new(false),
            lost: std::sync::Mutex::new(None),
            renew_deadline,
        })))
    }

    /// When the last successful renewal (or the acquisition) was sent.
    fn renewed_at(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(held) => {
                let nanos = held.renewed.load(Ordering::SeqCst);
                held.origin
                    .checked_add(Duration::from_nanos(nanos))
                    .unwrap_or(held.origin)
            }
        }
    }

    /// A renewal sent at `sent` succeeded.
    fn renewed(&self, sent: Instant) {
        if let Some(held) = &self.0 {
            let nanos = sent.saturating_duration_since(held.origin).as_nanos();
            held.renewed
                .fetch_max(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::SeqCst);
        }
    }

    /// The lease is lost: never leading again.
    fn lose(&self, reason: Lost) {
        if let Some(held) = &self.0 {
            held.holding.store(false, Ordering::SeqCst);
            if let Ok(mut lost) = held.lost.lock() {
                lost.get_or_insert(reason);
            }
        }
    }

    /// The lease is handed back on a clean shutdown: never leading again.
    fn release(&self) {
        if let Some(held) = &self.0 {
            held.released.store(true, Ordering::SeqCst);
            held.holding.store(false, Ordering::SeqCst);
        }
    }

    /// Why this replica no longer leads: None while it does, or after a clean release.
    fn lost_because(&self, now: Instant) -> Option<Lost> {
        let held = self.0.as_ref()?;
        if held.released.load(Ordering::SeqCst) || self.is_leading_at(now) {
            return None;
        }
        let reason = held.lost.lock().ok().and_then(|lost| lost.clone());
        Some(reason.unwrap_or_else(|| Lost::NotRenewed {
            deadline: held.renew_deadline,
            last_error: format!(
                "none by then; the last successful renewal was sent {:?} ago",
                now.saturating_duration_since(self.renewed_at())
            ),
        }))
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Guard(unelected)"),
            Some(_) => write!(f, "Guard(leading: {})", self.is_leading()),
        }
    }
}

/// A lease renewed (or acquired) by a request sent at `renewed` is held at `now` if less than
/// `renew_deadline` has passed since.
fn holds(renewed: Instant, now: Instant, renew_deadline: Duration) -> bool {
    now.saturating_duration_since(renewed) < renew_deadline
}

/// How often the watchdog of [`Leadership::exit_when_lost`] looks at the guard.
pub const WATCHDOG_TICK: Duration = Duration::from_millis(20);

/// An attempt may take no less than this, unless less is left before the deadline.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// When the renewer tries, and for how long; pure, so it is tested with made-up instants.
#[derive(Debug, Clone, Copy)]
struct Timing {
    renew_every: Duration,
    renew_deadline: Duration,
}

impl Timing {
    fn new(config: &Config) -> Timing {
        Timing {
            renew_every: config.renew_every,
            renew_deadline: config.renew_deadline,
        }
    }

    /// The instant the lease renewed at `renewed` is no longer held.
    fn held_until(self, renewed: Instant) -> Instant {
        renewed.checked_add(self.renew_deadline).unwrap_or(renewed)
    }

    /// After a renewal sent at `renewed` succeeded: one renewal period later.
    fn next_after_success(self, renewed: Instant) -> Instant {
        renewed.checked_add(self.renew_every).unwrap_or(renewed)
    }

    /// After an attempt started at `started` failed: a quarter of the renewal period after it
    /// started (at once if it ran into its timeout).
    fn next_after_failure(self, started: Instant) -> Instant {
        started.checked_add(self.renew_every / 4).unwrap_or(started)
    }

    /// How long an attempt starting at `now` may take, None when the lease renewed at
    /// `renewed` is no longer held. Half of what is left before the deadline (but at least
    /// [`MIN_ATTEMPT`], and never past the deadline): a request stuck on a dead connection
    /// leaves time for another one on a fresh connection.
    fn attempt_timeout(self, renewed: Instant, now: Instant) -> Option<Duration> {
        let left = self
            .held_until(renewed)
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())?;
        let half = left / 2;
        Some(if half >= MIN_ATTEMPT { half } else { left })
    }
}

/// Why a leader stopped leading.
#[derive(Debug, Clone)]
pub enum Lost {
    /// Another replica holds the lease (or nobody does: it was handed back by someone else).
    HeldBy(Option<String>),
    /// The Lease was deleted, so a standby may create it at once.
    Deleted,
    /// No renewal succeeded within the renew deadline.
    NotRenewed {
        deadline: Duration,
        last_error: String,
    },
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::HeldBy(Some(holder)) => write!(f, "the lease is now held by {holder}"),
            Lost::HeldBy(None) => write!(f, "the lease was released by someone else"),
            Lost::Deleted => write!(f, "the Lease was deleted"),
            Lost::NotRenewed {
                deadline,
                last_error,
            } => write!(
                f,
                "the lease was not renewed within the renew deadline ({deadline:?}; last error: {last_error})"
            ),
        }
    }
}

/// What this replica last saw of the lease.
struct Observed {
    holder: Option<String>,
    renew_time: Option<String>,
    seen_at: Instant,
}

/// This replica's leadership, from [`acquire`].
pub struct Leadership {
    /// Cancelled on shutdown, so the controllers drain. Never on a lost lease: a graceful
    /// drain would keep writing after a standby may have taken over; see
    /// [`Leadership::exit_when_lost`].
    pub token: CancellationToken,
    guard: Guard,
    stop_renewing: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    config: Config,
}

impl Leadership {
    /// The guard to check before every write; see [`Guard`].
    pub fn guard(&self) -> Guard {
        self.guard.clone()
    }

    /// Exit the process (status 1, after logging why) as soon as this replica no longer
    /// leads: another holder was seen, or no renewal succeeded within the renew deadline — at
    /// the latest at that deadline, so before any standby may take over. A thread of its own
    /// watches the guard every [`WATCHDOG_TICK`], so neither a busy async runtime nor a
    /// renewal stuck on the network delays it, and after a pause (SIGSTOP) it fires as soon
    /// as the process runs again. A clean [`Leadership::release`] stops it without exiting.
    pub fn exit_when_lost(&self) {
        let guard = self.guard.clone();
        let lease = self.config.name.clone();
        let spawned = std::thread::Builder::new()
            .name("lease-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(WATCHDOG_TICK);
                    if guard.0.as_ref().is_none_or(|held| held.released.load(Ordering::SeqCst)) {
                        return;
                    }
                    if let Some(reason) = guard.lost_because(Instant::now()) {
                        error!(%lease, %reason, "lost the leader lease; exiting at once so that this replica writes nothing more");
                        std::process::exit(1);
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the watchdog the guard still refuses every write once the lease is gone.
            error!(lease = %self.config.name, "cannot start the lease watchdog thread: {e}");
        }
    }

    /// Stop renewing and hand the lease back (call after the controllers have drained, so a
    /// standby never runs while this replica still finishes an issuance).
    pub async fn release(self) {
        self.stop_renewing.cancel();
        let _ = self.renewer.await;
        self.guard.release();
        release(&self.api, &self.config).await;
    }
}

/// Wait until this replica holds the lease (None if `shutdown` fires first), then keep
/// renewing it in the background.
pub async fn acquire(
    client: Client,
    config: Config,
    shutdown: CancellationToken,
) -> Option<Leadership> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed: Option<Observed> = None;
    let sent = loop {
        let sent = Instant::now();
        let attempt = tokio::time::timeout(
            config.renew_every,
            try_acquire(&api, &config, &mut observed),
        );
        match attempt.await {
            Ok(Ok(true)) => break sent,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => warn!(lease = %config.name, "leader election: {e}"),
            Err(_) => {
                warn!(lease = %config.name, "leader election: the API server did not answer in {:?}", config.renew_every)
            }
        }
        // A standby looks twice per renewal period, so it notices an expired lease at most
        // half a renewal period late (failover within the lease duration plus that).
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(config.renew_every / 2) => {}
        }
    };
    info!(lease = %config.name, identity = %config.identity, "became the leader");
    let guard = Guard::leading(sent, config.renew_deadline);
    let token = shutdown.child_token();
    let stop_renewing = CancellationToken::new();
    let renewer = tokio::spawn(keep(
        api.clone(),
        config.clone(),
        guard.clone(),
        stop_renewing.clone(),
    ));
    Some(Leadership {
        token,
        guard,
        stop_renewing,
        renewer,
        api,
        config,
    })
}

/// Renew until told to stop. Each attempt is bounded so that none runs past the renew
/// deadline; when the deadline passes without a successful renewal, or another holder is
/// seen, mark the guard lost (with the reason) and stop.
async fn keep(api: Api<Lease>, config: Config, guard: Guard, stop: CancellationToken) {
    let timing = Timing::new(&config);
    let mut renewed = guard.renewed_at();
    let mut next = timing.next_after_success(renewed);
    let mut last_error = String::from("none");
    let reason = loop {
        // Wake for the next attempt, or at the deadline to give up.
        let wake = next.min(timing.held_until(renewed));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
        }
        let started = Instant::now();
        let Some(timeout) = timing.attempt_timeout(renewed, started) else {
            break Lost::NotRenewed {
                deadline: config.renew_deadline,
                last_error,
            };
        };
        match tokio::time::timeout(timeout, renew(&api, &config)).await {
            Ok(Ok(())) => {
                guard.renewed(started);
                renewed = started;
                next = timing.next_after_success(started);
            }
            Ok(Err(Renewal::Lost(reason))) => break reason,
            Ok(Err(Renewal::Failed(e))) => {
                warn!(lease = %config.name, "renewing the lease failed: {e}");
                last_error = e;
                next = timing.next_after_failure(started);
            }
            Err(_) => {
                warn!(lease = %config.name, "renewing the lease: no answer within {timeout:?}");
                last_error = format!("no answer within {timeout:?}");
                next = timing.next_after_failure(started);
            }
        }
    };
    warn!(lease = %config.name, %reason, "lost the leader lease");
    guard.lose(reason);
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

fn lease_seconds(config: &Config) -> i32 {
    i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX)
}

/// One attempt to take the lease: true once this replica holds it, by a write of its own
/// (creating the Lease, taking over an expired or released one, or — after a restart with the
/// same identity — renewing the one it still holds, so a standby's count starts again).
async fn try_acquire(
    api: &Api<Lease>,
    config: &Config,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(lease_seconds(config)),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let renew_time = spec.renew_time.as_ref().map(|t| t.0.to_string());
    let ours = holder.as_deref() == Some(config.identity.as_str());
    if !ours {
        let changed = observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew_time != renew_time);
        if changed {
            *observed = Some(Observed {
                holder: holder.clone(),
                renew_time,
                seen_at: Instant::now(),
            });
        }
        let duration = spec
            .lease_duration_seconds
            .map_or(config.lease_duration, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
        let expired = holder.is_none()
            || observed
                .as_ref()
                .is_some_and(|o| o.seen_at.elapsed() >= duration);
        if !expired {
            return Ok(false);
        }
    }
    // Take over (or renew what we held before a restart), conditional on the version we read.
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(lease_seconds(config)),
        acquire_time: if ours { spec.acquire_time } else { Some(now()) },
        renew_time: Some(now()),
        lease_transitions: Some(
            spec.lease_transitions
                .unwrap_or(0)
                .saturating_add(i32::from(!ours)),
        ),
        ..Default::default()
    });
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a renewal did not succeed.
enum Renewal {
    /// Someone else holds the lease, or it is gone: stop at once.
    Lost(Lost),
    /// Worth retrying until the deadline.
    Failed(String),
}

async fn renew(api: &Api<Lease>, config: &Config) -> Result<(), Renewal> {
    let mut lease = match api.get_opt(&config.name).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return Err(Renewal::Lost(Lost::Deleted)),
        Err(e) => return Err(Renewal::Failed(e.to_string())),
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        return Err(Renewal::Lost(Lost::HeldBy(holder)));
    }
    spec.renew_time = Some(now());
    // Conditional on the version read: a takeover in between makes this fail (409), and the
    // next attempt sees the new holder.
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
        .map_err(|e| Renewal::Failed(e.to_string()))
}

/// Hand the lease back on a clean shutdown so a standby takes over at once.
async fn release(api: &Api<Lease>, config: &Config) {
    if let Ok(mut lease) = api.get(&config.name).await {
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() == Some(config.identity.as_str()) {
            spec.holder_identity = None;
            let _ = api
                .replace(&config.name, &PostParams::default(), &lease)
                .await;
            info!(lease = %config.name, "released the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn config(lease: Duration, deadline: Duration) -> Config {
        Config {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            lease_duration: lease,
            renew_deadline: deadline,
            renew_every: lease / 3,
        }
    }

    fn timing() -> Timing {
        // The defaults: a 15 s lease renewed every 5 s with a 10 s deadline.
        Timing::new(&config(15 * S, default_renew_deadline(15 * S)))
    }

    #[test]
    fn the_default_deadline_is_two_thirds_of_the_lease_and_valid() {
        assert_eq!(default_renew_deadline(15 * S), 10 * S);
        assert_eq!(default_renew_deadline(6 * S), 4 * S);
        // The Lease records whole seconds, and standbys go by it.
        assert_eq!(default_renew_deadline(Duration::from_millis(6900)), 4 * S);
        for lease in [2 * S, 6 * S, 15 * S, 60 * S, Duration::from_millis(1500)] {
            let c = config(lease, default_renew_deadline(lease));
            assert!(c.validate().is_ok(), "{lease:?}: {:?}", c.validate());
        }
    }

    #[test]
    fn the_deadline_must_fall_between_the_renewal_period_and_the_lease() {
        assert!(matches!(
            config(15 * S, 15 * S).validate(),
            Err(InvalidConfig::DeadlineNotBeforeLease { .. })
        ));
        assert!(matches!(
            config(15 * S, 20 * S).validate(),
            Err(InvalidConfig::DeadlineNotBeforeLease { .. })
        ));
        assert!(matches!(
            config(15 * S, 5 * S).validate(),
            Err(InvalidConfig::DeadlineNotAfterRenewal { .. })
        ));
        assert!(matches!(
            config(Duration::from_millis(900), Duration::from_millis(500)).validate(),
            Err(InvalidConfig::LeaseTooShort { .. })
        ));
        // The Lease records whole seconds, and standbys go by it: 6.5 s is a 6 s lease.
        assert!(matches!(
            config(Duration::from_millis(6500), Duration::from_millis(6200)).validate(),
            Err(InvalidConfig::DeadlineNotBeforeLease { lease: 6, .. })
        ));
        assert!(config(15 * S, 14 * S).validate().is_ok());
        let message = config(15 * S, 15 * S)
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("shorter than the lease duration"),
            "{message}"
        );
    }

    #[test]
    fn the_guard_holds_strictly_less_than_the_deadline_after_the_send() {
        let sent = Instant::now();
        assert!(holds(sent, sent, 10 * S));
        assert!(holds(sent, sent + 10 * S - Duration::from_nanos(1), 10 * S));
        assert!(!holds(sent, sent + 10 * S, 10 * S));
        // A resumed process sees the time that passed while it was stopped.
        assert!(!holds(sent, sent + 25 * S, 10 * S));
        // A clock read taken before the renewal was recorded is not "negative".
        assert!(holds(sent + S, sent, 10 * S));
    }

    #[test]
    fn a_guard_follows_renewals_and_stops_for_good() {
        let sent = Instant::now();
        let guard = Guard::leading(sent, 10 * S);
        assert!(guard.is_leading_at(sent + 9 * S));
        assert!(!guard.is_leading_at(sent + 10 * S));
        guard.renewed(sent + 5 * S);
        assert!(guard.is_leading_at(sent + 14 * S));
        assert!(!guard.is_leading_at(sent + 15 * S));
        // A late report of an older renewal does not move the deadline back.
        guard.renewed(sent + 2 * S);
        assert!(guard.is_leading_at(sent + 14 * S));
        let copy = guard.clone();
        guard.lose(Lost::Deleted);
        assert!(!copy.is_leading_at(sent + 6 * S));
        assert!(Guard::unelected().is_leading());
        assert!(Guard::unelected().is_leading_at(sent + 1000 * S));
    }

    #[test]
    fn the_watchdog_fires_on_a_loss_or_at_the_deadline_but_not_after_a_release() {
        let sent = Instant::now();
        let guard = Guard::leading(sent, 10 * S);
        assert!(guard.lost_because(sent + 9 * S).is_none());
        assert!(matches!(
            guard.lost_because(sent + 10 * S),
            Some(Lost::NotRenewed { .. })
        ));
        guard.lose(Lost::HeldBy(Some("other".into())));
        assert!(matches!(
            guard.lost_because(sent + S),
            Some(Lost::HeldBy(Some(h))) if h == "other"
        ));
        // The first reason stays.
        guard.lose(Lost::Deleted);
        assert!(matches!(
            guard.lost_because(sent + S),
            Some(Lost::HeldBy(_))
        ));
        let released = Guard::leading(sent, 10 * S);
        released.release();
        assert!(!released.is_leading_at(sent + S));
        assert!(released.lost_because(sent + 20 * S).is_none());
        assert!(Guard::unelected().lost_because(sent + 20 * S).is_none());
    }

    #[test]
    fn renewals_are_spaced_and_bounded_by_the_deadline() {
        let t = timing();
        let r = Instant::now();
        assert_eq!(t.held_until(r), r + 10 * S);
        assert_eq!(t.next_after_success(r), r + 5 * S);
        assert_eq!(t.next_after_failure(r + 5 * S), r + 5 * S + 1250 * S / 1000);
        // The first attempt, 5 s after the last renewal, may take half of the 5 s left...
        assert_eq!(t.attempt_timeout(r, r + 5 * S), Some(2500 * S / 1000));
        // ...a later one never runs past the deadline...
        assert_eq!(
            t.attempt_timeout(r, r + 9700 * S / 1000),
            Some(300 * S / 1000)
        );
        assert_eq!(
            t.attempt_timeout(r, r + 9400 * S / 1000),
            Some(300 * S / 1000)
        );
        // ...and at (or after) the deadline there is no attempt: the lease is lost.
        assert_eq!(t.attempt_timeout(r, r + 10 * S), None);
        assert_eq!(t.attempt_timeout(r, r + 30 * S), None);
    }

    #[test]
    fn attempts_stalled_from_the_start_end_exactly_at_the_deadline() {
        // Every attempt runs into its timeout: the renewer keeps trying until the deadline and
        // not a moment longer, however the halving falls.
        for (lease, deadline) in [(15 * S, 10 * S), (6 * S, 4 * S), (15 * S, 14 * S)] {
            let t = Timing::new(&config(lease, deadline));
            let r = Instant::now();
            let mut now = t.next_after_success(r);
            let mut attempts = 0;
            while let Some(timeout) = t.attempt_timeout(r, now) {
                attempts += 1;
                assert!(
                    now + timeout <= t.held_until(r),
                    "{lease:?}/{deadline:?}: an attempt runs past the deadline"
                );
                // As the renewer does: the next attempt, but wake at the deadline at the latest.
                now = (now + timeout)
                    .max(t.next_after_failure(now))
                    .min(t.held_until(r));
            }
            assert_eq!(now, t.held_until(r), "{lease:?}/{deadline:?}");
            assert!(attempts >= 3, "{lease:?}/{deadline:?}: {attempts} attempts");
        }
    }
}
