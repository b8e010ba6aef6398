//! The `Certificate` resource: what a workload wants its X.509 identity to look like.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::{duration, schema};

/// Default certificate lifetime: 90 days, as cert-manager.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);

/// A request for a key pair and a certificate, kept valid in a `kubernetes.io/tls` Secret.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "certsmith.dev",
    version = "v1alpha1",
    kind = "Certificate",
    doc = "A Certificate: an X.509 key pair and certificate that certsmith issues into a kubernetes.io/tls Secret and keeps renewed.",
    namespaced,
    status = "CertificateStatus",
    shortname = "cert",
    shortname = "certs",
    category = "certsmith",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.issuerRef.name"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.notAfter"),
    printcolumn(name = "Renews", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("has(self.commonName) || (has(self.dnsNames) && size(self.dnsNames) > 0) || (has(self.ipAddresses) && size(self.ipAddresses) > 0) || (has(self.uris) && size(self.uris) > 0) || (has(self.emailAddresses) && size(self.emailAddresses) > 0)").message("at least one identity is required: commonName, dnsNames, ipAddresses, uris or emailAddresses"),
    validation = Rule::new("!(has(self.renewBefore) && has(self.renewBeforePercentage))").message("renewBefore and renewBeforePercentage are mutually exclusive"),
    validation = Rule::new("!has(self.renewBefore) || duration(self.renewBefore) < duration(has(self.duration) ? self.duration : '2160h')").message("renewBefore must be shorter than duration"),
    validation = Rule::new("!self.secretName.endsWith('-certsmith-pending')").message("secretName may not end in -certsmith-pending: those names are certsmith's pending-request Secrets"),
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Name of the `kubernetes.io/tls` Secret (same namespace) that receives `tls.crt`, `tls.key` and `ca.crt`.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: String,

    /// The Issuer or ClusterIssuer that signs this certificate.
    pub issuer_ref: IssuerRef,

    /// Subject common name. Prefer SANs; at most 64 characters (RFC 5280).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub common_name: Option<String>,

    /// DNS subject alternative names. A leading `*.` requests a wildcard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::dns_names")]
    pub dns_names: Vec<String>,

    /// IP address subject alternative names (IPv4 or IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::ip_addresses")]
    pub ip_addresses: Vec<String>,

    /// URI subject alternative names, SPIFFE IDs (spiffe://trust-domain/path) included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::uris")]
    pub uris: Vec<String>,

    /// Email address subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::email_addresses")]
    pub email_addresses: Vec<String>,

    /// Subject attributes beyond the common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,

    /// Requested lifetime as a Go duration (`24h`, `90m`). Default `2160h` (90 days); minimum `5m`.
    /// The issuer may grant less; renewal follows the certificate actually issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::duration")]
    pub duration: Option<String>,

    /// How long before expiry to renew, as a Go duration. Exclusive with `renewBeforePercentage`.
    /// Default: renew after 2/3 of the issued certificate's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::renew_before")]
    pub renew_before: Option<String>,

    /// Renew when this percentage of the issued lifetime remains (1-99). Exclusive with `renewBefore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub renew_before_percentage: Option<u8>,

    /// Private key generation and storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKeySpec>,

    /// Key usages and extended key usages to request. Default: digital signature, server auth,
    /// client auth (plus key encipherment for RSA keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub usages: Option<Vec<KeyUsage>>,

    /// Request a CA certificate (basicConstraints CA:TRUE, cert sign and CRL sign usages).
    #[serde(default, rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,

    /// Labels and annotations copied onto the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// More encodings of the key and certificate in the same Secret, kept in step with every
    /// renewal: `CombinedPEM` (`tls-combined.pem`: the key, then the chain) and `DER`
    /// (`key.der`: the key in DER, encoded as `privateKey.encoding` says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub additional_output_formats: Vec<OutputFormat>,

    /// Java and PKCS#12 keystores in the same Secret, kept in step with every renewal; a
    /// password change re-encodes them without re-issuing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystores: Option<Keystores>,

    /// What happens to the Secret when this Certificate is deleted: `Keep` (the default: the
    /// Secret stays, workloads keep their certificate until it expires) or `Delete` (an owner
    /// reference lets Kubernetes garbage collection remove it with the Certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_cleanup_policy: Option<SecretCleanupPolicy>,

    /// When the operator revokes certificates at the issuer: `revokeOnRenewal` (a superseded
    /// certificate is revoked once its replacement is in the Secret) and `revokeOnDelete`
    /// (deleting the Certificate revokes every certificate it still has valid; a finalizer
    /// holds the deletion until the issuer recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_policy: Option<RevocationPolicy>,
}

