//! A request in flight at an asynchronous CA (AWS Private CA), kept in its own Secret
//! `<certificate>-certsmith-pending` so that a restart resumes it instead of issuing again.
//!
//! Order of writes, and what a crash at each point leaves:
//! 1. the pending Secret is created with the new key, the CSR and every request parameter;
//!    a crash here costs nothing (no request was made);
//! 2. IssueCertificate is called with an idempotency token derived from the Certificate's UID,
//!    the revision being issued and the CSR; a crash before the ARN is stored repeats exactly
//!    the same request, which AWS answers with the same certificate within its five-minute
//!    idempotency window; after the window the request is replaced by a new one (new key,
//!    new token);
//! 3. the certificate ARN is stored; from here on only GetCertificate is called;
//! 4. the TLS Secret is written with the new key and chain, then the pending Secret deleted.
//!
//! The TLS Secret is never touched before step 4, so a workload keeps its valid certificate
//! whatever happens in between. Pure: building, reading and scheduling; I/O lives in `mod.rs`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::api::{Certificate, CertificateSpec};
use crate::secret::CERTIFICATE_ANNOTATION;

/// Label marking pending-request Secrets (they are not `certsmith.dev/managed`, so writing one
/// does not wake the Certificate's reconciler).
pub const PENDING_LABEL: &str = "certsmith.dev/pending";
const UID: &str = "certsmith.dev/certificate-uid";
const FINGERPRINT: &str = "certsmith.dev/request-fingerprint";
const REVISION: &str = "certsmith.dev/revision";
const CA_ARN: &str = "certsmith.dev/ca-arn";
const TEMPLATE: &str = "certsmith.dev/template-arn";
const ALGORITHM: &str = "certsmith.dev/signing-algorithm";
const NOT_AFTER: &str = "certsmith.dev/requested-not-after";
const TOKEN: &str = "certsmith.dev/idempotency-token";
pub const CERTIFICATE_ARN: &str = "certsmith.dev/certificate-arn";
pub const SUBMITTED_AT: &str = "certsmith.dev/submitted-at";
const CREATED_AT: &str = "certsmith.dev/created-at";

/// Wait this long after submitting before the first GetCertificate (AWS rarely has the
/// certificate sooner; the clock counts whole seconds, so this is 1-2 s), then poll at half
/// the time elapsed, between these bounds.
pub const FIRST_POLL_SECS: i64 = 2;
pub const MAX_POLL_SECS: i64 = 30;

/// Everything needed to (re)send one IssueCertificate request and to finish the issuance.
#[derive(Clone, PartialEq, Eq)]
pub struct Pending {
    pub certificate_uid: String,
    /// [`request_fingerprint`] of the spec the request was made for.
    pub fingerprint: String,
    /// The revision this request will become.
    pub revision: i64,
    pub ca_arn: String,
    pub key_pem: String,
    pub csr_pem: String,
    pub template_arn: String,
    pub signing_algorithm: String,
    /// Unix seconds.
    pub not_after: i64,
    pub idempotency_token: String,
    pub created_at: i64,
    /// Set once IssueCertificate answered.
    pub certificate_arn: Option<String>,
    pub submitted_at: Option<i64>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("revision", &self.revision)
            .field("ca_arn", &self.ca_arn)
            .field("certificate_arn", &self.certificate_arn)
            .finish_non_exhaustive()
    }
}

/// Every pending-request Secret's name ends so; no Certificate may use such a secretName.
pub const SECRET_SUFFIX: &str = "-certsmith-pending";

/// Name of the pending Secret for a Certificate (kept within the 253-character limit).
pub fn secret_name(certificate: &str) -> String {
    const SUFFIX: &str = SECRET_SUFFIX;
    if certificate.len() + SUFFIX.len() <= 253 {
        return format!("{certificate}{SUFFIX}");
    }
    let digest = hex(&Sha256::digest(certificate.as_bytes())[..4]);
    let keep = 253 - SUFFIX.len() - digest.len() - 1;
    format!("{}-{digest}{SUFFIX}", &certificate[..keep])
}

