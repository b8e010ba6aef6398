//! The Certificate reconciler: gather (I/O) -> decide (pure) -> sign -> write Secret -> status.

pub mod decide;
pub mod pending;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{Certificate, CertificateStatus, RENEW_ANNOTATION, RotationPolicy};
use crate::issuer::aws_pca::{AwsPcaSigner, Poll, Submission};
use crate::issuer::{SignedChain, Signer};
use crate::pki::keys::PrivateKey;
use crate::pki::{inspect, renewal, request};
use crate::reason::{Problem, Reason};
use crate::secret;

use super::limits::Refusal;
use super::{Context, Error};
use decide::{Current, Decision, Observed, SecretData, SecretState};
use status::Outcome;

/// Longest time between two looks at a healthy Certificate, as a safety net.
const MAX_REQUEUE: Duration = Duration::from_secs(8 * 3600);
/// How often to look again at a Certificate blocked by something the operator does not watch.
const REFUSED_REQUEUE: Duration = Duration::from_secs(60);

/// A certificate signed for this Certificate whose Secret the API server refused: the retry
/// writes it instead of signing again, as long as it is the same request and still fresh.
pub struct Unwritten {
    /// [`pending::request_fingerprint`] of the spec it was signed for.
    fingerprint: String,
    revision: i64,
    key: PrivateKey,
    signed: SignedChain,
    issuer_type: &'static str,
    /// Reused only before this (the certificate's own renewal time).
    fresh_until: i64,
}

pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let cert: Certificate = match super::typed(&obj) {
        Ok(c) => c,
        Err(e) => return report_malformed(&obj, &ctx, e).await,
    };
    let namespace = cert.namespace().unwrap_or_default();
    let now = ctx.now();
    let identity = format!("{namespace}/{}", cert.name_any());

    // Gather.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let claimed_by = older_claimant(&ctx, &cert);
    let mut found = secrets.get_opt(&cert.spec.secret_name).await?;
    if claimed_by.is_none()
        && let Some(s) = &found
        && let Some(owner) = secret::owner(s)
        && owner != cert.name_any()
        && !claims_secret(&ctx, &cert, owner).await?
    {
        found = Some(adopt(&ctx, &cert, &secrets, s, owner).await?);
    }
    let data = found
        .as_ref()
        .filter(|s| secret::owner(s) == Some(cert.name_any().as_str()))
        .map(secret_data);
    let secret_state = match (&found, &data) {
        (None, _) => SecretState::Missing,
        (Some(_), Some(d)) => SecretState::Ours(d),
        (Some(s), None) => SecretState::Foreign {
            owner: secret::owner(s),
        },
    };
    let prev = cert.status.clone().unwrap_or_default();
    let observed = Observed {
        identity: &identity,
        spec: &cert.spec,
        secret: secret_state,
        claimed_by: claimed_by.as_deref(),
        renew_requested: cert.annotations().get(RENEW_ANNOTATION).map(String::as_str),
        renew_handled: prev.last_renew_request.as_deref(),
        now,
    };

    // Decide, then act.
    match decide::decide(&observed) {
        Decision::UpToDate(current) => {
            tracing::debug!(certificate = %identity, reason = %Reason::UpToDate, renewal = %decide::rfc3339(current.renewal_time), "nothing to do");
            forget_unwritten(&ctx, &cert);
            // An AWS Private CA request may be left over (its delete failed, or the reason to
            // issue went away while it was in flight): it holds a private key, remove it.
            let in_flight =
                crate::api::conditions::find(&prev.conditions, crate::api::conditions::ISSUING)
                    .is_some();
            let from_aws = matches!(&observed.secret, SecretState::Ours(d) if d.issuer_type.as_deref() == Some("awsPCA"));
            if in_flight || from_aws {
                clean_up_pending(&ctx, &secrets, &cert, &identity).await;
            }
            write_status(&ctx, &cert, &prev, &Outcome::UpToDate(&current), now).await?;
            Ok(requeue_at(current.renewal_time, now))
        }
        Decision::Refuse(problem) => {
            if write_status(&ctx, &cert, &prev, &Outcome::Refused(&problem), now).await? {
                publish(&ctx, &cert, EventType::Warning, &problem).await;
            }
            Ok(Action::requeue(REFUSED_REQUEUE))
        }
        Decision::Issue { why, current } => {
            let target = match &found {
                None => WriteTarget::Create,
                Some(s) => WriteTarget::Replace(s.resource_version().unwrap_or_default()),
            };
            let issuance = Issuance {
                cert: &cert,
                prev: &prev,
                observed: &observed,
                secrets: &secrets,
                target,
            };
            issue(&ctx, &issuance, why, current).await
        }
    }
}

