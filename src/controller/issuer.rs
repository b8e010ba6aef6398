//! Issuers and ClusterIssuers: resolve a reference into a ready [`Backend`], and keep each
//! issuer's `Ready` condition truthful. Nothing here knows one backend from another: the
//! backend says whether it can sign (`check`) and in what words.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::api::conditions::{self, DesiredCondition, READY};
use crate::api::{
    CaRotationStatus, ClusterIssuer, Issuer, IssuerKind, IssuerRef, IssuerSpec, IssuerStatus,
};
use crate::issuer::{Backend, Env, IssuerId, SecretReader};
use crate::policy;
use crate::reason::{Problem, Reason};
use crate::time::rfc3339;

use super::{Context, Error, ca_rotation};

/// How often a not-ready issuer is looked at again (besides its Secrets changing).
const NOT_READY_REQUEUE: Duration = Duration::from_secs(10);
/// How often a ready issuer is re-checked (a remote CA's health, expiry).
const READY_REQUEUE: Duration = Duration::from_secs(300);

/// The spec of the issuer a Certificate names (from the watch-fed cache: a policy or
/// credential change applies to the next issuance once the watch delivered it), or
/// `IssuerNotFound`.
pub async fn spec_of(ctx: &Context, id: &IssuerId) -> Result<IssuerSpec, Problem> {
    fetch(ctx, id)
        .await
        .map_err(|e| Problem::new(Reason::ApiError, format!("reading {id}: {e}")))?
        .map(|(spec, _)| spec)
        .ok_or_else(|| Problem::new(Reason::IssuerNotFound, format!("{id} not found")))
}

/// The issuer's backend, ready to sign, or why not (`IssuerNotReady` with the backend's own
/// reason).
pub async fn ready_backend(
    ctx: &Context,
    id: &IssuerId,
    spec: &IssuerSpec,
) -> Result<Backend, Problem> {
    let ready = async {
        let backend = Backend::build(spec, &env(ctx, id)).await?;
        backend.ready_to_sign().await?;
        Ok(backend)
    };
    ready.await.map_err(|p: Problem| {
        Problem::new(
            Reason::IssuerNotReady,
            format!("{id} is not ready: {}: {}", p.reason, p.message),
        )
    })
}

/// The issuer's backend whether or not it is ready to sign (a revocation needs only that it
/// can be built), or why it cannot be built.
pub async fn backend(ctx: &Context, id: &IssuerId) -> Result<Backend, Problem> {
    let spec = spec_of(ctx, id).await?;
    Backend::build(&spec, &env(ctx, id)).await
}

/// [`env`], with the issuer's Secrets read live (and the cache told what was read).
fn env_live<'a>(ctx: &'a Context, id: &'a IssuerId) -> Env<'a> {
    let env = env(ctx, id);
    Env {
        secrets: SecretReader::new(ctx.client.clone(), env.secrets.namespace())
            .refreshing(ctx.shared.watched.clone()),
        ..env
    }
}

/// What an issuer's backend is built with: its Secrets are read from its own namespace, or
/// from the cluster-resource namespace for a ClusterIssuer.
fn env<'a>(ctx: &'a Context, id: &'a IssuerId) -> Env<'a> {
    let secret_namespace = id
        .namespace
        .as_deref()
        .unwrap_or(&ctx.settings.cluster_resource_namespace);
    Env {
        id,
        // Issuers' Secrets are reused while the Secret watch shows them unchanged.
        secrets: SecretReader::new(ctx.client.clone(), secret_namespace)
            .cached(ctx.shared.watched.clone()),
        client: ctx.client.clone(),
        settings: &ctx.settings.backends,
        caches: &ctx.caches,
        metrics: ctx.metrics.clone(),
        now: ctx.now(),
    }
}

