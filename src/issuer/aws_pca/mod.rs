//! The AWS Private CA backend: `IssueCertificate` with the CSR only, then `GetCertificate`
//! until the certificate is ready. Issuance is asynchronous, so one [`AwsPcaBackend::sign`]
//! takes one step of it (make and store the request, submit it, or poll it) and the
//! controller calls again when told; see `pending` for the order of writes and what a crash
//! at each point leaves.
//!
//! - `client`: the SDK client, one call wrapper (rate limit, timer, metrics, error reasons);
//! - `request`: what one IssueCertificate says (template, algorithm, validity, token);
//! - `pending`: the request as stored between steps, its validity and the poll schedule.
//!
//! Credentials come from a Secret (the issuer's Secret namespace only) or the default AWS
//! chain, optionally through an assumed role; one SDK client per issuer is reused.

mod client;
mod pending;
mod request;

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_acmpca::config::{Credentials, Region, SharedCredentialsProvider};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use client::{AwsPcaClient, CaInfo, Poll, RateLimits};
pub use pending::{IDEMPOTENCY_WINDOW_SECS, Pending};
pub use request::{default_signing_algorithm, default_template, region_of};

use crate::api::{AwsCredentialsSecretRef, AwsPcaIssuer, AwsSigningAlgorithm};
use crate::pki::Sensitive;
use crate::pki::keys::PrivateKey;
use crate::reason::{Problem, Reason};

use super::{Env, Order, PendingStore, Signed};
use request::Submission;

/// Attempts per AWS call; the SDK's standard mode backs off with jitter between them, and
/// treats throttling errors as retryable.
const MAX_ATTEMPTS: u32 = 4;
/// Upper bound for one AWS call, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A ready AWS Private CA backend.
#[derive(Debug)]
pub struct AwsPcaBackend {
    pub client: Arc<AwsPcaClient>,
    pub template_arn: Option<String>,
    pub signing_algorithm: Option<AwsSigningAlgorithm>,
}

/// Static credentials read from a Secret.
struct StaticCredentials {
    access_key_id: String,
    secret_access_key: Sensitive,
    session_token: Option<Sensitive>,
}

impl AwsPcaBackend {
    pub async fn build(spec: &AwsPcaIssuer, env: &Env<'_>) -> Result<Self, Problem> {
        let region = spec
            .region
            .clone()
            .or_else(|| region_of(&spec.arn).map(str::to_string))
            .ok_or_else(|| {
                Problem::new(
                    Reason::InvalidSpec,
                    "awsPCA.region is not set and the ARN names no region",
                )
            })?;
        let credentials = match &spec.credentials {
            Some(c) => Some(read_credentials(env, &c.secret_ref).await?),
            None if !env.id.is_cluster_issuer() && !env.settings.issuer_ambient_credentials => {
                return Err(Problem::new(
                    Reason::AwsCredentialsMissing,
                    "a namespaced Issuer may not use the operator's own AWS identity: set awsPCA.credentials.secretRef, use a ClusterIssuer, or run the operator with --issuer-ambient-credentials",
                ));
            }
            None => None,
        };
        Ok(AwsPcaBackend {
            client: shared_client(env, spec, &region, credentials).await,
            template_arn: spec.template_arn.clone(),
            signing_algorithm: spec.signing_algorithm,
        })
    }

    /// Issuer readiness: the CA exists, the credentials work, and it is ACTIVE now.
    pub async fn check(&self) -> Result<String, Problem> {
        self.client.check().await?;
        Ok(format!(
            "AWS Private CA {} is ACTIVE in {}",
            self.client.ca_arn, self.client.region
        ))
    }

    pub async fn ca_certificates(&self) -> Result<Vec<String>, Problem> {
        self.client.ca_certificates().await
    }

    /// RevokeCertificate with the CA ARN, the serial and the reason.
    pub async fn revoke(
        &self,
        serial: &str,
        reason: crate::api::RevocationReason,
    ) -> Result<(), Problem> {
        self.client.revoke(serial, reason).await
    }

