//! The TrustBundle controller: read the sources (I/O: `sources`) -> build the bundle (pure:
//! `build`) -> write the targets where they differ (`targets`: a ConfigMap in every selected
//! namespace, optionally a ClusterTrustBundle) -> status, metrics, Events.
//!
//! While a source fails the targets are left exactly as they are (the last good bundle stays
//! published, and no namespace gains or loses it); the status says which source and why. An
//! idle bundle makes no writes: targets are compared before writing, and a namespace's
//! ConfigMap is read again only when its version or the wanted content changed.
//!
//! A CA rotation plugs in through the issuer: whatever `Backend::ca_certificates` answers
//! (the active CA, plus a next or retiring one) is what bundles sourcing the issuer publish;
//! [`Triggers::issuer_changed`] makes them look again at once, and [`published`] says when a
//! new CA has reached every target.

pub mod build;
mod sources;
mod targets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use tracing::warn;

use crate::api::conditions::{self, DesiredCondition, READY, bounded_message};
use crate::api::{
    BundleCertificate, BundleObjectKey, TrustBundle, TrustBundleSpec, TrustBundleStatus,
};
use crate::issuer::IssuerId;
use crate::reason::{Problem, Reason};
use crate::time::rfc3339;

use super::{Context, Error};

pub use build::{Bundle, Entry, build, fingerprint, parse_source};
pub use targets::cluster_trust_bundle_name;

/// Label on every ConfigMap and ClusterTrustBundle a TrustBundle writes, valued with its
/// name: how they are found (and the only ones ever updated or deleted).
pub const BUNDLE_LABEL: &str = "certsmith.dev/trust-bundle";

/// How often a bundle is rebuilt without any event: a remote CA's chain that changed, a
/// ClusterTrustBundle edited by hand.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a bundle that could not be fully written is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// The TrustBundle controller's context: the shared one, and its caches of the namespaces the
/// operator serves and of the ConfigMaps TrustBundles wrote (metadata only).
pub struct Bundles {
    pub ctx: Arc<Context>,
    pub namespaces: Vec<Store<PartialObjectMeta<Namespace>>>,
    pub config_maps: Vec<Store<PartialObjectMeta<ConfigMap>>>,
    /// What each written ConfigMap was last seen to hold, by (namespace, name).
    verified: Mutex<HashMap<(String, String), targets::Verified>>,
}

impl Bundles {
    pub fn new(
        ctx: Arc<Context>,
        namespaces: Vec<Store<PartialObjectMeta<Namespace>>>,
        config_maps: Vec<Store<PartialObjectMeta<ConfigMap>>>,
    ) -> Self {
        Bundles {
            ctx,
            namespaces,
            config_maps,
            verified: Mutex::default(),
        }
    }

    /// Wait until the caches hold a full list: deciding which namespaces lose a ConfigMap
    /// from a half-filled cache would remove it from all of them.
    /// False when a cache was dropped (the controller is stopping).
    async fn primed(&self) -> bool {
        for store in &self.namespaces {
            if store.wait_until_ready().await.is_err() {
                return false;
            }
        }
        for store in &self.config_maps {
            if store.wait_until_ready().await.is_err() {
                return false;
            }
        }
        true
    }

    /// Forget what was verified of ConfigMaps that are gone.
    fn forget_deleted(&self) {
        let exists = |ns: &str, name: &str| {
            let r = ObjectRef::<PartialObjectMeta<ConfigMap>>::new(name).within(ns);
            self.config_maps.iter().any(|s| s.get(&r).is_some())
        };
        if let Ok(mut verified) = self.verified.lock() {
            verified.retain(|(ns, name), _| exists(ns, name));
        }
    }
}

/// Requests to look again at the TrustBundles that source an issuer.
#[derive(Default)]
pub struct Triggers {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<IssuerId>>>,
}