/// What an issuance works with.
struct Issuance<'a> {
    cert: &'a Certificate,
    prev: &'a CertificateStatus,
    observed: &'a Observed<'a>,
    secrets: &'a Api<Secret>,
    /// How the Secret is written: conditional on what the decision saw.
    target: WriteTarget,
}

/// The Secret write is conditional on what the decision saw, so a replica that lost its lease
/// (or any other writer that got there first) cannot have its decision overwrite a newer one.
#[derive(Debug, Clone)]
enum WriteTarget {
    /// The Secret did not exist: create it (refused if it exists by now).
    Create,
    /// The Secret was seen at this resourceVersion: apply only onto that version.
    Replace(String),
}

/// Issue a certificate for `why`, unless a previous failure's backoff is still running.
async fn issue(
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
    let spec_changed = prev.observed_generation != cert.metadata.generation;
    if attempts > 0 && !spec_changed {
        let last = prev
            .last_failure_time
            .as_deref()
            .and_then(decide::parse_rfc3339)
            .unwrap_or(0);
        let retry_at = last.saturating_add(renewal::jittered_backoff_secs(
            observed.identity,
            attempts,
            last,
            current.as_ref().map(|c| c.leaf.not_after),
        ));
        if now < retry_at && !issuer_recovered_since(ctx, cert, prev, last).await {
            return Ok(requeue_at(retry_at, now));
        }
    }

    info!(certificate = %observed.identity, reason = %why.reason, "issuing: {}", why.message);
    let started = Instant::now();
    let result = sign_and_store(ctx, issuance, &why).await;
    let issuer_kind = cert.spec.issuer_ref.kind.as_str();
    match result {
        Ok(Stored::Waiting { until, message }) => {
            let progress = Problem::new(Reason::Pending, message);
            let outcome = Outcome::Pending {
                why: &why,
                progress: &progress,
                current: current.as_ref(),
            };
            if write_status(ctx, cert, prev, &outcome, now).await? {
                publish(ctx, cert, EventType::Normal, &progress).await;
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
            write_status(ctx, cert, prev, &outcome, now).await?;
            // The Event's reason is the trigger, so issuances for different reasons stay
            // separate Events instead of folding into one series.
            let note = format!(
                "Issued serial {} valid until {} ({}: {})",
                issued.leaf.serial,
                decide::rfc3339(issued.leaf.not_after),
                why.reason,
                why.message
            );
            publish(
                ctx,
                cert,
                EventType::Normal,
                &Problem::new(why.reason, note),
            )
            .await;
            Ok(requeue_at(issued.renewal_time, now))
        }
        Err(IssueError::Kube(e)) => Err(Error::Kube(e)),
        Err(IssueError::NotLeading) => Err(Error::NotLeading),
        // Someone else wrote the Secret since it was read: decide again on what is there now.
        Err(IssueError::Conflict) => Ok(Action::requeue(Duration::from_secs(1))),
        // The issuer's share of workers is busy: look again shortly, nothing failed.
        Err(IssueError::Busy) => Ok(Action::requeue(busy_delay(observed.identity))),
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
                counted: true,
            };
            write_status(ctx, cert, prev, &outcome, now).await?;
            publish(ctx, cert, EventType::Warning, &failure).await;
            Ok(requeue_at(retry_at, now))
        }
    }
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
    failed_at: i64,
) -> bool {
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
    super::issuer::ready_since(
        ctx,
        &cert.namespace().unwrap_or_default(),
        &cert.spec.issuer_ref,
    )
    .await
    // The same second counts: which came first cannot be told, and one retry too many is
    // cheaper than a whole backoff after an outage.
    .is_some_and(|since| since >= failed_at)
}

