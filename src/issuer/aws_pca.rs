//! AWS Private CA: `IssueCertificate` with the CSR only, then `GetCertificate` until the
//! certificate is ready. Issuance is asynchronous, so this backend does not sign in one call:
//! the Certificate controller stores the request durably between the two (see
//! `controller::certificate::pending`).
//!
//! Each call waits for the per-CA rate limit first and is counted in the backend metrics.
//! Messages carry AWS's error code and text, never credentials.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_acmpca::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api::{AwsSigningAlgorithm, KeyUsage};
use crate::metrics::Metrics;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

use super::SignedChain;

const BACKEND: &str = "awspca";
/// How long a described CA (status, key algorithm) is trusted before asking again.
const DESCRIBE_TTL: Duration = Duration::from_secs(300);

/// Requests per second per CA: IssueCertificate at `issue`, GetCertificate and
/// DescribeCertificateAuthority at three times that (AWS's quotas for the reads are higher).
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    reads: DefaultKeyedRateLimiter<String>,
}

impl RateLimits {
    pub fn new(issue_per_second: NonZeroU32) -> Self {
        let reads = issue_per_second.saturating_mul(NonZeroU32::MIN.saturating_add(2));
        RateLimits {
            limiter: RateLimiter::keyed(Quota::per_second(issue_per_second)),
            reads: RateLimiter::keyed(Quota::per_second(reads)),
        }
    }