/// The CA certificates (PEM, the issuing CA first) an issuer asks relying parties to trust:
/// what its backend answers ([`Backend::ca_certificates`]), whether or not it can sign now.
/// TrustBundles publish them; a CA rotation publishes its next (or retiring) CA by having the
/// backend answer it here too.
///
/// Read live, issuer and Secrets: it follows the issuer's own reconcile (its status just
/// written, its Secret just read), which the watch-fed caches may not have yet.
pub async fn ca_certificates(ctx: &Context, id: &IssuerId) -> Result<Vec<String>, Problem> {
    let (spec, status) = fetch_live(ctx, id)
        .await
        .map_err(|e| Problem::new(Reason::ApiError, format!("reading {id}: {e}")))?
        .ok_or_else(|| Problem::new(Reason::IssuerNotFound, format!("{id} not found")))?;
    let pems = Backend::build(&spec, &env_live(ctx, id))
        .await?
        .ca_certificates()
        .await?;
    // A CA issuer's rotation adds the CA replaced out of band and drops the retired one.
    let rotation = status
        .and_then(|s| s.ca_rotation)
        .filter(|_| spec.ca.is_some());
    Ok(ca_rotation::plan::published(
        pems,
        rotation.as_ref(),
        ctx.now(),
    ))
}

/// When the referenced issuer last became Ready (its Ready=True condition's
/// lastTransitionTime); None when it is not Ready or cannot be read.
pub async fn ready_since(ctx: &Context, namespace: &str, issuer_ref: &IssuerRef) -> Option<i64> {
    let id = IssuerId::referenced(namespace, issuer_ref);
    let status = fetch(ctx, &id).await.ok()??.1?;
    conditions::find(&status.conditions, READY)
        .filter(|c| c.status == "True")
        .and_then(|c| crate::time::parse(&c.last_transition_time))
}

/// Requests to look at an issuer again, delivered to the issuer controllers that serve it.
#[derive(Default)]
pub struct Rechecks {
    subscribers: Mutex<Vec<Subscriber>>,
}

struct Subscriber {
    /// The namespace served (None: every namespace), or ClusterIssuers.
    namespace: Option<String>,
    cluster: bool,
    to: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
}

impl Rechecks {
    /// The requests for issuers in `namespace` (None: all), or for ClusterIssuers.
    pub fn subscribe(
        &self,
        namespace: Option<String>,
        cluster: bool,
    ) -> mpsc::UnboundedReceiver<ObjectRef<DynamicObject>> {
        let (to, from) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(Subscriber {
                namespace,
                cluster,
                to,
            });
        }
        from
    }

    /// Look again at the issuer `id`.
    pub fn request(&self, id: &IssuerId) {
        let reference = match &id.namespace {
            None => ObjectRef::new_with(&id.name, ApiResource::erase::<ClusterIssuer>(&())),
            Some(ns) => ObjectRef::new_with(&id.name, ApiResource::erase::<Issuer>(&())).within(ns),
        };
        let Ok(mut subscribers) = self.subscribers.lock() else {
            return;
        };
        subscribers.retain(|s| !s.to.is_closed());
        let cluster = id.is_cluster_issuer();
        for s in subscribers.iter().filter(|s| {
            s.cluster == cluster
                && (cluster || s.namespace.is_none() || s.namespace == id.namespace)
        }) {
            let _ = s.to.unbounded_send(reference.clone());
        }
    }
}

/// The issuers in `store` that read the Secret `namespace/name` (their Secret namespace is
/// their own, or the cluster-resource namespace for ClusterIssuers).
pub fn issuers_reading(
    store: &Store<DynamicObject>,
    ar: &ApiResource,
    secret_namespace: &str,
    secret_name: &str,
    cluster_resource_namespace: Option<&str>,
) -> Vec<ObjectRef<DynamicObject>> {
    if cluster_resource_namespace.is_some_and(|ns| ns != secret_namespace) {
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|i| {
            cluster_resource_namespace.is_some()
                || i.namespace().as_deref() == Some(secret_namespace)
        })
        .filter(|i| {
            i.data
                .get("spec")
                .and_then(|s| serde_json::from_value::<IssuerSpec>(s.clone()).ok())
                .is_some_and(|spec| spec.secret_names().contains(&secret_name))
        })
        .map(|i| {
            let r = ObjectRef::new_with(&i.name_any(), ar.clone());
            match i.namespace() {
                Some(ns) => r.within(&ns),
                None => r,
            }
        })
        .collect()
}

