//! Leader election on a `coordination.k8s.io/v1` Lease: of several replicas only the holder
//! runs the controllers (and so writes); the others wait, and take over once the holder has
//! not renewed for a whole lease duration.
//!
//! Expiry is judged on this process's monotonic clock from the moment it last saw the lease
//! change, not from the timestamps in the Lease, so clock skew between nodes cannot hand the
//! lease to two replicas at once. Updates carry the resourceVersion they read, so two
//! candidates racing for an expired lease cannot both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// A holder that has not renewed for this long has lost the lease.
    pub lease_duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
}

/// What this replica last saw of the lease.
struct Observed {
    holder: Option<String>,
    renew_time: Option<String>,
    seen_at: Instant,
}

/// This replica's leadership: `token` is cancelled when it is lost (or on shutdown).
pub struct Leadership {
    pub token: CancellationToken,
    stop_renewing: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    config: Config,
}

impl Leadership {
    /// Stop renewing and hand the lease back (call after the controllers have drained, so a
    /// standby never runs while this replica still finishes an issuance).
    pub async fn release(self) {
        self.stop_renewing.cancel();
        let _ = self.renewer.await;
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
    loop {
        match try_acquire(&api, &config, &mut observed).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(lease = %config.name, "leader election: {e}"),
        }
        // A standby looks twice per renewal period, so it notices an expired lease at most
        // half a renewal period late (failover within the lease duration plus that).
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(config.renew_every / 2) => {}
        }
    }
    info!(lease = %config.name, identity = %config.identity, "became the leader");
    let token = shutdown.child_token();
    let stop_renewing = CancellationToken::new();
    let renewer = tokio::spawn(keep(
        api.clone(),
        config.clone(),
        token.clone(),
        stop_renewing.clone(),
    ));
    Some(Leadership {
        token,
        stop_renewing,
        renewer,
        api,
        config,
    })
}

/// Renew until told to stop; if renewals fail for (almost) a whole lease duration, cancel
/// `leading` before any other replica can consider the lease expired.
async fn keep(
    api: Api<Lease>,
    config: Config,
    leading: CancellationToken,
    stop: CancellationToken,
) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.renew_every) => {}
        }
        match renew(&api, &config).await {
            Ok(()) => last_renewed = Instant::now(),
            Err(e) => {
                warn!(lease = %config.name, "renewing the lease failed: {e}");
                if last_renewed.elapsed() + config.renew_every >= config.lease_duration {
                    warn!(lease = %config.name, "lost the lease; stopping the controllers");
                    leading.cancel();
                }
            }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

fn lease_seconds(config: &Config) -> i32 {
    i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX)
}

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
    if holder.as_deref() == Some(config.identity.as_str()) {
        return Ok(true);
    }
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
    // Take over, conditional on the version we read.
    let transitions = spec.lease_transitions.unwrap_or(0) + 1;
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(lease_seconds(config)),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
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

async fn renew(api: &Api<Lease>, config: &Config) -> Result<(), String> {
    let mut lease = api.get(&config.name).await.map_err(|e| e.to_string())?;
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Err(format!("the lease is held by {:?}", spec.holder_identity));
    }
    spec.renew_time = Some(now());
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
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