    async fn wait(&self, ca_arn: &str, operation: &str) {
        let limiter = if operation == "IssueCertificate" {
            &self.limiter
        } else {
            &self.reads
        };
        limiter.until_key_ready(&ca_arn.to_string()).await;
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

/// What DescribeCertificateAuthority says about the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    /// ACTIVE, PENDING_CERTIFICATE, DISABLED, EXPIRED, FAILED, DELETED, CREATING.
    pub status: String,
    /// e.g. EC_prime256v1, RSA_2048.
    pub key_algorithm: String,
}

/// Where an issued request stands.
#[derive(Debug)]
pub enum Poll {
    InProgress,
    Issued(SignedChain),
    /// The CA refused or lost the request: a new request is needed.
    Failed(Problem),
}

/// One SDK client per issuer, shared by all issuances.
pub struct AwsPcaClient {
    client: aws_sdk_acmpca::Client,
    pub ca_arn: String,
    pub region: String,
    metrics: Arc<Metrics>,
    limits: Arc<RateLimits>,
    described: Mutex<Option<(CaInfo, Instant)>>,
}

impl std::fmt::Debug for AwsPcaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsPcaClient")
            .field("ca_arn", &self.ca_arn)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsPcaClient {
    pub fn new(
        client: aws_sdk_acmpca::Client,
        ca_arn: String,
        region: String,
        metrics: Arc<Metrics>,
        limits: Arc<RateLimits>,
    ) -> Self {
        AwsPcaClient {
            client,
            ca_arn,
            region,
            metrics,
            limits,
            described: Mutex::new(None),
        }
    }

    /// Describe the CA (always asks AWS) and remember what it said.
    pub async fn describe(&self) -> Result<CaInfo, Problem> {
        const OP: &str = "DescribeCertificateAuthority";
        self.limits.wait(&self.ca_arn, OP).await;
        let started = Instant::now();
        let result = self
            .client
            .describe_certificate_authority()
            .certificate_authority_arn(&self.ca_arn)
            .send()
            .await;
        let output = self.observe(OP, started, result)?;
        let ca = output.certificate_authority();
        let info = CaInfo {
            status: ca
                .and_then(|c| c.status())
                .map_or_else(|| "UNKNOWN".to_string(), |s| s.as_str().to_string()),
            key_algorithm: ca
                .and_then(|c| c.certificate_authority_configuration())
                .map(|c| c.key_algorithm().as_str().to_string())
                .unwrap_or_default(),
        };
        if let Ok(mut described) = self.described.lock() {
            *described = Some((info.clone(), Instant::now()));
        }
        Ok(info)
    }

    /// Issuer readiness: the CA exists, the credentials work, and it is ACTIVE.
    pub async fn check(&self) -> Result<CaInfo, Problem> {
        let info = self.describe().await?;
        self.ensure_active().await?;
        Ok(info)
    }

    /// Before issuing: the CA was ACTIVE when last described (within [`DESCRIBE_TTL`]; the
    /// issuer's reconcile refreshes it). The emulator, unlike AWS, would sign with a disabled
    /// CA, and AWS's own refusal would cost a request.
    pub async fn ensure_active(&self) -> Result<(), Problem> {
        let info = self.described().await?;
        if info.status == "ACTIVE" {
            Ok(())
        } else {
            Err(Problem::new(
                Reason::AwsPcaNotActive,
                format!(
                    "AWS Private CA {} is {}, not ACTIVE",
                    self.ca_arn, info.status
                ),
            ))
        }
    }

    /// The CA's description, from the cache when recent.
    async fn described(&self) -> Result<CaInfo, Problem> {
        let cached = self.described.lock().ok().and_then(|d| {
            d.as_ref()
                .filter(|(_, at)| at.elapsed() < DESCRIBE_TTL)
                .map(|(info, _)| info.clone())
        });
        match cached {
            Some(info) => Ok(info),
            None => self.describe().await,
        }
    }

    /// The signing algorithm: the configured one, else the one matching the CA's key.
    pub async fn signing_algorithm(
        &self,
        configured: Option<AwsSigningAlgorithm>,
    ) -> Result<String, Problem> {
        if let Some(algorithm) = configured {
            return Ok(algorithm.as_str().to_string());
        }
        let info = self.described().await?;
        default_signing_algorithm(&info.key_algorithm)
            .map(str::to_string)
            .ok_or_else(|| {
                Problem::new(
                    Reason::InvalidSpec,
                    format!(
                        "cannot derive a signing algorithm from the CA key algorithm {:?}; set awsPCA.signingAlgorithm",
                        info.key_algorithm
                    ),
                )
            })
    }

    /// Submit the CSR. Returns the certificate's ARN; the certificate itself comes later.
    pub async fn issue(&self, request: &Submission<'_>) -> Result<String, Problem> {
        const OP: &str = "IssueCertificate";
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::Absolute)
            .value(request.not_after)
            .build()
            .map_err(|e| Problem::new(Reason::InvalidSpec, format!("validity: {e}")))?;
        self.limits.wait(&self.ca_arn, OP).await;
        let started = Instant::now();
        let result = self
            .client
            .issue_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .csr(Blob::new(request.csr_pem.as_bytes()))
            .signing_algorithm(SigningAlgorithm::from(request.signing_algorithm))
            .template_arn(request.template_arn)
            .validity(validity)
            .idempotency_token(request.idempotency_token)
            .send()
            .await;
        let output = self.observe(OP, started, result)?;
        output.certificate_arn().map(str::to_string).ok_or_else(|| {
            Problem::new(
                Reason::SigningFailed,
                "AWS Private CA IssueCertificate returned no certificate ARN",
            )
        })
    }

