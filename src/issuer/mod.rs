//! Issuer backends, one room each, behind one interface: [`Backend`]. A backend is built from
//! an issuer's spec, signs an [`Order`] (at once, or over several calls for an asynchronous
//! CA), says whether the issuer can sign (`check`), and names the CA certificates relying
//! parties should trust (`ca_certificates`).
//!
//! The controller hands a backend two small capabilities instead of a client: a
//! [`SecretReader`] for the Secrets the issuer names, and a [`PendingStore`] for a request in
//! flight at an asynchronous CA. Every backend but self-signed receives only a CSR and the
//! requested parameters, never the private key. Adding a backend: CONTRIBUTING.md.

pub mod aws_pca;
pub mod ca;
mod cache;
mod capabilities;
mod chain;
pub mod crl;
mod id;
pub mod selfsigned;
pub mod vault;

use std::sync::Arc;

pub use cache::ClientCache;
pub use capabilities::{
    PENDING_SECRET_SUFFIX, PendingRecord, PendingStore, SecretCache, SecretReader,
};
pub use chain::{NOT_BEFORE_SKEW_SECS, SignedChain, assemble_chain, random_serial, validity};
pub use id::IssuerId;

use crate::api::{CertificateSpec, IssuerSpec, RevocationReason};
use crate::metrics::Metrics;
use crate::pki::keys::PrivateKey;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

/// An issuer's backend type: what signs. Spelled as the spec field that selects it, and so in
/// the `certsmith.dev/issuer-type` annotation and the `backend` metric label. Not to be
/// confused with an issuer's *kind* (Issuer or ClusterIssuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendType {
    SelfSigned,
    Ca,
    Vault,
    AwsPca,
}

impl BackendType {
    pub const ALL: [BackendType; 4] = [
        BackendType::SelfSigned,
        BackendType::Ca,
        BackendType::Vault,
        BackendType::AwsPca,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendType::SelfSigned => "selfSigned",
            BackendType::Ca => "ca",
            BackendType::Vault => "vault",
            BackendType::AwsPca => "awsPCA",
        }
    }

    /// The type a spec selects; errors when not exactly one is set (admission prevents it).
    pub fn of(spec: &IssuerSpec) -> Result<Self, Problem> {
        match (&spec.self_signed, &spec.ca, &spec.vault, &spec.aws_pca) {
            (Some(_), None, None, None) => Ok(BackendType::SelfSigned),
            (None, Some(_), None, None) => Ok(BackendType::Ca),
            (None, None, Some(_), None) => Ok(BackendType::Vault),
            (None, None, None, Some(_)) => Ok(BackendType::AwsPca),
            _ => Err(Problem::new(
                Reason::InvalidSpec,
                "exactly one issuer type must be set: selfSigned, ca, vault or awsPCA",
            )),
        }
    }

    /// The type named in a Secret's `certsmith.dev/issuer-type` annotation.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether the backend's own configuration (a Vault role, an AWS template) decides the
    /// certificate profile: subject attributes, usages, the CA flag. Then only the requested
    /// names and the key are compared with the spec, or a difference the CA imposes would
    /// re-issue forever.
    pub fn decides_profile(self) -> bool {
        matches!(self, BackendType::Vault | BackendType::AwsPca)
    }

    /// Whether signing calls a server over the network (and so may hang or fail to connect).
    pub fn is_remote(self) -> bool {
        matches!(self, BackendType::Vault | BackendType::AwsPca)
    }

    /// Whether an issuance may leave a pending request behind (an asynchronous CA).
    pub fn keeps_pending_requests(self) -> bool {
        matches!(self, BackendType::AwsPca)
    }
}

/// Operator settings that decide what backends may do.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// Whether namespaced Issuers may use the operator's own cloud identity (AWS default
    /// chain). ClusterIssuers always may: only cluster admins create them.
    pub issuer_ambient_credentials: bool,
    /// The Vault servers namespaced Issuers may use (URL prefixes; empty: any). ClusterIssuers
    /// may use any.
    pub issuer_vault_servers: Vec<vault::ServerPrefix>,
    /// AWS Private CA IssueCertificate calls per second per CA (reads get three times that).
    pub aws_pca_issue_rate: std::num::NonZeroU32,
}

/// What outlives a single issuance: one client per issuer (Vault tokens, AWS credential
/// providers and CA descriptions are reused), and the per-CA AWS rate limits.
pub struct Caches {
    pub vault: ClientCache<vault::VaultClient>,
    pub aws: ClientCache<aws_pca::AwsPcaClient>,
    pub aws_limits: Arc<aws_pca::RateLimits>,
    /// The CA issuers' CRL writer (serialised and batched per issuer).
    pub crls: Arc<crl::CrlPublisher>,
}

