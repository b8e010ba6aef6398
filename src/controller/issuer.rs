//! Issuers and ClusterIssuers: resolve a reference into a ready [`Signer`], and keep each
//! issuer's `Ready` condition truthful.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::api::conditions::{self, DesiredCondition, READY};
use crate::api::{
    ClusterIssuer, Issuer, IssuerKind, IssuerRef, IssuerSpec, IssuerStatus, IssuerType,
};
use crate::issuer::{Signer, ca::CaSigner};
use crate::reason::{Problem, Reason};

use super::certificate::decide::{parse_rfc3339, rfc3339};
use super::{Context, Error};

/// How often a not-ready issuer is looked at again (its Secret is not watched).
const NOT_READY_REQUEUE: Duration = Duration::from_secs(10);
/// How often a ready issuer is re-checked (CA rotation, expiry).
const READY_REQUEUE: Duration = Duration::from_secs(300);

/// The signer a Certificate in `namespace` gets from `issuer_ref`, or why there is none.
pub async fn signer_for(
    ctx: &Context,
    namespace: &str,
    issuer_ref: &IssuerRef,
    now: i64,
) -> Result<Signer, Problem> {
    let api_error = |e: kube::Error| {
        Problem::new(
            Reason::ApiError,
            format!(
                "reading {} {:?}: {e}",
                issuer_ref.kind.as_str(),
                issuer_ref.name
            ),
        )
    };
    let spec = fetch(ctx, namespace, issuer_ref)
        .await
        .map_err(api_error)?
        .map(|(spec, _)| spec);
    let Some(spec) = spec else {
        let where_ = if issuer_ref.kind == IssuerKind::Issuer {
            format!(" in namespace {namespace:?}")
        } else {
            String::new()
        };
        return Err(Problem::new(
            Reason::IssuerNotFound,
            format!(
                "{} {:?} not found{where_}",
                issuer_ref.kind.as_str(),
                issuer_ref.name
            ),
        ));
    };
    let secret_namespace = match issuer_ref.kind {
        IssuerKind::Issuer => namespace,
        IssuerKind::ClusterIssuer => ctx.settings.cluster_resource_namespace.as_str(),
    };
    let signer = build_signer(
        ctx,
        &spec,
        secret_namespace,
        &identity_of(namespace, issuer_ref),
        now,
    )
    .await;
    // An AWS Private CA must have been ACTIVE when last described (the issuer's reconcile
    // describes it afresh; AWS would refuse, the emulator would not).
    let signer = match signer {
        Ok(Signer::AwsPca(p)) => p.client.ensure_active().await.map(|()| Signer::AwsPca(p)),
        other => other,
    };
    signer.map_err(|p| {
        Problem::new(
            Reason::IssuerNotReady,
            format!(
                "{} {:?} is not ready: {}: {}",
                issuer_ref.kind.as_str(),
                issuer_ref.name,
                p.reason,
                p.message
            ),
        )
    })
}

/// The key under which an issuer's long-lived state (a Vault or AWS client) is kept:
/// `Issuer/<namespace>/<name>` or `ClusterIssuer//<name>`.
fn identity(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or(""))
}

/// The identity of the issuer a Certificate in `namespace` names.
pub fn identity_of(namespace: &str, issuer_ref: &IssuerRef) -> String {
    let namespace = Some(namespace).filter(|_| issuer_ref.kind == IssuerKind::Issuer);
    identity(issuer_ref.kind.as_str(), namespace, &issuer_ref.name)
}

/// When the referenced issuer last became Ready (its Ready=True condition's
/// lastTransitionTime); None when it is not Ready or cannot be read.
pub async fn ready_since(ctx: &Context, namespace: &str, issuer_ref: &IssuerRef) -> Option<i64> {
    let status = fetch(ctx, namespace, issuer_ref).await.ok()??.1?;
    conditions::find(&status.conditions, READY)
        .filter(|c| c.status == "True")
        .and_then(|c| parse_rfc3339(&c.last_transition_time))
}

/// Requests to look at an issuer again, delivered to the issuer controllers that serve it.
#[derive(Default)]
pub struct Rechecks {
    /// (namespace served, None = every namespace; cluster-scoped; where to send).
    subscribers: Mutex<Vec<Subscriber>>,
}