    /// Ask for an issued certificate.
    pub async fn get(&self, certificate_arn: &str) -> Result<Poll, Problem> {
        const OP: &str = "GetCertificate";
        self.limits.wait(&self.ca_arn, OP).await;
        let started = Instant::now();
        let result = self
            .client
            .get_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .certificate_arn(certificate_arn)
            .send()
            .await;
        if let Err(SdkError::ServiceError(e)) = &result {
            let code = e.err().code().unwrap_or_default();
            let text = e.err().message().unwrap_or_default();
            match code {
                "RequestInProgressException" => {
                    self.count(OP, "in_progress", started);
                    return Ok(Poll::InProgress);
                }
                "RequestFailedException" | "ResourceNotFoundException" => {
                    self.count(OP, "error", started);
                    return Ok(Poll::Failed(Problem::new(
                        Reason::SigningFailed,
                        format!("AWS Private CA did not issue {certificate_arn}: {code}: {text}"),
                    )));
                }
                _ => {}
            }
        }
        let output = self.observe(OP, started, result)?;
        let leaf = output.certificate().unwrap_or_default();
        let chain = output.certificate_chain().unwrap_or_default();
        super::assemble_chain(leaf, &[chain.to_string()])
            .map(Poll::Issued)
            .map_err(|e| {
                Problem::new(
                    Reason::SigningFailed,
                    format!("AWS Private CA returned an unreadable certificate: {e}"),
                )
            })
    }

    /// Count the call and turn an SDK error into a Problem with a fixed reason.
    fn observe<T, E>(
        &self,
        operation: &str,
        started: Instant,
        result: Result<T, SdkError<E, aws_sdk_acmpca::config::http::HttpResponse>>,
    ) -> Result<T, Problem>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match result {
            Ok(output) => {
                self.count(operation, "success", started);
                Ok(output)
            }
            Err(error) => {
                let problem = classify(operation, &self.ca_arn, &self.region, &error);
                let result = match problem.reason {
                    Reason::AwsThrottled => "throttled",
                    Reason::AwsUnreachable => "unreachable",
                    _ => "error",
                };
                self.count(operation, result, started);
                Err(problem)
            }
        }
    }

    fn count(&self, operation: &str, result: &str, started: Instant) {
        self.metrics
            .backend_request(BACKEND, operation, result, started.elapsed());
    }
}

/// One IssueCertificate call's parameters, all stored with the pending request so that a
/// retry sends exactly the same request (AWS then honours the idempotency token).
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub csr_pem: &'a str,
    pub template_arn: &'a str,
    pub signing_algorithm: &'a str,
    /// Unix seconds.
    pub not_after: i64,
    pub idempotency_token: &'a str,
}

/// A ready AWS Private CA backend.
#[derive(Debug)]
pub struct AwsPcaSigner {
    pub client: Arc<AwsPcaClient>,
    pub template_arn: Option<String>,
    pub signing_algorithm: Option<AwsSigningAlgorithm>,
}

impl AwsPcaSigner {
    /// The template for a request: the configured one, else chosen from its usages.
    pub fn template_for(&self, request: &SignRequest) -> String {
        self.template_arn
            .clone()
            .unwrap_or_else(|| default_template(request.is_ca, &request.usages).to_string())
    }
}

/// The AWS template matching what the Certificate asks for.
pub fn default_template(is_ca: bool, usages: &[KeyUsage]) -> &'static str {
    if is_ca {
        return "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1";
    }
    let server = usages.contains(&KeyUsage::ServerAuth);
    let client = usages.contains(&KeyUsage::ClientAuth);
    match (server, client) {
        (true, false) => "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1",
        (false, true) => "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1",
        _ => "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
    }
}

/// The signing algorithm for a CA key algorithm as DescribeCertificateAuthority names it.
pub fn default_signing_algorithm(key_algorithm: &str) -> Option<&'static str> {
    match key_algorithm {
        "RSA_2048" | "RSA_3072" | "RSA_4096" => Some("SHA256WITHRSA"),
        "EC_prime256v1" => Some("SHA256WITHECDSA"),
        "EC_secp384r1" => Some("SHA384WITHECDSA"),
        "EC_secp521r1" => Some("SHA512WITHECDSA"),
        "SM2" => Some("SM3WITHSM2"),
        _ => None,
    }
}

