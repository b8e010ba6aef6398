//! The two capabilities the controller hands a backend instead of a client:
//!
//! - [`SecretReader`]: the Secrets an issuer names (CA key pairs, Vault and AWS credentials),
//!   read from the issuer's Secret namespace only, with one wording for every failure;
//! - [`PendingStore`]: one Certificate's request in flight at an asynchronous CA, kept in the
//!   Secret `<certificate>-certsmith-pending` (owned by the Certificate, labelled
//!   `certsmith.dev/pending`) so that a restart resumes it instead of issuing again.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::api::{Certificate, SecretKeySelector};
use crate::leader::Guard;
use crate::reason::{Problem, Reason};
use crate::secret;

/// Read the Secrets an issuer names, in its Secret namespace only (the Issuer's own
/// namespace, or the cluster-resource namespace for a ClusterIssuer).
#[derive(Clone)]
pub struct SecretReader {
    api: Api<Secret>,
    namespace: String,
    cache: Option<std::sync::Arc<dyn SecretCache>>,
    /// Whether reads are answered from `cache` (else it is only told what was read).
    reuse: bool,
}

/// Secrets read before, reused only while a watch shows them unchanged (the controller's
/// watch-fed Secret metadata): a Secret that changed is read again.
pub trait SecretCache: Send + Sync {
    /// The Secret as last read, if the watch shows it still at the version read.
    fn get(&self, namespace: &str, name: &str) -> Option<Secret>;
    /// Remember a Secret just read.
    fn put(&self, namespace: &str, secret: &Secret);
}

impl SecretReader {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        SecretReader {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            cache: None,
            reuse: false,
        }
    }

    /// Answer reads from `cache` while it is current.
    pub fn cached(self, cache: std::sync::Arc<dyn SecretCache>) -> Self {
        SecretReader {
            cache: Some(cache),
            reuse: true,
            ..self
        }
    }

    /// Read live, and tell `cache` what was read (a newer version than the watch shows then
    /// stands for nothing until the watch catches up).
    pub fn refreshing(self, cache: std::sync::Arc<dyn SecretCache>) -> Self {
        SecretReader {
            cache: Some(cache),
            reuse: false,
            ..self
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Read `name`; `missing` is the reason when it does not exist, `what` names it in the
    /// message ("CA ", "AWS credentials ", or "").
    pub async fn read(&self, name: &str, missing: Reason, what: &str) -> Result<Secret, Problem> {
        let namespace = &self.namespace;
        if let Some(found) = self
            .cache
            .as_ref()
            .filter(|_| self.reuse)
            .and_then(|c| c.get(namespace, name))
        {
            return Ok(found);
        }
        let found = self
            .api
            .get_opt(name)
            .await
            .map_err(|e| {
                Problem::new(
                    Reason::ApiError,
                    format!("reading {what}Secret {namespace}/{name}: {e}"),
                )
            })?
            .ok_or_else(|| {
                Problem::new(
                    missing,
                    format!("{what}Secret {namespace}/{name} not found"),
                )
            })?;
        if let Some(cache) = &self.cache {
            cache.put(namespace, &found);
        }
        Ok(found)
    }

    /// One key of a Secret as text (a credential, a CA bundle).
    pub async fn text(
        &self,
        reference: &SecretKeySelector,
        missing: Reason,
    ) -> Result<String, Problem> {
        let secret = self.read(&reference.name, missing, "").await?;
        text(&secret, &reference.key, missing)
    }
}

/// One key of a Secret as text: an absent or empty key and non-UTF-8 bytes are `missing`.
pub fn text(secret: &Secret, key: &str, missing: Reason) -> Result<String, Problem> {
    let (namespace, name) = (
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default(),
    );
    let value = secret::value(secret, key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Problem::new(
                missing,
                format!("Secret {namespace}/{name} has no key {key:?}"),
            )
        })?;
    String::from_utf8(value.to_vec()).map_err(|_| {
        Problem::new(
            missing,
            format!("Secret {namespace}/{name} key {key:?} is not text"),
        )
    })
}