/// An Issuer or ClusterIssuer: its spec and status, from the issuer controllers' caches (a
/// change is there as soon as the watch delivers it), or read live when the cache does not
/// hold it (an issuer just created, a ClusterIssuer outside this replica's selector), so
/// that IssuerNotFound is never said from a cache that lags.
async fn fetch(
    ctx: &Context,
    id: &IssuerId,
) -> Result<Option<(IssuerSpec, Option<IssuerStatus>)>, kube::Error> {
    if let Some(cached) = ctx.shared.watched.issuer(id) {
        return Ok(Some((*cached).clone()));
    }
    fetch_live(ctx, id).await
}

/// Read an Issuer or ClusterIssuer from the API server.
async fn fetch_live(
    ctx: &Context,
    id: &IssuerId,
) -> Result<Option<(IssuerSpec, Option<IssuerStatus>)>, kube::Error> {
    Ok(match (&id.kind, &id.namespace) {
        (IssuerKind::Issuer, Some(ns)) => Api::<Issuer>::namespaced(ctx.client.clone(), ns)
            .get_opt(&id.name)
            .await?
            .map(|i| (i.spec, i.status)),
        _ => Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(&id.name)
            .await?
            .map(|i| (i.spec.0, i.status)),
    })
}

/// The identity of a watched Issuer or ClusterIssuer.
fn id_of(obj: &DynamicObject) -> IssuerId {
    match obj.namespace() {
        Some(ns) => IssuerId::issuer(&ns, &obj.name_any()),
        None => IssuerId::cluster_issuer(&obj.name_any()),
    }
}

