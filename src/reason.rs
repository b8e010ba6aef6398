//! The fixed set of reasons shown in conditions, Events and metric labels. Metric labels come
//! from here, never from error strings, so their cardinality is bounded.

/// Why the operator did, or could not do, something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    // Why a certificate is (re-)issued.
    DoesNotExist,
    MissingData,
    InvalidData,
    KeyMismatch,
    IssuerChanged,
    /// The issuer's CA was replaced (rotated, or out of band): the certificate moves to the
    /// CA that signs now.
    IssuerCaChanged,
    SpecMismatch,
    Expired,
    ManualTrigger,
    Renewing,
    // Outcomes.
    Issued,
    /// A request is with an asynchronous CA (AWS Private CA) and being polled.
    Pending,
    UpToDate,
    // Why issuance is refused or failed.
    InvalidSpec,
    SecretConflict,
    DuplicateSecretName,
    IssuerNotFound,
    IssuerNotReady,
    KeyGenerationFailed,
    SigningFailed,
    /// The certificate was signed but the API server refused the Secret (quota, admission).
    SecretWriteFailed,
    ApiError,
    /// The operator itself failed (a bug): the reconcile was stopped and retried with backoff.
    InternalError,
    /// A Secret left by a Certificate that no longer exists (or lost a same-name race) was
    /// taken over by the Certificate that names it.
    Adopted,
    /// The remote backend of an issuer is known to be unreachable: fail fast, retry later.
    BackendUnavailable,
    /// The issuer's policy does not allow what the Certificate asks for; nothing was signed.
    PolicyDenied,
    /// A keystore's password Secret or key is missing, or the password is unusable.
    KeystorePasswordUnavailable,
    /// The Secret's extra outputs, keystores or owner reference were written again from the
    /// same key and certificate.
    OutputsUpdated,
    /// A certificate was revoked at its issuer.
    Revoked,
    /// The issuer refused or could not record a revocation; it is retried.
    RevocationFailed,
    /// The issuer cannot revoke (self-signed).
    RevocationNotSupported,
    /// The CA issuer's CRL could not be signed or written.
    CrlWriteFailed,
    // Issuer readiness.
    IssuerReady,
    CaSecretMissing,
    CaSecretInvalid,
    NotACa,
    CaKeyMismatch,
    CaExpired,
    VaultUnreachable,
    VaultUninitialized,
    VaultSealed,
    VaultAuthFailed,
    VaultCredentialsMissing,
    /// A namespaced Issuer names a Vault server outside `--issuer-vault-servers`.
    VaultServerNotAllowed,
    AwsPcaNotActive,
    AwsPcaNotFound,
    AwsAuthFailed,
    AwsCredentialsMissing,
    AwsUnreachable,
    AwsThrottled,
    // TrustBundle readiness.
    /// Every target holds the current bundle.
    Synced,
    /// A source (an issuer, a Secret, a ConfigMap, a key of one) does not exist.
    SourceMissing,
    /// A source holds something other than PEM certificates, or none.
    SourceInvalid,
    /// A source could not be read now (the API server, or an issuer's remote CA, failed).
    SourceUnavailable,
    /// No certificate is left once expired ones are dropped: nothing is written.
    BundleEmpty,
    /// A target object exists and was not written by certsmith: it is left alone.
    TargetConflict,
    /// The API server refused to write a target.
    TargetWriteFailed,
    // PodCertificateRequest answers (besides PolicyDenied, IssuerNotFound, IssuerNotReady,
    // SigningFailed).
    /// Denied: the request's key is not one certsmith signs (the name Kubernetes prescribes).
    UnsupportedKeyType,
    /// Denied: the request asks for something certsmith does not understand or cannot grant
    /// (an unknown `unverifiedUserAnnotations` key, a lifetime the policy cannot give).
    InvalidRequest,
    /// Failed: the ClusterIssuer's type cannot sign a key without a CSR from it.
    UnsupportedIssuerType,
    /// Failed: the ClusterIssuer has no `policy.spiffe`, so a pod's identity is undefined.
    NoTrustDomain,
}

