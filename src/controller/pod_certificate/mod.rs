//! PodCertificateRequests for certsmith's signers, `clusterissuers.certsmith.dev/<name>`: the
//! kubelet made the key on the node and sent only its public key; the ClusterIssuer `<name>`
//! answers every request once, Issued, Denied or Failed (the API server then freezes the
//! status). Requests for other signers are never touched.
//!
//! gather (the request, the issuer, the facts its policy needs) -> decide (pure, `decide.rs`)
//! -> sign (the CA backend, directly on the public key) -> status (one PUT of
//! `/status`, at the version read). The signer's ClusterTrustBundle is `bundle.rs`.

pub mod bundle;
pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::conditions::bounded_message;
use crate::api::pod_certificate::{
    DENIED, FAILED, ISSUED, PodCertificateRequest, PodCertificateRequestStatus, SIGNER_PREFIX,
};
use crate::api::{ClusterIssuer, IssuerSpec};
use crate::issuer::{Backend, BackendType, IssuerId};
use crate::policy::spiffe;
use crate::reason::{Problem, Reason};

use super::certificate::policy::{Blocked, check_spec};
use super::issuer::{ready_backend, spec_of};
use super::{Context, Error};

/// A request that meets a passing failure (the API server, a fact the policy needs) is
/// retried this often...
const RETRY: Duration = Duration::from_secs(5);
/// ... until it is this old: then it is answered Failed, so the kubelet is never left waiting.
const GIVE_UP_AFTER_SECS: i64 = 300;
/// How often a request naming a ClusterIssuer this instance does not serve is looked at again
/// (the issuer may yet appear), until some instance answers it.
const NOT_SERVED_RECHECK: Duration = Duration::from_secs(30);

/// How a request is answered.
#[derive(Debug)]
pub enum Answer {
    Issued {
        chain_pem: String,
        not_before: i64,
        not_after: i64,
        begin_refresh_at: i64,
    },
    Denied(Problem),
    Failed(Problem),
}

impl Answer {
    fn condition_type(&self) -> &'static str {
        match self {
            Answer::Issued { .. } => ISSUED,
            Answer::Denied(_) => DENIED,
            Answer::Failed(_) => FAILED,
        }
    }
}

/// What a watched request is to this operator.
enum Triage {
    /// Another signer's, or already answered.
    NotOurs,
    Answer(Box<PodCertificateRequest>, String),
}

/// The controller's context.
pub struct Signer {
    pub ctx: Arc<Context>,
}

fn triage(obj: &DynamicObject) -> Result<Triage, String> {
    let signer_name = obj
        .data
        .pointer("/spec/signerName")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let Some(issuer) = signer_name.strip_prefix(SIGNER_PREFIX) else {
        return Ok(Triage::NotOurs);
    };
    let issuer = issuer.to_string();
    let pcr: PodCertificateRequest = super::typed(obj)?;
    if pcr.answer().is_some() {
        return Ok(Triage::NotOurs);
    }
    Ok(Triage::Answer(Box::new(pcr), issuer))
}

/// Whether this instance serves the ClusterIssuer `name`: always without
/// `--cluster-issuer-selector`; with one, when the issuer exists and matches it (asked of the
/// API server, so a request arriving before the issuer's watch event is not missed). Requests
/// for another instance's issuers are that instance's to answer.
async fn served_here(ctx: &Context, name: &str) -> Result<bool, kube::Error> {
    let Some(selector) = &ctx.settings.cluster_issuer_selector else {
        return Ok(true);
    };
    if !spiffe::is_dns_subdomain(name) {
        return Ok(false);
    }
    let params = ListParams::default()
        .labels(selector)
        .fields(&format!("metadata.name={name}"));
    let found = Api::<ClusterIssuer>::all(ctx.client.clone())
        .list_metadata(&params)
        .await?;
    Ok(!found.items.is_empty())
}