/// Reconcile an Issuer or ClusterIssuer (both watched untyped): compute and write `Ready`.
pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let id = id_of(&obj);
    super::emergency_rotation::drive(&ctx, &obj, &id);
    let spec: Result<IssuerSpec, Problem> = obj
        .data
        .get("spec")
        .cloned()
        .ok_or_else(|| "no spec".to_string())
        .and_then(|s| serde_json::from_value(s).map_err(|e| e.to_string()))
        .map_err(|e| Problem::new(Reason::InvalidSpec, format!("cannot read spec: {e}")));
    // What a tenant may ask for, shown even while the issuer is not ready.
    let summary = spec
        .as_ref()
        .ok()
        .map(|s| policy::summary(s.policy.as_ref(), id.kind));
    let prev: IssuerStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let is_ca = spec.as_ref().is_ok_and(|s| s.ca.is_some());
    let backend = match &spec {
        // Read live: this reconcile may be the one a Secret change triggered, whose event
        // the Secret metadata cache (another watch) may not have yet.
        Ok(spec) => Some(Backend::build(spec, &env_live(&ctx, &id)).await),
        Err(_) => None,
    };
    let mut crl = None;
    let mut rotation = None;
    let readiness = match (&spec, &backend) {
        (Ok(spec), Some(Ok(backend))) => {
            let checked = backend.check().await;
            record_reachability(&ctx, &id, checked.as_ref().err());
            if let (Backend::Ca(signer), Some(ca)) = (backend, &spec.ca) {
                let last = prev.ca_rotation.as_ref();
                rotation = Some(ca_rotation::observe(&ctx, &id, ca, signer, last));
            }
            if checked.is_ok() && ctx.is_leading() {
                crl = publish_crl(&ctx, &id, backend).await;
            }
            checked
        }
        (_, Some(Err(p))) | (Err(p), None) => Err(p.clone()),
        _ => Err(Problem::new(Reason::InternalError, "no backend was built")),
    };
    if !is_ca {
        ctx.shared.ca_rotations.forget(&id);
    }
    // A CA issuer whose CA cannot be loaded now keeps the rotation it last showed.
    let recheck = rotation.as_ref().and_then(|(_, r)| *r);
    let ca_rotation = match rotation {
        Some((status, _)) => Some(status),
        None if is_ca => prev.ca_rotation.clone(),
        None => None,
    };
    if id.is_cluster_issuer()
        && ctx
            .shared
            .pod_certificates
            .load(std::sync::atomic::Ordering::Relaxed)
        && let Err(p) = super::pod_certificate::bundle::sync(
            &ctx,
            &obj,
            spec.as_ref().ok(),
            backend.as_ref().and_then(|b| b.as_ref().ok()),
        )
        .await
    {
        ctx.metrics.reconcile_error(p.reason);
        tracing::warn!(issuer = %id, "publishing the signer's ClusterTrustBundle: {p}");
    }
    ctx.metrics.issuer_ready(
        id.kind.as_str(),
        &id.name,
        id.namespace.as_deref().unwrap_or(""),
        readiness.is_ok(),
    );
    let (condition, requeue) = match readiness {
        Ok(message) => (
            DesiredCondition {
                type_: READY,
                status: true,
                reason: Reason::IssuerReady.as_str().into(),
                message,
            },
            READY_REQUEUE,
        ),
        Err(p) => (
            DesiredCondition {
                type_: READY,
                status: false,
                reason: p.reason.as_str().into(),
                message: p.message,
            },
            NOT_READY_REQUEUE,
        ),
    };
    let mut conditions = vec![condition];
    let mut crl_status = None;
    match crl {
        Some(Ok(status)) => {
            conditions.push(DesiredCondition {
                type_: CRL_PUBLISHED,
                status: true,
                reason: Reason::IssuerReady.as_str().into(),
                message: format!(
                    "CRL #{} in ConfigMap {} lists {} serial(s); nextUpdate {}",
                    status.number,
                    status.config_map,
                    status.revoked_certificates,
                    status.next_update
                ),
            });
            crl_status = Some(status);
        }
        Some(Err(p)) => {
            tracing::warn!(issuer = %id, reason = %p.reason, "{}", p.message);
            publish_event(&ctx, &obj, &p).await;
            conditions.push(DesiredCondition {
                type_: CRL_PUBLISHED,
                status: false,
                reason: p.reason.as_str().into(),
                message: p.message,
            });
        }
        None => {}
    }
    let written = write_conditions(
        &ctx,
        &obj,
        &prev,
        &conditions,
        summary,
        crl_status,
        ca_rotation,
    )
    .await;
    // Whatever changed (its Secrets, a remote CA's chain, its rotation's phase, which the
    // published CAs follow), bundles of its CAs look again.
    ctx.shared.trust_bundles.issuer_changed(&id);
    written?;
    let requeue = match crl_status_failed(&conditions) {
        true => NOT_READY_REQUEUE,
        false => requeue,
    };
    let recheck = recheck
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs);
    Ok(Action::requeue(recheck.map_or(requeue, |r| r.min(requeue))))
}

/// The condition type saying whether a CA issuer's CRL is published and fresh.
pub const CRL_PUBLISHED: &str = "CRLPublished";

fn crl_status_failed(conditions: &[DesiredCondition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == CRL_PUBLISHED && !c.status)
}

/// A CA issuer's CRL: signed again when due, and described (None for other backends, and
/// for a CA issuer without a CRL yet).
async fn publish_crl(
    ctx: &Context,
    id: &IssuerId,
    backend: &Backend,
) -> Option<Result<crate::api::CrlStatus, Problem>> {
    let Backend::Ca(ca) = backend else {
        return None;
    };
    let published = ca.publish_crl(ctx.now()).await.transpose()?;
    Some(published.map(|p| {
        let state = p.state;
        ctx.metrics.crl(
            id.kind.as_str(),
            id.namespace.as_deref().unwrap_or(""),
            &id.name,
            state.this_update,
            state.next_update,
            state.entries.len(),
        );
        crate::api::CrlStatus {
            config_map: crate::issuer::crl::object_name(id),
            number: state.number,
            this_update: rfc3339(state.this_update),
            next_update: rfc3339(state.next_update),
            revoked_certificates: u32::try_from(state.entries.len()).unwrap_or(u32::MAX),
        }
    }))
}

