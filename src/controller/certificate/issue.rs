//! Issue: unless a previous failure's backoff is still running, resolve the issuer, pass its
//! gate (remote backends: a share of the workers, fail fast while unreachable), have its
//! backend sign, and store the result. A certificate signed but refused by the API server is
//! kept and written on the retry instead of signing again.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use crate::api::{Certificate, CertificateStatus, RotationPolicy};
use crate::issuer::{Backend, IssuerId, Order, PendingStore, Signed, SignedChain};
use crate::pki::keys::PrivateKey;
use crate::pki::{renewal, request};
use crate::reason::{Problem, Reason};

use super::decide::{self, Current, Observed, SecretState};
use super::history;
use super::policy::Blocked;
use super::status::Outcome;
use super::store::{self, StoreError, WriteTarget};
use super::{Context, Error, REFUSED_REQUEUE, report, requeue_at};
use crate::controller::limits::{Pass, Refusal};
use crate::policy::Denial;

/// How long an issuance waits for one of its issuer's permits before it gives the worker back.
const GATE_WAIT: Duration = Duration::from_millis(500);

/// What an issuance works with.
pub struct Issuance<'a> {
    pub cert: &'a Certificate,
    pub prev: &'a CertificateStatus,
    pub observed: &'a Observed<'a>,
    pub secrets: &'a Api<Secret>,
    /// How the Secret is written: conditional on what the decision saw.
    pub target: WriteTarget,
}

/// A certificate signed for this Certificate whose Secret the API server refused: the retry
/// writes it instead of signing again, as long as it is the same request and still fresh.
pub struct Unwritten {
    /// [`request::fingerprint`] of the spec it was signed for.
    fingerprint: String,
    revision: i64,
    key: PrivateKey,
    signed: SignedChain,
    backend: crate::issuer::BackendType,
    /// Reused only before this (the certificate's own renewal time).
    fresh_until: i64,
}

/// Why an issuance did not finish in this reconcile.
pub enum IssueError {
    Problem(Problem),
    /// This replica may not write (it lost its lease).
    NotLeading,
    /// The Secret changed since the decision was made.
    Conflict,
    /// The issuer's backend already has all the calls it may have at once.
    Busy,
    /// The issuer's identity policy does not allow what the Certificate asks for.
    Denied(Denial),
}

impl From<Problem> for IssueError {
    fn from(p: Problem) -> Self {
        IssueError::Problem(p)
    }
}

/// Where an issuance stands after one reconcile.
enum Stored {
    /// The Secret holds the new certificate. `took` is set when the issuance spanned several
    /// reconciles (an asynchronous CA).
    Done {
        current: Box<Current>,
        took: Option<Duration>,
    },
    /// An asynchronous CA is working on it: look again at `until`.
    Waiting { until: i64, message: String },
}