enum IssueError {
    Problem(Problem),
    Kube(kube::Error),
    /// This replica may not write (it lost its lease).
    NotLeading,
    /// The Secret changed since the decision was made.
    Conflict,
    /// The issuer's backend already has all the calls it may have at once.
    Busy,
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

impl From<Problem> for IssueError {
    fn from(p: Problem) -> Self {
        IssueError::Problem(p)
    }
}

/// Resolve the issuer, get a key, sign, write the Secret. Returns what is now in the Secret,
/// or, for an asynchronous CA, when to look again.
async fn sign_and_store(
    ctx: &Context,
    issuance: &Issuance<'_>,
    why: &Problem,
) -> Result<Stored, IssueError> {
    let Issuance { cert, observed, .. } = issuance;
    let namespace = cert.namespace().unwrap_or_default();
    // The next revision counts from the newest of the status and the Secret (the status in
    // the cache may lag behind a write this operator just made).
    let in_secret = match observed.secret {
        SecretState::Ours(data) => data.revision,
        _ => None,
    };
    let revision = decide::next_revision(issuance.prev.revision, in_secret)?;
    if let Some(unwritten) = take_unwritten(ctx, cert, observed.now) {
        info!(certificate = %observed.identity, "writing the certificate signed before the Secret was refused");
        return store_signed(ctx, issuance, unwritten).await;
    }
    let signer =
        super::issuer::signer_for(ctx, &namespace, &cert.spec.issuer_ref, observed.now).await?;
    let issuer_id = super::issuer::identity_of(&namespace, &cert.spec.issuer_ref);
    // Remote backends pass the per-issuer gate: a share of the workers, fail fast when down.
    let _pass = match &signer {
        Signer::Vault(_) | Signer::AwsPca(_) => Some(enter_gate(ctx, &issuer_id, cert).await?),
        Signer::SelfSigned | Signer::Ca(_) => None,
    };
    if let Signer::AwsPca(pca) = &signer {
        let result = issue_async(ctx, issuance, pca, revision).await;
        if let Err(IssueError::Problem(p)) = &result {
            record_reachability(ctx, cert, &issuer_id, p);
        } else {
            ctx.backends
                .gates
                .record(&issuer_id, true, std::time::Instant::now());
        }
        return result;
    }
    let key = private_key(cert, observed)?;
    let request = request::sign_request(&cert.spec, &key)
        .map_err(|e| Problem::new(Reason::InvalidSpec, e))?;
    let signed = signer.sign(&request, &key, observed.now).await;
    if matches!(signer, Signer::Vault(_)) {
        match &signed {
            Err(p) => record_reachability(ctx, cert, &issuer_id, p),
            Ok(_) => {
                ctx.backends
                    .gates
                    .record(&issuer_id, true, std::time::Instant::now());
            }
        }
    }
    let signed = signed?;
    let unwritten = Unwritten {
        fingerprint: pending::request_fingerprint(&cert.spec),
        revision,
        key,
        signed,
        issuer_type: signer.kind_label(),
        fresh_until: i64::MAX,
    };
    let result = store_signed(ctx, issuance, unwritten).await;
    tracing::debug!(why = %why.reason, "secret written");
    result
}

/// How long an issuance waits for one of its issuer's permits before it gives the worker back.
const GATE_WAIT: Duration = Duration::from_millis(500);

/// Pass the issuer's gate or say why not (busy: look again shortly; down: a failure).
async fn enter_gate(
    ctx: &Context,
    issuer_id: &str,
    cert: &Certificate,
) -> Result<super::limits::Pass, IssueError> {
    match ctx.backends.gates.enter(issuer_id, GATE_WAIT).await {
        Ok(pass) => Ok(pass),
        Err(Refusal::Busy) => Err(IssueError::Busy),
        Err(Refusal::Unreachable { until }) => Err(Problem::new(
            Reason::BackendUnavailable,
            format!(
                "{} {:?}: its backend did not answer recently; not asking again for {}s",
                cert.spec.issuer_ref.kind.as_str(),
                cert.spec.issuer_ref.name,
                until
                    .saturating_duration_since(std::time::Instant::now())
                    .as_secs()
                    .max(1)
            ),
        )
        .into()),
    }
}

/// Tell the gate whether the backend answered; when it just became unreachable, have the
/// issuer looked at again so its status (and the Certificates waiting on it) follow.
fn record_reachability(ctx: &Context, cert: &Certificate, issuer_id: &str, problem: &Problem) {
    let unreachable = matches!(
        problem.reason,
        Reason::VaultUnreachable | Reason::AwsUnreachable
    );
    let opened = ctx
        .backends
        .gates
        .record(issuer_id, !unreachable, std::time::Instant::now());
    if opened {
        ctx.shared
            .rechecks
            .request(&cert.namespace().unwrap_or_default(), &cert.spec.issuer_ref);
    }
}

/// Check a signed certificate against its key, write the Secret, describe the result. When the
/// API server refuses the Secret, keep the signed certificate for the retry.
async fn store_signed(
    ctx: &Context,
    issuance: &Issuance<'_>,
    unwritten: Unwritten,
) -> Result<Stored, IssueError> {
    let cert = issuance.cert;
    let key_pem = unwritten
        .key
        .to_pem(cert.spec.key_encoding())
        .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))?;
    let result = store(
        ctx,
        issuance,
        &unwritten.signed,
        &unwritten.key,
        &key_pem,
        unwritten.revision,
        unwritten.issuer_type,
    )
    .await;
    match result {
        Ok(current) => Ok(Stored::Done {
            current: Box::new(current),
            took: None,
        }),
        Err(StoreError::Refused { problem, leaf }) => {
            let renewal_time = renewal::renewal_time(
                issuance.observed.identity,
                leaf.not_before,
                leaf.not_after,
                decide::renew_before(&cert.spec),
                Some(issuance.observed.now),
            );
            keep_unwritten(
                ctx,
                cert,
                Unwritten {
                    fresh_until: renewal_time,
                    ..unwritten
                },
            );
            Err(problem.into())
        }
        Err(StoreError::Issue(e)) => Err(e),
    }
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

