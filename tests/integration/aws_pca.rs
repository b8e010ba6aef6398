//! The AWS Private CA issuer against moto's ACM-PCA server. The emulator ignores Validity,
//! SigningAlgorithm and IdempotencyToken, so tests assert what the certificate actually says,
//! and count the certificates it issued from its request recording.

use aws_sdk_acmpca::Client;
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    Asn1Subject, CertificateAuthorityConfiguration, CertificateAuthorityStatus,
    CertificateAuthorityType, KeyAlgorithm, SigningAlgorithm, Validity, ValidityPeriodType,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use certsmith::api::Issuer;
use certsmith::pki::inspect::parse_chain;

use crate::support::{
    Operator, OperatorProcess, TestNamespace, WAIT, certificate, condition, env, field,
    install_crds, leaf, openssl_verify, request_renewal, wait_ready, wait_reissued, wait_until,
};
use crate::vault::issuer_ready_reason;

const SECRET_AKID: &str = "AKIACERTSMITHSECRET1";

pub(crate) async fn client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("AWS_ENDPOINT_URL_ACM_PCA"))
        .load()
        .await;
    Client::new(&config)
}

/// A CA created through the emulator, ACTIVE unless `activate` is false.
pub(crate) struct Ca {
    pub arn: String,
    pub root_pem: String,
}

pub(crate) async fn create_ca(pca: &Client, activate: bool) -> Ca {
    let config = CertificateAuthorityConfiguration::builder()
        .key_algorithm(KeyAlgorithm::EcPrime256v1)
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .subject(
            Asn1Subject::builder()
                .common_name("certsmith PCA test root")
                .build(),
        )
        .build()
        .expect("ca config");
    let arn = pca
        .create_certificate_authority()
        .certificate_authority_configuration(config)
        .certificate_authority_type(CertificateAuthorityType::Root)
        .send()
        .await
        .expect("create CA")
        .certificate_authority_arn()
        .expect("ca arn")
        .to_string();
    if !activate {
        return Ca {
            arn,
            root_pem: String::new(),
        };
    }
    // The real root flow: sign the CA's own CSR with the root template and import it.
    let csr = pca
        .get_certificate_authority_csr()
        .certificate_authority_arn(&arn)
        .send()
        .await
        .expect("ca csr");
    let root_arn = pca
        .issue_certificate()
        .certificate_authority_arn(&arn)
        .csr(Blob::new(csr.csr().expect("csr").as_bytes()))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn("arn:aws:acm-pca:::template/RootCACertificate/V1")
        .validity(
            Validity::builder()
                .value(3650)
                .r#type(ValidityPeriodType::Days)
                .build()
                .expect("validity"),
        )
        .send()
        .await
        .expect("issue root")
        .certificate_arn()
        .expect("root arn")
        .to_string();
    let root_pem = pca
        .get_certificate()
        .certificate_authority_arn(&arn)
        .certificate_arn(&root_arn)
        .send()
        .await
        .expect("get root")
        .certificate()
        .expect("root pem")
        .to_string();
    pca.import_certificate_authority_certificate()
        .certificate_authority_arn(&arn)
        .certificate(Blob::new(root_pem.as_bytes()))
        .send()
        .await
        .expect("import");
    Ca { arn, root_pem }
}

async fn set_status(pca: &Client, arn: &str, status: CertificateAuthorityStatus) {
    pca.update_certificate_authority()
        .certificate_authority_arn(arn)
        .status(status)
        .send()
        .await
        .expect("update CA status");
}

/// One request as the emulator received it.
pub(crate) struct Recorded {
    authorization: String,
    pub(crate) body: Value,
}

