//! `Issuer` (namespaced) and `ClusterIssuer` (cluster-scoped): who signs, with the same spec.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::policy::Policy;
use super::schema;

/// A signer for Certificates. Exactly one backend is set.
///
/// The same spec backs `ClusterIssuer`; there, Secrets are read from the operator's
/// cluster-resource namespace.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "certsmith.dev",
    version = "v1alpha1",
    kind = "Issuer",
    doc = "An Issuer signs Certificates in its own namespace with one backend: selfSigned, ca, vault or awsPCA.",
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
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".status.policy",
        priority = 1
    ),
    validation = Rule::new("!has(self.spec.policy) || !has(self.spec.policy.namespaces)").message("spec.policy.namespaces is only for ClusterIssuers: an Issuer serves its own namespace")
)]
#[x_kube(validation = Rule::new("(has(self.selfSigned) ? 1 : 0) + (has(self.ca) ? 1 : 0) + (has(self.vault) ? 1 : 0) + (has(self.awsPCA) ? 1 : 0) == 1").message("exactly one issuer type must be set: selfSigned, ca, vault or awsPCA"))]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// Each certificate is signed by its own freshly generated key. For bootstrapping a root CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    /// Sign with a CA key pair held in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    /// Sign CSRs with a Vault (or OpenBao) PKI secrets engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultIssuer>,
    /// Sign CSRs with an AWS Private CA.
    #[serde(rename = "awsPCA", default, skip_serializing_if = "Option::is_none")]
    pub aws_pca: Option<AwsPcaIssuer>,
    /// Which Certificates this issuer signs: namespaces (ClusterIssuer only), names, SPIFFE
    /// IDs, lifetime, key types, usages, CA certificates. Omitted: any Certificate, except
    /// that a ClusterIssuer signs `isCA: true` only in the cluster-resource namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// AWS Private CA: the operator sends only a CSR to `IssueCertificate`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsPcaIssuer {
    /// ARN of the certificate authority.
    #[schemars(regex(
        pattern = r"^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[A-Za-z0-9-]+$"
    ))]
    pub arn: String,
    /// AWS region of the CA (default: the region in the ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9-]+$"), length(max = 64))]
    pub region: Option<String>,
    /// Endpoint override: a VPC or FIPS endpoint (https), or a local emulator (http only on
    /// loopback, so signed requests never cross a network in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^(https://.+|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/.*)?)$")
    )]
    pub endpoint: Option<String>,
    /// Certificate template (default: chosen from the Certificate's usages and isCA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:acm-pca:::template/[A-Za-z0-9_]+/V[0-9]+$"))]
    pub template_arn: Option<String>,
    /// Signing algorithm (default: derived from the CA's key algorithm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<AwsSigningAlgorithm>,
    /// Static credentials from a Secret; omitted: the operator's own AWS identity (IRSA, EKS
    /// Pod Identity, environment, instance role) — for a namespaced Issuer only when the
    /// operator runs with --issuer-ambient-credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AwsCredentials>,
    /// A role to assume (for a CA in another account), with the credentials above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"))]
    pub role: Option<String>,
}

/// AWS Private CA signing algorithms.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AwsSigningAlgorithm {
    #[serde(rename = "SHA256WITHECDSA")]
    Sha256WithEcdsa,
    #[serde(rename = "SHA384WITHECDSA")]
    Sha384WithEcdsa,
    #[serde(rename = "SHA512WITHECDSA")]
    Sha512WithEcdsa,
    #[serde(rename = "SHA256WITHRSA")]
    Sha256WithRsa,
    #[serde(rename = "SHA384WITHRSA")]
    Sha384WithRsa,
    #[serde(rename = "SHA512WITHRSA")]
    Sha512WithRsa,
}

impl AwsSigningAlgorithm {
    /// The name AWS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsSigningAlgorithm::Sha256WithEcdsa => "SHA256WITHECDSA",
            AwsSigningAlgorithm::Sha384WithEcdsa => "SHA384WITHECDSA",
            AwsSigningAlgorithm::Sha512WithEcdsa => "SHA512WITHECDSA",
            AwsSigningAlgorithm::Sha256WithRsa => "SHA256WITHRSA",
            AwsSigningAlgorithm::Sha384WithRsa => "SHA384WITHRSA",
            AwsSigningAlgorithm::Sha512WithRsa => "SHA512WITHRSA",
        }
    }
}

/// Where static AWS credentials come from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentials {
    /// A Secret in the issuer's Secret namespace.
    pub secret_ref: AwsCredentialsSecretRef,
}

/// The keys of an AWS credentials Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsSecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the access key ID (default `AWS_ACCESS_KEY_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: Option<String>,
    /// Key of the secret access key (default `AWS_SECRET_ACCESS_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: Option<String>,
    /// Key of a session token, for temporary credentials (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub session_token_key: Option<String>,
}

