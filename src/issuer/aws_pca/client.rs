//! The AWS Private CA client: one per issuer, shared by every issuance. Every call goes through
//! [`AwsPcaClient::call`]: it waits for the per-CA rate limit, is timed and counted in the
//! backend metrics, and its error becomes a Problem with a fixed reason. Messages carry AWS's
//! error code and text, never credentials.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_acmpca::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use aws_sdk_acmpca::config::http::HttpResponse;
use aws_sdk_acmpca::operation::get_certificate::GetCertificateError;
use aws_sdk_acmpca::operation::revoke_certificate::RevokeCertificateError;
use aws_sdk_acmpca::types::RevocationReason as AwsRevocationReason;

use crate::api::{AwsSigningAlgorithm, RevocationReason};
use crate::issuer::{BackendType, SignedChain};
use crate::metrics::Metrics;
use crate::reason::{Problem, Reason};

use super::request::{Submission, default_signing_algorithm};
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
        // Revocations are writes too, with a quota like issuance's.
        let limiter = if operation == "IssueCertificate" || operation == "RevokeCertificate" {
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

    /// The one way every AWS call is made: it waits for the CA's rate limit, is timed and
    /// counted in the backend metrics, and its error becomes a Problem with a fixed reason.
    /// `peek` may answer an error itself (a poll still in progress) with a result label.
    async fn call<T, E, Fut>(
        &self,
        operation: &'static str,
        send: impl FnOnce() -> Fut,
        peek: impl FnOnce(&SdkError<E, HttpResponse>) -> Option<(&'static str, T)>,
    ) -> Result<T, Problem>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.limits.wait(&self.ca_arn, operation).await;
        let started = Instant::now();
        let result = send().await;
        let (label, outcome) = match result {
            Ok(output) => ("success", Ok(output)),
            Err(error) => match peek(&error) {
                Some((label, answer)) => (label, Ok(answer)),
                None => {
                    let problem = classify(operation, &self.ca_arn, &self.region, &error);
                    let label = match problem.reason {
                        Reason::AwsThrottled => "throttled",
                        Reason::AwsUnreachable => "unreachable",
                        _ => "error",
                    };
                    (label, Err(problem))
                }
            },
        };
        self.metrics.backend_request(
            BackendType::AwsPca.as_str(),
            operation,
            label,
            started.elapsed(),
        );
        outcome
    }

    /// Describe the CA (always asks AWS) and remember what it said.
    pub async fn describe(&self) -> Result<CaInfo, Problem> {
        let send = || {
            self.client
                .describe_certificate_authority()
                .certificate_authority_arn(&self.ca_arn)
                .send()
        };
        let output = self
            .call("DescribeCertificateAuthority", send, |_| None)
            .await?;
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
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::Absolute)
            .value(request.not_after)
            .build()
            .map_err(|e| Problem::new(Reason::InvalidSpec, format!("validity: {e}")))?;
        let send = || {
            self.client
                .issue_certificate()
                .certificate_authority_arn(&self.ca_arn)
                .csr(Blob::new(request.csr_pem.as_bytes()))
                .signing_algorithm(SigningAlgorithm::from(request.signing_algorithm))
                .template_arn(request.template_arn)
                .validity(validity)
                .idempotency_token(request.idempotency_token)
                .send()
        };
        let output = self.call("IssueCertificate", send, |_| None).await?;
        output.certificate_arn().map(str::to_string).ok_or_else(|| {
            Problem::new(
                Reason::SigningFailed,
                "AWS Private CA IssueCertificate returned no certificate ARN",
            )
        })
    }

    /// Ask for an issued certificate.
    pub async fn get(&self, certificate_arn: &str) -> Result<Poll, Problem> {
        let send = || async {
            let output = self
                .client
                .get_certificate()
                .certificate_authority_arn(&self.ca_arn)
                .certificate_arn(certificate_arn)
                .send()
                .await?;
            let leaf = output.certificate().unwrap_or_default();
            let chain = output.certificate_chain().unwrap_or_default();
            Ok(
                match crate::issuer::assemble_chain(leaf, &[chain.to_string()]) {
                    Ok(signed) => Poll::Issued(signed),
                    Err(e) => Poll::Failed(Problem::new(
                        Reason::SigningFailed,
                        format!("AWS Private CA returned an unreadable certificate: {e}"),
                    )),
                },
            )
        };
        // Still working, or given up on this request: answers, not failures of the call.
        let peek = |error: &SdkError<GetCertificateError, HttpResponse>| {
            let SdkError::ServiceError(e) = error else {
                return None;
            };
            let (code, text) = (
                e.err().code().unwrap_or_default(),
                e.err().message().unwrap_or_default(),
            );
            match code {
                "RequestInProgressException" => Some(("in_progress", Poll::InProgress)),
                "RequestFailedException" | "ResourceNotFoundException" => Some((
                    "error",
                    Poll::Failed(Problem::new(
                        Reason::SigningFailed,
                        format!("AWS Private CA did not issue {certificate_arn}: {code}: {text}"),
                    )),
                )),
                _ => None,
            }
        };
        self.call("GetCertificate", send, peek).await
    }

    /// Revoke a certificate of this CA by serial (AWS wants it as colon-separated hex). One
    /// already revoked counts as revoked.
    pub async fn revoke(&self, serial: &str, reason: RevocationReason) -> Result<(), Problem> {
        let serial = crate::issuer::vault::colon_serial(serial);
        let send = || {
            self.client
                .revoke_certificate()
                .certificate_authority_arn(&self.ca_arn)
                .certificate_serial(&serial)
                .revocation_reason(aws_reason(reason))
                .send()
        };
        let peek = |error: &SdkError<RevokeCertificateError, HttpResponse>| {
            (error.code() == Some("RequestAlreadyProcessedException")).then(|| {
                (
                    "success",
                    aws_sdk_acmpca::operation::revoke_certificate::RevokeCertificateOutput::builder()
                        .build(),
                )
            })
        };
        self.call("RevokeCertificate", send, peek)
            .await
            .map(|_| ())
            .map_err(|p| match p.reason {
                Reason::SigningFailed => Problem::new(Reason::RevocationFailed, p.message),
                _ => p,
            })
    }

    /// The CA's own certificate and the chain above it (PEM, the CA first).
    pub async fn ca_certificates(&self) -> Result<Vec<String>, Problem> {
        let send = || {
            self.client
                .get_certificate_authority_certificate()
                .certificate_authority_arn(&self.ca_arn)
                .send()
        };
        let output = self
            .call("GetCertificateAuthorityCertificate", send, |_| None)
            .await?;
        let mut pems: Vec<String> = output
            .certificate()
            .map(str::to_string)
            .into_iter()
            .collect();
        pems.extend(output.certificate_chain().map(str::to_string));
        Ok(pems)
    }
}

fn aws_reason(reason: RevocationReason) -> AwsRevocationReason {
    match reason {
        RevocationReason::Unspecified => AwsRevocationReason::Unspecified,
        RevocationReason::KeyCompromise => AwsRevocationReason::KeyCompromise,
        RevocationReason::CaCompromise => AwsRevocationReason::CertificateAuthorityCompromise,
        RevocationReason::AffiliationChanged => AwsRevocationReason::AffiliationChanged,
        RevocationReason::Superseded => AwsRevocationReason::Superseded,
        RevocationReason::CessationOfOperation => AwsRevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => AwsRevocationReason::PrivilegeWithdrawn,
    }
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