/// Every request for `ACMPrivateCA.<action>` the emulator received (turns the emulator's
/// request recording on first; it is process-wide and only ever appended to).
pub(crate) async fn recorded_requests(action: &str) -> Vec<Recorded> {
    use base64::Engine;
    let base = env("AWS_ENDPOINT_URL_ACM_PCA");
    let http = reqwest::Client::new();
    http.post(format!("{base}/moto-api/recorder/start-recording"))
        .send()
        .await
        .expect("start recording");
    let text = http
        .get(format!("{base}/moto-api/recorder/download-recording"))
        .send()
        .await
        .expect("download recording")
        .text()
        .await
        .expect("recording text");
    let target = format!("ACMPrivateCA.{action}");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|entry| entry["headers"]["X-Amz-Target"].as_str() == Some(target.as_str()))
        .filter_map(|entry| {
            let raw = entry["body"].as_str().unwrap_or_default();
            let body = if entry["body_encoded"].as_bool() == Some(true) {
                base64::engine::general_purpose::STANDARD.decode(raw).ok()?
            } else {
                raw.as_bytes().to_vec()
            };
            Some(Recorded {
                authorization: entry["headers"]["Authorization"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                body: serde_json::from_slice(&body).ok()?,
            })
        })
        .collect()
}

/// Every IssueCertificate request the emulator received for `ca_arn`, except the tests' own
/// root certificates.
pub(crate) async fn issue_requests(ca_arn: &str) -> Vec<Recorded> {
    recorded_requests("IssueCertificate")
        .await
        .into_iter()
        .filter(|r| {
            r.body["CertificateAuthorityArn"].as_str() == Some(ca_arn)
                && !r.body["TemplateArn"]
                    .as_str()
                    .is_some_and(|t| t.contains("RootCACertificate"))
        })
        .collect()
}

async fn start_recording() {
    issue_requests("none").await;
}

async fn pca_issuer(ns: &TestNamespace, name: &str, spec: Value) {
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
                              "metadata": {"name": name}, "spec": {"awsPCA": spec}}),
    )
    .await;
}

fn spki(pem: &[u8]) -> Vec<u8> {
    parse_chain(pem).expect("pem")[0].public_key_info.clone()
}