/// A Warning Event on the issuer.
async fn publish_event(ctx: &Context, obj: &DynamicObject, problem: &Problem) {
    use kube::Resource;
    if !ctx.is_leading() {
        return;
    }
    let resource = match obj.namespace() {
        Some(_) => ApiResource::erase::<Issuer>(&()),
        None => ApiResource::erase::<ClusterIssuer>(&()),
    };
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: problem.reason.as_str().into(),
        note: Some(conditions::bounded_message(&problem.message)),
        action: "PublishCRL".into(),
        secondary: None,
    };
    if let Err(e) = ctx
        .recorder
        .publish(&event, &obj.object_ref(&resource))
        .await
    {
        tracing::warn!("publishing event failed: {e}");
    }
}

/// The readiness check's finding feeds the backend's circuit breaker: a check that reached the
/// backend closes it (Certificates waiting on the issuer go ahead), one that did not opens it.
fn record_reachability(ctx: &Context, id: &IssuerId, problem: Option<&Problem>) {
    let unreachable = problem.is_some_and(|p| p.reason.is_unreachable());
    ctx.gates
        .record(id, !unreachable, std::time::Instant::now());
}

/// Report an internal error (a panic in this issuer's reconcile) as Ready=False.
pub async fn report_internal_error(ctx: &Context, obj: &DynamicObject) {
    let condition = DesiredCondition {
        type_: READY,
        status: false,
        reason: Reason::InternalError.as_str().into(),
        message:
            "the operator failed while checking this issuer (see its log); retrying with backoff"
                .into(),
    };
    let prev: IssuerStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let rotation = prev.ca_rotation.clone();
    if let Err(e) = write_conditions(ctx, obj, &prev, &[condition], None, None, rotation).await {
        tracing::warn!("reporting an internal error in status failed: {e}");
    }
}

/// Set the issuer's conditions, (when known) its policy summary, CRL and CA rotation,
/// writing only when the status changes.
async fn write_conditions(
    ctx: &Context,
    obj: &DynamicObject,
    prev: &IssuerStatus,
    wanted: &[DesiredCondition],
    policy_summary: Option<String>,
    crl: Option<crate::api::CrlStatus>,
    ca_rotation: Option<CaRotationStatus>,
) -> Result<(), Error> {
    let generation = obj.metadata.generation;
    let next = IssuerStatus {
        conditions: conditions::merge(&prev.conditions, wanted, generation, &rfc3339(ctx.now())),
        observed_generation: generation,
        policy: policy_summary.or_else(|| prev.policy.clone()),
        crl: crl.or_else(|| prev.crl.clone()),
        emergency_rotation: prev.emergency_rotation.clone(),
        ca_rotation,
    };
    if next == *prev {
        return Ok(());
    }
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let params = PatchParams::apply(crate::secret::FIELD_MANAGER).force();
    // The emergency rotation's progress has a field manager of its own: left out here.
    let next = IssuerStatus {
        emergency_rotation: None,
        ..next
    };
    match obj.namespace() {
        Some(ns) => {
            let body = serde_json::json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "status": next});
            Api::<Issuer>::namespaced(ctx.client.clone(), &ns)
                .patch_status(&obj.name_any(), &params, &Patch::Apply(body))
                .await?;
        }
        None => {
            let body = serde_json::json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer", "status": next});
            Api::<ClusterIssuer>::all(ctx.client.clone())
                .patch_status(&obj.name_any(), &params, &Patch::Apply(body))
                .await?;
        }
    }
    Ok(())
}
