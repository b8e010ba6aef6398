//! The Certificate reconciler: gather (I/O) -> decide (pure) -> sign -> write Secret -> status.

pub mod decide;
pub mod pending;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{Certificate, CertificateStatus, RENEW_ANNOTATION, RotationPolicy};
use crate::issuer::aws_pca::{AwsPcaSigner, Poll, Submission};
use crate::issuer::{SignedChain, Signer};
use crate::pki::keys::PrivateKey;
use crate::pki::{inspect, renewal, request};
use crate::reason::{Problem, Reason};
use crate::secret;

use super::Context;
use decide::{Current, Decision, Observed, SecretData, SecretState};
use status::Outcome;

/// Errors that make the controller retry with its own backoff: only API failures. Everything
/// else is reported in status and scheduled explicitly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Longest time between two looks at a healthy Certificate, as a safety net.
const MAX_REQUEUE: Duration = Duration::from_secs(8 * 3600);
/// How often to look again at a Certificate blocked by something the operator does not watch.
const REFUSED_REQUEUE: Duration = Duration::from_secs(60);

pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let cert: Certificate = match super::typed(&obj) {
        Ok(c) => c,
        Err(e) => return report_malformed(&obj, &ctx, e).await,
    };
    let namespace = cert.namespace().unwrap_or_default();
    let now = ctx.now();

    // Gather.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let found = secrets.get_opt(&cert.spec.secret_name).await?;
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
    let claimed_by = older_claimant(&ctx, &cert);
    let identity = format!("{namespace}/{}", cert.name_any());
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
            // An AWS Private CA request may be left over (its delete failed, or the reason to
            // issue went away while it was in flight): it holds a private key, remove it.
            let in_flight =
                crate::api::conditions::find(&prev.conditions, crate::api::conditions::ISSUING)
                    .is_some();
            let from_aws = matches!(&observed.secret, SecretState::Ours(d) if d.issuer_type.as_deref() == Some("awsPCA"));
            if in_flight || from_aws {
                clean_up_pending(&secrets, &cert, &identity).await;
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
            issue(&ctx, &cert, &prev, why, current, &secrets, &observed).await
        }
    }
}