/// Answer one request, if it is certsmith's and unanswered.
pub async fn reconcile(obj: Arc<DynamicObject>, signer: Arc<Signer>) -> Result<Action, Error> {
    let ctx = &signer.ctx;
    let (pcr, issuer) = match triage(&obj) {
        Ok(Triage::NotOurs) => return Ok(Action::await_change()),
        Ok(Triage::Answer(pcr, issuer)) => (pcr, issuer),
        Err(e) => {
            // The API server validated it; this operator cannot read it (a newer schema).
            warn!(request = %key(&obj), "cannot read PodCertificateRequest: {e}");
            ctx.metrics.reconcile_error(Reason::InvalidSpec);
            return Ok(Action::await_change());
        }
    };
    if !served_here(ctx, &issuer).await? {
        return Ok(Action::requeue(NOT_SERVED_RECHECK));
    }
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let answer = match answer(ctx, &pcr, &issuer).await {
        Ok(answer) => answer,
        Err(problem) => {
            ctx.metrics.reconcile_error(problem.reason);
            let age = pcr
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| ctx.now() - t.0.as_second());
            if age < GIVE_UP_AFTER_SECS {
                warn!(request = %key(&obj), "answering later: {problem}");
                return Ok(Action::requeue(RETRY));
            }
            Answer::Failed(Problem::new(
                problem.reason,
                format!("gave up after {age} s of retrying: {}", problem.message),
            ))
        }
    };
    write(ctx, &pcr, &issuer, answer).await
}

fn key(obj: &DynamicObject) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Decide the answer. `Err`: a passing failure, to be retried.
async fn answer(
    ctx: &Context,
    pcr: &PodCertificateRequest,
    issuer: &str,
) -> Result<Answer, Problem> {
    if !spiffe::is_dns_subdomain(issuer) {
        return Ok(Answer::Failed(Problem::new(
            Reason::IssuerNotFound,
            format!(
                "signer {:?} names no ClusterIssuer: {SIGNER_PREFIX} must be followed by a ClusterIssuer name",
                pcr.spec.signer_name.chars().take(300).collect::<String>()
            ),
        )));
    }
    let id = IssuerId::cluster_issuer(issuer);
    let spec = match spec_of(ctx, &id).await {
        Ok(spec) => spec,
        Err(p) if p.reason == Reason::IssuerNotFound => return Ok(Answer::Failed(p)),
        Err(p) => return Err(p),
    };
    // What the request itself asks, before the issuer is looked at further.
    let key = match decide::request_key(&pcr.spec) {
        Ok(key) => key,
        Err(p) => return Ok(Answer::Denied(p)),
    };
    let dns_names = match decide::requested_dns_names(&pcr.spec) {
        Ok(names) => names,
        Err(p) => return Ok(Answer::Denied(p)),
    };
    if let Err(p) = can_serve(&id, &spec) {
        return Ok(Answer::Failed(p));
    }
    let Some(svid) = crate::policy::svid_for(
        spec.policy.as_ref().unwrap_or(&Default::default()),
        pcr.namespace().as_deref().unwrap_or_default(),
        &pcr.spec.service_account_name,
    ) else {
        return Ok(Answer::Failed(Problem::new(
            Reason::NoTrustDomain,
            format!(
                "{id} has no policy.spiffe.trustDomain, so a pod's identity (spiffe://<trustDomain>/ns/<namespace>/sa/<service account>) is undefined; set it to serve pod certificates"
            ),
        )));
    };
    let lifetime = match decide::lifetime(&pcr.spec, spec.policy.as_ref()) {
        Ok(lifetime) => lifetime,
        Err(p) => {
            ctx.metrics
                .policy_denial(&id.name, id.kind.as_str(), crate::policy::Field::Duration);
            return Ok(Answer::Denied(p));
        }
    };
    let wanted = decide::certificate_spec(&svid, dns_names, &key, lifetime);
    let namespace = pcr.namespace().unwrap_or_default();
    match check_spec(
        ctx,
        &namespace,
        &pcr.spec.service_account_name,
        &wanted,
        &id,
        &spec,
    )
    .await
    {
        Ok(()) => {}
        Err(Blocked::Denied(denial)) => {
            ctx.metrics
                .policy_denial(&id.name, id.kind.as_str(), denial.field);
            return Ok(Answer::Denied(Problem::new(
                Reason::PolicyDenied,
                denial.message,
            )));
        }
        Err(Blocked::Unknown(p)) => return Err(p),
    }
    let backend = match ready_backend(ctx, &id, &spec).await {
        Ok(backend) => backend,
        Err(p) => return Ok(Answer::Failed(p)),
    };
    let Backend::Ca(ca) = backend else {
        // can_serve let only CA issuers through.
        return Ok(Answer::Failed(unsupported(&id, backend.backend_type())));
    };
    let params = match crate::pki::request::certificate_params(&wanted) {
        Ok(params) => params,
        Err(e) => return Ok(Answer::Denied(Problem::new(Reason::InvalidRequest, e))),
    };
    let duration = Duration::from_secs(u64::try_from(lifetime).unwrap_or(0));
    let signed = match ca.sign_public_key(&key.spki_der, params, duration, ctx.now()) {
        Ok(signed) => signed,
        Err(p) => return Ok(Answer::Failed(p)),
    };
    let leaf = crate::pki::inspect::parse_chain(signed.chain_pem.as_bytes())
        .ok()
        .and_then(|chain| chain.into_iter().next());
    let Some(leaf) = leaf else {
        return Ok(Answer::Failed(Problem::new(
            Reason::SigningFailed,
            "the signed certificate does not parse",
        )));
    };
    if leaf.not_after - leaf.not_before < decide::MIN_LIFETIME_SECS {
        return Ok(Answer::Failed(Problem::new(
            Reason::CaExpired,
            format!(
                "{id}'s CA certificate expires at {}, too soon for the one-hour minimum of a pod certificate",
                crate::time::rfc3339(leaf.not_after)
            ),
        )));
    }
    let uid = pcr.metadata.uid.clone().unwrap_or_default();
    Ok(Answer::Issued {
        begin_refresh_at: decide::begin_refresh_at(&uid, leaf.not_before, leaf.not_after),
        chain_pem: signed.chain_pem,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
    })
}

