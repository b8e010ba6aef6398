//! Kubernetes' `PodCertificateRequest` (`certificates.k8s.io/v1beta1`, KEP-4317; beta and off
//! by default in 1.35): a kubelet asks a signer for a certificate to a key it made on the node.
//!
//! Defined here rather than taken from k8s-openapi: the crate's 1.35 type requires
//! `pkixPublicKey`, which 1.36 deprecates in favour of `stubPKCS10Request`. Every spec field
//! is optional so one type reads both versions, and a request missing a field is answered
//! (Denied) instead of failing to deserialize.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// The signers certsmith serves: `clusterissuers.certsmith.dev/<ClusterIssuer name>`.
pub const SIGNER_PREFIX: &str = "clusterissuers.certsmith.dev/";

/// The three condition types the API server knows; a request carries at most one, and once
/// it does its status is immutable.
pub const ISSUED: &str = "Issued";
pub const DENIED: &str = "Denied";
pub const FAILED: &str = "Failed";

/// The signer name of a ClusterIssuer.
pub fn signer_name(cluster_issuer: &str) -> String {
    format!("{SIGNER_PREFIX}{cluster_issuer}")
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PodCertificateRequest {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodCertificateRequestSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodCertificateRequestStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodCertificateRequestSpec {
    #[serde(default)]
    pub signer_name: String,
    #[serde(default)]
    pub pod_name: String,
    #[serde(default, rename = "podUID")]
    pub pod_uid: String,
    #[serde(default)]
    pub service_account_name: String,
    #[serde(default, rename = "serviceAccountUID")]
    pub service_account_uid: String,
    #[serde(default)]
    pub node_name: String,
    #[serde(default, rename = "nodeUID")]
    pub node_uid: String,
    /// The API server defaults it to 86400 and keeps it within [3600, 7862400].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expiration_seconds: Option<i32>,
    /// PKIX (SubjectPublicKeyInfo, DER) public key; 1.35.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkix_public_key: Option<ByteString>,
    /// The signature of the pod UID with the key, checked by the API server at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_of_possession: Option<ByteString>,
    /// A PKCS#10 CSR (DER) signed by the key, empty but for the key; 1.36 and later. The API
    /// server verified its signature at creation.
    #[serde(
        default,
        rename = "stubPKCS10Request",
        skip_serializing_if = "Option::is_none"
    )]
    pub stub_pkcs10_request: Option<ByteString>,
    /// Free-form requests from the pod author, not checked by Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified_user_annotations: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodCertificateRequestStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// PEM: the leaf first, then intermediates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin_refresh_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
}

impl PodCertificateRequest {
    /// The ClusterIssuer a request names, when its signer is one of certsmith's (the name may
    /// still be invalid or unknown).
    pub fn cluster_issuer(&self) -> Option<&str> {
        self.spec.signer_name.strip_prefix(SIGNER_PREFIX)
    }

    /// The terminal condition (Issued, Denied or Failed) the request carries, if any.
    pub fn answer(&self) -> Option<&Condition> {
        self.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| matches!(c.type_.as_str(), ISSUED | DENIED | FAILED))
        })
    }
}

impl kube::Resource for PodCertificateRequest {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PodCertificateRequest".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "certificates.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        "certificates.k8s.io/v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "podcertificaterequests".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_the_1_35_and_the_1_36_shape() {
        let v135: PodCertificateRequest = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r", "namespace": "a"},
            "spec": {"signerName": "clusterissuers.certsmith.dev/agents", "podName": "p",
                     "podUID": "u", "serviceAccountName": "sa", "serviceAccountUID": "s",
                     "nodeName": "n", "nodeUID": "nu", "maxExpirationSeconds": 86400,
                     "pkixPublicKey": "AQID", "proofOfPossession": "BAU="},
        }))
        .expect("1.35 request");
        assert_eq!(v135.cluster_issuer(), Some("agents"));
        assert_eq!(v135.spec.pod_uid, "u");
        assert_eq!(
            v135.spec.pkix_public_key.as_ref().map(|k| k.0.clone()),
            Some(vec![1, 2, 3])
        );
        assert!(v135.answer().is_none());
        let v136: PodCertificateRequest = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r"},
            "spec": {"signerName": "example.com/x", "stubPKCS10Request": "AQID"},
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "X",
                "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .expect("1.36 request");
        assert_eq!(v136.cluster_issuer(), None);
        assert!(v136.spec.stub_pkcs10_request.is_some());
        assert_eq!(v136.answer().map(|c| c.type_.as_str()), Some(FAILED));
    }
}
