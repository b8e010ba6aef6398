//! Emergency rotation: every Certificate of an issuer re-issued with a new key, at a bounded
//! rate, optionally revoking what each one replaces. Asked for with annotations on the
//! Issuer or ClusterIssuer (`certsmith rotate` sets them; GitOps may too), and reported in
//! its `status.emergencyRotation` (total, triggered, done, failed, started, finished).
//!
//! One task per running rotation (leader only): once a second it reads where the issuer's
//! Certificates stand from the controllers' caches (`plan::state`), asks the next ones to
//! re-issue through the same annotations `certsmith revoke`/`renew` set (`plan::allowance`
//! paces them), and writes the progress. Restart-safe: what was asked is in the
//! Certificates' annotations, when it started in the status, so a new leader picks up where
//! the old one stopped. Self-contained: the Certificate controller does the work.

pub mod plan;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{
    Certificate, CertificateStatus, ClusterIssuer, EmergencyRotationStatus, Issuer, IssuerStatus,
    RENEW_ANNOTATION, REVOKE_ANNOTATION, REVOKE_REASON_ANNOTATION,
};
use crate::issuer::IssuerId;
use crate::time::rfc3339;

use super::Context;
use super::certificate_cache::{CachedCertificate, Certificates};
use plan::{Request, State};

/// The field manager of `status.emergencyRotation`, apart from the issuer controller's, so
/// neither write removes the other's fields.
const FIELD_MANAGER: &str = "certsmith-emergency-rotation";
const TICK: Duration = Duration::from_secs(1);

/// The running rotations of this process, by issuer, with the request each answers.
#[derive(Default)]
pub struct Running {
    tasks: std::sync::Mutex<BTreeMap<String, String>>,
    /// Every Certificate cache of the process (one per watched namespace): a ClusterIssuer's
    /// Certificates are in all of them.
    stores: std::sync::Mutex<Vec<Certificates>>,
}

impl Running {
    pub fn set_stores(&self, stores: Vec<Certificates>) {
        if let Ok(mut s) = self.stores.lock() {
            *s = stores;
        }
    }

    /// Every scope's Certificate cache.
    pub fn stores(&self) -> Vec<Certificates> {
        self.stores.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Claim the rotation of `issuer` for `request`; false when a task already runs it.
    fn claim(&self, issuer: &str, request: &str) -> bool {
        let Ok(mut tasks) = self.tasks.lock() else {
            return false;
        };
        if tasks.get(issuer).map(String::as_str) == Some(request) {
            return false;
        }
        tasks.insert(issuer.to_string(), request.to_string());
        true
    }

    fn release(&self, issuer: &str, request: &str) {
        if let Ok(mut tasks) = self.tasks.lock()
            && tasks.get(issuer).map(String::as_str) == Some(request)
        {
            tasks.remove(issuer);
        }
    }
}

/// Start the rotation `obj` (an Issuer or ClusterIssuer) asks for, unless it is finished or
/// already running. Called by the issuer reconcile.
pub fn drive(ctx: &Arc<Context>, obj: &DynamicObject, id: &IssuerId) {
    if !ctx.is_leading() {
        return;
    }
    let Some(request) = plan::request(obj.annotations()) else {
        return;
    };
    let previous = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value::<IssuerStatus>(s).ok())
        .and_then(|s| s.emergency_rotation)
        .filter(|r| r.request == request.id);
    if previous.as_ref().is_some_and(|r| r.finished_at.is_some()) {
        return;
    }
    let key = id.to_string();
    if !ctx.shared.rotations.claim(&key, &request.id) {
        return;
    }
    let started_at = previous
        .as_ref()
        .and_then(|r| crate::time::parse(&r.started_at))
        .unwrap_or_else(|| ctx.now());
    info!(issuer = %id, request = %request.id, rate = request.rate, revoke = request.revoke, "emergency rotation");
    let (ctx, id) = (ctx.clone(), id.clone());
    tokio::spawn(async move {
        run(&ctx, &id, &request, started_at, previous).await;
        ctx.shared.rotations.release(&key, &request.id);
    });
}

/// One Certificate of the issuer, as the caches have it.
struct Member {
    namespace: String,
    name: String,
    state: State,
}