/// Issue a certificate for `why`, unless a previous failure's backoff is still running.
pub async fn issue(
    ctx: &Context,
    issuance: &Issuance<'_>,
    why: Problem,
    current: Option<Current>,
) -> Result<Action, Error> {
    let Issuance {
        cert,
        prev,
        observed,
        ..
    } = issuance;
    let now = observed.now;
    let attempts = prev.failed_issuance_attempts.unwrap_or(0);
    if let Some(retry_at) = backoff_until(issuance, current.as_ref())
        && now < retry_at
        && !issuer_recovered_since(ctx, cert, prev).await
    {
        return Ok(requeue_at(retry_at, now));
    }

    info!(certificate = %observed.identity, reason = %why.reason, "issuing: {}", why.message);
    let started = Instant::now();
    let result = sign_and_store(ctx, issuance).await;
    let issuer_kind = cert.spec.issuer_ref.kind.as_str();
    match result {
        Ok(Stored::Waiting { until, message }) => {
            let progress = Problem::new(Reason::Pending, message);
            let outcome = Outcome::Pending {
                why: &why,
                progress: &progress,
                current: current.as_ref(),
            };
            if report::write_status(ctx, cert, prev, &outcome, now).await? {
                report::publish(ctx, cert, EventType::Normal, &progress).await;
            }
            Ok(requeue_at(until, now))
        }
        Ok(Stored::Done {
            current: issued,
            took,
        }) => {
            ctx.metrics.issuance(
                issuer_kind,
                "success",
                took.unwrap_or_else(|| started.elapsed()),
            );
            let outcome = Outcome::Issued {
                current: &issued,
                renew_request: observed.renew_requested,
            };
            let record = |next: &mut CertificateStatus| {
                let spec_issuer =
                    history::issuer_label(cert.spec.issuer_ref.kind, &cert.spec.issuer_ref.name);
                let replaced_issuer = match observed.secret {
                    SecretState::Ours(data) => match (&data.issuer_kind, &data.issuer_name) {
                        (Some(kind), Some(name)) => format!("{kind}/{name}"),
                        _ => spec_issuer.clone(),
                    },
                    _ => spec_issuer.clone(),
                };
                next.history = history::record_issued(
                    &next.history,
                    history::entry(&issued.leaf, spec_issuer, issued.ca_fingerprint.clone()),
                    current.as_ref().map(|c| {
                        history::entry(&c.leaf, replaced_issuer, c.ca_fingerprint.clone())
                    }),
                    history::revoke_on_renewal(cert),
                    now,
                );
            };
            report::write_status_with(ctx, cert, prev, &outcome, now, record).await?;
            let issuer =
                IssuerId::referenced(&cert.namespace().unwrap_or_default(), &cert.spec.issuer_ref);
            super::count_again(ctx, &issuer);
            // The Event's reason is the trigger, so issuances for different reasons stay
            // separate Events instead of folding into one series.
            let note = format!(
                "Issued serial {} valid until {} ({}: {})",
                issued.leaf.serial,
                crate::time::rfc3339(issued.leaf.not_after),
                why.reason,
                why.message
            );
            let event = Problem::new(why.reason, note);
            report::publish(ctx, cert, EventType::Normal, &event).await;
            Ok(requeue_at(issued.renewal_time, now))
        }
        Err(IssueError::NotLeading) => Err(Error::NotLeading),
        // Someone else wrote the Secret since it was read: decide again on what is there now.
        Err(IssueError::Conflict) => Ok(Action::requeue(Duration::from_secs(1))),
        // The issuer's share of workers is busy: look again shortly, nothing failed.
        Err(IssueError::Busy) => Ok(Action::requeue(busy_delay(observed.identity))),
        // Nothing was signed and nothing counts as a failure: the policy decides the same way
        // until it or the Certificate changes (both are watched).
        Err(IssueError::Denied(denial)) => {
            let problem = Problem::new(Reason::PolicyDenied, denial.message);
            let outcome = Outcome::Denied {
                denial: &problem,
                current: current.as_ref(),
            };
            if report::write_status(ctx, cert, prev, &outcome, now).await? {
                ctx.metrics
                    .policy_denial(&issuer_label(cert), issuer_kind, denial.field);
                warn!(certificate = %observed.identity, reason = %Reason::PolicyDenied, "{}", problem.message);
                report::publish(ctx, cert, EventType::Warning, &problem).await;
            }
            Ok(Action::requeue(REFUSED_REQUEUE))
        }
        Err(IssueError::Problem(failure)) => {
            ctx.metrics
                .issuance(issuer_kind, "failure", started.elapsed());
            ctx.metrics.reconcile_error(failure.reason);
            warn!(certificate = %observed.identity, reason = %failure.reason, "issuance failed: {}", failure.message);
            let retry_at = now.saturating_add(renewal::jittered_backoff_secs(
                observed.identity,
                attempts.saturating_add(1),
                now,
                current.as_ref().map(|c| c.leaf.not_after),
            ));
            let outcome = Outcome::Failed {
                why: &why,
                failure: &failure,
                current: current.as_ref(),
                retry_at,
            };
            report::write_status(ctx, cert, prev, &outcome, now).await?;
            report::publish(ctx, cert, EventType::Warning, &failure).await;
            Ok(requeue_at(retry_at, now))
        }
    }
}

/// The `issuer` label of a policy denial: the name, `namespace/name` for an Issuer.
fn issuer_label(cert: &Certificate) -> String {
    let name = &cert.spec.issuer_ref.name;
    match cert.spec.issuer_ref.kind {
        crate::api::IssuerKind::ClusterIssuer => name.clone(),
        crate::api::IssuerKind::Issuer => {
            format!("{}/{name}", cert.namespace().unwrap_or_default())
        }
    }
}