/// Whether the issuer's type can sign a key it only has the public half of.
fn can_serve(id: &IssuerId, spec: &IssuerSpec) -> Result<(), Problem> {
    match BackendType::of(spec) {
        Ok(BackendType::Ca) => Ok(()),
        Ok(other) => Err(unsupported(id, other)),
        Err(p) => Err(Problem::new(
            Reason::IssuerNotReady,
            format!("{id}: {}", p.message),
        )),
    }
}

fn unsupported(id: &IssuerId, backend: BackendType) -> Problem {
    let why = match backend {
        BackendType::SelfSigned => {
            "a selfSigned issuer signs each certificate with its own key, which the node keeps"
        }
        BackendType::Vault | BackendType::AwsPca => {
            "it signs only a CSR made with the private key, which stays on the node (PodCertificateRequests carry no CSR before Kubernetes 1.36, and certsmith does not forward 1.36's stub CSR yet)"
        }
        BackendType::Ca => "",
    };
    Problem::new(
        Reason::UnsupportedIssuerType,
        format!(
            "{id} is a {} issuer and cannot serve pod certificates: {why}; only ca ClusterIssuers can",
            backend.as_str()
        ),
    )
}

/// The request's status for `answer`.
fn status_of(
    pcr: &PodCertificateRequest,
    answer: &Answer,
    now: i64,
) -> PodCertificateRequestStatus {
    let time = |t: i64| jiff::Timestamp::from_second(t).ok().map(Time);
    let (reason, message) = match answer {
        Answer::Issued { not_after, .. } => (
            Reason::Issued.as_str().to_string(),
            format!("issued, valid until {}", crate::time::rfc3339(*not_after)),
        ),
        Answer::Denied(p) | Answer::Failed(p) => (p.reason.as_str().to_string(), p.message.clone()),
    };
    let condition = Condition {
        type_: answer.condition_type().into(),
        status: "True".into(),
        reason,
        message: bounded_message(&message),
        last_transition_time: time(now).unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH)),
        observed_generation: pcr.metadata.generation,
    };
    let mut status = PodCertificateRequestStatus {
        conditions: vec![condition],
        ..Default::default()
    };
    if let Answer::Issued {
        chain_pem,
        not_before,
        not_after,
        begin_refresh_at,
    } = answer
    {
        status.certificate_chain = Some(chain_pem.clone());
        status.not_before = time(*not_before);
        status.not_after = time(*not_after);
        status.begin_refresh_at = time(*begin_refresh_at);
    }
    status
}