/// Label marking pending-request Secrets (they are not `certsmith.dev/managed`, so writing one
/// does not wake the Certificate's reconciler).
pub const PENDING_LABEL: &str = "certsmith.dev/pending";
/// Every pending-request Secret's name ends so; no Certificate may use such a secretName.
pub const PENDING_SECRET_SUFFIX: &str = "-certsmith-pending";

/// A stored request: the backend's own fields (annotations, under `certsmith.dev/`), the key
/// and the CSR, and the version it was read or written at.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PendingRecord {
    pub fields: BTreeMap<String, String>,
    pub key_pem: String,
    pub csr_pem: String,
    /// The stored object's resourceVersion and UID (None before it is stored).
    pub version: Option<String>,
    pub uid: Option<String>,
}

impl std::fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecord")
            .field("fields", &self.fields)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Where one Certificate's pending request lives. Every write asks the leader guard first and
/// is conditional on the version read, so a replica that lost its lease cannot touch a request
/// another replica made.
pub struct PendingStore {
    api: Api<Secret>,
    certificate: Certificate,
    leading: Guard,
}

impl PendingStore {
    pub fn new(client: kube::Client, certificate: &Certificate, leading: Guard) -> Self {
        let namespace = certificate.namespace().unwrap_or_default();
        PendingStore {
            api: Api::namespaced(client, &namespace),
            certificate: certificate.clone(),
            leading,
        }
    }

    /// The pending Secret's name for this Certificate.
    pub fn name(&self) -> String {
        pending_secret_name(&self.certificate.name_any())
    }

    fn api_error(&self, doing: &str, e: kube::Error) -> Problem {
        Problem::new(
            Reason::ApiError,
            format!("{doing} the pending request {}: {e}", self.name()),
        )
    }

    fn ensure_leading(&self) -> Result<(), Problem> {
        if self.leading.is_leading() {
            Ok(())
        } else {
            Err(Problem::new(
                Reason::ApiError,
                "this replica is no longer the leader; the pending request is left alone",
            ))
        }
    }

    /// The stored request, if any. A Secret of that name that is not a pending request is
    /// someone else's: refused, never replaced.
    pub async fn load(&self) -> Result<Option<PendingRecord>, Problem> {
        let name = self.name();
        let Some(secret) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| self.api_error("reading", e))?
        else {
            return Ok(None);
        };
        if !is_pending_secret(&secret) {
            return Err(Problem::new(
                Reason::SecretConflict,
                format!("Secret {name:?} exists and is not a certsmith pending-request Secret"),
            ));
        }
        Ok(Some(record_of(&secret)))
    }

    /// Store a new request (refused if one exists by now).
    pub async fn create(&self, record: &PendingRecord) -> Result<PendingRecord, Problem> {
        self.ensure_leading()?;
        let written = self
            .api
            .create(&PostParams::default(), &self.build(record))
            .await
            .map_err(|e| self.api_error("storing", e))?;
        Ok(record_of(&written))
    }

    /// Add `fields` to the stored request, only onto the version that was read.
    pub async fn annotate(
        &self,
        record: &PendingRecord,
        fields: BTreeMap<String, String>,
    ) -> Result<PendingRecord, Problem> {
        self.ensure_leading()?;
        let body = serde_json::json!({"metadata": {
            "resourceVersion": record.version,
            "annotations": fields,
        }});
        let written = self
            .api
            .patch(&self.name(), &PatchParams::default(), &Patch::Merge(body))
            .await
            .map_err(|e| self.api_error("updating", e))?;
        Ok(record_of(&written))
    }

    /// Delete the stored request that was read (its UID: never another object that took the
    /// name since; already gone is fine).
    pub async fn discard(&self, record: &PendingRecord) -> Result<(), Problem> {
        self.ensure_leading()?;
        let mut read = Secret::default();
        read.metadata.name = Some(self.name());
        read.metadata.uid = record.uid.clone();
        secret::delete_exactly(&self.api, &read)
            .await
            .map_err(|e| self.api_error("deleting", e))
    }

    /// Delete a leftover request, if there is one (it holds a private key). Returns whether
    /// one was deleted.
    pub async fn discard_leftover(&self) -> Result<bool, Problem> {
        match self.load().await {
            Ok(Some(record)) => self.discard(&record).await.map(|()| true),
            Ok(None)
            | Err(Problem {
                reason: Reason::SecretConflict,
                ..
            }) => Ok(false),
            Err(p) => Err(p),
        }
    }

    /// The pending Secret for `record` (pure), owned by the Certificate so that deleting the
    /// Certificate removes it.
    fn build(&self, record: &PendingRecord) -> Secret {
        let cert = &self.certificate;
        let mut annotations = record.fields.clone();
        annotations.insert(secret::CERTIFICATE_ANNOTATION.into(), cert.name_any());
        let data = [
            ("tls.key", record.key_pem.as_bytes()),
            ("tls.csr", record.csr_pem.as_bytes()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
        .collect();
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name()),
                namespace: cert.namespace(),
                labels: Some([(PENDING_LABEL.to_string(), "true".to_string())].into()),
                annotations: Some(annotations),
                owner_references: cert.controller_owner_ref(&()).map(|r| vec![r]),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        }
    }
}