/// The region named in a CA ARN (`arn:aws:acm-pca:<region>:<account>:certificate-authority/…`).
pub fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Map an SDK error to a reason: throttling, credentials, authorization, a missing or
/// inactive CA, an unreachable endpoint, or a refused request.
fn classify<E>(
    operation: &str,
    ca_arn: &str,
    region: &str,
    error: &SdkError<E, aws_sdk_acmpca::config::http::HttpResponse>,
) -> Problem
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().unwrap_or_default();
    let text = error.message().unwrap_or_default();
    let reason = match error {
        SdkError::ServiceError(_) => reason_for_code(code),
        _ => {
            let context = DisplayErrorContext(error).to_string().to_lowercase();
            if context.contains("credential") {
                Reason::AwsCredentialsMissing
            } else {
                Reason::AwsUnreachable
            }
        }
    };
    let detail = match (reason, error) {
        (_, SdkError::ServiceError(_)) => format!("{code}: {text}"),
        (Reason::AwsCredentialsMissing, _) => format!(
            "no usable AWS credentials ({}): set awsPCA.credentials or give the operator an AWS identity (IRSA, Pod Identity, environment)",
            DisplayErrorContext(error)
        ),
        _ => DisplayErrorContext(error).to_string(),
    };
    let hint = match reason {
        Reason::AwsPcaNotFound => format!(" (CA {ca_arn} in region {region})"),
        _ => String::new(),
    };
    Problem::new(
        reason,
        format!("AWS Private CA {operation}: {detail}{hint}"),
    )
}

fn reason_for_code(code: &str) -> Reason {
    match code {
        "ThrottlingException"
        | "LimitExceededException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => Reason::AwsThrottled,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException"
        | "IncompleteSignature" => Reason::AwsAuthFailed,
        "ResourceNotFoundException" | "InvalidArnException" => Reason::AwsPcaNotFound,
        "InvalidStateException" => Reason::AwsPcaNotActive,
        _ => Reason::SigningFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_follow_usages() {
        use KeyUsage::*;
        let both = [DigitalSignature, KeyEncipherment, ServerAuth, ClientAuth];
        assert!(default_template(false, &both).ends_with("/EndEntityCertificate/V1"));
        assert!(
            default_template(false, &[DigitalSignature, ServerAuth])
                .ends_with("/EndEntityServerAuthCertificate/V1")
        );
        assert!(
            default_template(false, &[DigitalSignature, ClientAuth])
                .ends_with("/EndEntityClientAuthCertificate/V1")
        );
        assert!(default_template(false, &[DigitalSignature]).ends_with("/EndEntityCertificate/V1"));
        assert!(default_template(true, &both).contains("SubordinateCACertificate"));
    }

    #[test]
    fn signing_algorithm_follows_the_ca_key() {
        assert_eq!(
            default_signing_algorithm("EC_prime256v1"),
            Some("SHA256WITHECDSA")
        );
        assert_eq!(
            default_signing_algorithm("EC_secp384r1"),
            Some("SHA384WITHECDSA")
        );
        assert_eq!(default_signing_algorithm("RSA_4096"), Some("SHA256WITHRSA"));
        assert_eq!(default_signing_algorithm("ML_DSA_65"), None);
    }

    #[test]
    fn region_comes_from_the_arn() {
        assert_eq!(
            region_of("arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/abc"),
            Some("eu-west-1")
        );
        assert_eq!(region_of("nonsense"), None);
    }

    #[test]
    fn error_codes_map_to_fixed_reasons() {
        assert_eq!(reason_for_code("ThrottlingException"), Reason::AwsThrottled);
        assert_eq!(
            reason_for_code("LimitExceededException"),
            Reason::AwsThrottled
        );
        assert_eq!(
            reason_for_code("AccessDeniedException"),
            Reason::AwsAuthFailed
        );
        assert_eq!(
            reason_for_code("ResourceNotFoundException"),
            Reason::AwsPcaNotFound
        );
        assert_eq!(
            reason_for_code("InvalidStateException"),
            Reason::AwsPcaNotActive
        );
        assert_eq!(
            reason_for_code("MalformedCSRException"),
            Reason::SigningFailed
        );
    }
}
