//! `certsmith revoke`: re-issue a Certificate with a new key now, then revoke the certificate
//! it replaced at the issuer. The CLI has only the user's credentials, so it asks the
//! operator through annotations (the renew request and a revoke request of the same value,
//! with the reason) and waits until the Certificate's status records the revocation.

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::api::conditions::{self, RECONCILING};
use crate::api::{
    Certificate, CertificateStatus, RENEW_ANNOTATION, REVOKE_ANNOTATION, REVOKE_REASON_ANNOTATION,
    RevocationReason,
};

use super::{CliError, explain};

/// How often the status is read while waiting.
const POLL: Duration = Duration::from_secs(1);

/// Where a revoke request stands, from the Certificate's status (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The re-issuance or the revocation is under way; a failure being retried, if any.
    Waiting(Option<String>),
    /// The issuer recorded the revocation of `serial` at `at`.
    Revoked { serial: String, at: String },
    /// The request was handled but `serial` is not revoked (the issuer cannot revoke, or it
    /// had expired).
    NotRevoked { serial: String, why: String },
}

/// Where the request `value` to revoke `serial` stands.
pub fn progress(status: &CertificateStatus, value: &str, serial: &str) -> Progress {
    let failing = conditions::find(&status.conditions, RECONCILING)
        .map(|c| format!("{}: {}", c.reason, c.message));
    if status.last_revoke_request.as_deref() != Some(value) {
        return Progress::Waiting(failing);
    }
    match status.history.iter().find(|e| e.serial_number == serial) {
        Some(e) if e.revoked_at.is_some() => Progress::Revoked {
            serial: serial.to_string(),
            at: e.revoked_at.clone().unwrap_or_default(),
        },
        Some(e) if e.revocation_requested.is_some() => Progress::Waiting(failing),
        Some(_) => Progress::NotRevoked {
            serial: serial.to_string(),
            why: "the issuer cannot revoke it or it has expired (see `certsmith status` and the Certificate's Events)".into(),
        },
        None => Progress::NotRevoked {
            serial: serial.to_string(),
            why: "it is no longer in the Certificate's history".into(),
        },
    }
}

pub async fn revoke(
    client: kube::Client,
    namespace: &str,
    name: &str,
    reason: RevocationReason,
    timeout: Duration,
) -> Result<String, CliError> {
    let api: Api<Certificate> = Api::namespaced(client, namespace);
    let what = format!("Certificate {namespace}/{name}");
    let cert = api.get(name).await.map_err(|e| explain(e, &what))?;
    let serial = cert
        .status
        .as_ref()
        .and_then(|s| s.serial_number.clone())
        .ok_or_else(|| CliError(format!("{what} has no certificate yet: nothing to revoke")))?;
    let value = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {
        RENEW_ANNOTATION: value,
        REVOKE_ANNOTATION: value,
        REVOKE_REASON_ANNOTATION: reason.as_str(),
    }}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| explain(e, &what))?;
    eprintln!("re-issuing {what} with a new key, then revoking serial {serial} ({reason})...");
    let started = Instant::now();
    let mut last_failure = None;
    loop {
        let cert = api.get(name).await.map_err(|e| explain(e, &what))?;
        let status = cert.status.unwrap_or_default();
        match progress(&status, &value, &serial) {
            Progress::Revoked { serial: old, at } => {
                let new = status.serial_number.unwrap_or_default();
                return Ok(format!(
                    "revoked serial {old} at {at} ({reason}); {what} now holds serial {new}\n"
                ));
            }
            Progress::NotRevoked { serial, why } => {
                return Err(CliError(format!(
                    "{what} was re-issued but serial {serial} was not revoked: {why}"
                )));
            }
            Progress::Waiting(failure) => {
                if failure.is_some() && failure != last_failure {
                    eprintln!("  retrying: {}", failure.clone().unwrap_or_default());
                }
                last_failure = failure;
            }
        }
        if started.elapsed() >= timeout {
            let detail = last_failure.map(|f| format!(": {f}")).unwrap_or_default();
            return Err(CliError(format!(
                "timed out after {}s waiting for the revocation of serial {serial}{detail} (the operator keeps trying; see `certsmith status -n {namespace} {name}`)",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IssuedCertificate;

    fn entry(serial: &str) -> IssuedCertificate {
        IssuedCertificate {
            serial_number: serial.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_request_is_done_once_its_serial_is_revoked() {
        let mut s = CertificateStatus::default();
        assert_eq!(progress(&s, "v", "01"), Progress::Waiting(None));
        s.last_revoke_request = Some("v".into());
        s.history = vec![entry("02"), entry("01")];
        s.history[1].revocation_requested = Some(RevocationReason::KeyCompromise);
        assert_eq!(progress(&s, "v", "01"), Progress::Waiting(None));
        s.history[1].revocation_requested = None;
        s.history[1].revoked_at = Some("t".into());
        assert_eq!(
            progress(&s, "v", "01"),
            Progress::Revoked {
                serial: "01".into(),
                at: "t".into()
            }
        );
        s.history[1].revoked_at = None;
        assert!(matches!(
            progress(&s, "v", "01"),
            Progress::NotRevoked { .. }
        ));
        // An older request handled says nothing about this one.
        assert_eq!(progress(&s, "w", "01"), Progress::Waiting(None));
    }
}