impl Reason {
    /// Whether the reason says a backend could not be reached (no answer, not a refusal): what
    /// a circuit breaker counts.
    pub fn is_unreachable(self) -> bool {
        matches!(self, Reason::VaultUnreachable | Reason::AwsUnreachable)
    }

    /// The CamelCase form used in conditions, Events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DoesNotExist => "DoesNotExist",
            Reason::MissingData => "MissingData",
            Reason::InvalidData => "InvalidData",
            Reason::KeyMismatch => "KeyMismatch",
            Reason::IssuerChanged => "IssuerChanged",
            Reason::IssuerCaChanged => "IssuerCAChanged",
            Reason::SpecMismatch => "SpecMismatch",
            Reason::Expired => "Expired",
            Reason::ManualTrigger => "ManualTrigger",
            Reason::Renewing => "Renewing",
            Reason::Issued => "Issued",
            Reason::Pending => "Pending",
            Reason::UpToDate => "UpToDate",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretConflict => "SecretConflict",
            Reason::DuplicateSecretName => "DuplicateSecretName",
            Reason::IssuerNotFound => "IssuerNotFound",
            Reason::IssuerNotReady => "IssuerNotReady",
            Reason::KeyGenerationFailed => "KeyGenerationFailed",
            Reason::SigningFailed => "SigningFailed",
            Reason::SecretWriteFailed => "SecretWriteFailed",
            Reason::ApiError => "ApiError",
            Reason::InternalError => "InternalError",
            Reason::Adopted => "Adopted",
            Reason::BackendUnavailable => "BackendUnavailable",
            Reason::PolicyDenied => "PolicyDenied",
            Reason::KeystorePasswordUnavailable => "KeystorePasswordUnavailable",
            Reason::OutputsUpdated => "OutputsUpdated",
            Reason::Revoked => "Revoked",
            Reason::RevocationFailed => "RevocationFailed",
            Reason::RevocationNotSupported => "RevocationNotSupported",
            Reason::CrlWriteFailed => "CRLWriteFailed",
            Reason::IssuerReady => "IssuerReady",
            Reason::CaSecretMissing => "CASecretMissing",
            Reason::CaSecretInvalid => "CASecretInvalid",
            Reason::NotACa => "NotACA",
            Reason::CaKeyMismatch => "CAKeyMismatch",
            Reason::CaExpired => "CAExpired",
            Reason::VaultUnreachable => "VaultUnreachable",
            Reason::VaultUninitialized => "VaultUninitialized",
            Reason::VaultSealed => "VaultSealed",
            Reason::VaultAuthFailed => "VaultAuthFailed",
            Reason::VaultCredentialsMissing => "VaultCredentialsMissing",
            Reason::VaultServerNotAllowed => "VaultServerNotAllowed",
            Reason::AwsPcaNotActive => "AWSPCANotActive",
            Reason::AwsPcaNotFound => "AWSPCANotFound",
            Reason::AwsAuthFailed => "AWSAuthFailed",
            Reason::AwsCredentialsMissing => "AWSCredentialsMissing",
            Reason::AwsUnreachable => "AWSUnreachable",
            Reason::AwsThrottled => "AWSThrottled",
            Reason::Synced => "Synced",
            Reason::SourceMissing => "SourceMissing",
            Reason::SourceInvalid => "SourceInvalid",
            Reason::SourceUnavailable => "SourceUnavailable",
            Reason::BundleEmpty => "BundleEmpty",
            Reason::TargetConflict => "TargetConflict",
            Reason::TargetWriteFailed => "TargetWriteFailed",
            Reason::UnsupportedKeyType => "UnsupportedKeyType",
            Reason::InvalidRequest => "InvalidRequest",
            Reason::UnsupportedIssuerType => "UnsupportedIssuerType",
            Reason::NoTrustDomain => "NoTrustDomain",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason with a human message: the unit of everything the operator reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Problem {}