/// Issue a certificate for `why`, unless a previous failure's backoff is still running.
async fn issue(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
    why: Problem,
    current: Option<Current>,
    secrets: &Api<Secret>,
    observed: &Observed<'_>,
) -> Result<Action, Error> {
    let now = observed.now;
    let attempts = prev.failed_issuance_attempts.unwrap_or(0);
    let spec_changed = prev.observed_generation != cert.metadata.generation;
    if attempts > 0 && !spec_changed {
        let last = prev
            .last_failure_time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        let retry_at = last
            + renewal::jittered_backoff_secs(
                observed.identity,
                attempts,
                last,
                current.as_ref().map(|c| c.leaf.not_after),
            );
        if now < retry_at && !issuer_recovered(ctx, cert, prev).await {
            return Ok(requeue_at(retry_at, now));
        }
    }

    info!(certificate = %observed.identity, reason = %why.reason, "issuing: {}", why.message);
    let started = Instant::now();
    let result = sign_and_store(ctx, cert, prev, &why, secrets, observed).await;
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
        Err(IssueError::Problem(failure)) => {
            ctx.metrics
                .issuance(issuer_kind, "failure", started.elapsed());
            ctx.metrics.reconcile_error(failure.reason);
            warn!(certificate = %observed.identity, reason = %failure.reason, "issuance failed: {}", failure.message);
            let retry_at = now
                + renewal::jittered_backoff_secs(
                    observed.identity,
                    attempts + 1,
                    now,
                    current.as_ref().map(|c| c.leaf.not_after),
                );
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

/// Whether the last failure was the issuer's and the issuer now reports Ready: then retry at
/// once instead of waiting out the backoff (issuer changes are watched and mapped here).
async fn issuer_recovered(ctx: &Context, cert: &Certificate, prev: &CertificateStatus) -> bool {
    let issuer_failure =
        crate::api::conditions::find(&prev.conditions, crate::api::conditions::RECONCILING)
            .is_some_and(|c| {
                c.reason == Reason::IssuerNotReady.as_str()
                    || c.reason == Reason::IssuerNotFound.as_str()
            });
    issuer_failure
        && super::issuer::is_ready(
            ctx,
            &cert.namespace().unwrap_or_default(),
            &cert.spec.issuer_ref,
        )
        .await
}

enum IssueError {
    Problem(Problem),
    Kube(kube::Error),
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
    cert: &Certificate,
    prev: &CertificateStatus,
    why: &Problem,
    secrets: &Api<Secret>,
    observed: &Observed<'_>,
) -> Result<Stored, IssueError> {
    let namespace = cert.namespace().unwrap_or_default();
    let signer =
        super::issuer::signer_for(ctx, &namespace, &cert.spec.issuer_ref, observed.now).await?;
    // The next revision counts from the newest of the status and the Secret (the status in
    // the cache may lag behind a write this operator just made).
    let in_secret = match observed.secret {
        SecretState::Ours(data) => data.revision,
        _ => None,
    };
    let revision = prev.revision.max(in_secret).unwrap_or(0) + 1;
    if let Signer::AwsPca(pca) = &signer {
        return issue_async(cert, pca, revision, secrets, observed).await;
    }
    let key = private_key(cert, observed)?;
    let key_pem = key
        .to_pem(cert.spec.key_encoding())
        .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))?;
    let request = request::sign_request(&cert.spec, &key)
        .map_err(|e| Problem::new(Reason::InvalidSpec, e))?;
    let signed = signer.sign(&request, &key, observed.now).await?;
    let current = store(
        cert,
        secrets,
        observed,
        &signed,
        &key,
        &key_pem,
        revision,
        signer.kind_label(),
    )
    .await?;
    tracing::debug!(why = %why.reason, "secret written");
    Ok(Stored::Done {
        current: Box::new(current),
        took: None,
    })
}

/// Check what a signer returned against the key, write the Secret, describe the result.
#[allow(clippy::too_many_arguments)]
async fn store(
    cert: &Certificate,
    secrets: &Api<Secret>,
    observed: &Observed<'_>,
    signed: &SignedChain,
    key: &PrivateKey,
    key_pem: &str,
    revision: i64,
    issuer_type: &str,
) -> Result<Current, IssueError> {
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
    };
    secret::apply(secrets, &secret::build(cert, &contents))
        .await
        .map_err(IssueError::Kube)?;
    let renewal_time = renewal::renewal_time(
        observed.identity,
        leaf.not_before,
        leaf.not_after,
        decide::renew_before(&cert.spec),
    );
    Ok(Current {
        leaf,
        renewal_time,
        revision: Some(revision),
        renew_request: observed.renew_requested.map(str::to_string),
    })
}