/// A key in a Secret in the issuer's Secret namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeySelector {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Vault PKI: the operator sends only a CSR to `<mount>/sign/<role>` (or `sign-verbatim`).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!(has(self.caBundle) && has(self.caBundleSecretRef))").message("caBundle and caBundleSecretRef are mutually exclusive"))]
#[serde(rename_all = "camelCase")]
pub struct VaultIssuer {
    /// Vault base URL: http or https, a host, an optional port and path prefix, e.g.
    /// `https://vault.example:8200`; no user info, query or fragment. Requests go to
    /// `<server>/v1/...`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    #[x_kube(validation = Rule::new(r"isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != '' && !self.matches('[?#@\\s]')").message("server must be a base URL: http or https, a host, an optional port and path; no user info, query or fragment"))]
    pub server: String,
    /// Signing path: `<mount>/sign/<role>`, `<mount>/sign-verbatim` or `<mount>/sign-verbatim/<role>`.
    #[schemars(
        length(min = 1, max = 512),
        regex(
            pattern = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/(sign/[A-Za-z0-9_.@-]+|sign-verbatim(/[A-Za-z0-9_.@-]+)?)$"
        )
    )]
    pub path: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub namespace: Option<String>,
    /// Base64-encoded PEM bundle of CAs trusted for the Vault server (default: system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,
    /// A Secret key holding the PEM CA bundle for the Vault server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeySelector>,
    /// How the operator logs in.
    pub auth: VaultAuth,
}

/// Exactly one way to authenticate to Vault.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(has(self.tokenSecretRef) ? 1 : 0) + (has(self.appRole) ? 1 : 0) + (has(self.kubernetes) ? 1 : 0) == 1").message("exactly one auth method must be set: tokenSecretRef, appRole or kubernetes"))]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// A Vault token stored in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,
    /// Kubernetes auth with a short-lived ServiceAccount token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
}

/// AppRole: role ID inline, secret ID from a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRole {
    /// Mount path of the AppRole auth method (default `approle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub path: Option<String>,
    /// The role ID.
    #[schemars(length(min = 1, max = 256))]
    pub role_id: String,
    /// Secret key holding the secret ID.
    pub secret_ref: SecretKeySelector,
}

/// Kubernetes auth: the operator mints a token for `serviceAccountRef` with the TokenRequest
/// API (or reads a stored token from `secretRef`) and logs in with it.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(has(self.serviceAccountRef) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) == 1").message("exactly one of serviceAccountRef and secretRef must be set"))]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path of the Kubernetes auth method (default `kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub mount_path: Option<String>,
    /// The Vault role to log in as.
    #[schemars(length(min = 1, max = 256))]
    pub role: String,
    /// ServiceAccount (issuer's Secret namespace) to mint a short-lived token for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountRef>,
    /// A Secret key holding a ServiceAccount token, instead of minting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// A ServiceAccount and the audiences of the tokens minted for it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ServiceAccountRef {
    /// ServiceAccount name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Token audiences (default: `vault`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub audiences: Vec<String>,
}

/// Self-signed issuance: no configuration.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SelfSignedIssuer {}

/// An in-cluster CA whose certificate and key live in a `kubernetes.io/tls` Secret.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    /// Secret with `tls.crt` (the CA certificate, optionally followed by its chain) and `tls.key`.
    /// For an Issuer it is read from the Issuer's namespace; for a ClusterIssuer from the
    /// operator's cluster-resource namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// URLs written as the CRL distribution points of every leaf this CA signs, e.g. the
    /// operator's own `http://certsmith-crl.certsmith.svc/crl/clusterissuer/<name>.crl`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        inner(length(min = 1, max = 512), regex(pattern = r"^[!-~]+$"))
    )]
    pub crl_distribution_points: Vec<String>,
    /// URLs written as the Authority Information Access caIssuers of every leaf this CA
    /// signs: where a relying party downloads the CA certificate.
    #[serde(
        default,
        rename = "issuingCertificateURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(
        length(max = 8),
        inner(length(min = 1, max = 512), regex(pattern = r"^[!-~]+$"))
    )]
    pub issuing_certificate_urls: Vec<String>,
    /// How long a renewed CA is published (in every TrustBundle sourcing this issuer) before
    /// it signs anything, as a Go duration. Default `5m`: a kubelet refreshes a mounted
    /// ConfigMap within about 2 minutes. See "Rotating a CA" in the README.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::short_duration")]
    pub trust_propagation_delay: Option<String>,
    /// Over how long the leaves of a replaced CA are re-issued (`IssuerCAChanged`), each at its
    /// own jittered moment, as a Go duration. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::short_duration")]
    pub rotation_window: Option<String>,
    /// At most this many leaves re-issued per second for a CA change. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub rotation_rate_limit: Option<u32>,
    /// How long a CA replaced out of band (a new key pair written into the Secret) stays in
    /// trust bundles at most, while leaves still chain to it. Default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::short_duration")]
    pub replaced_ca_retention: Option<String>,
}