fn forget_unwritten(ctx: &Context, cert: &Certificate) {
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
    (unwritten.fingerprint == pending::request_fingerprint(&cert.spec)
        && now < unwritten.fresh_until)
        .then_some(unwritten)
}

/// Why a signed certificate did not reach the Secret.
enum StoreError {
    /// The API server refused the Secret; `leaf` is the certificate that was to be written.
    Refused {
        problem: Problem,
        leaf: Box<inspect::CertInfo>,
    },
    Issue(IssueError),
}

impl From<Problem> for StoreError {
    fn from(p: Problem) -> Self {
        StoreError::Issue(IssueError::Problem(p))
    }
}

/// Check what a signer returned against the key, write the Secret, describe the result.
async fn store(
    ctx: &Context,
    issuance: &Issuance<'_>,
    signed: &SignedChain,
    key: &PrivateKey,
    key_pem: &str,
    revision: i64,
    issuer_type: &str,
) -> Result<Current, StoreError> {
    let Issuance {
        cert,
        observed,
        secrets,
        target,
        ..
    } = issuance;
    let leaf = inspect::parse_chain(signed.chain_pem.as_bytes())
        .map_err(|e| {
            Problem::new(
                Reason::SigningFailed,
                format!("{issuer_type} issuer returned an unreadable certificate: {e}"),
            )
        })?
        .remove(0);
    if leaf.public_key_info != key.public_key_info() {
        return Err(Problem::new(
            Reason::SigningFailed,
            "issuer returned a certificate for a different key",
        )
        .into());
    }
    let contents = secret::Contents {
        chain_pem: &signed.chain_pem,
        key_pem,
        ca_pem: &signed.ca_pem,
        leaf: &leaf,
        revision,
        issuer_type,
        renew_request: observed.renew_requested,
        issued_at: observed.now,
    };
    if !ctx.is_leading() {
        return Err(StoreError::Issue(IssueError::NotLeading));
    }
    let built = secret::build(cert, &contents);
    let written = match target {
        WriteTarget::Create => secrets
            .create(
                &PostParams {
                    field_manager: Some(secret::FIELD_MANAGER.into()),
                    ..PostParams::default()
                },
                &built,
            )
            .await
            .map(|_| ()),
        WriteTarget::Replace(version) => {
            secret::apply_at(secrets, &built, version).await.map(|_| ())
        }
    };
    match written {
        Ok(()) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(StoreError::Issue(IssueError::Conflict));
        }
        Err(e) => {
            return Err(StoreError::Refused {
                problem: Problem::new(
                    Reason::SecretWriteFailed,
                    format!(
                        "the API server refused Secret {:?}: {}",
                        cert.spec.secret_name,
                        api_message(&e)
                    ),
                ),
                leaf: Box::new(leaf),
            });
        }
    }
    let renewal_time = renewal::renewal_time(
        observed.identity,
        leaf.not_before,
        leaf.not_after,
        decide::renew_before(&cert.spec),
        Some(observed.now),
    );
    Ok(Current {
        leaf,
        renewal_time,
        revision: Some(revision),
        renew_request: observed.renew_requested.map(str::to_string),
    })
}