/// When certificates of a Certificate are revoked at the issuer.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationPolicy {
    /// Revoke the certificate a renewal replaced (reason `superseded`), after the new one is
    /// written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke_on_renewal: bool,
    /// Revoke every still-valid certificate of this Certificate (reason
    /// `cessationOfOperation`) when it is deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke_on_delete: bool,
}

/// Why a certificate is revoked (RFC 5280 CRLReason), spelled as `certsmith revoke --reason`
/// takes it.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 7] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "caCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One certificate issued for a Certificate, kept in its bounded history so a superseded
/// serial can still be revoked. No key material.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// Serial number (hex).
    pub serial_number: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// The issuer that signed it: `Issuer/<name>` or `ClusterIssuer/<name>`.
    pub issuer: String,
    /// SHA-256 fingerprint (hex) of the CA certificate that signed it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// A revocation asked for and not yet recorded by the issuer: its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_requested: Option<RevocationReason>,
    /// When the issuer recorded the revocation (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// The reason it was revoked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<RevocationReason>,
}

/// One more encoding of the key and certificate (cert-manager's `additionalOutputFormats`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct OutputFormat {
    #[serde(rename = "type")]
    pub type_: OutputFormatType,
}

/// The encodings `additionalOutputFormats` offers.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum OutputFormatType {
    /// `tls-combined.pem`: the private key followed by the certificate chain, PEM.
    #[serde(rename = "CombinedPEM")]
    CombinedPem,
    /// `key.der`: the private key, DER.
    #[serde(rename = "DER")]
    Der,
}

/// Keystores written beside `tls.crt` and `tls.key`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Keystores {
    /// `keystore.p12` (the key and its chain) and `truststore.p12` (the CA certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Keystore>,
    /// `keystore.jks` (the key and its chain, and the CA as a trusted entry) and
    /// `truststore.jks` (the CA certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jks: Option<JksKeystore>,
}

/// A PKCS#12 keystore and truststore.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pkcs12Keystore {
    /// Write the stores (false: do not, and remove them).
    pub create: bool,
    /// The password, from a Secret in the Certificate's namespace.
    pub password_secret_ref: PasswordSecretRef,
    /// Encryption profile. `Modern2023` (default: PBES2 with PBKDF2-HMAC-SHA-256 and
    /// AES-256-CBC, HMAC-SHA-256 MAC), `LegacyDES` (3DES, HMAC-SHA-1 MAC) or `LegacyRC2` (RC2-40,
    /// HMAC-SHA-1 MAC) for readers that know nothing newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Pkcs12Profile>,
}

/// How a PKCS#12 file is encrypted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Pkcs12Profile {
    #[default]
    Modern2023,
    #[serde(rename = "LegacyDES")]
    LegacyDes,
    #[serde(rename = "LegacyRC2")]
    LegacyRc2,
}

/// A Java KeyStore (JKS) keystore and truststore.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JksKeystore {
    /// Write the stores (false: do not, and remove them).
    pub create: bool,
    /// The password of the store and of its key entry, from a Secret in the Certificate's
    /// namespace (JKS needs at least 6 characters).
    pub password_secret_ref: PasswordSecretRef,
    /// Alias of the key entry. Default `certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub alias: Option<String>,
}

