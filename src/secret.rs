//! The Secret a Certificate produces: built purely from the issuance result, then applied with
//! server-side apply so fields other managers own (labels, annotations) survive.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};

use crate::api::Certificate;
use crate::pki::CertInfo;

/// Label on every Secret certsmith writes; the operator watches only Secrets carrying it.
pub const MANAGED_LABEL: &str = "certsmith.dev/managed";
/// Annotation naming the Certificate a Secret belongs to (labels cannot hold 253-char names).
pub const CERTIFICATE_ANNOTATION: &str = "certsmith.dev/certificate-name";
pub const ISSUER_NAME_ANNOTATION: &str = "certsmith.dev/issuer-name";
pub const ISSUER_KIND_ANNOTATION: &str = "certsmith.dev/issuer-kind";
/// The backend that signed (`selfSigned`, `ca`, `vault`): decides which fields must match.
pub const ISSUER_TYPE_ANNOTATION: &str = "certsmith.dev/issuer-type";
pub const SERIAL_ANNOTATION: &str = "certsmith.dev/serial-number";
pub const NOT_AFTER_ANNOTATION: &str = "certsmith.dev/not-after";
pub const REVISION_ANNOTATION: &str = "certsmith.dev/revision";
/// The `certsmith.dev/renew-requested-at` value this certificate satisfied.
pub const RENEW_REQUEST_ANNOTATION: &str = "certsmith.dev/renew-request";
/// When the operator wrote the certificate (RFC 3339): the renewal floor counts from it.
pub const ISSUED_AT_ANNOTATION: &str = "certsmith.dev/issued-at";

/// In the Secret of an `isCA: true` Certificate, the CA key pair its last renewal replaced:
/// a CA issuer reading the Secret keeps signing with it until the new CA has been published
/// for the trust propagation delay, and publishes it while leaves still chain to it.
pub const PREVIOUS_CA_CRT: &str = "previous-tls.crt";
pub const PREVIOUS_CA_KEY: &str = "previous-tls.key";

/// Field manager for everything the controller writes.
pub const FIELD_MANAGER: &str = "certsmith-controller";
/// Label and annotation keys under this prefix are the operator's; a secretTemplate may not
/// set them (admission refuses them too).
pub const RESERVED_PREFIX: &str = "certsmith.dev/";

/// What goes into a Secret, in PEM.
pub struct Contents<'a> {
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: &'a str,
    pub leaf: &'a CertInfo,
    pub revision: i64,
    pub issuer_type: &'a str,
    pub renew_request: Option<&'a str>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Extra outputs and keystores (`tls-combined.pem`, `keystore.p12`, ...), by key.
    pub outputs: BTreeMap<String, Vec<u8>>,
}