/// The issuer backend, resolved from the spec's exactly-one-of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerType<'a> {
    SelfSigned,
    Ca(&'a CaIssuer),
    Vault(&'a VaultIssuer),
    AwsPca(&'a AwsPcaIssuer),
}

impl IssuerSpec {
    /// The names of the Secrets this issuer reads (in its Secret namespace): its readiness
    /// follows them.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if let Some(ca) = &self.ca {
            names.push(ca.secret_name.as_str());
        }
        if let Some(vault) = &self.vault {
            let auth = &vault.auth;
            names.extend(vault.ca_bundle_secret_ref.iter().map(|r| r.name.as_str()));
            names.extend(auth.token_secret_ref.iter().map(|r| r.name.as_str()));
            names.extend(auth.app_role.iter().map(|a| a.secret_ref.name.as_str()));
            names.extend(
                auth.kubernetes
                    .iter()
                    .filter_map(|k| k.secret_ref.as_ref())
                    .map(|r| r.name.as_str()),
            );
        }
        if let Some(pca) = &self.aws_pca {
            names.extend(pca.credentials.iter().map(|c| c.secret_ref.name.as_str()));
        }
        names
    }

    /// The configured backend; errors when not exactly one is set (admission normally prevents it).
    pub fn issuer_type(&self) -> Result<IssuerType<'_>, String> {
        match (&self.self_signed, &self.ca, &self.vault, &self.aws_pca) {
            (Some(_), None, None, None) => Ok(IssuerType::SelfSigned),
            (None, Some(ca), None, None) => Ok(IssuerType::Ca(ca)),
            (None, None, Some(vault), None) => Ok(IssuerType::Vault(vault)),
            (None, None, None, Some(pca)) => Ok(IssuerType::AwsPca(pca)),
            _ => Err("exactly one issuer type must be set: selfSigned, ca, vault or awsPCA".into()),
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
    /// The effective policy in one line: what a Certificate may ask this issuer for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// A CA issuer's certificate revocation list, as last published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<CrlStatus>,
    /// The last emergency rotation (`certsmith rotate`, or the
    /// `certsmith.dev/emergency-rotation-requested-at` annotation) and its progress. Written
    /// by its own field manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_rotation: Option<EmergencyRotationStatus>,
    /// A CA issuer's rotation: which CA signs, which is being published or retired, and how
    /// many leaves chain to each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_rotation: Option<CaRotationStatus>,
}

/// An emergency rotation: every Certificate of the issuer re-issued with a new key at a
/// bounded rate, optionally revoking what they replace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmergencyRotationStatus {
    /// The request (the annotation's value) this rotation answers.
    pub request: String,
    /// Whether superseded certificates are revoked.
    #[serde(default)]
    pub revoke: bool,
    /// Certificates re-issued per second at most.
    pub rate: u32,
    /// Certificates of the issuer.
    pub total: u32,
    /// Asked to re-issue so far.
    pub triggered: u32,
    /// Re-issued (and, with `revoke`, the superseded certificate revoked).
    pub done: u32,
    /// Whose re-issuance or revocation is failing now (retried by the operator).
    pub failed: u32,
    /// RFC 3339.
    pub started_at: String,
    /// When every Certificate was done (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// Where a CA issuer's CRL is and how fresh it is.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrlStatus {
    /// The ConfigMap (in the CA Secret's namespace) holding it as PEM under `ca.crl`.
    pub config_map: String,
    /// Its CRL number.
    pub number: u64,
    /// When it was signed (RFC 3339).
    pub this_update: String,
    /// When it expires unless signed again (RFC 3339); it is signed again well before.
    pub next_update: String,
    /// Serials it lists.
    pub revoked_certificates: u32,
}

/// Where a CA issuer's rotation stands.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaRotationStatus {
    /// `Stable` (one CA), `Publishing` (a renewed CA is in the trust bundles; the previous one
    /// still signs until `activatesAt`), `MovingLeaves` (the new CA signs; leaves on the
    /// previous one are re-issued), `Retired` (no Ready leaf has chained to the previous CA
    /// for a `trustPropagationDelay`, or it expired: it left the bundles).
    pub phase: String,
    /// The CA that signs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<CaSummary>,
    /// The renewed CA waiting out the trust propagation delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<CaSummary>,
    /// The CA being replaced (or retired), still in the bundles unless `phase` is Retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<CaSummary>,
    /// When the renewed CA starts (or started) signing (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activates_at: Option<String>,
    /// Whether the previous CA was replaced out of band (written into the Secret by someone
    /// else): then there was no publish-before-use.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub out_of_band: bool,
    /// Ready leaves of this issuer whose certificate the active CA signed.
    pub leaves_on_active: u32,
    /// Ready leaves still signed by the previous CA.
    pub leaves_on_previous: u32,
    /// Ready leaves signed by neither (or whose status does not say yet).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leaves_unknown: u32,
    /// When the last leaf left the previous CA (RFC 3339): the previous CA is retired a
    /// `trustPropagationDelay` later, once the leaves' new Secrets have reached their pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaves_moved_at: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One CA certificate of a rotation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSummary {
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
    /// Subject key identifier (hex), which leaves name as their authority key identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// RFC 3339.
    pub not_after: String,
    /// The certificate (PEM): kept so a CA replaced out of band can still be published.
    pub certificate: String,
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
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".status.policy",
        priority = 1
    )
)]
#[serde(transparent)]
pub struct ClusterIssuerSpec(pub IssuerSpec);
