//! The certsmith API (`certsmith.dev/v1alpha1`): plain data types, no I/O.
//!
//! Field names follow cert-manager's `cert-manager.io/v1` wherever the concept is the same, so
//! manifests convert mechanically and users feel at home.

pub mod certificate;
pub mod conditions;
pub mod duration;
pub mod issuer;
pub mod pod_certificate;
pub mod policy;
mod schema;
pub mod selector;
pub mod trust_bundle;

pub use certificate::{
    Certificate, CertificateSpec, CertificateStatus, IssuedCertificate, IssuerKind, IssuerRef,
    JksKeystore, KeyAlgorithm, KeyEncoding, KeyUsage, Keystores, OutputFormat, OutputFormatType,
    PasswordSecretRef, Pkcs12Keystore, Pkcs12Profile, PrivateKeySpec, RevocationPolicy,
    RevocationReason, RotationPolicy, SecretCleanupPolicy, SecretTemplate, Subject,
};
pub use conditions::Condition;
pub use issuer::{
    AwsCredentials, AwsCredentialsSecretRef, AwsPcaIssuer, AwsSigningAlgorithm, CaIssuer,
    CaRotationStatus, CaSummary, ClusterIssuer, CrlStatus, EmergencyRotationStatus, Issuer,
    IssuerSpec, IssuerStatus, IssuerType, SecretKeySelector, SelfSignedIssuer, ServiceAccountRef,
    VaultAppRole, VaultAuth, VaultIssuer, VaultKubernetesAuth,
};
pub use selector::{LabelSelector, LabelSelectorRequirement, SelectorOperator};
pub use trust_bundle::{
    BundleCertificate, BundleIssuerRef, BundleObjectKey, BundleSource, BundleTarget,
    ClusterTrustBundleTarget, ConfigMapTarget, TrustBundle, TrustBundleSpec, TrustBundleStatus,
};

/// The API group of every certsmith resource.
pub const GROUP: &str = "certsmith.dev";

/// Annotation that `certsmith renew` sets to request a re-issuance; any new value triggers one.
pub const RENEW_ANNOTATION: &str = "certsmith.dev/renew-requested-at";

/// Annotation that `certsmith revoke` sets (with [`RENEW_ANNOTATION`] at the same value): once
/// the certificate is re-issued, the one it replaced is revoked at the issuer. Any new value
/// is a new request.
pub const REVOKE_ANNOTATION: &str = "certsmith.dev/revoke-requested-at";

/// The reason of a [`REVOKE_ANNOTATION`] request (default `unspecified`).
pub const REVOKE_REASON_ANNOTATION: &str = "certsmith.dev/revoke-reason";

/// Annotation on an Issuer or ClusterIssuer that starts an emergency rotation (`certsmith
/// rotate` sets it; GitOps may too): any new value re-issues every Certificate of the issuer
/// with a new key, at [`EMERGENCY_ROTATION_RATE_ANNOTATION`] per second.
pub const EMERGENCY_ROTATION_ANNOTATION: &str = "certsmith.dev/emergency-rotation-requested-at";
/// `"true"`: revoke every certificate the rotation supersedes.
pub const EMERGENCY_ROTATION_REVOKE_ANNOTATION: &str = "certsmith.dev/emergency-rotation-revoke";
/// Certificates per second (default [`DEFAULT_EMERGENCY_ROTATION_RATE`], at most 1000).
pub const EMERGENCY_ROTATION_RATE_ANNOTATION: &str = "certsmith.dev/emergency-rotation-rate";
/// The revocation reason with `revoke` (default `superseded`).
pub const EMERGENCY_ROTATION_REASON_ANNOTATION: &str = "certsmith.dev/emergency-rotation-reason";
/// Certificates re-issued per second by an emergency rotation unless told otherwise.
pub const DEFAULT_EMERGENCY_ROTATION_RATE: u32 = 10;