    /// Before an issuance: the CA was ACTIVE when last described (cached for 5 minutes; the
    /// issuer's readiness check describes it afresh). AWS would refuse a request to a CA that
    /// is not, at a cost; the emulator would not.
    pub async fn ready_to_sign(&self) -> Result<(), Problem> {
        self.client.ensure_active().await
    }

    /// One step of an issuance: make and store the request, submit it, or poll it.
    pub async fn sign(&self, order: &Order<'_>, store: &PendingStore) -> Result<Signed, Problem> {
        let now = order.now;
        let (mut request, mut record) = match self.stored(order, store).await? {
            Some(stored) => stored,
            None => {
                let request = self.new_request(order).await?;
                let record = store.create(&request.to_record()).await?;
                (request, record)
            }
        };
        let (arn, submitted_at) = match (&request.certificate_arn, request.submitted_at) {
            (Some(arn), Some(at)) => (arn.clone(), at),
            _ => {
                let arn = self
                    .client
                    .issue(&Submission {
                        csr_pem: &request.csr_pem,
                        template_arn: &request.template_arn,
                        signing_algorithm: &request.signing_algorithm,
                        not_after: request.not_after,
                        idempotency_token: &request.idempotency_token,
                    })
                    .await?;
                // Logged first: should the write below fail, the ARN is still on record. The
                // write goes only onto the request that was sent (its version), so a replica
                // that lost the lease meanwhile cannot mark another request with this ARN.
                info!(certificate_arn = %arn, revision = request.revision, "submitted to AWS Private CA");
                record = store
                    .annotate(&record, pending::submitted_fields(&arn, now))
                    .await?;
                request.certificate_arn = Some(arn.clone());
                request.submitted_at = Some(now);
                (arn, now)
            }
        };
        let waiting = |retry_at: i64| Signed::Pending {
            retry_at,
            message: format!(
                "AWS Private CA is issuing {arn} (revision {}, submitted {})",
                request.revision,
                crate::time::rfc3339(submitted_at)
            ),
        };
        if let Some(at) = pending::poll_not_before(submitted_at, now) {
            return Ok(waiting(at));
        }
        match self.client.get(&arn).await? {
            Poll::InProgress => Ok(waiting(pending::next_poll(submitted_at, now))),
            Poll::Failed(problem) => {
                // That request is dead: the next attempt starts over with a new key and token.
                store.discard(&record).await?;
                Err(problem)
            }
            Poll::Issued(chain) => {
                let key = PrivateKey::from_pem(&request.key_pem).map_err(|e| {
                    Problem::new(
                        Reason::KeyGenerationFailed,
                        format!("pending key unreadable: {e}"),
                    )
                })?;
                Ok(Signed::Issued {
                    chain,
                    key,
                    pending_since: Some(request.created_at),
                })
            }
        }
    }

    /// The stored request, if it still serves this order; a stale or unreadable one is
    /// discarded (a new one is made).
    async fn stored(
        &self,
        order: &Order<'_>,
        store: &PendingStore,
    ) -> Result<Option<(Pending, super::PendingRecord)>, Problem> {
        let Some(record) = store.load().await? else {
            return Ok(None);
        };
        match Pending::from_record(&record) {
            Ok(p)
                if pending::still_valid(
                    &p,
                    order.certificate_uid,
                    order.spec,
                    order.revision,
                    &self.client.ca_arn,
                    order.now,
                ) =>
            {
                Ok(Some((p, record)))
            }
            stale => {
                if let Err(e) = stale {
                    warn!(pending = %store.name(), "discarding unreadable pending request: {e}");
                }
                store.discard(&record).await?;
                Ok(None)
            }
        }
    }