/// Build the desired Secret for `cert` (pure).
pub fn build(cert: &Certificate, contents: &Contents<'_>) -> Secret {
    let template = cert.spec.secret_template.clone().unwrap_or_default();
    let ours = |k: &String| k.starts_with(RESERVED_PREFIX);
    let mut labels = template.labels;
    labels.retain(|k, _| !ours(k));
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let mut annotations = template.annotations;
    annotations.retain(|k, _| !ours(k));
    for (k, v) in [
        (CERTIFICATE_ANNOTATION, cert.name_any()),
        (ISSUER_NAME_ANNOTATION, cert.spec.issuer_ref.name.clone()),
        (
            ISSUER_KIND_ANNOTATION,
            cert.spec.issuer_ref.kind.as_str().to_string(),
        ),
        (SERIAL_ANNOTATION, contents.leaf.serial.clone()),
        (
            NOT_AFTER_ANNOTATION,
            crate::time::rfc3339(contents.leaf.not_after),
        ),
        (REVISION_ANNOTATION, contents.revision.to_string()),
        (
            ISSUED_AT_ANNOTATION,
            crate::time::rfc3339(contents.issued_at),
        ),
        (ISSUER_TYPE_ANNOTATION, contents.issuer_type.to_string()),
    ] {
        annotations.insert(k.into(), v);
    }
    if let Some(request) = contents.renew_request {
        annotations.insert(RENEW_REQUEST_ANNOTATION.into(), request.into());
    }
    let mut data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(contents.chain_pem.as_bytes().to_vec()),
        ),
        (
            "tls.key".to_string(),
            ByteString(contents.key_pem.as_bytes().to_vec()),
        ),
        (
            "ca.crt".to_string(),
            ByteString(contents.ca_pem.as_bytes().to_vec()),
        ),
    ]);
    for (k, v) in &contents.outputs {
        data.insert(k.clone(), ByteString(v.clone()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(cert.spec.secret_name.clone()),
            namespace: cert.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner_reference(cert).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// With `secretCleanupPolicy: Delete`, the owner reference that lets garbage collection
/// remove the Secret with its Certificate. `blockOwnerDeletion` stays false: the Certificate's
/// deletion never waits for the Secret (and the operator needs no finalizer rights).
fn owner_reference(cert: &Certificate) -> Option<OwnerReference> {
    if cert.spec.secret_cleanup_policy != Some(crate::api::SecretCleanupPolicy::Delete) {
        return None;
    }
    Some(OwnerReference {
        api_version: format!("{}/v1alpha1", crate::api::GROUP),
        kind: "Certificate".into(),
        name: cert.name_any(),
        uid: cert.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(false),
    })
}

/// Apply a built Secret onto the version `resource_version` only (server-side apply, forced:
/// the operator owns the fields it sets; a newer Secret makes it fail with 409 Conflict).
pub async fn apply_at(
    api: &Api<Secret>,
    secret: &Secret,
    resource_version: &str,
) -> Result<Secret, kube::Error> {
    let name = secret.name_any();
    let mut body = serde_json::to_value(secret).map_err(kube::Error::SerdeError)?;
    // SSA needs apiVersion and kind in the body.
    body["apiVersion"] = "v1".into();
    body["kind"] = "Secret".into();
    body["metadata"]["resourceVersion"] = resource_version.into();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
}

/// Replace the Secret that was read (`read`, at its resourceVersion: a newer one makes this
/// fail with 409 Conflict) with what `desired` says of the operator's part: its data keys
/// (`ours`: every key the operator may write; those not in `desired` are removed), labels,
/// annotations and its owner reference to `certificate_uid`. Everything else stays as read.
/// A replace, not an apply: keys and references the operator stopped writing must go even
/// when they were first written by a create, which server-side apply does not own.
pub async fn replace_at(
    api: &Api<Secret>,
    read: &Secret,
    desired: &Secret,
    ours: &[&str],
    certificate_uid: &str,
) -> Result<Secret, kube::Error> {
    let mut next = read.clone();
    next.metadata.managed_fields = None;
    let mut data = next.data.take().unwrap_or_default();
    data.retain(|k, _| !ours.contains(&k.as_str()));
    data.extend(desired.data.clone().unwrap_or_default());
    next.data = Some(data);
    next.string_data = None;
    let mut labels = next.metadata.labels.take().unwrap_or_default();
    labels.extend(desired.metadata.labels.clone().unwrap_or_default());
    next.metadata.labels = Some(labels);
    let mut annotations = next.metadata.annotations.take().unwrap_or_default();
    annotations.extend(desired.metadata.annotations.clone().unwrap_or_default());
    next.metadata.annotations = Some(annotations);
    let mut owners = next.metadata.owner_references.take().unwrap_or_default();
    owners.retain(|o| o.uid != certificate_uid);
    owners.extend(
        desired
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default(),
    );
    next.metadata.owner_references = (!owners.is_empty()).then_some(owners);
    let params = kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.replace(&read.name_any(), &params, &next).await
}

/// Delete exactly the Secret that was read (UID precondition): never another object that took
/// its name since. Already gone is fine.
pub async fn delete_exactly(api: &Api<Secret>, read: &Secret) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: read.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&read.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// One key of a Secret's data (None when absent).
pub fn value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
}

/// The Certificate a Secret was written for by certsmith, if it was.
pub fn owner(secret: &Secret) -> Option<&str> {
    owner_of(&secret.metadata)
}

/// [`owner`] from a Secret's metadata alone (the operator watches Secrets' metadata only).
pub fn owner_of(meta: &ObjectMeta) -> Option<&str> {
    let managed = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_LABEL))
        .is_some_and(|v| v == "true");
    managed
        .then(|| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(CERTIFICATE_ANNOTATION))
                .map(String::as_str)
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{KeyAlgorithm, KeyEncoding};
    use crate::issuer::selfsigned;
    use crate::pki::keys::PrivateKey;
    use crate::pki::{inspect, request};

    #[test]
    fn builds_a_tls_secret_with_template_and_ownership_metadata() {
        let cert: Certificate = serde_json::from_value(serde_json::json!({
            "apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"secretName": "web-tls", "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}, "dnsNames": ["web.shop"],
                     "secretTemplate": {"labels": {"app": "web", "certsmith.dev/managed": "false"}, "annotations": {"team": "shop"}}},
        }))
        .unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = selfsigned::sign(
            &request::sign_request(&cert.spec, &key).unwrap(),
            &key,
            1_800_000_000,
        )
        .unwrap();
        let leaf = inspect::parse_chain(signed.chain_pem.as_bytes())
            .unwrap()
            .remove(0);
        let key_pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        let contents = Contents {
            chain_pem: &signed.chain_pem,
            key_pem: &key_pem,
            ca_pem: &signed.ca_pem,
            leaf: &leaf,
            revision: 4,
            issuer_type: "ca",
            renew_request: None,
            issued_at: 1_800_000_000,
            outputs: BTreeMap::from([("key.der".to_string(), vec![1, 2])]),
        };
        let s = build(&cert, &contents);
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(s.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(
            s.labels().get(MANAGED_LABEL).map(String::as_str),
            Some("true"),
            "the template cannot unmanage a Secret"
        );
        assert_eq!(
            s.annotations().get("team").map(String::as_str),
            Some("shop")
        );
        assert_eq!(
            s.annotations()
                .get(ISSUER_KIND_ANNOTATION)
                .map(String::as_str),
            Some("ClusterIssuer")
        );
        assert_eq!(
            s.annotations().get(REVISION_ANNOTATION).map(String::as_str),
            Some("4")
        );
        assert_eq!(s.annotations().get(SERIAL_ANNOTATION), Some(&leaf.serial));
        assert_eq!(owner(&s), Some("web"));
        let data = s.data.unwrap();
        assert_eq!(data["tls.key"].0, key_pem.as_bytes());
        assert!(data.contains_key("tls.crt") && data.contains_key("ca.crt"));
    }
}
