//! `TrustBundle` (cluster-scoped): the certificates relying parties should trust, gathered from
//! issuers, Secrets, ConfigMaps and inline PEM, and published as a ConfigMap in every namespace
//! a selector matches (and optionally as a `ClusterTrustBundle`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::IssuerKind;
use super::conditions::Condition;
use super::schema;
use super::selector::LabelSelector;

/// Longest TrustBundle name: it is a label value on the ConfigMaps it writes.
pub const MAX_NAME: usize = 63;

/// A set of CA certificates to publish, and where.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "certsmith.dev",
    version = "v1alpha1",
    kind = "TrustBundle",
    doc = "A TrustBundle publishes the certificates relying parties should trust (issuers' CAs, Secrets, ConfigMaps, inline PEM) as a ConfigMap in every selected namespace, and optionally as a ClusterTrustBundle.",
    status = "TrustBundleStatus",
    category = "certsmith",
    validation = Rule::new("self.metadata.name.size() <= 63").message("a TrustBundle's name is at most 63 characters: it labels the ConfigMaps it writes"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Namespaces", type_ = "integer", json_path = ".status.namespaces"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrustBundleSpec {
    /// Where the certificates come from. Every source must yield at least one certificate;
    /// while one fails, the targets keep the last bundle written.
    #[schemars(length(min = 1, max = 32))]
    pub sources: Vec<BundleSource>,
    /// Where the bundle is written.
    pub target: BundleTarget,
}

/// One source of certificates: exactly one of `issuerRef`, `secret`, `configMap`, `inLine`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(has(self.issuerRef) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.inLine) ? 1 : 0) == 1").message("each source sets exactly one of issuerRef, secret, configMap or inLine"))]
#[serde(rename_all = "camelCase")]
pub struct BundleSource {
    /// The CA certificates of an Issuer or ClusterIssuer: the CA issuer's CA and its chain,
    /// the Vault mount's CA chain, the AWS Private CA's certificate and chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<BundleIssuerRef>,
    /// PEM certificates under a key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<BundleObjectKey>,
    /// PEM certificates under a key of a ConfigMap (`data` or `binaryData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<BundleObjectKey>,
    /// PEM certificates written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub in_line: Option<String>,
}

/// An issuer whose CA certificates go into the bundle.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.kind == 'ClusterIssuer' ? !has(self.namespace) : has(self.namespace)").message("namespace is required for an Issuer and not allowed for a ClusterIssuer"))]
pub struct BundleIssuerRef {
    /// Name of the Issuer or ClusterIssuer.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` or `ClusterIssuer`.
    pub kind: IssuerKind,
    /// The Issuer's namespace (an Issuer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::namespace_name")]
    pub namespace: Option<String>,
}

/// A key of a Secret or ConfigMap.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct BundleObjectKey {
    /// Its namespace.
    #[schemars(schema_with = "schema::namespace_name")]
    pub namespace: String,
    /// Its name.
    #[schemars(schema_with = "schema::object_name")]
    pub name: String,
    /// The key holding PEM certificates.
    #[schemars(schema_with = "schema::data_key")]
    pub key: String,
}

/// Where the bundle is written.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleTarget {
    /// A ConfigMap named after the TrustBundle in every selected namespace.
    pub config_map: ConfigMapTarget,
    /// The namespaces that get the ConfigMap (`{}`: every namespace the operator serves). A
    /// namespace that stops matching loses it.
    pub namespace_selector: LabelSelector,
    /// Also publish a ClusterTrustBundle (certificates.k8s.io/v1beta1), which pods can
    /// project natively. It holds the CA certificates of the bundle only (the API server
    /// refuses others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_trust_bundle: Option<ClusterTrustBundleTarget>,
}

/// The ConfigMap written in each selected namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapTarget {
    /// The key holding the PEM bundle, e.g. `ca.crt`.
    #[schemars(schema_with = "schema::data_key")]
    pub key: String,
}

/// The ClusterTrustBundle written.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTrustBundleTarget {
    /// The signer the bundle is for (`example.com/agents`): pods select it by signer name.
    /// The ClusterTrustBundle is then named `<signer, / as :>:<TrustBundle name>`, and the
    /// operator needs `attest` on that signer. Omitted: named after the TrustBundle, no signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::signer_name")]
    pub signer_name: Option<String>,
}

/// What the bundle carries and where it was written.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustBundleStatus {
    /// `Ready`: True (`Synced`) when every target holds the current bundle; else why not
    /// (`SourceMissing`, `SourceInvalid`, `SourceUnavailable`, `BundleEmpty`,
    /// `TargetConflict`, `TargetWriteFailed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The certificates of the bundle last written, in its order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<BundleCertificate>,
    /// How many namespaces hold that bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<i32>,
    /// The ClusterTrustBundle written, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_trust_bundle: Option<String>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One certificate of a bundle.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleCertificate {
    /// SHA-256 of the DER certificate, lower-case hex without colons.
    pub fingerprint: String,
    /// The subject distinguished name.
    pub subject: String,
    /// Expiry (RFC 3339).
    pub not_after: String,
}