#[tokio::test]
async fn issues_with_secret_credentials_verifies_to_the_ca_and_rotates_keys() {
    start_recording().await;
    let ns = TestNamespace::new("pca-issue").await;
    install_crds(&ns.client).await;
    let pca = client().await;
    let ca = create_ca(&pca, true).await;
    let creds = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-creds"},
                       "stringData": {"AWS_ACCESS_KEY_ID": SECRET_AKID, "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-key-1"}});
    ns.apply::<Secret>(creds).await;
    pca_issuer(
        &ns,
        "pca",
        json!({"arn": ca.arn, "region": "us-east-1", "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA"),
                                   "credentials": {"secretRef": {"name": "aws-creds"}}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    let ready = issuer_ready_reason(&ns, "pca", "True").await;
    assert!(ready.message.contains("ACTIVE"), "{ready:?}");

    certificate(
        &ns,
        "agent",
        json!({"secretName": "agent-tls", "issuerRef": {"name": "pca"},
        "commonName": "agent.example.test", "dnsNames": ["agent.example.test"], "duration": "1h",
        "uris": ["spiffe://cluster.local/ns/agents/sa/agent"]}),
    )
    .await;
    let cert = wait_ready(&ns, "agent").await;
    let s = crate::support::secret(&ns, "agent-tls").await;
    assert_eq!(
        parse_chain(field(&s, "ca.crt")).expect("ca.crt")[0].der,
        parse_chain(ca.root_pem.as_bytes()).expect("root")[0].der,
        "ca.crt is the CA's root"
    );
    openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt")).expect("chain verifies to the CA");
    let issued = leaf(&s);
    assert!(issued.dns_names.contains("agent.example.test"));
    assert_eq!(spki(field(&s, "tls.crt")), key_spki(field(&s, "tls.key")));
    // The emulator ignores the requested 1h: status follows the certificate it returned.
    let status = cert.status.clone().expect("status");
    assert_eq!(
        status.not_after.as_deref(),
        Some(certsmith::time::rfc3339(issued.not_after).as_str())
    );
    assert!(issued.not_after - issued.not_before > 24 * 3600);
    assert_eq!(status.revision, Some(1));
    assert!(
        ns.api::<Secret>()
            .get_opt("agent-certsmith-pending")
            .await
            .expect("get")
            .is_none(),
        "the pending request is removed once the certificate is stored"
    );
    let requests = issue_requests(&ca.arn).await;
    assert_eq!(
        requests.len(),
        1,
        "one IssueCertificate for one certificate"
    );
    let auth = &requests[0].authorization;
    assert!(
        auth.contains(&format!("Credential={SECRET_AKID}/")),
        "signed with the Secret's credentials: {auth}"
    );
    let body = &requests[0].body;
    assert_eq!(
        body["IdempotencyToken"].as_str().map(str::len),
        Some(32),
        "{body}"
    );
    assert_eq!(
        body["TemplateArn"], "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
        "server+client usages pick the end-entity template"
    );
    assert_eq!(
        body["SigningAlgorithm"], "SHA256WITHECDSA",
        "derived from the CA's EC_prime256v1 key"
    );
    assert_eq!(body["Validity"]["Type"], "ABSOLUTE");
    // spec.duration 1h, sent as an absolute end (the emulator then ignores it).
    let requested_end = body["Validity"]["Value"].as_i64().expect("validity value");
    let expected = jiff::Timestamp::now().as_second() + 3600;
    assert!(
        (expected - requested_end).abs() < 300,
        "{requested_end} vs {expected}"
    );

    assert_eq!(
        operator
            .metrics
            .backend_request_count("awsPCA", "IssueCertificate"),
        1,
        "the operator's metrics count the same call"
    );
    // The Secret's key reaches no status and no Event.
    let events = ns
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&Default::default())
        .await
        .expect("events");
    let published = format!(
        "{}{}{}",
        serde_json::to_string(&events.items).expect("json"),
        serde_json::to_string(&ns.api::<Issuer>().get("pca").await.expect("issuer")).expect("json"),
        serde_json::to_string(&cert).expect("json"),
    );
    assert!(published.contains("agent") && !published.contains("not-a-real-secret-key-1"));

    // Renewal: a new key and one more certificate.
    request_renewal(&ns, "agent", "rotate-1").await;
    let after = wait_reissued(&ns, "agent-tls", &issued.serial).await;
    assert_ne!(field(&s, "tls.key"), field(&after, "tls.key"), "new key");
    assert_ne!(spki(field(&s, "tls.crt")), spki(field(&after, "tls.crt")));
    assert_eq!(issue_requests(&ca.arn).await.len(), 2);
    let renewed = wait_until(&ns, "agent", "revision 2", |c| {
        c.status.as_ref().and_then(|s| s.revision) == Some(2)
    })
    .await;
    assert_eq!(
        condition(&renewed, "Ready").map(|c| c.status),
        Some("True".to_string())
    );
    operator.stop().await;
    ns.delete().await;
}

fn key_spki(key_pem: &[u8]) -> Vec<u8> {
    let key =
        certsmith::pki::keys::PrivateKey::from_pem(std::str::from_utf8(key_pem).expect("utf8"))
            .expect("key");
    key.public_key_info()
}

