//! `Issuer` (namespaced) and `ClusterIssuer` (cluster-scoped): who signs, with the same spec.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;

/// A signer for Certificates. Exactly one backend is set.
///
/// The same spec backs `ClusterIssuer`; there, Secrets are read from the operator's
/// cluster-resource namespace.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "certsmith.dev",
    version = "v1alpha1",
    kind = "Issuer",
    doc = "An Issuer signs Certificates in its own namespace with one backend: selfSigned or ca.",
    namespaced,
    status = "IssuerStatus",
    category = "certsmith",
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
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("(has(self.selfSigned) ? 1 : 0) + (has(self.ca) ? 1 : 0) == 1").message("exactly one issuer type must be set: selfSigned or ca"))]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// Each certificate is signed by its own freshly generated key. For bootstrapping a root CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    /// Sign with a CA key pair held in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
}

/// Self-signed issuance: no configuration.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SelfSignedIssuer {}

/// An in-cluster CA whose certificate and key live in a `kubernetes.io/tls` Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    /// Secret with `tls.crt` (the CA certificate, optionally followed by its chain) and `tls.key`.
    /// For an Issuer it is read from the Issuer's namespace; for a ClusterIssuer from the
    /// operator's cluster-resource namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// The issuer backend, resolved from the spec's exactly-one-of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerType<'a> {
    SelfSigned,
    Ca(&'a CaIssuer),
}

impl IssuerSpec {
    /// The configured backend; errors when not exactly one is set (admission normally prevents it).
    pub fn issuer_type(&self) -> Result<IssuerType<'_>, String> {
        match (&self.self_signed, &self.ca) {
            (Some(_), None) => Ok(IssuerType::SelfSigned),
            (None, Some(ca)) => Ok(IssuerType::Ca(ca)),
            _ => Err("exactly one issuer type must be set: selfSigned or ca".into()),
        }
    }
}

/// Readiness of an issuer.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// `Ready` says whether the issuer can sign, with the precise reason when it cannot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The cluster-scoped twin of [`Issuer`], declared with the same spec and status types.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "certsmith.dev",
    version = "v1alpha1",
    kind = "ClusterIssuer",
    doc = "A ClusterIssuer signs Certificates in any namespace; its Secrets live in the operator's cluster-resource namespace.",
    status = "IssuerStatus",
    category = "certsmith",
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
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(transparent)]
pub struct ClusterIssuerSpec(pub IssuerSpec);
