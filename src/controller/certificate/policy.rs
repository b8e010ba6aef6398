//! The identity policy at issuance: gather the facts the issuer's policy needs (the
//! namespace's labels, whether the SVID's ServiceAccount exists) and let [`crate::policy`]
//! judge, before the backend is built or called.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{Api, ResourceExt};

use crate::api::{Certificate, CertificateSpec, IssuerSpec};
use crate::issuer::IssuerId;
use crate::policy::{self, Denial, Request};
use crate::reason::{Problem, Reason};

use super::Context;

/// Why the policy did not let an issuance through.
pub enum Blocked {
    /// The policy denies it.
    Denied(Denial),
    /// A fact the policy needs could not be read (fail closed, retried with backoff).
    Unknown(Problem),
}

/// Judge `cert` against the policy of the issuer `id` (whose spec is `spec`).
pub async fn check(
    ctx: &Context,
    cert: &Certificate,
    id: &IssuerId,
    spec: &IssuerSpec,
) -> Result<(), Blocked> {
    let namespace = cert.namespace().unwrap_or_default();
    check_spec(ctx, &namespace, &cert.name_any(), &cert.spec, id, spec).await
}

/// Judge what `certificate` asks for, as if a Certificate `namespace/name` asked it (a
/// PodCertificateRequest is judged so, named after its ServiceAccount).
pub async fn check_spec(
    ctx: &Context,
    namespace: &str,
    name: &str,
    certificate: &CertificateSpec,
    id: &IssuerId,
    spec: &IssuerSpec,
) -> Result<(), Blocked> {
    let rules = spec.policy.as_ref();
    let needs = policy::lookups(rules, id.kind, namespace, certificate);
    let labels = match needs.namespace_labels {
        true => Some(namespace_labels(ctx, namespace).await?),
        false => None,
    };
    let service_account_exists = match &needs.service_account {
        Some(sa) => Some(service_account_exists(ctx, namespace, sa).await?),
        None => None,
    };
    let request = Request {
        namespace,
        name,
        spec: certificate,
        issuer_kind: id.kind,
        in_cluster_resource_namespace: namespace == ctx.settings.cluster_resource_namespace,
        namespace_labels: labels.as_ref(),
        service_account_exists,
    };
    policy::evaluate(rules, &request).map_err(Blocked::Denied)
}

/// The labels of the Certificate's namespace (a namespace that cannot be found has none).
async fn namespace_labels(
    ctx: &Context,
    namespace: &str,
) -> Result<BTreeMap<String, String>, Blocked> {
    let found = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(namespace)
        .await
        .map_err(|e| unknown(format!("reading namespace {namespace}: {e}")))?;
    Ok(found.map(|n| n.labels().clone()).unwrap_or_default())
}

async fn service_account_exists(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<bool, Blocked> {
    Api::<ServiceAccount>::namespaced(ctx.client.clone(), namespace)
        .get_metadata_opt(name)
        .await
        .map(|found| found.is_some())
        .map_err(|e| unknown(format!("reading ServiceAccount {namespace}/{name}: {e}")))
}

fn unknown(message: String) -> Blocked {
    Blocked::Unknown(Problem::new(
        Reason::ApiError,
        format!("checking the issuer's policy: {message}"),
    ))
}