#[tokio::test]
async fn the_default_credential_chain_reads_the_environment() {
    start_recording().await;
    let ns = TestNamespace::new("pca-env").await;
    install_crds(&ns.client).await;
    let pca = client().await;
    let ca = create_ca(&pca, true).await;
    // No credentials and no endpoint: both come from the environment (AWS_ACCESS_KEY_ID,
    // AWS_ENDPOINT_URL_ACM_PCA), as IRSA or Pod Identity would provide them in a cluster.
    pca_issuer(&ns, "pca", json!({"arn": ca.arn})).await;
    let operator = Operator::start(&ns.name).await;
    issuer_ready_reason(&ns, "pca", "True").await;
    certificate(
        &ns,
        "server",
        json!({"secretName": "server-tls", "issuerRef": {"name": "pca"},
        "dnsNames": ["server.example.test"], "usages": ["digital signature", "server auth"]}),
    )
    .await;
    wait_ready(&ns, "server").await;
    let s = crate::support::secret(&ns, "server-tls").await;
    openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt")).expect("verifies");
    let requests = issue_requests(&ca.arn).await;
    assert_eq!(requests.len(), 1);
    let auth = &requests[0].authorization;
    assert!(
        auth.contains(&format!("Credential={}/", env("AWS_ACCESS_KEY_ID"))),
        "{auth}"
    );
    assert_eq!(
        requests[0].body["TemplateArn"],
        "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1",
        "server-only usages pick the server template"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn inactive_unknown_or_uncredentialed_cas_are_not_ready_with_the_reason() {
    start_recording().await;
    let ns = TestNamespace::new("pca-notready").await;
    install_crds(&ns.client).await;
    let pca = client().await;
    let pending_ca = create_ca(&pca, false).await;
    let active = create_ca(&pca, true).await;
    let endpoint = env("AWS_ENDPOINT_URL_ACM_PCA");
    pca_issuer(
        &ns,
        "pending",
        json!({"arn": pending_ca.arn, "endpoint": endpoint}),
    )
    .await;
    pca_issuer(
        &ns,
        "disabled",
        json!({"arn": active.arn, "endpoint": endpoint}),
    )
    .await;
    let missing = active.arn.replace(
        active.arn.rsplit('/').next().unwrap_or_default(),
        "00000000-0000-0000-0000-000000000000",
    );
    pca_issuer(
        &ns,
        "unknown",
        json!({"arn": missing, "endpoint": endpoint}),
    )
    .await;
    pca_issuer(
        &ns,
        "nocreds",
        json!({"arn": active.arn, "endpoint": endpoint,
                                       "credentials": {"secretRef": {"name": "absent"}}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;

    let c = issuer_ready_reason(&ns, "pending", "False").await;
    assert_eq!(c.reason, "AWSPCANotActive");
    assert!(c.message.contains("PENDING_CERTIFICATE"), "{c:?}");
    let c = issuer_ready_reason(&ns, "unknown", "False").await;
    assert_eq!(c.reason, "AWSPCANotFound", "{c:?}");
    assert!(c.message.contains("ResourceNotFoundException"), "{c:?}");
    let c = issuer_ready_reason(&ns, "nocreds", "False").await;
    assert_eq!(c.reason, "AWSCredentialsMissing");
    assert!(c.message.contains("absent"), "{c:?}");

    // An ACTIVE CA that gets disabled: the issuer follows once it looks again.
    issuer_ready_reason(&ns, "disabled", "True").await;
    set_status(&pca, &active.arn, CertificateAuthorityStatus::Disabled).await;
    ns.api::<Issuer>()
        .patch(
            "disabled",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"poke": "1"}}})),
        )
        .await
        .expect("poke issuer");
    let c = issuer_ready_reason(&ns, "disabled", "False").await;
    assert_eq!(c.reason, "AWSPCANotActive");
    assert!(c.message.contains("DISABLED"), "{c:?}");

    // A Certificate on it says why, and nothing was sent to AWS.
    certificate(
        &ns,
        "blocked",
        json!({"secretName": "blocked-tls", "issuerRef": {"name": "disabled"},
        "dnsNames": ["blocked.example.test"]}),
    )
    .await;
    let blocked = wait_until(&ns, "blocked", "IssuerNotReady", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "IssuerNotReady")
    })
    .await;
    let message = condition(&blocked, "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("AWSPCANotActive"), "{message}");
    assert!(
        issue_requests(&active.arn).await.is_empty(),
        "nothing sent to a disabled CA"
    );
    operator.stop().await;
    ns.delete().await;
}

/// The operator as its own process (with the environment's AWS identity allowed for namespaced
/// Issuers), so it can be killed for real.
fn operator_process(ns: &str) -> OperatorProcess {
    OperatorProcess::start(ns, &["--issuer-ambient-credentials"])
}