/// The API server's own words for a failed request.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// One step of an AWS Private CA issuance (see `pending` for the order of writes): create the
/// durable request, submit it, or poll it; finish by writing the Secret.
async fn issue_async(
    ctx: &Context,
    issuance: &Issuance<'_>,
    pca: &AwsPcaSigner,
    revision: i64,
) -> Result<Stored, IssueError> {
    let Issuance {
        cert,
        observed,
        secrets,
        ..
    } = issuance;
    let now = observed.now;
    let name = pending::secret_name(&cert.name_any());
    // The request and the resourceVersion it was read or created at.
    let mut stored: Option<(pending::Pending, Option<String>)> = match secrets
        .get_opt(&name)
        .await
        .map_err(IssueError::Kube)?
    {
        Some(s) if !pending::is_pending_secret(&s) => {
            return Err(Problem::new(
                Reason::SecretConflict,
                format!("Secret {name:?} exists and is not a certsmith pending-request Secret"),
            )
            .into());
        }
        Some(s) => match pending::parse(&s) {
            Ok(p) if pending::still_valid(&p, cert, revision, &pca.client.ca_arn, now) => {
                Some((p, s.metadata.resource_version.clone()))
            }
            stale => {
                if let Err(e) = stale {
                    warn!(certificate = %observed.identity, "discarding unreadable pending request: {e}");
                }
                discard_pending(ctx, secrets, &s).await?;
                None
            }
        },
        None => None,
    };
    if stored.is_none() {
        let created = new_request(cert, pca, revision, observed).await?;
        if !ctx.is_leading() {
            return Err(IssueError::NotLeading);
        }
        let written = secrets
            .create(&Default::default(), &pending::build(cert, &created))
            .await
            .map_err(IssueError::Kube)?;
        stored = Some((created, written.metadata.resource_version));
    }
    let Some((mut request, resource_version)) = stored else {
        return Err(Problem::new(Reason::ApiError, "pending request vanished").into());
    };
    let (arn, submitted_at) = match (&request.certificate_arn, request.submitted_at) {
        (Some(arn), Some(at)) => (arn.clone(), at),
        _ => {
            let arn = pca
                .client
                .issue(&Submission {
                    csr_pem: &request.csr_pem,
                    template_arn: &request.template_arn,
                    signing_algorithm: &request.signing_algorithm,
                    not_after: request.not_after,
                    idempotency_token: &request.idempotency_token,
                })
                .await?;
            // Logged first: should the write below fail, the ARN is still on record.
            info!(certificate = %observed.identity, certificate_arn = %arn, "submitted to AWS Private CA");
            // Only onto the request that was sent (resourceVersion precondition): a replica
            // that lost the lease meanwhile cannot mark another request with this ARN.
            let body = serde_json::json!({"metadata": {
                "resourceVersion": resource_version,
                "annotations": pending::submitted_annotations(&arn, now),
            }});
            if !ctx.is_leading() {
                return Err(IssueError::NotLeading);
            }
            secrets
                .patch(&name, &PatchParams::default(), &Patch::Merge(body))
                .await
                .map_err(IssueError::Kube)?;
            request.certificate_arn = Some(arn.clone());
            request.submitted_at = Some(now);
            (arn, now)
        }
    };
    let waiting = |until: i64| Stored::Waiting {
        until,
        message: format!(
            "AWS Private CA is issuing {arn} (revision {revision}, submitted {})",
            decide::rfc3339(submitted_at)
        ),
    };
    if let Some(at) = pending::poll_not_before(submitted_at, now) {
        return Ok(waiting(at));
    }
    let signed = match pca.client.get(&arn).await? {
        Poll::InProgress => return Ok(waiting(pending::next_poll(submitted_at, now))),
        Poll::Failed(problem) => {
            // That request is dead: the next attempt starts over with a new key and token.
            discard_pending_named(ctx, secrets, &name).await?;
            return Err(problem.into());
        }
        Poll::Issued(signed) => signed,
    };
    let key = PrivateKey::from_pem(&request.key_pem).map_err(|e| {
        Problem::new(
            Reason::KeyGenerationFailed,
            format!("pending key unreadable: {e}"),
        )
    })?;
    let key_pem = key
        .to_pem(cert.spec.key_encoding())
        .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))?;
    let current = match store(ctx, issuance, &signed, &key, &key_pem, revision, "awsPCA").await {
        Ok(current) => current,
        // The pending request keeps the certificate: the retry fetches it again.
        Err(StoreError::Refused { problem, .. }) => return Err(problem.into()),
        Err(StoreError::Issue(IssueError::Problem(problem))) => {
            // AWS returned something unusable for this key: do not ask for it again.
            discard_pending_named(ctx, secrets, &name).await?;
            return Err(problem.into());
        }
        Err(StoreError::Issue(e)) => return Err(e),
    };
    // The certificate is stored; a failed delete is retried by `clean_up_pending` on the next
    // look and must not undo the success.
    if let Err(IssueError::Kube(e)) = discard_pending_named(ctx, secrets, &name).await {
        warn!(certificate = %observed.identity, "deleting the pending request failed: {e}");
    }
    Ok(Stored::Done {
        current: Box::new(current),
        took: Some(Duration::from_secs(
            u64::try_from(now - request.created_at).unwrap_or(0),
        )),
    })
}