/// Write the answer through the status subresource, at the version read (a request answered
/// meanwhile, by another replica, is not answered twice). An issued certificate the API server
/// refuses is answered Failed with the server's words instead, so nothing stays unanswered;
/// a Failed answer refused too is an error (logged, retried).
async fn write(
    ctx: &Context,
    pcr: &PodCertificateRequest,
    issuer: &str,
    answer: Answer,
) -> Result<Action, Error> {
    let namespace = pcr.namespace().unwrap_or_default();
    let name = pcr.name_any();
    let api: Api<PodCertificateRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some(crate::secret::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let mut answer = answer;
    loop {
        let mut next = pcr.clone();
        next.status = Some(status_of(pcr, &answer, ctx.now()));
        if !ctx.is_leading() {
            return Err(Error::NotLeading);
        }
        match api.replace_status(&name, &params, &next).await {
            Ok(_) => {
                report(ctx, pcr, issuer, &answer).await;
                return Ok(Action::await_change());
            }
            // Gone, or changed since it was read (the watch brings the new version).
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                return Ok(Action::await_change());
            }
            Err(kube::Error::Api(e))
                if e.code == 422 && matches!(answer, Answer::Issued { .. }) =>
            {
                warn!(request = %format!("{namespace}/{name}"), "the API server refused the issued certificate: {}", e.message);
                answer = Answer::Failed(Problem::new(
                    Reason::SigningFailed,
                    format!(
                        "the API server refused the issued certificate: {}",
                        e.message
                    ),
                ));
            }
            // Refused outright (no `sign` on the signer, say): the error policy logs it and
            // retries.
            Err(e) => return Err(Error::Kube(e)),
        }
    }
}

/// Metrics, a log line, and for a refusal a Warning Event on the request.
async fn report(ctx: &Context, pcr: &PodCertificateRequest, issuer: &str, answer: &Answer) {
    let request = format!("{}/{}", pcr.namespace().unwrap_or_default(), pcr.name_any());
    let reason = match answer {
        Answer::Issued { .. } => Reason::Issued,
        Answer::Denied(p) | Answer::Failed(p) => p.reason,
    };
    ctx.metrics
        .pod_certificate_request(issuer, answer.condition_type(), reason);
    let problem = match answer {
        Answer::Issued { not_after, .. } => {
            info!(%request, issuer, not_after = %crate::time::rfc3339(*not_after), "pod certificate issued");
            return;
        }
        Answer::Denied(p) | Answer::Failed(p) => p,
    };
    info!(%request, issuer, answer = answer.condition_type(), reason = %problem.reason, "{}", problem.message);
    let event = Event {
        type_: EventType::Warning,
        reason: problem.reason.as_str().into(),
        note: Some(bounded_message(&problem.message)),
        action: answer.condition_type().into(),
        secondary: None,
    };
    if ctx.is_leading()
        && let Err(e) = ctx.recorder.publish(&event, &pcr.object_ref(&())).await
    {
        warn!("publishing event failed: {e}");
    }
}

