//! Report: status (computed by `status`), Events and the per-Certificate metrics. Every
//! write asks whether this replica may still write.

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use tracing::warn;

use crate::api::conditions::bounded_message;
use crate::api::{Certificate, CertificateStatus};
use crate::reason::{Problem, Reason};
use crate::secret;

use super::status::{self, Outcome};
use super::{Context, Error};
use crate::controller::certificate_cache::{CachedCertificate, Malformed};

/// Write status when it differs from what is there. Returns whether it wrote.
pub async fn write_status(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
    outcome: &Outcome<'_>,
    now: i64,
) -> Result<bool, Error> {
    write_status_with(ctx, cert, prev, outcome, now, |_| {}).await
}

/// [`write_status`], with `edit` applied to the computed status (the history, revocations).
pub async fn write_status_with(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
    outcome: &Outcome<'_>,
    now: i64,
    edit: impl FnOnce(&mut CertificateStatus),
) -> Result<bool, Error> {
    let mut next = status::desired(prev, cert.metadata.generation, outcome, now);
    edit(&mut next);
    let (namespace, name) = (cert.namespace().unwrap_or_default(), cert.name_any());
    ctx.metrics.certificate(&crate::metrics::CertificateFacts {
        namespace: &namespace,
        name: &name,
        issuer_kind: cert.spec.issuer_ref.kind.as_str(),
        issuer_name: &cert.spec.issuer_ref.name,
        not_before: next.not_before.as_deref().and_then(crate::time::parse),
        not_after: next.not_after.as_deref().and_then(crate::time::parse),
        renewal: next.renewal_time.as_deref().and_then(crate::time::parse),
        ready: crate::api::conditions::find(&next.conditions, crate::api::conditions::READY)
            .is_some_and(|c| c.status == "True"),
    });
    if cert.status.as_ref() == Some(&next) {
        return Ok(false);
    }
    patch_status(ctx, cert, &next).await?;
    Ok(true)
}

pub(super) async fn patch_status(
    ctx: &Context,
    cert: &Certificate,
    next: &CertificateStatus,
) -> Result<(), Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let api: Api<Certificate> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let written = api
        .patch_status(
            &cert.name_any(),
            &PatchParams {
                field_manager: Some(secret::FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Json::<()>(status_patch(next)?),
        )
        .await?;
    // Its watch event is the operator's own and needs no reconcile, unless revocations are
    // left for the next one: marked at renewal, or a `certsmith revoke` request not yet
    // answered (the re-issuance it asked for is what this write records).
    let revoke_requested = cert
        .annotations()
        .get(crate::api::REVOKE_ANNOTATION)
        .is_some_and(|r| next.last_revoke_request.as_deref() != Some(r.as_str()));
    if super::history::pending(&next.history).next().is_none() && !revoke_requested {
        ctx.shared.watched.wrote_status(
            &cert.namespace().unwrap_or_default(),
            &cert.name_any(),
            written.resource_version(),
        );
    }
    Ok(())
}

/// The whole status, replaced in one JSON Patch operation (`add` replaces a member that
/// exists): the status is exactly `next` whatever the server holds, as a forced apply would
/// make it, at a fraction of the API server's cost (an apply merges typed field sets; this
/// status is written by the operator alone).
fn status_patch(next: &CertificateStatus) -> Result<json_patch::Patch, Error> {
    Ok(json_patch::Patch(vec![json_patch::PatchOperation::Add(
        json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["status"]),
            value: serde_json::to_value(next).map_err(kube::Error::SerdeError)?,
        },
    )]))
}

/// Report an internal error (a panic in this Certificate's reconcile): Ready=False with
/// `InternalError`, and a Warning Event. The panic's text goes to the log only.
pub async fn report_internal_error(ctx: &Context, obj: &CachedCertificate) {
    let Some(cert) = obj.valid() else {
        return;
    };
    let problem = Problem::new(
        Reason::InternalError,
        "the operator failed while reconciling this Certificate (see its log); retrying with backoff",
    );
    let prev = cert.status.clone().unwrap_or_default();
    let now = ctx.now();
    let mut next = prev.clone();
    next.conditions = crate::api::conditions::merge(
        &prev.conditions,
        &[crate::api::conditions::DesiredCondition {
            type_: crate::api::conditions::READY,
            status: false,
            reason: problem.reason.as_str().into(),
            message: problem.message.clone(),
        }],
        cert.metadata.generation,
        &crate::time::rfc3339(now),
    );
    if next != prev
        && let Err(e) = patch_status(ctx, cert, &next).await
    {
        warn!("reporting an internal error in status failed: {e}");
    }
    publish(ctx, cert, EventType::Warning, &problem).await;
}

pub async fn publish(ctx: &Context, cert: &Certificate, type_: EventType, problem: &Problem) {
    if !ctx.is_leading() {
        return;
    }
    let event = Event {
        type_,
        reason: problem.reason.as_str().into(),
        note: Some(bounded_message(&problem.message)),
        action: "Issue".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cert.object_ref(&())).await {
        warn!("publishing event failed: {e}");
    }
}

/// A Certificate that the API server accepted but this operator cannot read (for instance a
/// newer schema): report it once and wait for a change, never retry in a hot loop.
pub async fn malformed(obj: &Malformed, ctx: &Context) -> Result<Action, Error> {
    let error = &obj.error;
    let (namespace, name) = (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    );
    warn!(certificate = %format!("{namespace}/{name}"), "cannot read Certificate: {error}");
    ctx.metrics.reconcile_error(Reason::InvalidSpec);
    let problem = Problem::new(
        Reason::InvalidSpec,
        format!("the operator cannot read this Certificate: {error}"),
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        api_version: Some(Certificate::api_version(&()).to_string()),
        kind: Some(Certificate::kind(&()).to_string()),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: problem.reason.as_str().into(),
        note: Some(bounded_message(&problem.message)),
        action: "Read".into(),
        secondary: None,
    };
    if ctx.is_leading()
        && let Err(e) = ctx.recorder.publish(&event, &reference).await
    {
        warn!("publishing event failed: {e}");
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the API server does with the patch: the status becomes exactly `next`, so a field
    /// `next` leaves out (a failure count after a success) does not linger from before.
    #[test]
    fn the_status_patch_replaces_the_whole_status() -> Result<(), Box<dyn std::error::Error>> {
        let mut object = serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"secretName": "web-tls"},
            "status": {"failedIssuanceAttempts": 3, "lastFailureTime": "2026-12-01T00:00:00Z", "revision": 1},
        });
        let next = CertificateStatus {
            revision: Some(2),
            serial_number: Some("0a".into()),
            ..CertificateStatus::default()
        };
        json_patch::patch(&mut object, &status_patch(&next)?)?;
        assert_eq!(object["status"], serde_json::to_value(&next)?);
        assert_eq!(object["spec"]["secretName"], "web-tls");
        // and where there was no status yet
        let mut fresh = serde_json::json!({"metadata": {"name": "web"}});
        json_patch::patch(&mut fresh, &status_patch(&next)?)?;
        assert_eq!(fresh["status"], serde_json::to_value(&next)?);
        Ok(())
    }
}
