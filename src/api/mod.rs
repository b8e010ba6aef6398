//! The certsmith API (`certsmith.dev/v1alpha1`): plain data types, no I/O.
//!
//! Field names follow cert-manager's `cert-manager.io/v1` wherever the concept is the same, so
//! manifests convert mechanically and users feel at home.

pub mod certificate;
pub mod conditions;
pub mod duration;
pub mod issuer;
pub mod policy;
mod schema;
pub mod selector;
pub mod trust_bundle;

pub use certificate::{
    Certificate, CertificateSpec, CertificateStatus, IssuerKind, IssuerRef, JksKeystore,
    KeyAlgorithm, KeyEncoding, KeyUsage, Keystores, OutputFormat, OutputFormatType,
    PasswordSecretRef, Pkcs12Keystore, Pkcs12Profile, PrivateKeySpec, RotationPolicy,
    SecretCleanupPolicy, SecretTemplate, Subject,
};
pub use conditions::Condition;
pub use issuer::{
    AwsCredentials, AwsCredentialsSecretRef, AwsPcaIssuer, AwsSigningAlgorithm, CaIssuer,
    CaRotationStatus, CaSummary, ClusterIssuer, Issuer, IssuerSpec, IssuerStatus, IssuerType,
    SecretKeySelector, SelfSignedIssuer, ServiceAccountRef, VaultAppRole, VaultAuth, VaultIssuer,
    VaultKubernetesAuth,
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