    /// A new request: key, CSR, template, algorithm and validity, fixed before anything is sent.
    async fn new_request(&self, order: &Order<'_>) -> Result<Pending, Problem> {
        let (key, request) = (order.new_key)()?;
        let signing_algorithm = self
            .client
            .signing_algorithm(self.signing_algorithm)
            .await?;
        let lifetime = i64::try_from(request.duration.as_secs()).unwrap_or(i64::MAX);
        let template_arn = self
            .template_arn
            .clone()
            .unwrap_or_else(|| default_template(request.is_ca, &request.usages).to_string());
        Ok(Pending {
            idempotency_token: request::idempotency_token(
                order.certificate_uid,
                order.revision,
                &request.csr_pem,
            ),
            certificate_uid: order.certificate_uid.to_string(),
            fingerprint: crate::pki::request::fingerprint(order.spec),
            revision: order.revision,
            ca_arn: self.client.ca_arn.clone(),
            key_pem: key
                .to_pem(crate::api::KeyEncoding::Pkcs8)
                .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))?,
            template_arn,
            csr_pem: request.csr_pem,
            signing_algorithm,
            not_after: order.now.saturating_add(lifetime),
            created_at: order.now,
            certificate_arn: None,
            submitted_at: None,
        })
    }
}

/// The client for this issuer, rebuilt only when its CA, region, endpoint, role or
/// credentials change.
async fn shared_client(
    env: &Env<'_>,
    spec: &AwsPcaIssuer,
    region: &str,
    credentials: Option<StaticCredentials>,
) -> Arc<AwsPcaClient> {
    let mut hasher = Sha256::new();
    for part in [
        spec.arn.as_str(),
        region,
        spec.endpoint.as_deref().unwrap_or(""),
        spec.role.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    if let Some(c) = &credentials {
        hasher.update(c.access_key_id.as_bytes());
        hasher.update(c.secret_access_key.fingerprint().as_bytes());
        hasher.update(
            c.session_token
                .as_ref()
                .map(Sensitive::fingerprint)
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    let fingerprint: [u8; 32] = hasher.finalize().into();
    if let Some(client) = env.caches.aws.get(env.id, &fingerprint) {
        return client;
    }
    let client = Arc::new(AwsPcaClient::new(
        sdk_client(spec, region, credentials).await,
        spec.arn.clone(),
        region.to_string(),
        env.metrics.clone(),
        env.caches.aws_limits.clone(),
    ));
    env.caches.aws.insert(env.id, fingerprint, client.clone());
    client
}

async fn sdk_client(
    spec: &AwsPcaIssuer,
    region: &str,
    credentials: Option<StaticCredentials>,
) -> aws_sdk_acmpca::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(c) = credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id,
            c.secret_access_key.expose().to_string(),
            c.session_token.map(|t| t.expose().to_string()),
            None,
            "certsmith-secret",
        ));
    }
    let mut config = loader.load().await;
    if let Some(role) = &spec.role {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
            .session_name("certsmith")
            .configure(&config)
            .build()
            .await;
        config = config
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
    }
    let mut builder = aws_sdk_acmpca::config::Builder::from(&config);
    if let Some(endpoint) = &spec.endpoint {
        builder = builder.endpoint_url(endpoint.clone());
    }
    aws_sdk_acmpca::Client::from_conf(builder.build())
}

async fn read_credentials(
    env: &Env<'_>,
    reference: &AwsCredentialsSecretRef,
) -> Result<StaticCredentials, Problem> {
    let missing = Reason::AwsCredentialsMissing;
    let secret = env
        .secrets
        .read(&reference.name, missing, "AWS credentials ")
        .await?;
    let required =
        |key: &str| super::capabilities::text(&secret, key, missing).map(|v| v.trim().to_string());
    let access_key_id = required(
        reference
            .access_key_id_key
            .as_deref()
            .unwrap_or("AWS_ACCESS_KEY_ID"),
    )?;
    let secret_access_key = Sensitive::new(required(
        reference
            .secret_access_key_key
            .as_deref()
            .unwrap_or("AWS_SECRET_ACCESS_KEY"),
    )?);
    let session_token = match &reference.session_token_key {
        Some(key) => Some(Sensitive::new(required(key)?)),
        None => None,
    };
    Ok(StaticCredentials {
        access_key_id,
        secret_access_key,
        session_token,
    })
}