#[tokio::test]
async fn an_operator_killed_after_issue_certificate_resumes_without_issuing_again() {
    start_recording().await;
    let ns = TestNamespace::new("pca-crash").await;
    install_crds(&ns.client).await;
    let pca = client().await;
    let ca = create_ca(&pca, true).await;
    pca_issuer(
        &ns,
        "pca",
        json!({"arn": ca.arn, "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA")}),
    )
    .await;
    let first = operator_process(&ns.name);
    issuer_ready_reason(&ns, "pca", "True").await;
    certificate(
        &ns,
        "agent",
        json!({"secretName": "agent-tls", "issuerRef": {"name": "pca"},
        "dnsNames": ["agent.example.test"]}),
    )
    .await;

    // Kill the operator the moment the certificate ARN is stored: IssueCertificate has
    // answered, the certificate has not been fetched (the first poll waits a second).
    let secrets = ns.api::<Secret>();
    let deadline = std::time::Instant::now() + WAIT;
    let submitted = loop {
        let pending = secrets
            .get_opt("agent-certsmith-pending")
            .await
            .ok()
            .flatten();
        if let Some(s) = pending.filter(|s| {
            s.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("certsmith.dev/certificate-arn"))
        }) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificate ARN never stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    first.kill();
    assert!(
        secrets.get_opt("agent-tls").await.expect("get").is_none(),
        "killed before the Secret was written (otherwise this test proves nothing)"
    );
    assert_eq!(issue_requests(&ca.arn).await.len(), 1);

    let _second = operator_process(&ns.name);
    let cert = wait_ready(&ns, "agent").await;
    let s = crate::support::secret(&ns, "agent-tls").await;
    assert_eq!(
        field(&s, "tls.key"),
        field(&submitted, "tls.key"),
        "the key generated before the crash is the one in use"
    );
    openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt")).expect("verifies");
    assert_eq!(cert.status.and_then(|s| s.revision), Some(1));
    assert_eq!(
        issue_requests(&ca.arn).await.len(),
        1,
        "exactly one certificate issued for revision 1"
    );
    assert!(
        secrets
            .get_opt("agent-certsmith-pending")
            .await
            .expect("get")
            .is_none()
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_role_is_assumed_and_its_credentials_sign_the_requests() {
    start_recording().await;
    let ns = TestNamespace::new("pca-role").await;
    install_crds(&ns.client).await;
    let pca = client().await;
    let ca = create_ca(&pca, true).await;
    // STS is the emulator's too (AWS_ENDPOINT_URL points every service at it).
    pca_issuer(
        &ns,
        "pca",
        json!({"arn": ca.arn, "role": "arn:aws:iam::123456789012:role/certsmith-issuer"}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    issuer_ready_reason(&ns, "pca", "True").await;
    certificate(
        &ns,
        "client",
        json!({"secretName": "client-tls", "issuerRef": {"name": "pca"},
        "dnsNames": ["client.example.test"], "usages": ["digital signature", "client auth"]}),
    )
    .await;
    wait_ready(&ns, "client").await;
    let requests = issue_requests(&ca.arn).await;
    assert_eq!(requests.len(), 1);
    let auth = &requests[0].authorization;
    assert!(
        !auth.contains(&format!("Credential={}/", env("AWS_ACCESS_KEY_ID"))),
        "signed with the assumed role's credentials, not the base identity's: {auth}"
    );
    assert_eq!(
        requests[0].body["TemplateArn"],
        "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn namespaced_issuers_may_not_use_the_operators_identity_unless_allowed() {
    let ns = TestNamespace::new("pca-ambient").await;
    install_crds(&ns.client).await;
    let pca = client().await;
    let ca = create_ca(&pca, true).await;
    pca_issuer(&ns, "pca", json!({"arn": ca.arn})).await;
    let _operator = OperatorProcess::start(&ns.name, &[]);
    let c = issuer_ready_reason(&ns, "pca", "False").await;
    assert_eq!(c.reason, "AWSCredentialsMissing", "{c:?}");
    assert!(c.message.contains("--issuer-ambient-credentials"), "{c:?}");
    ns.delete().await;
}