/// Whether a Secret is a pending-request Secret (and so ours to replace or delete).
pub fn is_pending_secret(secret: &Secret) -> bool {
    secret.labels().get(PENDING_LABEL).map(String::as_str) == Some("true")
}

/// Read a stored request back.
fn record_of(secret: &Secret) -> PendingRecord {
    let text = |k: &str| {
        secret::value(secret, k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut fields = secret.annotations().clone();
    fields.remove(secret::CERTIFICATE_ANNOTATION);
    PendingRecord {
        fields,
        key_pem: text("tls.key"),
        csr_pem: text("tls.csr"),
        version: secret.metadata.resource_version.clone(),
        uid: secret.metadata.uid.clone(),
    }
}

/// Name of the pending Secret for a Certificate (kept within the 253-character limit).
pub fn pending_secret_name(certificate: &str) -> String {
    const SUFFIX: &str = PENDING_SECRET_SUFFIX;
    if certificate.len() + SUFFIX.len() <= 253 {
        return format!("{certificate}{SUFFIX}");
    }
    let digest: String = Sha256::digest(certificate.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = 253 - SUFFIX.len() - digest.len() - 1;
    format!("{}-{digest}{SUFFIX}", &certificate[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_names_stay_within_the_limit() {
        assert_eq!(pending_secret_name("api"), "api-certsmith-pending");
        let long = "a".repeat(253);
        let name = pending_secret_name(&long);
        assert!(name.len() <= 253 && name.ends_with(PENDING_SECRET_SUFFIX));
        assert_ne!(pending_secret_name(&"b".repeat(253)), name);
    }

    #[test]
    fn a_stored_record_reads_back_without_the_owner_annotation() {
        let mut secret = Secret::default();
        secret.metadata.annotations = Some(
            [
                (
                    secret::CERTIFICATE_ANNOTATION.to_string(),
                    "api".to_string(),
                ),
                ("certsmith.dev/revision".to_string(), "3".to_string()),
            ]
            .into(),
        );
        secret.metadata.resource_version = Some("42".into());
        secret.data = Some([("tls.csr".to_string(), ByteString(b"csr".to_vec()))].into());
        let record = record_of(&secret);
        assert_eq!(record.fields.len(), 1);
        assert_eq!(record.csr_pem, "csr");
        assert_eq!(record.version.as_deref(), Some("42"));
        assert!(!format!("{record:?}").contains("tls.key"));
    }
}