impl Triggers {
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<IssuerId> {
        let (to, from) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(to);
        }
        from
    }

    /// Rebuild, now, every TrustBundle that sources `issuer`. The issuer controller calls it
    /// each time it looks at an issuer (its CA Secret changed, its periodic check); a CA
    /// rotation calls it after changing what the issuer's `ca_certificates` answers.
    pub fn issuer_changed(&self, issuer: &IssuerId) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.retain(|s| s.unbounded_send(issuer.clone()).is_ok());
        }
    }
}

fn trust_bundle_ar() -> ApiResource {
    ApiResource::erase::<TrustBundle>(&())
}

fn spec_of(obj: &DynamicObject) -> Option<TrustBundleSpec> {
    serde_json::from_value(obj.data.get("spec")?.clone()).ok()
}

fn reference(name: &str) -> ObjectRef<DynamicObject> {
    ObjectRef::new_with(name, trust_bundle_ar())
}

/// The TrustBundles to look at when a namespace changes: those that select it now, and those
/// that wrote a ConfigMap into it (it may no longer be selected).
pub fn bundles_for_namespace(
    bundles: &Store<DynamicObject>,
    written: &[Store<PartialObjectMeta<ConfigMap>>],
    namespace: &PartialObjectMeta<Namespace>,
) -> Vec<ObjectRef<DynamicObject>> {
    let ns = namespace.name_any();
    bundles
        .state()
        .iter()
        .filter(|b| {
            let selects = spec_of(b).is_some_and(|spec| {
                targets::selects(&spec.target.namespace_selector, &namespace.metadata)
            });
            let holds = || {
                let r = ObjectRef::new(&b.name_any()).within(&ns);
                written.iter().any(|s| s.get(&r).is_some())
            };
            selects || holds()
        })
        .map(|b| reference(&b.name_any()))
        .collect()
}

/// The TrustBundle that wrote a ConfigMap (or ClusterTrustBundle), by its label.
pub fn bundle_writing<K: Resource>(object: &K) -> Option<ObjectRef<DynamicObject>> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(BUNDLE_LABEL)
        .map(|name| reference(name))
}

/// Which kind of object a source names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Secret,
    ConfigMap,
}

