//! Turn an `awsPCA` issuer spec into an [`AwsPcaSigner`]: credentials from a Secret (issuer's
//! Secret namespace only) or the default AWS chain, an optional AssumeRole, and one SDK client
//! per issuer so credential providers and the CA description are reused.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_acmpca::config::{Credentials, Region, SharedCredentialsProvider};
use sha2::{Digest, Sha256};

use crate::api::AwsPcaIssuer;
use crate::issuer::aws_pca::{self, AwsPcaClient, AwsPcaSigner};
use crate::issuer::vault::Sensitive;
use crate::reason::{Problem, Reason};

use super::issuer_secret;

use super::Context;

/// Attempts per AWS call; the SDK's standard mode backs off with jitter between them, and
/// treats throttling errors as retryable.
const MAX_ATTEMPTS: u32 = 4;
/// Upper bound for one AWS call, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Static credentials read from a Secret.
struct StaticCredentials {
    access_key_id: String,
    secret_access_key: Sensitive,
    session_token: Option<Sensitive>,
}

/// `namespaced`: the spec belongs to an Issuer (not a ClusterIssuer).
pub async fn build(
    ctx: &Context,
    spec: &AwsPcaIssuer,
    secret_namespace: &str,
    identity: &str,
    namespaced: bool,
) -> Result<AwsPcaSigner, Problem> {
    let region = spec
        .region
        .clone()
        .or_else(|| aws_pca::region_of(&spec.arn).map(str::to_string))
        .ok_or_else(|| {
            Problem::new(
                Reason::InvalidSpec,
                "awsPCA.region is not set and the ARN names no region",
            )
        })?;
    let credentials = match &spec.credentials {
        Some(c) => Some(read_credentials(ctx, secret_namespace, &c.secret_ref).await?),
        None if namespaced && !ctx.settings.issuer_ambient_credentials => {
            return Err(Problem::new(
                Reason::AwsCredentialsMissing,
                "a namespaced Issuer may not use the operator's own AWS identity: set awsPCA.credentials.secretRef, use a ClusterIssuer, or run the operator with --issuer-ambient-credentials",
            ));
        }
        None => None,
    };
    let client = shared_client(ctx, spec, &region, credentials, identity).await?;
    Ok(AwsPcaSigner {
        client,
        template_arn: spec.template_arn.clone(),
        signing_algorithm: spec.signing_algorithm,
    })
}

/// The client for this issuer, rebuilt only when its CA, region, endpoint, role or
/// credentials change.
async fn shared_client(
    ctx: &Context,
    spec: &AwsPcaIssuer,
    region: &str,
    credentials: Option<StaticCredentials>,
    identity: &str,
) -> Result<Arc<AwsPcaClient>, Problem> {
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
    let cache = ctx.backends.aws.clone();
    let known = |cache: &super::context::ClientCache<AwsPcaClient>| {
        cache.lock().ok().and_then(|clients| {
            clients
                .get(identity)
                .filter(|(known, _)| *known == fingerprint)
                .map(|(_, client)| client.clone())
        })
    };
    if let Some(client) = known(&cache) {
        return Ok(client);
    }
    let sdk = sdk_client(spec, region, credentials).await;
    let client = Arc::new(AwsPcaClient::new(
        sdk,
        spec.arn.clone(),
        region.to_string(),
        ctx.metrics.clone(),
        ctx.backends.aws_limits.clone(),
    ));
    let mut clients = cache
        .lock()
        .map_err(|_| Problem::new(Reason::ApiError, "AWS client cache poisoned"))?;
    clients.insert(identity.to_string(), (fingerprint, client.clone()));
    Ok(client)
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
    ctx: &Context,
    namespace: &str,
    reference: &crate::api::AwsCredentialsSecretRef,
) -> Result<StaticCredentials, Problem> {
    let missing = Reason::AwsCredentialsMissing;
    let secret =
        issuer_secret::read(ctx, namespace, &reference.name, missing, "AWS credentials ").await?;
    let required =
        |key: &str| issuer_secret::text(&secret, key, missing).map(|v| v.trim().to_string());
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