/// A key in a Secret in the Certificate's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct PasswordSecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What happens to the Secret when its Certificate is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SecretCleanupPolicy {
    /// The Secret stays.
    #[default]
    Keep,
    /// The Secret carries an owner reference to the Certificate and is garbage-collected with it.
    Delete,
}

/// Which issuer signs a Certificate.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Name of the Issuer (same namespace) or ClusterIssuer.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (namespaced, the default) or `ClusterIssuer`.
    #[serde(default)]
    pub kind: IssuerKind,
}

/// The kind of issuer an `issuerRef` names.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum IssuerKind {
    /// A namespaced Issuer in the Certificate's namespace.
    #[default]
    Issuer,
    /// A cluster-scoped ClusterIssuer.
    ClusterIssuer,
}

impl IssuerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }
}

/// Subject distinguished-name attributes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Organization (O).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subject_values")]
    pub organizations: Vec<String>,
    /// Organizational unit (OU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subject_values")]
    pub organizational_units: Vec<String>,
    /// Country (C).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subject_values")]
    pub countries: Vec<String>,
    /// Locality (L).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subject_values")]
    pub localities: Vec<String>,
    /// State or province (ST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subject_values")]
    pub provinces: Vec<String>,
}

/// How the private key is generated, encoded and rotated.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("!has(self.size) || (has(self.algorithm) && self.algorithm == 'RSA' ? self.size in [2048, 3072, 4096, 8192] : (has(self.algorithm) && self.algorithm == 'Ed25519' ? false : self.size in [256, 384, 521]))").message("size must be 256, 384 or 521 for ECDSA, 2048, 3072, 4096 or 8192 for RSA, and unset for Ed25519"),
    validation = Rule::new("!(has(self.algorithm) && self.algorithm == 'Ed25519' && has(self.encoding) && self.encoding == 'PKCS1')").message("Ed25519 keys can only be encoded as PKCS8"),
)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKeySpec {
    /// `ECDSA` (default), `RSA` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<KeyAlgorithm>,
    /// Key size: ECDSA curve 256 (default), 384 or 521; RSA modulus 2048 (default), 3072, 4096 or 8192.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// `PKCS8` (default) or `PKCS1` (PKCS#1 for RSA, SEC 1 for ECDSA) encoding of `tls.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<KeyEncoding>,
    /// `Always` (default) generates a new key on every issuance; `Never` reuses the key in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum KeyAlgorithm {
    #[default]
    #[serde(rename = "ECDSA")]
    Ecdsa,
    #[serde(rename = "RSA")]
    Rsa,
    Ed25519,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KeyEncoding {
    #[default]
    #[serde(rename = "PKCS8")]
    Pkcs8,
    #[serde(rename = "PKCS1")]
    Pkcs1,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RotationPolicy {
    #[default]
    Always,
    Never,
}

/// Key usages and extended key usages, spelled as in cert-manager.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyUsage {
    #[serde(rename = "digital signature")]
    DigitalSignature,
    #[serde(rename = "content commitment")]
    ContentCommitment,
    #[serde(rename = "key encipherment")]
    KeyEncipherment,
    #[serde(rename = "data encipherment")]
    DataEncipherment,
    #[serde(rename = "key agreement")]
    KeyAgreement,
    #[serde(rename = "cert sign")]
    CertSign,
    #[serde(rename = "crl sign")]
    CrlSign,
    #[serde(rename = "server auth")]
    ServerAuth,
    #[serde(rename = "client auth")]
    ClientAuth,
    #[serde(rename = "code signing")]
    CodeSigning,
    #[serde(rename = "email protection")]
    EmailProtection,
    #[serde(rename = "timestamping")]
    Timestamping,
    #[serde(rename = "ocsp signing")]
    OcspSigning,
}

/// Extra metadata for the Secret. Validated at admission as the API server validates a
/// Secret's metadata (so a template cannot make every Secret write fail), and keys under
/// `certsmith.dev/` are the operator's own.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretTemplate {
    /// Labels added to the Secret: qualified-name keys, values of at most 63 characters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::template_labels")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret: qualified-name keys, at most 256 KiB in all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::template_annotations")]
    pub annotations: BTreeMap<String, String>,
}