impl Caches {
    pub fn new(settings: &BackendSettings) -> Self {
        Caches {
            vault: ClientCache::default(),
            aws: ClientCache::default(),
            aws_limits: Arc::new(aws_pca::RateLimits::new(settings.aws_pca_issue_rate)),
            crls: Arc::default(),
        }
    }

    /// Forget the clients of issuers that no longer exist.
    pub fn retain(&self, exists: impl Fn(&IssuerId) -> bool) {
        self.vault.retain(&exists);
        self.aws.retain(&exists);
    }
}

/// Everything a backend is built with.
pub struct Env<'a> {
    pub id: &'a IssuerId,
    /// The Secrets the issuer names, in its Secret namespace only.
    pub secrets: SecretReader,
    /// For the one thing beyond reading Secrets a backend may ask of the API server: a
    /// short-lived ServiceAccount token for Vault's Kubernetes auth.
    pub client: kube::Client,
    pub settings: &'a BackendSettings,
    pub caches: &'a Caches,
    pub metrics: Arc<Metrics>,
    pub now: i64,
}

/// What an issuance asks a backend to sign.
pub struct Order<'a> {
    /// The Certificate's UID and the revision being issued: they make an asynchronous request
    /// idempotent across restarts.
    pub certificate_uid: &'a str,
    pub revision: i64,
    pub spec: &'a CertificateSpec,
    pub now: i64,
    /// Make the key and CSR to sign (a new key, or the one kept with `rotationPolicy:
    /// Never`). Called only when a new request is made: an asynchronous CA resuming a stored
    /// request uses the key stored with it.
    pub new_key: &'a (dyn Fn() -> Result<(PrivateKey, SignRequest), Problem> + Sync),
}

/// What a backend answers.
pub enum Signed {
    /// The chain for `key`. `pending_since`: it came from a request stored at that time
    /// (Unix seconds), which the controller discards once the certificate is safely in its
    /// Secret.
    Issued {
        chain: SignedChain,
        key: PrivateKey,
        pending_since: Option<i64>,
    },
    /// An asynchronous CA is working on it: ask again at `retry_at`.
    Pending { retry_at: i64, message: String },
}

/// A certificate to revoke at the issuer that signed it.
pub struct Revocation<'a> {
    /// Serial number, hex as the status shows it.
    pub serial: &'a str,
    pub reason: RevocationReason,
    /// SHA-256 of the CA certificate that signed it, when recorded: a CA issuer refuses to
    /// list a serial another CA signed.
    pub ca_fingerprint: Option<&'a str>,
    pub now: i64,
}

/// A ready-to-use backend: the factory's output, and the only place that dispatches on the
/// backend type.
#[derive(Debug)]
pub enum Backend {
    SelfSigned,
    Ca(Box<ca::CaSigner>),
    Vault(Box<vault::VaultBackend>),
    AwsPca(Box<aws_pca::AwsPcaBackend>),
}

impl Backend {
    /// Build the backend an issuer spec selects, reading its Secrets through `env.secrets`.
    pub async fn build(spec: &IssuerSpec, env: &Env<'_>) -> Result<Backend, Problem> {
        match (&spec.ca, &spec.vault, &spec.aws_pca, BackendType::of(spec)?) {
            (_, _, _, BackendType::SelfSigned) => Ok(Backend::SelfSigned),
            (Some(ca), _, _, BackendType::Ca) => {
                ca::build(ca, env).await.map(|c| Backend::Ca(Box::new(c)))
            }
            (_, Some(vault), _, BackendType::Vault) => vault::VaultBackend::build(vault, env)
                .await
                .map(|v| Backend::Vault(Box::new(v))),
            (_, _, Some(pca), BackendType::AwsPca) => aws_pca::AwsPcaBackend::build(pca, env)
                .await
                .map(|p| Backend::AwsPca(Box::new(p))),
            _ => Err(Problem::new(Reason::InvalidSpec, "no issuer type set")),
        }
    }

    pub fn backend_type(&self) -> BackendType {
        match self {
            Backend::SelfSigned => BackendType::SelfSigned,
            Backend::Ca(_) => BackendType::Ca,
            Backend::Vault(_) => BackendType::Vault,
            Backend::AwsPca(_) => BackendType::AwsPca,
        }
    }