/// A new request: key, CSR, template, algorithm and validity, fixed before anything is sent.
async fn new_request(
    cert: &Certificate,
    pca: &AwsPcaSigner,
    revision: i64,
    observed: &Observed<'_>,
) -> Result<pending::Pending, IssueError> {
    let key = private_key(cert, observed)?;
    let request = request::sign_request(&cert.spec, &key)
        .map_err(|e| Problem::new(Reason::InvalidSpec, e))?;
    let signing_algorithm = pca.client.signing_algorithm(pca.signing_algorithm).await?;
    let uid = cert.metadata.uid.clone().unwrap_or_default();
    let lifetime = i64::try_from(request.duration.as_secs()).unwrap_or(i64::MAX);
    Ok(pending::Pending {
        idempotency_token: pending::idempotency_token(&uid, revision, &request.csr_pem),
        certificate_uid: uid,
        fingerprint: pending::request_fingerprint(&cert.spec),
        revision,
        ca_arn: pca.client.ca_arn.clone(),
        key_pem: key
            .to_pem(crate::api::KeyEncoding::Pkcs8)
            .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))?,
        template_arn: pca.template_for(&request),
        csr_pem: request.csr_pem,
        signing_algorithm,
        not_after: observed.now.saturating_add(lifetime),
        created_at: observed.now,
        certificate_arn: None,
        submitted_at: None,
    })
}