/// The IdempotencyToken: the same for every retry of one request (Certificate, revision and
/// CSR), different for the next revision or a new key. AWS allows at most 36 characters.
pub fn idempotency_token(certificate_uid: &str, revision: i64, csr_pem: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(certificate_uid.as_bytes());
    hasher.update([0]);
    hasher.update(revision.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(csr_pem.as_bytes());
    hex(&hasher.finalize()[..16])
}

/// How long an unacknowledged request (sent, but its ARN never recorded) is resent as it is:
/// AWS Private CA honours an IssueCertificate IdempotencyToken for five minutes. Counted from
/// `created_at`, written just before the first send: AWS opens its window when it first
/// receives the request, which cannot be earlier, so this window never outlasts AWS's. After
/// it a resend would be issued as a second certificate for the same key, so the request is
/// replaced by a new one (new key, new token).
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 5 * 60;
/// How long a submitted request is polled before it is given up: AWS issues in seconds, and
/// a certificate fetched after this long would be old.
pub const SUBMITTED_TTL_SECS: i64 = 24 * 3600;

/// What in a spec shapes the request (names, subject, key, lifetime, usages, CA flag, issuer).
/// Edits to anything else (renewBefore, secretTemplate, ...) keep a request in flight.
pub fn request_fingerprint(spec: &CertificateSpec) -> String {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for field in [
            "secretName",
            "secretTemplate",
            "renewBefore",
            "renewBeforePercentage",
        ] {
            map.remove(field);
        }
    }
    hex(&Sha256::digest(value.to_string().as_bytes())[..16])
}

/// Whether a stored request still serves this Certificate at `now`: same object, same
/// request-shaping spec, same revision target, same CA, and not too old. Anything else is
/// abandoned.
pub fn still_valid(
    pending: &Pending,
    cert: &Certificate,
    revision: i64,
    ca_arn: &str,
    now: i64,
) -> bool {
    let fresh = match pending.submitted_at {
        Some(at) => now - at < SUBMITTED_TTL_SECS,
        None => now - pending.created_at < IDEMPOTENCY_WINDOW_SECS,
    };
    Some(pending.certificate_uid.as_str()) == cert.metadata.uid.as_deref()
        && pending.fingerprint == request_fingerprint(&cert.spec)
        && pending.revision == revision
        && pending.ca_arn == ca_arn
        && fresh
}

/// When to ask AWS next about a request submitted at `submitted_at`, seen at `now`: `None`
/// when a poll is due now.
pub fn poll_not_before(submitted_at: i64, now: i64) -> Option<i64> {
    let first = submitted_at + FIRST_POLL_SECS;
    (now < first).then_some(first)
}

/// After a poll at `now` found the request still in progress: when to poll again.
pub fn next_poll(submitted_at: i64, now: i64) -> i64 {
    let elapsed = (now - submitted_at).max(0);
    now + (elapsed / 2).clamp(FIRST_POLL_SECS, MAX_POLL_SECS)
}

