//! The Certificate reconciler, in the order it works:
//!
//! 1. `gather`: the Secret as it is (adopting one whose Certificate is gone) and any older
//!    claimant of it (I/O);
//! 2. `decide`: an ordered list of named checks says whether to issue and why (pure; the
//!    certificate-to-spec comparisons are in `profile`);
//! 3. `issue`: check the issuer's identity policy (`policy`), ask the issuer's backend to sign (through its gate), or wait out a backoff;
//! 4. `store`: write the Secret, conditional on what the decision saw;
//! 5. `status` (pure) and `report`: conditions, Events and metrics.
//!
//! Nothing here knows one signing backend from another.

pub mod decide;
mod gather;
pub mod history;
mod issue;
pub mod policy;
pub mod profile;
mod report;
pub mod revoke;
pub mod status;
mod store;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use crate::api::{Certificate, RENEW_ANNOTATION};
use crate::issuer::{IssuerId, PendingStore};
use crate::pki::renewal;
use crate::reason::Reason;

use super::Context;
pub use super::Error;
use super::certificate_cache::CachedCertificate;
use decide::{Decision, Observed, SecretState};
pub use issue::Unwritten;
pub use report::report_internal_error;
use status::Outcome;

/// Longest time between two looks at a healthy Certificate, as a safety net.
const MAX_REQUEUE: Duration = Duration::from_secs(8 * 3600);
/// How often to look again at a Certificate blocked by something the operator does not watch.
pub(crate) const REFUSED_REQUEUE: Duration = Duration::from_secs(60);

pub async fn reconcile(obj: Arc<CachedCertificate>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Read once, when the watch delivered it.
    let cert: &Certificate = match obj.as_ref() {
        CachedCertificate::Valid(c) => c,
        CachedCertificate::Malformed(m) => return report::malformed(m, &ctx).await,
    };
    if let Some(action) = revoke::on_delete(&ctx, cert).await? {
        return Ok(action);
    }
    let namespace = cert.namespace().unwrap_or_default();
    ctx.shared
        .secret_refs
        .set(&namespace, &cert.name_any(), cert.spec.password_secrets());
    let now = ctx.now();
    let identity = format!("{namespace}/{}", cert.name_any());

    let gathered = gather::gather(&ctx, cert).await?;
    let data = gathered.data();
    let prev = cert.status.clone().unwrap_or_default();
    let issuer = IssuerId::referenced(&namespace, &cert.spec.issuer_ref);
    let issuer_ca = ctx.shared.ca_rotations.get(&issuer);
    let observed = Observed {
        identity: &identity,
        spec: &cert.spec,
        secret: gathered.state(data.as_ref()),
        claimed_by: gathered.claimed_by.as_deref(),
        renew_requested: cert.annotations().get(RENEW_ANNOTATION).map(String::as_str),
        renew_handled: prev.last_renew_request.as_deref(),
        passwords: gathered.passwords.as_ref(),
        issuer_ca: issuer_ca.as_deref(),
        now,
    };

    match decide::decide(&observed) {
        Decision::UpToDate(current) => {
            tracing::debug!(certificate = %identity, reason = %Reason::UpToDate, renewal = %crate::time::rfc3339(current.renewal_time), "nothing to do");
            issue::forget_unwritten(&ctx, cert);
            remove_leftover_request(&ctx, cert, &prev, &observed).await;
            let request = revoke::due_request(cert, &prev, &current);
            if request.is_none() && history::pending(&prev.history).next().is_none() {
                if report::write_status(&ctx, cert, &prev, &Outcome::UpToDate(&current), now)
                    .await?
                {
                    count_again(&ctx, &issuer);
                }
                return Ok(requeue_at(current.renewal_time, now));
            }
            // Revocations are due: a `certsmith revoke` request whose re-issuance is done, or
            // superseded certificates marked at renewal (or left by a failed attempt).
            let mut history = prev.history.clone();
            if let Some((_, reason)) = request {
                history::request(&mut history, Some(&current.leaf.serial), reason, now);
            }
            let failures = revoke::revoke_pending(&ctx, cert, &mut history, now).await;
            let blocking = failures
                .iter()
                .find(|p| p.reason != Reason::RevocationNotSupported);
            let generation = cert.metadata.generation;
            let record = |next: &mut crate::api::CertificateStatus| {
                next.history = history;
                if let Some((value, _)) = request {
                    next.last_revoke_request = Some(value.to_string());
                }
                if let Some(failure) = blocking {
                    status::revocation_failing(next, &prev, failure, generation, now);
                }
            };
            if report::write_status_with(
                &ctx,
                cert,
                &prev,
                &Outcome::UpToDate(&current),
                now,
                record,
            )
            .await?
            {
                count_again(&ctx, &issuer);
            }
            Ok(match blocking {
                Some(_) => Action::requeue(revoke::RETRY),
                None => requeue_at(current.renewal_time, now),
            })
        }
        Decision::Rewrite { why, current } => {
            let secrets = Api::namespaced(ctx.client.clone(), &namespace);
            let (Some(data), Some(read)) = (data.as_ref(), gathered.found.as_ref()) else {
                return Ok(Action::requeue(REFUSED_REQUEUE));
            };
            match store::rewrite(&ctx, cert, &observed, data, &secrets, read).await {
                Ok(()) => {
                    info!(certificate = %identity, reason = %why.reason, "Secret written again: {}", why.message);
                    report::publish(&ctx, cert, EventType::Normal, &why).await;
                    report::write_status(&ctx, cert, &prev, &Outcome::UpToDate(&current), now)
                        .await?;
                    Ok(requeue_at(current.renewal_time, now))
                }
                Err(store::RewriteError::NotLeading) => Err(Error::NotLeading),
                Err(store::RewriteError::Conflict) => Ok(Action::requeue(Duration::from_secs(1))),
                Err(store::RewriteError::Failed(problem)) => {
                    tracing::warn!(certificate = %identity, reason = %problem.reason, "{}", problem.message);
                    report::publish(&ctx, cert, EventType::Warning, &problem).await;
                    Ok(Action::requeue(REFUSED_REQUEUE))
                }
            }
        }
        Decision::Refuse(problem) => {
            if report::write_status(&ctx, cert, &prev, &Outcome::Refused(&problem), now).await? {
                report::publish(&ctx, cert, EventType::Warning, &problem).await;
            }
            Ok(Action::requeue(REFUSED_REQUEUE))
        }
        Decision::Issue { why, current } => {
            // Moving to a new CA is paced per issuer; the certificate stays as it is meanwhile.
            if why.reason == Reason::IssuerCaChanged
                && let Err(wait) = ctx.shared.ca_rotations.admit(&issuer)
            {
                let spread =
                    Duration::from_millis((renewal::unit_fraction(&identity) * 500.0) as u64);
                return Ok(Action::requeue(
                    wait.max(Duration::from_millis(100)) + spread,
                ));
            }
            let issuance = issue::Issuance {
                cert,
                prev: &prev,
                observed: &observed,
                secrets: &Api::namespaced(ctx.client.clone(), &namespace),
                target: store::WriteTarget::after(gathered.found.as_ref()),
            };
            issue::issue(&ctx, &issuance, why, current).await
        }
    }
}