/// Remove a leftover pending-request Secret of an up-to-date Certificate (best effort: the
/// next look tries again).
async fn clean_up_pending(
    ctx: &Context,
    secrets: &Api<Secret>,
    cert: &Certificate,
    identity: &str,
) {
    let name = pending::secret_name(&cert.name_any());
    match secrets.get_opt(&name).await {
        Ok(Some(s)) if pending::is_pending_secret(&s) => {
            if let Err(IssueError::Kube(e)) = discard_pending(ctx, secrets, &s).await {
                warn!(certificate = %identity, "deleting a leftover pending request failed: {e}");
            } else {
                info!(certificate = %identity, "deleted a leftover pending request");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(certificate = %identity, "reading the pending request failed: {e}"),
    }
}

/// Delete the pending-request Secret that was read (a UID precondition: never another object
/// that took its name since; already gone is fine).
async fn discard_pending(
    ctx: &Context,
    secrets: &Api<Secret>,
    read: &Secret,
) -> Result<(), IssueError> {
    if !ctx.is_leading() {
        return Err(IssueError::NotLeading);
    }
    secret::delete_exactly(secrets, read)
        .await
        .map_err(IssueError::Kube)
}

/// Delete the pending-request Secret `name` as it is now (read first for its UID).
async fn discard_pending_named(
    ctx: &Context,
    secrets: &Api<Secret>,
    name: &str,
) -> Result<(), IssueError> {
    match secrets.get_opt(name).await.map_err(IssueError::Kube)? {
        Some(s) if pending::is_pending_secret(&s) => discard_pending(ctx, secrets, &s).await,
        _ => Ok(()),
    }
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

fn secret_data(s: &Secret) -> SecretData {
    let get = |k: &str| s.data.as_ref().and_then(|d| d.get(k)).map(|b| b.0.clone());
    let ann = |k: &str| s.annotations().get(k).cloned();
    SecretData {
        tls_crt: get("tls.crt"),
        tls_key: get("tls.key"),
        ca_crt: get("ca.crt"),
        issuer_name: ann(secret::ISSUER_NAME_ANNOTATION),
        issuer_kind: ann(secret::ISSUER_KIND_ANNOTATION),
        issuer_type: ann(secret::ISSUER_TYPE_ANNOTATION),
        revision: ann(secret::REVISION_ANNOTATION).and_then(|r| r.trim().parse().ok()),
        renew_request: ann(secret::RENEW_REQUEST_ANNOTATION),
        issued_at: ann(secret::ISSUED_AT_ANNOTATION)
            .as_deref()
            .and_then(decide::parse_rfc3339),
    }
}

/// The (creation time, name) a claim on a Secret is judged by: the older Certificate wins,
/// and of two created in the same second the one whose name sorts first.
fn claim_rank(meta: &kube::api::ObjectMeta) -> (Option<jiff::Timestamp>, String) {
    (
        meta.creation_timestamp.clone().map(|t| t.0),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The oldest other Certificate in the namespace that names the same Secret, if it is older
/// than this one (creation time, then name): the first claimant keeps the Secret.
fn older_claimant(ctx: &Context, cert: &Certificate) -> Option<String> {
    let me = claim_rank(&cert.metadata);
    ctx.certificates
        .state()
        .iter()
        .filter(|o| o.namespace() == cert.namespace() && o.name_any() != me.1)
        .filter(|o| {
            o.data.pointer("/spec/secretName").and_then(|v| v.as_str())
                == Some(cert.spec.secret_name.as_str())
        })
        .map(|o| claim_rank(&o.metadata))
        .filter(|other| *other < me)
        .min()
        .map(|(_, name)| name)
}

/// Whether `owner`, the Certificate a Secret says it was written for, still holds it: it
/// exists, still names that Secret, and is older than `cert` (creation time, then name). The
/// cache may lag behind, so an owner missing from it is looked up live before the Secret is
/// taken over.
async fn claims_secret(ctx: &Context, cert: &Certificate, owner: &str) -> Result<bool, Error> {
    let namespace = cert.namespace().unwrap_or_default();
    let cached = ctx.certificates.get(
        &ObjectRef::new_with(owner, kube::core::ApiResource::erase::<Certificate>(&()))
            .within(&namespace),
    );
    let (meta, secret_name) = match cached {
        Some(o) => (
            o.metadata.clone(),
            o.data
                .pointer("/spec/secretName")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        ),
        None => match Api::<Certificate>::namespaced(ctx.client.clone(), &namespace)
            .get_opt(owner)
            .await?
        {
            Some(c) => (c.metadata, Some(c.spec.secret_name)),
            None => return Ok(false),
        },
    };
    Ok(
        secret_name.as_deref() == Some(cert.spec.secret_name.as_str())
            && claim_rank(&meta) < claim_rank(&cert.metadata),
    )
}

/// Take over a Secret written for `previous`, which no longer holds it: mark it as this
/// Certificate's (only onto the version that was read) and say so in an Event.
async fn adopt(
    ctx: &Context,
    cert: &Certificate,
    secrets: &Api<Secret>,
    found: &Secret,
    previous: &str,
) -> Result<Secret, Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let body = serde_json::json!({"metadata": {
        "resourceVersion": found.resource_version(),
        "annotations": {secret::CERTIFICATE_ANNOTATION: cert.name_any()},
    }});
    let adopted = secrets
        .patch(
            &found.name_any(),
            &PatchParams::default(),
            &Patch::Merge(body),
        )
        .await?;
    let problem = Problem::new(
        Reason::Adopted,
        format!(
            "Secret {:?} was written for Certificate {previous:?}, which no longer claims it; this Certificate manages it now",
            cert.spec.secret_name
        ),
    );
    info!(certificate = %format!("{}/{}", cert.namespace().unwrap_or_default(), cert.name_any()), "{}", problem.message);
    publish(ctx, cert, EventType::Normal, &problem).await;
    Ok(adopted)
}

/// Write status when it differs from what is there. Returns whether it wrote.
async fn write_status(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
    outcome: &Outcome<'_>,
    now: i64,
) -> Result<bool, Error> {
    let next = status::desired(prev, cert.metadata.generation, outcome, now);
    let (namespace, name) = (cert.namespace().unwrap_or_default(), cert.name_any());
    ctx.metrics.certificate(&crate::metrics::CertificateFacts {
        namespace: &namespace,
        name: &name,
        issuer_kind: cert.spec.issuer_ref.kind.as_str(),
        issuer_name: &cert.spec.issuer_ref.name,
        not_before: next.not_before.as_deref().and_then(decide::parse_rfc3339),
        not_after: next.not_after.as_deref().and_then(decide::parse_rfc3339),
        renewal: next.renewal_time.as_deref().and_then(decide::parse_rfc3339),
        ready: crate::api::conditions::find(&next.conditions, crate::api::conditions::READY)
            .is_some_and(|c| c.status == "True"),
    });
    if cert.status.as_ref() == Some(&next) {
        return Ok(false);
    }
    patch_status(ctx, cert, &next).await?;
    Ok(true)
}

async fn patch_status(
    ctx: &Context,
    cert: &Certificate,
    next: &CertificateStatus,
) -> Result<(), Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let api: Api<Certificate> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let body = serde_json::json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "status": next});
    api.patch_status(
        &cert.name_any(),
        &PatchParams::apply(secret::FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}

/// Report an internal error (a panic in this Certificate's reconcile): Ready=False with
/// `InternalError`, and a Warning Event. The panic's text goes to the log only.
pub async fn report_internal_error(ctx: &Context, obj: &DynamicObject) {
    let Ok(cert) = super::typed::<Certificate>(obj) else {
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
        &decide::rfc3339(now),
    );
    if next != prev
        && let Err(e) = patch_status(ctx, &cert, &next).await
    {
        warn!("reporting an internal error in status failed: {e}");
    }
    publish(ctx, &cert, EventType::Warning, &problem).await;
}

async fn publish(ctx: &Context, cert: &Certificate, type_: EventType, problem: &Problem) {
    if !ctx.is_leading() {
        return;
    }
    let event = Event {
        type_,
        reason: problem.reason.as_str().into(),
        note: Some(crate::api::conditions::bounded_message(&problem.message)),
        action: "Issue".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cert.object_ref(&())).await {
        warn!("publishing event failed: {e}");
    }
}

/// A Certificate that the API server accepted but this operator cannot read (for instance a
/// newer schema): report it once and wait for a change, never retry in a hot loop.
async fn report_malformed(
    obj: &DynamicObject,
    ctx: &Context,
    error: String,
) -> Result<Action, Error> {
    warn!(certificate = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()), "cannot read Certificate: {error}");
    ctx.metrics.reconcile_error(Reason::InvalidSpec);
    let problem = Problem::new(
        Reason::InvalidSpec,
        format!("the operator cannot read this Certificate: {error}"),
    );
    let reference = obj.object_ref(&kube::core::ApiResource::erase::<Certificate>(&()));
    let event = Event {
        type_: EventType::Warning,
        reason: problem.reason.as_str().into(),
        note: Some(crate::api::conditions::bounded_message(&problem.message)),
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

fn requeue_at(at: i64, now: i64) -> Action {
    let secs = u64::try_from(at.saturating_sub(now).max(1)).unwrap_or(1);
    Action::requeue(Duration::from_secs(secs).min(MAX_REQUEUE))
}
