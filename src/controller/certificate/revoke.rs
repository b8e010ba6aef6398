//! Revocations (I/O): the certificates of a Certificate's history marked for revocation are
//! revoked at the issuer that signed them, and what happens is reported (an Event per
//! certificate, the revocation metrics). What to revoke is decided in `history` (pure);
//! here: when a `certsmith revoke` request is due, the calls, and the finalizer that holds a
//! `revokeOnDelete` Certificate's deletion until its certificates are revoked.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use crate::api::{
    Certificate, CertificateStatus, IssuedCertificate, RENEW_ANNOTATION, REVOKE_ANNOTATION,
    REVOKE_REASON_ANNOTATION, RevocationReason,
};
use crate::issuer::Revocation;
use crate::reason::{Problem, Reason};

use super::decide::Current;
use super::{Context, Error, history, report};

/// The finalizer on a Certificate with `revokeOnDelete`.
pub const FINALIZER: &str = "certsmith.dev/revoke-on-delete";
/// How soon a failed revocation is tried again.
pub const RETRY: Duration = Duration::from_secs(15);

/// The `certsmith revoke` request to act on now, if any: a new request value whose
/// re-issuance is done (the Secret holds the certificate issued for it, or a later renewal
/// request replaced it). Returns the value and the reason.
pub fn due_request<'a>(
    cert: &'a Certificate,
    prev: &CertificateStatus,
    current: &Current,
) -> Option<(&'a str, RevocationReason)> {
    let annotations = cert.annotations();
    let request = annotations.get(REVOKE_ANNOTATION)?.as_str();
    if prev.last_revoke_request.as_deref() == Some(request) {
        return None;
    }
    let reissued = current.renew_request.as_deref() == Some(request)
        || annotations.get(RENEW_ANNOTATION).map(String::as_str) != Some(request);
    if !reissued {
        return None;
    }
    let reason = annotations
        .get(REVOKE_REASON_ANNOTATION)
        .and_then(|r| RevocationReason::parse(r))
        .unwrap_or(RevocationReason::Unspecified);
    Some((request, reason))
}

/// Revoke every entry of `history` marked for revocation, at the issuer that signed it.
/// Entries the issuer recorded are marked revoked; an issuer that cannot revoke at all
/// (self-signed) clears the request. Returns the failures (each also an Event).
pub async fn revoke_pending(
    ctx: &Context,
    cert: &Certificate,
    history: &mut [IssuedCertificate],
    now: i64,
) -> Vec<Problem> {
    let namespace = cert.namespace().unwrap_or_default();
    let identity = format!("{namespace}/{}", cert.name_any());
    let pending: Vec<(usize, IssuedCertificate)> = history::pending(history)
        .map(|(i, e)| (i, e.clone()))
        .collect();
    let mut failures = Vec::new();
    for (index, entry) in pending {
        let Some(reason) = entry.revocation_requested else {
            continue;
        };
        let result = revoke_one(ctx, &namespace, &entry, reason, now).await;
        match result {
            Ok(backend) => {
                ctx.metrics.revocation(backend, "success");
                history::mark_revoked(history, index, now);
                let note = Problem::new(
                    Reason::Revoked,
                    format!(
                        "Revoked serial {} at {} ({reason})",
                        entry.serial_number, entry.issuer
                    ),
                );
                info!(certificate = %identity, serial = %entry.serial_number, "{}", note.message);
                report::publish(ctx, cert, EventType::Normal, &note).await;
            }
            Err((backend, problem)) => {
                let unsupported = problem.reason == Reason::RevocationNotSupported;
                ctx.metrics.revocation(
                    backend,
                    if unsupported {
                        "not_supported"
                    } else {
                        "failure"
                    },
                );
                let problem = Problem::new(
                    problem.reason,
                    format!(
                        "revoking serial {} at {}: {}",
                        entry.serial_number, entry.issuer, problem.message
                    ),
                );
                warn!(certificate = %identity, reason = %problem.reason, "{}", problem.message);
                report::publish(ctx, cert, EventType::Warning, &problem).await;
                if unsupported {
                    // Nothing will ever revoke it: do not ask again.
                    if let Some(e) = history.get_mut(index) {
                        e.revocation_requested = None;
                    }
                }
                failures.push(problem);
            }
        }
    }
    failures
}