/// A CA issuer counts its Ready leaves on each CA (`status.caRotation`): during a rotation, a
/// leaf whose status changed has it count again at once.
pub(crate) fn count_again(ctx: &Context, issuer: &IssuerId) {
    if ctx
        .shared
        .ca_rotations
        .get(issuer)
        .is_some_and(|ca| ca.rotating)
    {
        ctx.shared.rechecks.request(issuer);
    }
}

/// A request left at an asynchronous CA (its delete failed, or the reason to issue went away
/// while it was in flight) holds a private key: an up-to-date Certificate removes it. Looked
/// for only when the last issuance was in flight or came from such a backend.
async fn remove_leftover_request(
    ctx: &Context,
    cert: &Certificate,
    prev: &crate::api::CertificateStatus,
    observed: &Observed<'_>,
) {
    let in_flight =
        crate::api::conditions::find(&prev.conditions, crate::api::conditions::ISSUING).is_some();
    let asynchronous = matches!(observed.secret, SecretState::Ours(data)
        if data.backend_type().is_some_and(|t| t.keeps_pending_requests()));
    if !(in_flight || asynchronous) {
        return;
    }
    let store = PendingStore::new(ctx.client.clone(), cert, ctx.leading.clone());
    match store.discard_leftover().await {
        Ok(true) => {
            tracing::info!(certificate = %observed.identity, "deleted a leftover pending request")
        }
        Ok(false) => {}
        Err(p) => {
            tracing::warn!(certificate = %observed.identity, "removing a leftover pending request failed: {p}")
        }
    }
}

/// Look again at `at` (at least a second from now, at most [`MAX_REQUEUE`]).
fn requeue_at(at: i64, now: i64) -> Action {
    let secs = u64::try_from(at.saturating_sub(now).max(1)).unwrap_or(1);
    Action::requeue(Duration::from_secs(secs).min(MAX_REQUEUE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeues_are_at_least_a_second_and_at_most_eight_hours() {
        assert_eq!(
            requeue_at(100, 100),
            Action::requeue(Duration::from_secs(1))
        );
        assert_eq!(requeue_at(50, 100), Action::requeue(Duration::from_secs(1)));
        assert_eq!(
            requeue_at(160, 100),
            Action::requeue(Duration::from_secs(60))
        );
        assert_eq!(requeue_at(i64::MAX, i64::MIN), Action::requeue(MAX_REQUEUE));
    }
}