/// After a panic while answering `obj`: answer it Failed (`InternalError`) rather than leave
/// the kubelet waiting.
pub async fn report_internal_error(ctx: &Context, obj: &DynamicObject) {
    let Ok(pcr) = super::typed::<PodCertificateRequest>(obj) else {
        return;
    };
    let Some(issuer) = pcr.cluster_issuer().map(str::to_string) else {
        return;
    };
    if pcr.answer().is_some() {
        return;
    }
    let answer = Answer::Failed(Problem::new(
        Reason::InternalError,
        "the operator failed while answering this request (see its log)",
    ));
    if let Err(e) = write(ctx, &pcr, &issuer, answer).await {
        warn!("answering a request after an internal error failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PodCertificateRequest {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r", "namespace": "a", "generation": 1, "uid": "u"},
            "spec": {"signerName": "clusterissuers.certsmith.dev/x"},
        }))
        .expect("request")
    }

    /// The API server accepts a refusal only with every non-condition field empty, and an
    /// issuance only with notBefore, notAfter and beginRefreshAt all set.
    #[test]
    fn statuses_have_exactly_what_the_api_server_requires() {
        let denied = status_of(
            &request(),
            &Answer::Denied(Problem::new(Reason::PolicyDenied, "m".repeat(5000))),
            1_800_000_000,
        );
        assert_eq!(denied.conditions.len(), 1);
        let c = &denied.conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str()), (DENIED, "True"));
        assert_eq!(c.reason, "PolicyDenied");
        assert!(c.message.len() <= crate::api::conditions::MAX_MESSAGE_BYTES);
        assert_eq!(c.observed_generation, Some(1));
        assert!(denied.certificate_chain.is_none() && denied.not_after.is_none());
        assert!(denied.not_before.is_none() && denied.begin_refresh_at.is_none());

        let failed = status_of(
            &request(),
            &Answer::Failed(Problem::new(Reason::UnsupportedIssuerType, "vault")),
            1_800_000_000,
        );
        assert_eq!(failed.conditions[0].type_, FAILED);
        assert!(failed.certificate_chain.is_none());

        let issued = status_of(
            &request(),
            &Answer::Issued {
                chain_pem: "PEM".into(),
                not_before: 100,
                not_after: 3700,
                begin_refresh_at: 2500,
            },
            1_800_000_000,
        );
        assert_eq!(issued.conditions[0].type_, ISSUED);
        assert_eq!(issued.conditions[0].reason, "Issued");
        let second = |t: &Option<Time>| t.as_ref().map(|t| t.0.as_second());
        assert_eq!(second(&issued.not_before), Some(100));
        assert_eq!(second(&issued.not_after), Some(3700));
        assert_eq!(second(&issued.begin_refresh_at), Some(2500));
        assert_eq!(issued.certificate_chain.as_deref(), Some("PEM"));
    }

    #[test]
    fn only_ca_issuers_serve_and_the_others_say_why() {
        let spec =
            |v: serde_json::Value| -> IssuerSpec { serde_json::from_value(v).expect("spec") };
        let id = IssuerId::cluster_issuer("x");
        assert!(can_serve(&id, &spec(serde_json::json!({"ca": {"secretName": "s"}}))).is_ok());
        for (issuer, named) in [
            (serde_json::json!({"selfSigned": {}}), "selfSigned"),
            (
                serde_json::json!({"vault": {"server": "https://v", "path": "pki/sign/r",
                    "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}}),
                "vault",
            ),
            (
                serde_json::json!({"awsPCA": {"arn": "arn:aws:acm-pca:us-east-1:1:certificate-authority/x"}}),
                "awsPCA",
            ),
        ] {
            let refused = can_serve(&id, &spec(issuer)).expect_err(named);
            assert_eq!(refused.reason, Reason::UnsupportedIssuerType);
            assert!(refused.message.contains(named), "{}", refused.message);
            assert!(
                refused.message.contains("only ca ClusterIssuers"),
                "{}",
                refused.message
            );
        }
    }
}