    /// A cheap check before each issuance (cached where it asks a server); the full one is
    /// [`Backend::check`], run by the issuer's own reconcile.
    pub async fn ready_to_sign(&self) -> Result<(), Problem> {
        match self {
            Backend::AwsPca(pca) => pca.ready_to_sign().await,
            Backend::SelfSigned | Backend::Ca(_) | Backend::Vault(_) => Ok(()),
        }
    }

    /// Sign what `order` asks for. `pending` keeps an asynchronous CA's request across calls
    /// and restarts; synchronous backends never touch it.
    pub async fn sign(&self, order: &Order<'_>, pending: &PendingStore) -> Result<Signed, Problem> {
        let issued = |chain, key| Signed::Issued {
            chain,
            key,
            pending_since: None,
        };
        match self {
            Backend::SelfSigned => {
                let (key, request) = (order.new_key)()?;
                selfsigned::sign(&request, &key, order.now).map(|chain| issued(chain, key))
            }
            Backend::Ca(ca) => {
                let (key, request) = (order.new_key)()?;
                ca.sign(&request, order.now).map(|chain| issued(chain, key))
            }
            Backend::Vault(vault) => {
                let (key, request) = (order.new_key)()?;
                vault.sign(&request).await.map(|chain| issued(chain, key))
            }
            Backend::AwsPca(pca) => pca.sign(order, pending).await,
        }
    }

    /// Whether the issuer can sign now, in words for its Ready condition.
    pub async fn check(&self) -> Result<String, Problem> {
        match self {
            Backend::SelfSigned => Ok("self-signed issuer is ready".into()),
            Backend::Ca(ca) => Ok(format!(
                "CA is valid until {}",
                crate::time::rfc3339(ca.not_after())
            )),
            Backend::Vault(vault) => vault.check().await,
            Backend::AwsPca(pca) => pca.check().await,
        }
    }

    /// Revoke a certificate this issuer signed: Vault's `<mount>/revoke`, AWS Private CA's
    /// RevokeCertificate, the CA issuer's own CRL. Ok once the issuer recorded it (revoking
    /// again what is revoked is Ok). A self-signed certificate has no issuer to revoke it.
    pub async fn revoke(&self, revocation: &Revocation<'_>) -> Result<(), Problem> {
        match self {
            Backend::SelfSigned => Err(Problem::new(
                Reason::RevocationNotSupported,
                "a self-signed certificate cannot be revoked: no CA vouches for it (stop trusting it instead, e.g. drop it from trust bundles)",
            )),
            Backend::Ca(ca) => {
                ca.revoke(
                    revocation.serial,
                    revocation.reason,
                    revocation.ca_fingerprint,
                    revocation.now,
                )
                .await
            }
            Backend::Vault(vault) => vault.revoke(revocation.serial).await,
            Backend::AwsPca(pca) => pca.revoke(revocation.serial, revocation.reason).await,
        }
    }

    /// SHA-256 of the CA certificate that signs now, when the backend knows it without asking
    /// a server (the CA issuer): recorded with each certificate issued.
    pub fn ca_fingerprint(&self) -> Option<String> {
        match self {
            Backend::Ca(ca) => Some(ca.fingerprint()),
            Backend::SelfSigned | Backend::Vault(_) | Backend::AwsPca(_) => None,
        }
    }

    /// The CA certificates (PEM, the issuing CA first, up to its root) that relying parties
    /// should trust for what this issuer signs. A self-signed issuer has none: each
    /// certificate is its own.
    pub async fn ca_certificates(&self) -> Result<Vec<String>, Problem> {
        match self {
            Backend::SelfSigned => Ok(Vec::new()),
            Backend::Ca(ca) => Ok(ca.ca_certificates()),
            Backend::Vault(vault) => vault.ca_certificates().await,
            Backend::AwsPca(pca) => pca.ca_certificates().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_types_are_spelled_as_the_spec_fields() {
        for t in BackendType::ALL {
            assert_eq!(BackendType::parse(t.as_str()), Some(t));
        }
        assert_eq!(BackendType::parse("awspca"), None);
        let spec: IssuerSpec =
            serde_json::from_value(serde_json::json!({"selfSigned": {}})).expect("spec");
        assert_eq!(BackendType::of(&spec), Ok(BackendType::SelfSigned));
        let none: IssuerSpec = serde_json::from_value(serde_json::json!({})).expect("spec");
        assert_eq!(
            BackendType::of(&none).map_err(|p| p.reason),
            Err(Reason::InvalidSpec)
        );
    }
}