async fn run(
    ctx: &Context,
    id: &IssuerId,
    request: &Request,
    started_at: i64,
    mut written: Option<EmergencyRotationStatus>,
) {
    let label = format!("{}/{}", id.kind.as_str(), id.name);
    let value = request.certificate_request(&label);
    // Asked by this task and maybe not in the caches yet.
    let mut asked: HashSet<(String, String)> = HashSet::new();
    // Ticks keep their pace whatever one takes (a late one is not made up in a burst).
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !ctx.is_leading() || !still_requested(ctx, id, &request.id).await {
            return;
        }
        let members = members(ctx, id, &value, request.revoke);
        let is_asked = |asked: &HashSet<(String, String)>, m: &Member| {
            m.state != State::Waiting || asked.contains(&(m.namespace.clone(), m.name.clone()))
        };
        let triggered = members.iter().filter(|m| is_asked(&asked, m)).count();
        let due = plan::allowance(ctx.now() - started_at, request.rate, triggered);
        let next: Vec<(String, String)> = members
            .iter()
            .filter(|m| !is_asked(&asked, m))
            .take(due)
            .map(|m| (m.namespace.clone(), m.name.clone()))
            .collect();
        // This second's share at once: a loaded API server slows each request, not the pace.
        let answers = futures::future::join_all(
            next.iter()
                .map(|(namespace, name)| ask(ctx, namespace, name, &value, request)),
        )
        .await;
        for ((namespace, name), answer) in next.into_iter().zip(answers) {
            match answer {
                Ok(()) => {
                    asked.insert((namespace, name));
                }
                Err(e) => {
                    warn!(issuer = %id, certificate = %format!("{namespace}/{name}"), "emergency rotation: asking to re-issue failed: {e}");
                }
            }
        }
        let count = |s: State| members.iter().filter(|m| m.state == s).count();
        let total = members.len();
        let triggered = members.iter().filter(|m| is_asked(&asked, m)).count();
        let (done, failed) = (count(State::Done), count(State::Failing));
        let finished = done == total;
        let status = EmergencyRotationStatus {
            request: request.id.clone(),
            revoke: request.revoke,
            rate: request.rate,
            total: to_u32(total),
            triggered: to_u32(triggered),
            done: to_u32(done),
            failed: to_u32(failed),
            started_at: rfc3339(started_at),
            finished_at: finished.then(|| rfc3339(ctx.now())),
        };
        ctx.metrics.emergency_rotation(
            id.kind.as_str(),
            id.namespace.as_deref().unwrap_or(""),
            &id.name,
            &[
                ("total", i64::from(status.total)),
                ("triggered", i64::from(status.triggered)),
                ("done", i64::from(status.done)),
                ("failed", i64::from(status.failed)),
            ],
        );
        // The finish time moves every second: compare without it.
        let unchanged = written.as_ref().is_some_and(|w| {
            EmergencyRotationStatus {
                finished_at: None,
                ..w.clone()
            } == EmergencyRotationStatus {
                finished_at: None,
                ..status.clone()
            } && w.finished_at.is_some() == finished
        });
        if !unchanged {
            match write(ctx, id, &status).await {
                Ok(()) => written = Some(status),
                Err(e) => warn!(issuer = %id, "writing the emergency rotation's progress: {e}"),
            }
        }
        if finished && written.as_ref().is_some_and(|w| w.finished_at.is_some()) {
            info!(issuer = %id, request = %request.id, total, "emergency rotation finished");
            return;
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The issuer still exists and still asks for this rotation (a new request replaces it).
async fn still_requested(ctx: &Context, id: &IssuerId, request: &str) -> bool {
    let annotations = match &id.namespace {
        Some(ns) => Api::<Issuer>::namespaced(ctx.client.clone(), ns)
            .get_opt(&id.name)
            .await
            .map(|i| i.map(|i| i.annotations().clone())),
        None => Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(&id.name)
            .await
            .map(|i| i.map(|i| i.annotations().clone())),
    };
    match annotations {
        Ok(Some(a)) => plan::request(&a).is_some_and(|r| r.id == request),
        Ok(None) => false,
        // The API server did not answer: keep going, the next tick asks again.
        Err(_) => true,
    }
}

/// The issuer's Certificates in the caches (found in their index), sorted, with where each
/// stands. One that cannot be read counts with an empty status: it never reads as done.
fn members(ctx: &Context, id: &IssuerId, value: &str, revoke: bool) -> Vec<Member> {
    let empty = CertificateStatus::default();
    let mut members: Vec<Member> = ctx
        .shared
        .rotations
        .stores()
        .iter()
        .flat_map(|s| s.using(id))
        .filter(|obj| obj.meta().deletion_timestamp.is_none())
        .map(|obj| {
            let status = match obj.as_ref() {
                CachedCertificate::Valid(c) => c.status.as_ref().unwrap_or(&empty),
                CachedCertificate::Malformed(_) => &empty,
            };
            Member {
                state: plan::state(obj.annotations(), status, value, revoke),
                name: obj.name_any(),
                namespace: obj.namespace().unwrap_or_default(),
            }
        })
        .collect();
    members.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    members.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    members
}

/// Ask one Certificate to re-issue (and revoke what it replaces) for this rotation.
async fn ask(
    ctx: &Context,
    namespace: &str,
    name: &str,
    value: &str,
    request: &Request,
) -> Result<(), kube::Error> {
    let mut annotations = serde_json::Map::new();
    annotations.insert(RENEW_ANNOTATION.into(), value.into());
    if request.revoke {
        annotations.insert(REVOKE_ANNOTATION.into(), value.into());
        annotations.insert(
            REVOKE_REASON_ANNOTATION.into(),
            request.reason.as_str().into(),
        );
    }
    let patch = serde_json::json!({"metadata": {"annotations": annotations}});
    match Api::<Certificate>::namespaced(ctx.client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: it leaves the rotation.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn write(
    ctx: &Context,
    id: &IssuerId,
    status: &EmergencyRotationStatus,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let (kind, body_status) = (
        id.kind.as_str(),
        serde_json::json!({"emergencyRotation": status}),
    );
    let body = serde_json::json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": kind, "status": body_status});
    match &id.namespace {
        Some(ns) => Api::<Issuer>::namespaced(ctx.client.clone(), ns)
            .patch_status(&id.name, &params, &Patch::Apply(body))
            .await
            .map(|_| ()),
        None => Api::<ClusterIssuer>::all(ctx.client.clone())
            .patch_status(&id.name, &params, &Patch::Apply(body))
            .await
            .map(|_| ()),
    }
}