/// When the backoff after the last failure ends (None: no failure counted, or the spec
/// changed since, which retries at once).
fn backoff_until(issuance: &Issuance<'_>, current: Option<&Current>) -> Option<i64> {
    let (prev, cert) = (issuance.prev, issuance.cert);
    let attempts = prev.failed_issuance_attempts.filter(|a| *a > 0)?;
    if prev.observed_generation != cert.metadata.generation {
        return None;
    }
    let last = prev
        .last_failure_time
        .as_deref()
        .and_then(crate::time::parse)
        .unwrap_or(0);
    Some(last.saturating_add(renewal::jittered_backoff_secs(
        issuance.observed.identity,
        attempts,
        last,
        current.map(|c| c.leaf.not_after),
    )))
}

/// 1-2 s, fixed per certificate, so Certificates waiting for one busy issuer do not all come
/// back in the same instant.
fn busy_delay(identity: &str) -> Duration {
    Duration::from_millis(1000 + (renewal::unit_fraction(identity) * 1000.0) as u64)
}

/// Whether the last failure was the issuer's and the issuer has become Ready **since** that
/// failure: then retry at once instead of waiting out the backoff (issuer changes are watched
/// and mapped here). A Ready condition older than the failure is what the failure
/// contradicted, and never bypasses the backoff.
async fn issuer_recovered_since(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
) -> bool {
    let Some(failed_at) = prev
        .last_failure_time
        .as_deref()
        .and_then(crate::time::parse)
    else {
        return false;
    };
    let issuer_failure =
        crate::api::conditions::find(&prev.conditions, crate::api::conditions::RECONCILING)
            .is_some_and(|c| {
                [
                    Reason::IssuerNotReady,
                    Reason::IssuerNotFound,
                    Reason::BackendUnavailable,
                ]
                .iter()
                .any(|r| c.reason == r.as_str())
            });
    if !issuer_failure {
        return false;
    }
    let since = super::super::issuer::ready_since(
        ctx,
        &cert.namespace().unwrap_or_default(),
        &cert.spec.issuer_ref,
    )
    .await;
    // The same second counts: which came first cannot be told, and one retry too many is
    // cheaper than a whole backoff after an outage.
    since.is_some_and(|since| since >= failed_at)
}

/// Resolve the issuer, get a key, sign, write the Secret. Returns what is now in the Secret,
/// or, for an asynchronous CA, when to look again.
async fn sign_and_store(ctx: &Context, issuance: &Issuance<'_>) -> Result<Stored, IssueError> {
    let Issuance { cert, observed, .. } = issuance;
    let namespace = cert.namespace().unwrap_or_default();
    // The next revision counts from the newest of the status and the Secret (the status in
    // the cache may lag behind a write this operator just made).
    let in_secret = match observed.secret {
        SecretState::Ours(data) => data.revision,
        _ => None,
    };
    let revision = decide::next_revision(issuance.prev.revision, in_secret)?;
    let issuer = IssuerId::referenced(&namespace, &cert.spec.issuer_ref);
    let spec = super::super::issuer::spec_of(ctx, &issuer).await?;
    match super::policy::check(ctx, cert, &issuer, &spec).await {
        Ok(()) => {}
        Err(Blocked::Denied(denial)) => return Err(IssueError::Denied(denial)),
        Err(Blocked::Unknown(problem)) => return Err(problem.into()),
    }
    if let Some(unwritten) = take_unwritten(ctx, cert, observed.now) {
        info!(certificate = %observed.identity, "writing the certificate signed before the Secret was refused");
        return store_signed(ctx, issuance, unwritten, None).await;
    }
    let backend = super::super::issuer::ready_backend(ctx, &issuer, &spec).await?;
    let _pass = match backend.backend_type().is_remote() {
        true => Some(enter_gate(ctx, &issuer).await?),
        false => None,
    };
    let store = PendingStore::new(ctx.client.clone(), cert, ctx.leading.clone());
    let uid = cert.metadata.uid.clone().unwrap_or_default();
    let new_key = || {
        let key = private_key(cert, observed)?;
        let request = request::sign_request(&cert.spec, &key)
            .map_err(|e| Problem::new(Reason::InvalidSpec, e))?;
        Ok((key, request))
    };
    let order = Order {
        certificate_uid: &uid,
        revision,
        spec: &cert.spec,
        now: observed.now,
        new_key: &new_key,
    };
    let signed = backend.sign(&order, &store).await;
    record_reachability(ctx, &backend, &issuer, signed.as_ref().err());
    match signed? {
        Signed::Pending { retry_at, message } => Ok(Stored::Waiting {
            until: retry_at,
            message,
        }),
        Signed::Issued {
            chain,
            key,
            pending_since,
        } => {
            let unwritten = Unwritten {
                fingerprint: request::fingerprint(&cert.spec),
                revision,
                key,
                signed: chain,
                backend: backend.backend_type(),
                fresh_until: i64::MAX,
            };
            let result = store_signed(ctx, issuance, unwritten, pending_since).await;
            let Some(since) = pending_since else {
                return result;
            };
            settle_pending(&store, &result, observed.identity).await;
            // The issuance took from the stored request to now.
            let took = Duration::from_secs(u64::try_from(observed.now - since).unwrap_or(0));
            result.map(|stored| match stored {
                Stored::Done { current, .. } => Stored::Done {
                    current,
                    took: Some(took),
                },
                waiting => waiting,
            })
        }
    }
}