/// One revocation; the backend type (a metric label) with the outcome.
async fn revoke_one(
    ctx: &Context,
    namespace: &str,
    entry: &IssuedCertificate,
    reason: RevocationReason,
    now: i64,
) -> Result<&'static str, (&'static str, Problem)> {
    let id = history::issuer_of(entry, namespace).ok_or_else(|| {
        (
            "unknown",
            Problem::new(
                Reason::RevocationFailed,
                format!("the history names no issuer ({:?})", entry.issuer),
            ),
        )
    })?;
    let backend = crate::controller::issuer::backend(ctx, &id)
        .await
        .map_err(|p| {
            (
                "unknown",
                Problem::new(
                    Reason::RevocationFailed,
                    format!("{}: {}", p.reason, p.message),
                ),
            )
        })?;
    let label = backend.backend_type().as_str();
    let is_ca = backend.backend_type() == crate::issuer::BackendType::Ca;
    if !ctx.is_leading() {
        return Err((
            label,
            Problem::new(Reason::RevocationFailed, "this replica is not the leader"),
        ));
    }
    backend
        .revoke(&Revocation {
            serial: &entry.serial_number,
            reason,
            ca_fingerprint: entry.ca_fingerprint.as_deref(),
            now,
        })
        .await
        .map_err(|p| (label, p))?;
    if is_ca {
        // The issuer's status shows its CRL: look at it again.
        ctx.shared.rechecks.request(&id);
    }
    Ok(label)
}

/// Keep the finalizer in step with `revokeOnDelete`, and on deletion revoke every
/// still-valid certificate before letting the Certificate go. Some(action) when the reconcile
/// ends here.
pub async fn on_delete(ctx: &Context, cert: &Certificate) -> Result<Option<Action>, Error> {
    let has = cert.finalizers().iter().any(|f| f == FINALIZER);
    let deleting = cert.metadata.deletion_timestamp.is_some();
    if !deleting {
        let want = history::revoke_on_delete(cert);
        if want != has {
            set_finalizer(ctx, cert, want).await?;
        }
        return Ok(None);
    }
    if !has {
        return Ok(None);
    }
    let now = ctx.now();
    let prev = cert.status.clone().unwrap_or_default();
    let mut next = prev.clone();
    // The certificate in the Secret, when the history does not have it (issued before
    // history was kept).
    if let (Some(serial), Some(not_before), Some(not_after)) =
        (&prev.serial_number, &prev.not_before, &prev.not_after)
        && !next.history.iter().any(|e| &e.serial_number == serial)
    {
        next.history.insert(
            0,
            IssuedCertificate {
                serial_number: serial.clone(),
                not_before: not_before.clone(),
                not_after: not_after.clone(),
                issuer: history::issuer_label(
                    cert.spec.issuer_ref.kind,
                    &cert.spec.issuer_ref.name,
                ),
                ..IssuedCertificate::default()
            },
        );
    }
    history::request(
        &mut next.history,
        None,
        RevocationReason::CessationOfOperation,
        now,
    );
    let failures = revoke_pending(ctx, cert, &mut next.history, now).await;
    let blocking: Vec<&Problem> = failures
        .iter()
        .filter(|p| p.reason != Reason::RevocationNotSupported)
        .collect();
    if let Some(first) = blocking.first() {
        super::status::revocation_failing(&mut next, &prev, first, cert.metadata.generation, now);
    }
    if next != prev {
        report::patch_status(ctx, cert, &next).await?;
    }
    if !blocking.is_empty() {
        return Ok(Some(Action::requeue(RETRY)));
    }
    set_finalizer(ctx, cert, false).await?;
    Ok(Some(Action::await_change()))
}

/// Add or remove the finalizer, at the resourceVersion read (a conflict is retried by the
/// next reconcile).
async fn set_finalizer(ctx: &Context, cert: &Certificate, present: bool) -> Result<(), Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let mut finalizers: Vec<String> = cert
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_string());
    }
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": cert.resource_version(),
    }});
    let api: Api<Certificate> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    match api
        .patch(
            &cert.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Changed since read, or gone: the next reconcile sees the new state.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
