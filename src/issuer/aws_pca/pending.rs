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
//! whatever happens in between. Pure: the request as stored fields, its validity and the poll
//! schedule; the controller's [`crate::issuer::PendingStore`] keeps it, `mod.rs` drives it.

use std::collections::BTreeMap;

use crate::api::CertificateSpec;
use crate::issuer::PendingRecord;

use crate::pki::request::fingerprint as request_fingerprint;

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

/// Whether a stored request still serves this Certificate at `now`: same object, same
/// request-shaping spec, same revision target, same CA, and not too old. Anything else is
/// abandoned.
pub fn still_valid(
    pending: &Pending,
    certificate_uid: &str,
    spec: &CertificateSpec,
    revision: i64,
    ca_arn: &str,
    now: i64,
) -> bool {
    let fresh = match pending.submitted_at {
        Some(at) => now - at < SUBMITTED_TTL_SECS,
        None => now - pending.created_at < IDEMPOTENCY_WINDOW_SECS,
    };
    pending.certificate_uid == certificate_uid
        && pending.fingerprint == request_fingerprint(spec)
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

impl Pending {
    /// The request as the pending store keeps it.
    pub fn to_record(&self) -> PendingRecord {
        let mut fields: BTreeMap<String, String> = [
            (UID, self.certificate_uid.clone()),
            (FINGERPRINT, self.fingerprint.clone()),
            (REVISION, self.revision.to_string()),
            (CA_ARN, self.ca_arn.clone()),
            (TEMPLATE, self.template_arn.clone()),
            (ALGORITHM, self.signing_algorithm.clone()),
            (NOT_AFTER, self.not_after.to_string()),
            (TOKEN, self.idempotency_token.clone()),
            (CREATED_AT, self.created_at.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let (Some(arn), Some(at)) = (&self.certificate_arn, self.submitted_at) {
            fields.extend(submitted_fields(arn, at));
        }
        PendingRecord {
            fields,
            key_pem: self.key_pem.clone(),
            csr_pem: self.csr_pem.clone(),
            version: None,
            uid: None,
        }
    }

    /// Read a stored request back. Errors name the missing or unreadable field.
    pub fn from_record(record: &PendingRecord) -> Result<Pending, String> {
        let text = |k: &str| {
            record
                .fields
                .get(k)
                .cloned()
                .ok_or_else(|| format!("annotation {k} missing"))
        };
        let number = |k: &str| {
            text(k)?
                .parse::<i64>()
                .map_err(|_| format!("annotation {k} is not a number"))
        };
        let data = |v: &str, k: &str| {
            Some(v.to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("data {k} missing"))
        };
        let certificate_arn = record.fields.get(CERTIFICATE_ARN).cloned();
        let submitted_at = match certificate_arn {
            Some(_) => Some(number(SUBMITTED_AT)?),
            None => None,
        };
        Ok(Pending {
            certificate_uid: text(UID)?,
            fingerprint: text(FINGERPRINT)?,
            revision: number(REVISION)?,
            ca_arn: text(CA_ARN)?,
            key_pem: data(&record.key_pem, "tls.key")?,
            csr_pem: data(&record.csr_pem, "tls.csr")?,
            template_arn: text(TEMPLATE)?,
            signing_algorithm: text(ALGORITHM)?,
            not_after: number(NOT_AFTER)?,
            idempotency_token: text(TOKEN)?,
            created_at: number(CREATED_AT)?,
            certificate_arn,
            submitted_at,
        })
    }
}

/// The fields recording a submitted request.
pub fn submitted_fields(certificate_arn: &str, at: i64) -> BTreeMap<String, String> {
    [
        (CERTIFICATE_ARN.to_string(), certificate_arn.to_string()),
        (SUBMITTED_AT.to_string(), at.to_string()),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Certificate;
    use crate::issuer::aws_pca::request::idempotency_token;

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

    fn uid(c: &Certificate) -> &str {
        c.metadata.uid.as_deref().unwrap_or_default()
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
    fn a_pending_request_reads_back_as_stored() {
        let p = pending();
        assert_eq!(Pending::from_record(&p.to_record()), Ok(p.clone()));
        let submitted = Pending {
            certificate_arn: Some("arn:cert".into()),
            submitted_at: Some(120),
            ..p
        };
        assert_eq!(Pending::from_record(&submitted.to_record()), Ok(submitted));
    }

    #[test]
    fn a_damaged_pending_request_is_reported_not_trusted() {
        let mut record = pending().to_record();
        record.fields.remove(TOKEN);
        assert!(
            Pending::from_record(&record)
                .unwrap_err()
                .contains("idempotency-token")
        );
        let mut record = pending().to_record();
        record.key_pem.clear();
        assert!(
            Pending::from_record(&record)
                .unwrap_err()
                .contains("tls.key")
        );
    }

    #[test]
    fn a_request_for_another_spec_revision_ca_or_age_is_abandoned() {
        let (c, p) = (cert(), pending());
        assert!(still_valid(&p, uid(&c), &c.spec, 4, "arn:ca", 200));
        assert!(!still_valid(&p, uid(&c), &c.spec, 5, "arn:ca", 200));
        assert!(!still_valid(&p, uid(&c), &c.spec, 4, "arn:other", 200));
        let mut renamed = c.clone();
        renamed.spec.dns_names.push("other.apps.svc".into());
        assert!(!still_valid(
            &p,
            uid(&renamed),
            &renamed.spec,
            4,
            "arn:ca",
            200
        ));
        let mut recreated = c.clone();
        recreated.metadata.uid = Some("uid-2".into());
        assert!(!still_valid(
            &p,
            uid(&recreated),
            &recreated.spec,
            4,
            "arn:ca",
            200
        ));
        // Edits that do not shape the request keep it (no second certificate is billed).
        let mut tuned = c.clone();
        tuned.spec.renew_before = Some("1h".into());
        tuned.metadata.generation = Some(3);
        assert!(still_valid(&p, uid(&tuned), &tuned.spec, 4, "arn:ca", 200));
        // Too old: unsubmitted after the idempotency window, submitted after a day.
        assert!(!still_valid(
            &p,
            uid(&c),
            &c.spec,
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
            uid(&c),
            &c.spec,
            4,
            "arn:ca",
            100 + IDEMPOTENCY_WINDOW_SECS
        ));
        assert!(!still_valid(
            &submitted,
            uid(&c),
            &c.spec,
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
        assert!(still_valid(
            &p,
            uid(&c),
            &c.spec,
            4,
            "arn:ca",
            sent + 4 * 60 + 59
        ));
        assert!(!still_valid(
            &p,
            uid(&c),
            &c.spec,
            4,
            "arn:ca",
            sent + 5 * 60
        ));
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
}