/// One step of an AWS Private CA issuance (see `pending` for the order of writes): create the
/// durable request, submit it, or poll it; finish by writing the Secret.
async fn issue_async(
    cert: &Certificate,
    pca: &AwsPcaSigner,
    revision: i64,
    secrets: &Api<Secret>,
    observed: &Observed<'_>,
) -> Result<Stored, IssueError> {
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
                discard_pending(secrets, &name).await?;
                None
            }
        },
        None => None,
    };
    if stored.is_none() {
        let created = new_request(cert, pca, revision, observed).await?;
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
            discard_pending(secrets, &name).await?;
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
    let result = store(
        cert, secrets, observed, &signed, &key, &key_pem, revision, "awsPCA",
    )
    .await;
    if let Err(IssueError::Problem(_)) = &result {
        // AWS returned something unusable for this key: do not ask for it again.
        discard_pending(secrets, &name).await?;
    }
    let current = result?;
    // The certificate is stored; a failed delete is retried by `clean_up_pending` on the next
    // look and must not undo the success.
    if let Err(IssueError::Kube(e)) = discard_pending(secrets, &name).await {
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
async fn clean_up_pending(secrets: &Api<Secret>, cert: &Certificate, identity: &str) {
    let name = pending::secret_name(&cert.name_any());
    match secrets.get_opt(&name).await {
        Ok(Some(s)) if pending::is_pending_secret(&s) => {
            if let Err(IssueError::Kube(e)) = discard_pending(secrets, &name).await {
                warn!(certificate = %identity, "deleting a leftover pending request failed: {e}");
            } else {
                info!(certificate = %identity, "deleted a leftover pending request");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(certificate = %identity, "reading the pending request failed: {e}"),
    }
}

/// Delete a pending-request Secret (already gone is fine).
async fn discard_pending(secrets: &Api<Secret>, name: &str) -> Result<(), IssueError> {
    match secrets.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(IssueError::Kube(e)),
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
        issuer_name: ann(secret::ISSUER_NAME_ANNOTATION),
        issuer_kind: ann(secret::ISSUER_KIND_ANNOTATION),
        issuer_type: ann(secret::ISSUER_TYPE_ANNOTATION),
        revision: ann(secret::REVISION_ANNOTATION).and_then(|r| r.parse().ok()),
        renew_request: ann(secret::RENEW_REQUEST_ANNOTATION),
    }
}

/// The oldest other Certificate in the namespace that names the same Secret, if it is older
/// than this one (creation time, then name): the first claimant keeps the Secret.
fn older_claimant(ctx: &Context, cert: &Certificate) -> Option<String> {
    let me = (
        cert.metadata.creation_timestamp.clone().map(|t| t.0),
        cert.name_any(),
    );
    ctx.certificates
        .state()
        .iter()
        .filter(|o| o.namespace() == cert.namespace() && o.name_any() != me.1)
        .filter(|o| {
            o.data.pointer("/spec/secretName").and_then(|v| v.as_str())
                == Some(cert.spec.secret_name.as_str())
        })
        .map(|o| {
            (
                o.metadata.creation_timestamp.clone().map(|t| t.0),
                o.name_any(),
            )
        })
        .filter(|other| *other < me)
        .min()
        .map(|(_, name)| name)
}

/// Write status when it differs from what is there. Returns whether it wrote.
async fn write_status(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
    outcome: &Outcome<'_>,
    now: i64,
) -> Result<bool, kube::Error> {
    let next = status::desired(prev, cert.metadata.generation, outcome, now);
    let seconds = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    let (namespace, name) = (cert.namespace().unwrap_or_default(), cert.name_any());
    ctx.metrics.certificate(&crate::metrics::CertificateFacts {
        namespace: &namespace,
        name: &name,
        issuer_kind: cert.spec.issuer_ref.kind.as_str(),
        issuer_name: &cert.spec.issuer_ref.name,
        not_before: seconds(&next.not_before),
        not_after: seconds(&next.not_after),
        renewal: seconds(&next.renewal_time),
        ready: crate::api::conditions::find(&next.conditions, crate::api::conditions::READY)
            .is_some_and(|c| c.status == "True"),
    });
    if cert.status.as_ref() == Some(&next) {
        return Ok(false);
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
    Ok(true)
}

async fn publish(ctx: &Context, cert: &Certificate, type_: EventType, problem: &Problem) {
    let event = Event {
        type_,
        reason: problem.reason.as_str().into(),
        note: Some(truncate(&problem.message, 1000)),
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
        note: Some(truncate(&problem.message, 1000)),
        action: "Read".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &reference).await {
        warn!("publishing event failed: {e}");
    }
    Ok(Action::await_change())
}

fn requeue_at(at: i64, now: i64) -> Action {
    let secs = u64::try_from((at - now).max(1)).unwrap_or(1);
    Action::requeue(Duration::from_secs(secs).min(MAX_REQUEUE))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
