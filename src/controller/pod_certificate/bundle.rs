//! The ClusterTrustBundle of a certsmith signer: the CA certificates of the ClusterIssuer
//! `<name>`, with `signerName: clusterissuers.certsmith.dev/<name>`, so a pod trusts its peers
//! with a `clusterTrustBundle` projected volume selected by signer. Written by the ClusterIssuer
//! reconcile, which runs again when the issuer's CA Secret changes, so the bundle follows a CA
//! replacement within seconds. Owned by the ClusterIssuer: deleting it deletes the bundle.

use k8s_openapi::api::certificates::v1beta1::{ClusterTrustBundle, ClusterTrustBundleSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::{Resource, ResourceExt};

use crate::api::pod_certificate::signer_name;
use crate::api::{ClusterIssuer, IssuerSpec};
use crate::controller::trust_bundle::build;
use crate::issuer::{Backend, BackendType};
use crate::reason::{Problem, Reason};

use super::super::Context;

/// Marks a ClusterTrustBundle as a signer's, naming its ClusterIssuer; one without it is
/// never touched.
pub const SIGNER_LABEL: &str = "certsmith.dev/pod-certificate-signer";

/// The bundle's name: the API server requires the signer name (`/` as `:`) and `:` in front.
pub fn bundle_name(cluster_issuer: &str) -> String {
    format!("{}:ca", signer_name(cluster_issuer).replace('/', ":"))
}

/// Whether the ClusterIssuer serves pod certificates, so its signer needs a bundle: a CA
/// issuer whose policy names a SPIFFE trust domain.
pub fn serves_pod_certificates(spec: &IssuerSpec) -> bool {
    BackendType::of(spec) == Ok(BackendType::Ca)
        && spec.policy.as_ref().is_some_and(|p| p.spiffe.is_some())
}

/// Bring the signer's bundle in line with the ClusterIssuer: written while it serves pod
/// certificates (with `backend`'s CA certificates), removed when it no longer does. A backend
/// that cannot be built now (its CA Secret missing) leaves the last bundle in place.
pub async fn sync(
    ctx: &Context,
    issuer: &DynamicObject,
    spec: Option<&IssuerSpec>,
    backend: Option<&Backend>,
) -> Result<(), Problem> {
    let name = issuer.name_any();
    let api: Api<ClusterTrustBundle> = Api::all(ctx.client.clone());
    let bundle = bundle_name(&name);
    let failed = |what: &str, e: kube::Error| {
        Problem::new(
            Reason::TargetWriteFailed,
            format!("{what} ClusterTrustBundle {bundle}: {e}"),
        )
    };
    let live = api
        .get_opt(&bundle)
        .await
        .map_err(|e| failed("reading", e))?;
    let ours = live
        .as_ref()
        .map(|l| l.labels().get(SIGNER_LABEL).map(String::as_str) == Some(name.as_str()));
    if ours == Some(false) {
        return Err(Problem::new(
            Reason::TargetConflict,
            format!(
                "ClusterTrustBundle {bundle} exists and was not written for this ClusterIssuer (no {SIGNER_LABEL}={name} label): left alone"
            ),
        ));
    }
    let serves = spec.is_some_and(serves_pod_certificates);
    if !serves {
        if live.is_some() && spec.is_some() {
            if !ctx.is_leading() {
                return Ok(());
            }
            api.delete(&bundle, &DeleteParams::default())
                .await
                .map_err(|e| failed("removing", e))?;
        }
        return Ok(());
    }
    let Some(backend) = backend else {
        return Ok(());
    };
    let pems = backend.ca_certificates().await?;
    let sources: Vec<(String, String)> = pems
        .into_iter()
        .map(|pem| (format!("ClusterIssuer {name}"), pem))
        .collect();
    let ca_pem = build::build(&sources, ctx.now())?.ca_pem();
    if ca_pem.is_empty() {
        return Err(Problem::new(
            Reason::BundleEmpty,
            format!("ClusterIssuer {name} has no valid CA certificate to publish in {bundle}"),
        ));
    }
    let spec = ClusterTrustBundleSpec {
        signer_name: Some(signer_name(&name)),
        trust_bundle: ca_pem,
    };
    let meta = ObjectMeta {
        name: Some(bundle.clone()),
        labels: Some([(SIGNER_LABEL.to_string(), name.clone())].into()),
        owner_references: owner(issuer).map(|o| vec![o]),
        resource_version: live
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone()),
        ..ObjectMeta::default()
    };
    if live
        .as_ref()
        .is_some_and(|l| l.spec == spec && l.metadata.owner_references == meta.owner_references)
    {
        return Ok(());
    }
    if !ctx.is_leading() {
        return Ok(());
    }
    let params = PostParams {
        field_manager: Some(crate::secret::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let desired = ClusterTrustBundle {
        metadata: meta,
        spec,
    };
    match live {
        Some(_) => api.replace(&bundle, &params, &desired).await,
        None => api.create(&params, &desired).await,
    }
    .map_err(|e| failed("writing", e))?;
    Ok(())
}

/// The ClusterIssuer as the bundle's controller owner, so garbage collection removes the
/// bundle with it.
fn owner(issuer: &DynamicObject) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: ClusterIssuer::api_version(&()).into(),
        kind: ClusterIssuer::kind(&()).into(),
        name: issuer.name_any(),
        uid: issuer.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_carry_the_signer_prefix() {
        assert_eq!(
            bundle_name("agents-ca"),
            "clusterissuers.certsmith.dev:agents-ca:ca"
        );
    }

    #[test]
    fn only_ca_issuers_with_a_trust_domain_serve_pod_certificates() {
        let spec =
            |v: serde_json::Value| -> IssuerSpec { serde_json::from_value(v).expect("spec") };
        let spiffe = serde_json::json!({"spiffe": {"trustDomain": "cluster.local"}});
        assert!(serves_pod_certificates(&spec(
            serde_json::json!({"ca": {"secretName": "x"}, "policy": spiffe})
        )));
        assert!(!serves_pod_certificates(&spec(
            serde_json::json!({"ca": {"secretName": "x"}})
        )));
        assert!(!serves_pod_certificates(&spec(
            serde_json::json!({"selfSigned": {}, "policy": spiffe})
        )));
    }
}