/// What the operator observed and did.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// `Ready` (the Secret holds a valid certificate matching the spec), `Issuing` (an issuance
    /// is under way), and the kstatus conditions `Reconciling` and `Stalled` while they are true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// notBefore of the certificate in the Secret (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// notAfter of the certificate in the Secret (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// When the operator will renew (RFC 3339), jitter included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    /// Number of certificates issued for this resource so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Serial number of the certificate in the Secret (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// When the last issuance attempt failed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// Consecutive failed issuance attempts; reset by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<u32>,
    /// Authority key identifier (hex) of the certificate in the Secret: which CA key signed
    /// it. A CA issuer counts its leaves on each CA by it during a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_key_id: Option<String>,
    /// The `certsmith.dev/renew-requested-at` value last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renew_request: Option<String>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The certificates issued for this Certificate, newest first, at most 10: serials,
    /// validity, issuer, CA fingerprint and revocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<IssuedCertificate>,
    /// The `certsmith.dev/revoke-requested-at` value last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_revoke_request: Option<String>,
}

impl CertificateSpec {
    /// The Secrets (same namespace) whose keys are keystore passwords.
    pub fn password_secrets(&self) -> std::collections::BTreeSet<String> {
        let stores = self.keystores.as_ref();
        [
            stores
                .and_then(|k| k.pkcs12.as_ref())
                .filter(|p| p.create)
                .map(|p| p.password_secret_ref.name.clone()),
            stores
                .and_then(|k| k.jks.as_ref())
                .filter(|j| j.create)
                .map(|j| j.password_secret_ref.name.clone()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The requested lifetime, defaulted.
    pub fn duration(&self) -> Result<Duration, String> {
        self.duration
            .as_deref()
            .map_or(Ok(DEFAULT_DURATION), duration::parse)
    }

    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.private_key
            .as_ref()
            .and_then(|k| k.algorithm)
            .unwrap_or_default()
    }

    /// Key size in bits (curve size for ECDSA), defaulted per algorithm; 0 for Ed25519.
    pub fn key_size(&self) -> u32 {
        let explicit = self.private_key.as_ref().and_then(|k| k.size);
        match self.key_algorithm() {
            KeyAlgorithm::Ecdsa => explicit.unwrap_or(256),
            KeyAlgorithm::Rsa => explicit.unwrap_or(2048),
            KeyAlgorithm::Ed25519 => 0,
        }
    }

    pub fn key_encoding(&self) -> KeyEncoding {
        self.private_key
            .as_ref()
            .and_then(|k| k.encoding)
            .unwrap_or_default()
    }

    pub fn rotation_policy(&self) -> RotationPolicy {
        self.private_key
            .as_ref()
            .and_then(|k| k.rotation_policy)
            .unwrap_or_default()
    }

    /// The usages to request, defaulted and normalised (sorted, deduplicated, CA usages added).
    pub fn usages(&self) -> Vec<KeyUsage> {
        let mut usages = self.usages.clone().unwrap_or_else(|| {
            let mut u = vec![
                KeyUsage::DigitalSignature,
                KeyUsage::ServerAuth,
                KeyUsage::ClientAuth,
            ];
            if self.key_algorithm() == KeyAlgorithm::Rsa {
                u.push(KeyUsage::KeyEncipherment);
            }
            u
        });
        if self.is_ca {
            usages.extend([KeyUsage::CertSign, KeyUsage::CrlSign]);
        }
        usages.sort();
        usages.dedup();
        usages
    }
}