struct Subscriber {
    namespace: Option<String>,
    cluster: bool,
    to: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
}

impl Rechecks {
    /// The requests for issuers of `ar`'s kind in `namespace` (None: all; ClusterIssuers:
    /// `ar` is the ClusterIssuer resource).
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

    /// Look again at the issuer a Certificate in `namespace` names.
    pub fn request(&self, namespace: &str, issuer_ref: &IssuerRef) {
        let cluster = issuer_ref.kind == IssuerKind::ClusterIssuer;
        let reference = if cluster {
            ObjectRef::new_with(&issuer_ref.name, ApiResource::erase::<ClusterIssuer>(&()))
        } else {
            ObjectRef::new_with(&issuer_ref.name, ApiResource::erase::<Issuer>(&()))
                .within(namespace)
        };
        let Ok(mut subscribers) = self.subscribers.lock() else {
            return;
        };
        subscribers.retain(|s| !s.to.is_closed());
        for s in subscribers.iter().filter(|s| {
            s.cluster == cluster
                && (cluster || s.namespace.as_deref().is_none_or(|ns| ns == namespace))
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

/// Read the Issuer (in `namespace`) or ClusterIssuer a reference names: its spec and status.
async fn fetch(
    ctx: &Context,
    namespace: &str,
    issuer_ref: &IssuerRef,
) -> Result<Option<(IssuerSpec, Option<IssuerStatus>)>, kube::Error> {
    Ok(match issuer_ref.kind {
        IssuerKind::Issuer => Api::<Issuer>::namespaced(ctx.client.clone(), namespace)
            .get_opt(&issuer_ref.name)
            .await?
            .map(|i| (i.spec, i.status)),
        IssuerKind::ClusterIssuer => Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(&issuer_ref.name)
            .await?
            .map(|i| (i.spec.0, i.status)),
    })
}

/// Build the backend for an issuer spec, reading its Secrets from `secret_namespace` only.
pub async fn build_signer(
    ctx: &Context,
    spec: &IssuerSpec,
    secret_namespace: &str,
    identity: &str,
    now: i64,
) -> Result<Signer, Problem> {
    match spec
        .issuer_type()
        .map_err(|e| Problem::new(Reason::InvalidSpec, e))?
    {
        IssuerType::SelfSigned => Ok(Signer::SelfSigned),
        IssuerType::Ca(ca) => {
            let secret = super::issuer_secret::read(
                ctx,
                secret_namespace,
                &ca.secret_name,
                Reason::CaSecretMissing,
                "CA ",
            )
            .await?;
            let get = |k: &str| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .map(|b| b.0.as_slice())
            };
            CaSigner::load(get("tls.crt"), get("tls.key"), get("ca.crt"), now)
                .map(|ca| Signer::Ca(Box::new(ca)))
        }
        IssuerType::Vault(vault) => super::vault::build(ctx, vault, secret_namespace, identity)
            .await
            .map(|v| Signer::Vault(Box::new(v))),
        IssuerType::AwsPca(pca) => super::aws_pca::build(
            ctx,
            pca,
            secret_namespace,
            identity,
            identity.starts_with("Issuer/"),
        )
        .await
        .map(|p| Signer::AwsPca(Box::new(p))),
    }
}

/// Reconcile an Issuer or ClusterIssuer (both watched untyped): compute and write `Ready`.
pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = ctx.now();
    let namespace = obj.namespace();
    let parsed: Result<IssuerSpec, Problem> = obj
        .data
        .get("spec")
        .cloned()
        .ok_or_else(|| "no spec".to_string())
        .and_then(|s| serde_json::from_value(s).map_err(|e| e.to_string()))
        .map_err(|e| Problem::new(Reason::InvalidSpec, format!("cannot read spec: {e}")));
    let secret_namespace = namespace
        .clone()
        .unwrap_or_else(|| ctx.settings.cluster_resource_namespace.clone());
    let kind = if namespace.is_some() {
        "Issuer"
    } else {
        "ClusterIssuer"
    };
    let id = identity(kind, namespace.as_deref(), &obj.name_any());
    let readiness = match parsed {
        Ok(spec) => match build_signer(&ctx, &spec, &secret_namespace, &id, now).await {
            // A Vault issuer is ready only when the server is healthy and the login works.
            Ok(Signer::Vault(v)) => {
                let checked = v.check().await;
                record_reachability(&ctx, &id, checked.as_ref().err());
                checked.map(|()| (Signer::Vault(v), spec))
            }
            // An AWS Private CA issuer is ready only when the CA is ACTIVE now.
            Ok(Signer::AwsPca(p)) => {
                let checked = p.client.check().await;
                record_reachability(&ctx, &id, checked.as_ref().err());
                checked.map(|_| (Signer::AwsPca(p), spec))
            }
            other => other.map(|s| (s, spec)),
        },
        Err(p) => Err(p),
    };
    let (condition, requeue) = match &readiness {
        Ok((signer, _)) => {
            let message = match signer {
                Signer::SelfSigned => "self-signed issuer is ready".to_string(),
                Signer::Ca(ca) => format!("CA is valid until {}", rfc3339(ca.not_after())),
                Signer::Vault(v) => format!(
                    "Vault at {} is healthy and the login works; signing with {}",
                    v.client.server(),
                    v.sign_path
                ),
                Signer::AwsPca(p) => format!(
                    "AWS Private CA {} is ACTIVE in {}",
                    p.client.ca_arn, p.client.region
                ),
            };
            (
                DesiredCondition {
                    type_: READY,
                    status: true,
                    reason: Reason::IssuerReady.as_str().into(),
                    message,
                },
                READY_REQUEUE,
            )
        }
        Err(p) => (
            DesiredCondition {
                type_: READY,
                status: false,
                reason: p.reason.as_str().into(),
                message: p.message.clone(),
            },
            NOT_READY_REQUEUE,
        ),
    };
    ctx.metrics.issuer_ready(
        if namespace.is_some() {
            "Issuer"
        } else {
            "ClusterIssuer"
        },
        &obj.name_any(),
        namespace.as_deref().unwrap_or(""),
        readiness.is_ok(),
    );
    let prev: IssuerStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let next = IssuerStatus {
        conditions: conditions::merge(&prev.conditions, &[condition], generation, &rfc3339(now)),
        observed_generation: generation,
        policy: prev.policy.clone(),
    };
    if next != prev {
        write_status(&ctx, &obj, &next).await?;
    }
    Ok(Action::requeue(requeue))
}

/// The readiness check's finding feeds the backend's circuit breaker: a check that reached the
/// backend closes it (Certificates waiting on the issuer go ahead), one that did not opens it.
fn record_reachability(ctx: &Context, id: &str, problem: Option<&Problem>) {
    let unreachable = problem
        .is_some_and(|p| matches!(p.reason, Reason::VaultUnreachable | Reason::AwsUnreachable));
    ctx.backends
        .gates
        .record(id, !unreachable, std::time::Instant::now());
}

/// Report an internal error (a panic in this issuer's reconcile) as Ready=False.
pub async fn report_internal_error(ctx: &Context, obj: &DynamicObject) {
    let prev: IssuerStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let condition = DesiredCondition {
        type_: READY,
        status: false,
        reason: Reason::InternalError.as_str().into(),
        message:
            "the operator failed while checking this issuer (see its log); retrying with backoff"
                .into(),
    };
    let next = IssuerStatus {
        conditions: conditions::merge(
            &prev.conditions,
            &[condition],
            generation,
            &rfc3339(ctx.now()),
        ),
        observed_generation: generation,
        policy: prev.policy.clone(),
    };
    if next != prev
        && let Err(e) = write_status(ctx, obj, &next).await
    {
        tracing::warn!("reporting an internal error in status failed: {e}");
    }
}

/// Write an Issuer's or ClusterIssuer's status (server-side apply of the status subresource).
async fn write_status(
    ctx: &Context,
    obj: &DynamicObject,
    next: &IssuerStatus,
) -> Result<(), Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let params = PatchParams::apply(crate::secret::FIELD_MANAGER).force();
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