/// After a certificate from a stored request was handled: stored, the request is removed (a
/// failed delete is retried when the Certificate is next up to date and must not undo the
/// success); unusable, it is removed too, so the next attempt starts over; refused by the
/// API server, it stays, so the retry fetches the same certificate.
async fn settle_pending(store: &PendingStore, result: &Result<Stored, IssueError>, identity: &str) {
    let keep = matches!(
        result,
        Err(IssueError::Problem(p)) if p.reason == Reason::SecretWriteFailed
    ) || matches!(result, Err(IssueError::Conflict | IssueError::NotLeading));
    if keep {
        return;
    }
    if let Err(p) = store.discard_leftover().await {
        warn!(certificate = %identity, "deleting the pending request failed: {p}");
    }
}

/// Pass the issuer's gate or say why not (busy: look again shortly; down: a failure).
async fn enter_gate(ctx: &Context, issuer: &IssuerId) -> Result<Pass, IssueError> {
    match ctx.gates.enter(issuer, GATE_WAIT).await {
        Ok(pass) => Ok(pass),
        Err(Refusal::Busy) => Err(IssueError::Busy),
        Err(Refusal::Unreachable { until }) => Err(Problem::new(
            Reason::BackendUnavailable,
            format!(
                "{issuer}: its backend did not answer recently; not asking again for {}s",
                until
                    .saturating_duration_since(std::time::Instant::now())
                    .as_secs()
                    .max(1)
            ),
        )
        .into()),
    }
}

/// Tell the gate whether a remote backend answered; when it just became unreachable, have
/// the issuer looked at again so its status (and the Certificates waiting on it) follow.
fn record_reachability(
    ctx: &Context,
    backend: &Backend,
    issuer: &IssuerId,
    problem: Option<&Problem>,
) {
    if !backend.backend_type().is_remote() {
        return;
    }
    let unreachable = problem.is_some_and(|p| p.reason.is_unreachable());
    let opened = ctx
        .gates
        .record(issuer, !unreachable, std::time::Instant::now());
    if opened {
        ctx.shared.rechecks.request(issuer);
    }
}

/// Write a signed certificate; when the API server refuses the Secret, keep the certificate
/// for the retry (unless a stored request keeps it already).
async fn store_signed(
    ctx: &Context,
    issuance: &Issuance<'_>,
    unwritten: Unwritten,
    pending_since: Option<i64>,
) -> Result<Stored, IssueError> {
    let cert = issuance.cert;
    let written = store::store(
        ctx,
        issuance,
        &unwritten.signed,
        &unwritten.key,
        unwritten.revision,
        unwritten.backend,
    )
    .await;
    match written {
        Ok(current) => Ok(Stored::Done {
            current: Box::new(current),
            took: None,
        }),
        Err(StoreError::Exists { leaf }) => {
            if pending_since.is_none() {
                let fresh_until = fresh_until(issuance, &leaf);
                keep_unwritten(
                    ctx,
                    cert,
                    Unwritten {
                        fresh_until,
                        ..unwritten
                    },
                );
            }
            Err(IssueError::Conflict)
        }
        Err(StoreError::Refused { problem, leaf }) => {
            if pending_since.is_none() {
                let fresh_until = fresh_until(issuance, &leaf);
                keep_unwritten(
                    ctx,
                    cert,
                    Unwritten {
                        fresh_until,
                        ..unwritten
                    },
                );
            }
            Err(problem.into())
        }
        Err(StoreError::Issue(e)) => Err(e),
    }
}