/// The TrustBundles that read the Secret or ConfigMap `namespace/name`.
pub fn bundles_reading(
    bundles: &Store<DynamicObject>,
    kind: SourceKind,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<DynamicObject>> {
    let names = |key: &BundleObjectKey| key.namespace == namespace && key.name == name;
    bundles
        .state()
        .iter()
        .filter(|b| {
            spec_of(b).is_some_and(|spec| {
                spec.sources.iter().any(|s| match kind {
                    SourceKind::Secret => s.secret.as_ref().is_some_and(names),
                    SourceKind::ConfigMap => s.config_map.as_ref().is_some_and(names),
                })
            })
        })
        .map(|b| reference(&b.name_any()))
        .collect()
}

fn sources_issuer(spec: &TrustBundleSpec, issuer: &IssuerId) -> bool {
    spec.sources
        .iter()
        .filter_map(|s| s.issuer_ref.as_ref())
        .any(|r| sources::issuer_id(r) == *issuer)
}

/// The TrustBundles that source `issuer`.
pub fn bundles_sourcing(
    bundles: &Store<DynamicObject>,
    issuer: &IssuerId,
) -> Vec<ObjectRef<DynamicObject>> {
    bundles
        .state()
        .iter()
        .filter(|b| spec_of(b).is_some_and(|spec| sources_issuer(&spec, issuer)))
        .map(|b| reference(&b.name_any()))
        .collect()
}

/// Whether `bundle` carries the certificate `fingerprint` in every target: Ready for its
/// current generation and listing it. A bundle that cannot reach a target holds this false.
pub fn carries(bundle: &TrustBundle, fingerprint: &str) -> bool {
    let Some(status) = &bundle.status else {
        return false;
    };
    let generation = bundle.metadata.generation;
    let ready = conditions::find(&status.conditions, READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation);
    ready
        && status.observed_generation == generation
        && status
            .certificates
            .iter()
            .any(|c| c.fingerprint == fingerprint)
}

/// "Publish before use": whether every TrustBundle this operator serves that sources
/// `issuer` carries the certificate `fingerprint` (SHA-256 hex, see [`fingerprint`]) in all
/// its targets. True when no bundle sources the issuer.
pub async fn published(
    ctx: &Context,
    issuer: &IssuerId,
    fingerprint: &str,
) -> Result<bool, kube::Error> {
    let params = match &ctx.settings.trust_bundle_selector {
        Some(selector) => ListParams::default().labels(selector),
        None => ListParams::default(),
    };
    let bundles = Api::<TrustBundle>::all(ctx.client.clone())
        .list(&params)
        .await?;
    Ok(bundles
        .items
        .iter()
        .filter(|b| sources_issuer(&b.spec, issuer))
        .all(|b| carries(b, fingerprint)))
}

/// Read every source; the PEM of each, or every failure (the reason of the first).
async fn gather(ctx: &Context, spec: &TrustBundleSpec) -> Result<Vec<(String, String)>, Problem> {
    let reads = spec
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| async move {
            let name = sources::describe(i, source);
            sources::read(ctx, &name, source)
                .await
                .map(|pem| (name, pem))
        });
    let results = futures::future::join_all(reads).await;
    let (mut texts, mut failures) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(text) => texts.push(text),
            Err(p) => failures.push(p),
        }
    }
    match failures.first() {
        None => Ok(texts),
        Some(first) => Err(Problem::new(
            first.reason,
            failures
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// What a reconcile came to, for the status (pure).
struct Found {
    /// The bundle written; None when the sources failed and the targets were left alone.
    bundle: Option<Bundle>,
    namespaces: Option<i32>,
    cluster_trust_bundle: Option<String>,
    problems: Vec<Problem>,
}

/// The Ready condition for what was found.
fn ready(found: &Found) -> DesiredCondition {
    let failed = |reason: Reason, message: String| DesiredCondition {
        type_: READY,
        status: false,
        reason: reason.as_str().into(),
        message,
    };
    let Some(bundle) = &found.bundle else {
        let (reason, message) = found.problems.first().map_or_else(
            || (Reason::InternalError, String::new()),
            |p| (p.reason, p.message.clone()),
        );
        return failed(
            reason,
            format!("{message}; the targets keep the bundle last written"),
        );
    };
    if let Some(first) = found.problems.first() {
        let reason = if found
            .problems
            .iter()
            .any(|p| p.reason == Reason::TargetConflict)
        {
            Reason::TargetConflict
        } else {
            first.reason
        };
        let messages: Vec<&str> = found.problems.iter().map(|p| p.message.as_str()).collect();
        return failed(reason, messages.join("; "));
    }
    let mut message = format!(
        "{} certificates in {} namespaces",
        bundle.certificates.len(),
        found.namespaces.unwrap_or(0)
    );
    if let Some(name) = &found.cluster_trust_bundle {
        message.push_str(&format!(" and ClusterTrustBundle {name}"));
    }
    if let Some(expiry) = bundle.earliest_expiry() {
        message.push_str(&format!("; the first expires at {}", rfc3339(expiry)));
    }
    if bundle.expired > 0 {
        message.push_str(&format!("; {} expired dropped", bundle.expired));
    }
    if found.cluster_trust_bundle.is_some() && bundle.non_ca() > 0 {
        message.push_str(&format!(
            "; {} not CAs, left out of the ClusterTrustBundle",
            bundle.non_ca()
        ));
    }
    DesiredCondition {
        type_: READY,
        status: true,
        reason: Reason::Synced.as_str().into(),
        message,
    }
}

/// The status for what was found (pure). Without a new bundle, what the targets hold is still
/// the previous one: its certificates and counts stay.
fn next_status(
    prev: &TrustBundleStatus,
    generation: Option<i64>,
    now: &str,
    found: &Found,
) -> TrustBundleStatus {
    let conditions = conditions::merge(&prev.conditions, &[ready(found)], generation, now);
    let Some(bundle) = &found.bundle else {
        return TrustBundleStatus {
            conditions,
            observed_generation: generation,
            ..prev.clone()
        };
    };
    TrustBundleStatus {
        conditions,
        certificates: bundle
            .certificates
            .iter()
            .map(|c| BundleCertificate {
                fingerprint: c.fingerprint.clone(),
                subject: c.subject.clone(),
                not_after: rfc3339(c.not_after),
            })
            .collect(),
        namespaces: found.namespaces,
        cluster_trust_bundle: found.cluster_trust_bundle.clone(),
        observed_generation: generation,
    }
}

/// When to look again: at the resync, or as soon as a certificate of the bundle expires.
fn requeue_after(found: &Found, now: i64) -> Duration {
    if !found.problems.is_empty() {
        return RETRY;
    }
    let until_expiry = found
        .bundle
        .as_ref()
        .and_then(Bundle::earliest_expiry)
        .map(|at| Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0) + 1));
    until_expiry.map_or(RESYNC, |d| d.min(RESYNC))
}

/// Reconcile a TrustBundle (watched untyped).
pub async fn reconcile(obj: Arc<DynamicObject>, b: Arc<Bundles>) -> Result<Action, Error> {
    let ctx = &b.ctx;
    let tb: TrustBundle = match super::typed(&obj) {
        Ok(tb) => tb,
        Err(e) => {
            let problem = Problem::new(
                Reason::InvalidSpec,
                format!("the operator cannot read this TrustBundle: {e}"),
            );
            report_problem(ctx, &obj, problem).await;
            return Ok(Action::await_change());
        }
    };
    if !b.primed().await {
        return Ok(Action::await_change());
    }
    b.forget_deleted();
    let name = tb.name_any();
    let now = ctx.now();
    let prev = tb.status.clone().unwrap_or_default();
    let built = match gather(ctx, &tb.spec).await {
        Ok(texts) => build(&texts, now),
        Err(p) => Err(p),
    };
    let (found, changes) = match built {
        Err(problem) => (
            Found {
                bundle: None,
                namespaces: None,
                cluster_trust_bundle: None,
                problems: vec![problem],
            },
            Vec::new(),
        ),
        Ok(bundle) => {
            ctx.metrics
                .trust_bundle(&name, bundle.certificates.len(), bundle.earliest_expiry());
            let maps = targets::sync_config_maps(&b, &tb, &bundle.pem()).await;
            let cluster = targets::sync_cluster_trust_bundle(
                ctx,
                &tb,
                &bundle.ca_pem(),
                prev.cluster_trust_bundle.as_deref(),
            )
            .await;
            let mut problems = maps.problems;
            problems.extend(cluster.problems);
            let mut changes = maps.changes;
            changes.extend(cluster.changes);
            (
                Found {
                    bundle: Some(bundle),
                    namespaces: Some(maps.namespaces),
                    cluster_trust_bundle: cluster.name,
                    problems,
                },
                changes,
            )
        }
    };
    for p in &found.problems {
        ctx.metrics.trust_bundle_sync_error(&name, p.reason);
    }
    let next = next_status(&prev, tb.metadata.generation, &rfc3339(now), &found);
    if next != prev {
        patch_status(ctx, &name, &next).await?;
    }
    let reference = tb.object_ref(&());
    if !changes.is_empty() {
        let count = found.bundle.as_ref().map_or(0, |b| b.certificates.len());
        let note = format!("bundle of {count} certificates: {}", changes.join(", "));
        publish(ctx, &reference, EventType::Normal, Reason::Synced, &note).await;
    }
    let was = conditions::find(&prev.conditions, READY);
    let is = conditions::find(&next.conditions, READY);
    if let Some(is) = is.filter(|c| c.status == "False")
        && was.is_none_or(|w| {
            (&w.status, &w.reason, &w.message) != (&is.status, &is.reason, &is.message)
        })
    {
        let reason = reason_named(&is.reason);
        publish(ctx, &reference, EventType::Warning, reason, &is.message).await;
    }
    Ok(Action::requeue(requeue_after(&found, now)))
}

/// The reason a condition names (for the Event of a condition already computed).
fn reason_named(text: &str) -> Reason {
    [
        Reason::SourceMissing,
        Reason::SourceInvalid,
        Reason::SourceUnavailable,
        Reason::BundleEmpty,
        Reason::TargetConflict,
        Reason::TargetWriteFailed,
        Reason::InvalidSpec,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
    .unwrap_or(Reason::InternalError)
}

/// Write the status with server-side apply (only the leader).
async fn patch_status(ctx: &Context, name: &str, status: &TrustBundleStatus) -> Result<(), Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let body = serde_json::json!({
        "apiVersion": TrustBundle::api_version(&()),
        "kind": TrustBundle::kind(&()),
        "status": status,
    });
    let patched = Api::<TrustBundle>::all(ctx.client.clone())
        .patch_status(
            name,
            &PatchParams::apply(crate::secret::FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await;
    match patched {
        // Deleted while it was being synced: what it wrote goes with it (owner references).
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: Reason,
    note: &str,
) {
    if !ctx.is_leading() {
        return;
    }
    let event = Event {
        type_,
        reason: reason.as_str().into(),
        note: Some(bounded_message(note)),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        warn!("publishing event failed: {e}");
    }
}

/// Set Ready=False with `problem` (and publish it), leaving the rest of the status alone.
async fn report_problem(ctx: &Context, obj: &DynamicObject, problem: Problem) {
    let prev: TrustBundleStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let condition = DesiredCondition {
        type_: READY,
        status: false,
        reason: problem.reason.as_str().into(),
        message: problem.message.clone(),
    };
    let next = TrustBundleStatus {
        conditions: conditions::merge(
            &prev.conditions,
            &[condition],
            generation,
            &rfc3339(ctx.now()),
        ),
        observed_generation: generation,
        ..prev.clone()
    };
    ctx.metrics
        .trust_bundle_sync_error(&obj.name_any(), problem.reason);
    if next != prev
        && let Err(e) = patch_status(ctx, &obj.name_any(), &next).await
    {
        warn!("reporting a TrustBundle problem in status failed: {e}");
    }
    let reference = obj.object_ref(&trust_bundle_ar());
    publish(
        ctx,
        &reference,
        EventType::Warning,
        problem.reason,
        &problem.message,
    )
    .await;
}

/// Report an internal error (a panic in this TrustBundle's reconcile) as Ready=False.
pub async fn report_internal_error(ctx: &Context, obj: &DynamicObject) {
    let problem = Problem::new(
        Reason::InternalError,
        "the operator failed while syncing this TrustBundle (see its log); retrying with backoff",
    );
    report_problem(ctx, obj, problem).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn entry(subject: &str, not_after: i64, is_ca: bool) -> Entry {
        Entry {
            fingerprint: format!("{subject}-fp"),
            subject: subject.into(),
            not_after,
            is_ca,
            der: Vec::new(),
        }
    }

    fn found(problems: Vec<Problem>, with_bundle: bool) -> Found {
        Found {
            bundle: with_bundle.then(|| Bundle {
                certificates: vec![
                    entry("CN=a", NOW + 100, true),
                    entry("CN=b", NOW + 5000, false),
                ],
                expired: 1,
            }),
            namespaces: Some(3),
            cluster_trust_bundle: Some("agents".into()),
            problems,
        }
    }

    #[test]
    fn a_synced_bundle_says_what_it_carries_and_where() {
        let c = ready(&found(vec![], true));
        assert!(c.status);
        assert_eq!(c.reason, "Synced");
        assert_eq!(
            c.message,
            "2 certificates in 3 namespaces and ClusterTrustBundle agents; the first expires at 2027-01-15T08:01:40Z; 1 expired dropped; 1 not CAs, left out of the ClusterTrustBundle"
        );
    }

    #[test]
    fn a_source_failure_keeps_the_last_bundle_in_status() {
        let prev = next_status(
            &TrustBundleStatus::default(),
            Some(1),
            "t1",
            &found(vec![], true),
        );
        assert_eq!(prev.certificates.len(), 2);
        let failing = found(
            vec![Problem::new(
                Reason::SourceInvalid,
                "sources[1] (inLine): no PEM certificate",
            )],
            false,
        );
        let next = next_status(&prev, Some(2), "t2", &failing);
        assert_eq!(next.certificates, prev.certificates);
        assert_eq!(next.namespaces, Some(3));
        assert_eq!(next.observed_generation, Some(2));
        let c = &next.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SourceInvalid")
        );
        assert!(
            c.message
                .ends_with("the targets keep the bundle last written"),
            "{}",
            c.message
        );
        assert_eq!(requeue_after(&failing, NOW), RETRY);
    }

    #[test]
    fn a_conflict_outranks_other_target_problems() {
        let c = ready(&found(
            vec![
                Problem::new(Reason::TargetWriteFailed, "writing a: quota"),
                Problem::new(Reason::TargetConflict, "b: left alone"),
            ],
            true,
        ));
        assert_eq!((c.status, c.reason.as_str()), (false, "TargetConflict"));
        assert_eq!(c.message, "writing a: quota; b: left alone");
    }

    #[test]
    fn the_next_look_is_at_the_first_expiry_or_the_resync() {
        assert_eq!(
            requeue_after(&found(vec![], true), NOW),
            Duration::from_secs(101)
        );
        let mut later = found(vec![], true);
        if let Some(b) = later.bundle.as_mut() {
            for c in &mut b.certificates {
                c.not_after = NOW + 86_400;
            }
        }
        assert_eq!(requeue_after(&later, NOW), RESYNC);
    }

    #[test]
    fn a_bundle_carries_a_certificate_once_ready_for_its_generation_and_listing_it() {
        let mut tb: TrustBundle = serde_json::from_value(serde_json::json!({
            "apiVersion": "certsmith.dev/v1alpha1", "kind": "TrustBundle",
            "metadata": {"name": "agents", "generation": 2},
            "spec": {"sources": [{"issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}],
                     "target": {"configMap": {"key": "ca.crt"}, "namespaceSelector": {}}},
        }))
        .unwrap();
        assert!(!carries(&tb, "CN=a-fp"));
        tb.status = Some(next_status(
            &TrustBundleStatus::default(),
            Some(2),
            "t",
            &found(vec![], true),
        ));
        assert!(carries(&tb, "CN=a-fp"));
        assert!(!carries(&tb, "CN=z-fp"));
        tb.metadata.generation = Some(3);
        assert!(!carries(&tb, "CN=a-fp"), "not yet synced for the new spec");
        assert!(sources_issuer(&tb.spec, &IssuerId::cluster_issuer("ca")));
        assert!(!sources_issuer(&tb.spec, &IssuerId::issuer("ca", "ca")));
    }

    #[test]
    fn issuer_triggers_reach_every_subscriber_and_drop_closed_ones() {
        let triggers = Triggers::default();
        let mut open = triggers.subscribe();
        drop(triggers.subscribe());
        triggers.issuer_changed(&IssuerId::cluster_issuer("ca"));
        assert_eq!(open.try_recv().ok(), Some(IssuerId::cluster_issuer("ca")));
        assert_eq!(triggers.subscribers.lock().map(|s| s.len()).unwrap_or(0), 1);
    }
}