/// The pending Secret for `pending` (pure), owned by the Certificate so that deleting the
/// Certificate removes it.
pub fn build(cert: &Certificate, pending: &Pending) -> Secret {
    let mut annotations: BTreeMap<String, String> = [
        (CERTIFICATE_ANNOTATION, cert.name_any()),
        (UID, pending.certificate_uid.clone()),
        (FINGERPRINT, pending.fingerprint.clone()),
        (REVISION, pending.revision.to_string()),
        (CA_ARN, pending.ca_arn.clone()),
        (TEMPLATE, pending.template_arn.clone()),
        (ALGORITHM, pending.signing_algorithm.clone()),
        (NOT_AFTER, pending.not_after.to_string()),
        (TOKEN, pending.idempotency_token.clone()),
        (CREATED_AT, pending.created_at.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let (Some(arn), Some(at)) = (&pending.certificate_arn, pending.submitted_at) {
        annotations.extend(submitted_annotations(arn, at));
    }
    let data = [
        ("tls.key", pending.key_pem.as_bytes()),
        ("tls.csr", pending.csr_pem.as_bytes()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&cert.name_any())),
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

/// The annotations recording a submitted request.
pub fn submitted_annotations(certificate_arn: &str, at: i64) -> BTreeMap<String, String> {
    [
        (CERTIFICATE_ARN.to_string(), certificate_arn.to_string()),
        (SUBMITTED_AT.to_string(), at.to_string()),
    ]
    .into()
}

/// Whether a Secret is a pending-request Secret (and so ours to replace or delete).
pub fn is_pending_secret(secret: &Secret) -> bool {
    secret.labels().get(PENDING_LABEL).map(String::as_str) == Some("true")
}

/// Read a pending Secret back. Errors name the missing or unreadable field.
pub fn parse(secret: &Secret) -> Result<Pending, String> {
    let annotations = secret.annotations();
    let text = |k: &str| {
        annotations
            .get(k)
            .cloned()
            .ok_or_else(|| format!("annotation {k} missing"))
    };
    let number = |k: &str| {
        text(k)?
            .parse::<i64>()
            .map_err(|_| format!("annotation {k} is not a number"))
    };
    let data = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .ok_or_else(|| format!("data {k} missing"))
    };
    let certificate_arn = annotations.get(CERTIFICATE_ARN).cloned();
    let submitted_at = match certificate_arn {
        Some(_) => Some(number(SUBMITTED_AT)?),
        None => None,
    };
    Ok(Pending {
        certificate_uid: text(UID)?,
        fingerprint: text(FINGERPRINT)?,
        revision: number(REVISION)?,
        ca_arn: text(CA_ARN)?,
        key_pem: data("tls.key")?,
        csr_pem: data("tls.csr")?,
        template_arn: text(TEMPLATE)?,
        signing_algorithm: text(ALGORITHM)?,
        not_after: number(NOT_AFTER)?,
        idempotency_token: text(TOKEN)?,
        created_at: number(CREATED_AT)?,
        certificate_arn,
        submitted_at,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn cert() -> Certificate {
        let spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "web-tls",
            "dnsNames": ["web.apps.svc"],
            "issuerRef": {"name": "pca", "kind": "Issuer"},
        }))
        .unwrap();
        let mut c = Certificate::new("web", spec);
        c.metadata.namespace = Some("apps".into());
        c.metadata.uid = Some("uid-1".into());
        c.metadata.generation = Some(2);
        c
    }

    fn pending() -> Pending {
        Pending {
            certificate_uid: "uid-1".into(),
            fingerprint: request_fingerprint(&cert().spec),
            revision: 4,
            ca_arn: "arn:ca".into(),
            key_pem: "KEY".into(),
            csr_pem: "CSR".into(),
            template_arn: "arn:aws:acm-pca:::template/EndEntityCertificate/V1".into(),
            signing_algorithm: "SHA256WITHECDSA".into(),
            not_after: 5000,
            idempotency_token: idempotency_token("uid-1", 4, "CSR"),
            created_at: 100,
            certificate_arn: None,
            submitted_at: None,
        }
    }

    #[test]
    fn a_pending_secret_reads_back_as_written() {
        let p = pending();
        let secret = build(&cert(), &p);
        assert!(is_pending_secret(&secret));
        assert_eq!(parse(&secret), Ok(p.clone()));
        assert_eq!(
            secret
                .metadata
                .owner_references
                .as_ref()
                .map(|r| r[0].uid.as_str()),
            Some("uid-1")
        );
        let submitted = Pending {
            certificate_arn: Some("arn:cert".into()),
            submitted_at: Some(120),
            ..p
        };
        assert_eq!(parse(&build(&cert(), &submitted)), Ok(submitted));
    }

    #[test]
    fn a_damaged_pending_secret_is_reported_not_trusted() {
        let mut secret = build(&cert(), &pending());
        if let Some(a) = secret.metadata.annotations.as_mut() {
            a.remove(TOKEN);
        }
        assert!(parse(&secret).unwrap_err().contains("idempotency-token"));
    }

    #[test]
    fn the_token_is_stable_per_request_and_fits_aws() {
        let t = idempotency_token("uid-1", 4, "CSR");
        assert_eq!(t, idempotency_token("uid-1", 4, "CSR"));
        assert_ne!(t, idempotency_token("uid-1", 5, "CSR"));
        assert_ne!(t, idempotency_token("uid-1", 4, "CSR2"));
        assert_ne!(t, idempotency_token("uid-2", 4, "CSR"));
        assert!(t.len() <= 36);
    }

    #[test]
    fn a_request_for_another_spec_revision_ca_or_age_is_abandoned() {
        let (c, p) = (cert(), pending());
        assert!(still_valid(&p, &c, 4, "arn:ca", 200));
        assert!(!still_valid(&p, &c, 5, "arn:ca", 200));
        assert!(!still_valid(&p, &c, 4, "arn:other", 200));
        let mut renamed = c.clone();
        renamed.spec.dns_names.push("other.apps.svc".into());
        assert!(!still_valid(&p, &renamed, 4, "arn:ca", 200));
        let mut recreated = c.clone();
        recreated.metadata.uid = Some("uid-2".into());
        assert!(!still_valid(&p, &recreated, 4, "arn:ca", 200));
        // Edits that do not shape the request keep it (no second certificate is billed).
        let mut tuned = c.clone();
        tuned.spec.renew_before = Some("1h".into());
        tuned.metadata.generation = Some(3);
        assert!(still_valid(&p, &tuned, 4, "arn:ca", 200));
        // Too old: unsubmitted after the idempotency window, submitted after a day.
        assert!(!still_valid(
            &p,
            &c,
            4,
            "arn:ca",
            100 + IDEMPOTENCY_WINDOW_SECS
        ));
        let submitted = Pending {
            certificate_arn: Some("arn:cert".into()),
            submitted_at: Some(150),
            ..p
        };
        assert!(still_valid(
            &submitted,
            &c,
            4,
            "arn:ca",
            100 + IDEMPOTENCY_WINDOW_SECS
        ));
        assert!(!still_valid(
            &submitted,
            &c,
            4,
            "arn:ca",
            150 + SUBMITTED_TTL_SECS
        ));
    }

    /// AWS honours an IdempotencyToken for five minutes: within them the unacknowledged
    /// request is resent as it is, after them it is replaced (new key, new token).
    #[test]
    fn an_unacknowledged_request_is_resent_only_within_the_idempotency_window() {
        let (c, p) = (cert(), pending());
        let sent = p.created_at;
        assert!(still_valid(&p, &c, 4, "arn:ca", sent + 4 * 60 + 59));
        assert!(!still_valid(&p, &c, 4, "arn:ca", sent + 5 * 60));
    }

    #[test]
    fn polling_waits_first_then_backs_off_to_a_cap() {
        assert_eq!(poll_not_before(100, 100), Some(102));
        assert_eq!(poll_not_before(100, 101), Some(102));
        assert_eq!(poll_not_before(100, 102), None);
        assert_eq!(next_poll(100, 102), 104);
        assert_eq!(next_poll(100, 120), 130);
        assert_eq!(next_poll(100, 1000), 1030);
    }

    #[test]
    fn long_names_stay_within_the_limit() {
        assert_eq!(secret_name("web"), "web-certsmith-pending");
        let long = "a".repeat(250);
        let name = secret_name(&long);
        assert!(name.len() <= 253 && name.ends_with("-certsmith-pending"));
        assert_ne!(name, secret_name(&"a".repeat(249)));
    }
}