/// A certificate kept unwritten is reused only before its own renewal time.
fn fresh_until(issuance: &Issuance<'_>, leaf: &crate::pki::inspect::CertInfo) -> i64 {
    renewal::renewal_time(
        issuance.observed.identity,
        leaf.not_before,
        leaf.not_after,
        decide::renew_before(&issuance.cert.spec),
        Some(issuance.observed.now),
    )
}

fn certificate_key(cert: &Certificate) -> String {
    cert.metadata.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            cert.namespace().unwrap_or_default(),
            cert.name_any()
        )
    })
}

fn keep_unwritten(ctx: &Context, cert: &Certificate, unwritten: Unwritten) {
    if let Ok(mut map) = ctx.shared.unwritten.lock() {
        map.insert(certificate_key(cert), unwritten);
    }
}

pub fn forget_unwritten(ctx: &Context, cert: &Certificate) {
    if let Ok(mut map) = ctx.shared.unwritten.lock() {
        map.remove(&certificate_key(cert));
    }
}

/// The certificate signed for this very request earlier and not yet written, if it is still
/// fresh (before its renewal time) and was signed for the same spec.
fn take_unwritten(ctx: &Context, cert: &Certificate, now: i64) -> Option<Unwritten> {
    let unwritten = ctx
        .shared
        .unwritten
        .lock()
        .ok()?
        .remove(&certificate_key(cert))?;
    (unwritten.fingerprint == request::fingerprint(&cert.spec) && now < unwritten.fresh_until)
        .then_some(unwritten)
}

/// A new key, or with rotationPolicy Never the key already in the Secret when it still fits.
fn private_key(cert: &Certificate, observed: &Observed<'_>) -> Result<PrivateKey, Problem> {
    if cert.spec.rotation_policy() == RotationPolicy::Never
        && let SecretState::Ours(data) = observed.secret
        && let Some(existing) = data
            .tls_key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| PrivateKey::from_pem(k).ok())
        && key_fits(&existing, cert)
    {
        return Ok(existing);
    }
    PrivateKey::generate(cert.spec.key_algorithm(), cert.spec.key_size())
        .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))
}

/// Whether a stored key has the algorithm and size the spec asks for.
fn key_fits(key: &PrivateKey, cert: &Certificate) -> bool {
    let alg = key.pair().algorithm();
    let (want_alg, size) = (cert.spec.key_algorithm(), cert.spec.key_size());
    use crate::api::KeyAlgorithm::*;
    match want_alg {
        Ecdsa => {
            (size == 256 && alg == &rcgen::PKCS_ECDSA_P256_SHA256)
                || (size == 384 && alg == &rcgen::PKCS_ECDSA_P384_SHA384)
                || (size == 521 && alg == &rcgen::PKCS_ECDSA_P521_SHA512)
        }
        Ed25519 => alg == &rcgen::PKCS_ED25519,
        // RSA size is checked against the certificate by the spec-mismatch rule after issuance.
        Rsa => alg == &rcgen::PKCS_RSA_SHA256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KeyAlgorithm;

    fn cert(private_key: serde_json::Value) -> Certificate {
        let spec = serde_json::from_value(serde_json::json!({
            "secretName": "s", "issuerRef": {"name": "i"}, "dnsNames": ["a.example"],
            "privateKey": private_key,
        }))
        .expect("spec");
        Certificate::new("c", spec)
    }

    #[test]
    fn a_kept_key_must_fit_the_spec() {
        let p256 = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).expect("key");
        assert!(key_fits(
            &p256,
            &cert(serde_json::json!({"algorithm": "ECDSA"}))
        ));
        assert!(!key_fits(
            &p256,
            &cert(serde_json::json!({"algorithm": "ECDSA", "size": 384}))
        ));
        assert!(!key_fits(
            &p256,
            &cert(serde_json::json!({"algorithm": "Ed25519"}))
        ));
    }

    #[test]
    fn busy_certificates_come_back_spread_over_a_second() {
        let delays: std::collections::BTreeSet<u128> = (0..20)
            .map(|i| busy_delay(&format!("ns/c{i}")).as_millis())
            .collect();
        assert!(delays.len() > 10);
        assert!(delays.iter().all(|d| (1000..2000).contains(d)));
    }
}
