//! Revocation against the real servers: the CA issuer's own CRL (checked with `openssl crl`
//! and `openssl verify -crl_check`, served over HTTP), OpenBao's `<mount>/revoke` and CRL,
//! the AWS PCA emulator's RevokeCertificate, `certsmith revoke`, `revokeOnRenewal`,
//! `revokeOnDelete`, and failures that must surface without losing what was issued.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use certsmith::api::{Certificate, Issuer, RevocationReason};
use certsmith::issuer::crl;

use crate::openbao::Pki;
use crate::support::{
    Bao, Frozen, Operator, TestNamespace, WAIT, certificate, condition, env, field, install_crds,
    leaf, request_renewal, secret, wait_for, wait_ready, wait_reissued, wait_until,
};
use crate::vault::{issuer_ready_reason, vault_issuer};

async fn setup(prefix: &str) -> (TestNamespace, Operator) {
    let ns = TestNamespace::new(prefix).await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    (ns, operator)
}

/// A self-signed root CA in Secret `root-ca` and an Issuer `ca` on it whose leaves name
/// `crl_url` as their CRL distribution point. Returns the root's PEM.
async fn ca_issuer(ns: &TestNamespace, crl_url: &str) -> Vec<u8> {
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    certificate(ns, "root", json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"}, "commonName": "revocation test root", "isCA": true})).await;
    wait_ready(ns, "root").await;
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"},
        "spec": {"ca": {"secretName": "root-ca", "crlDistributionPoints": [crl_url],
                        "issuingCertificateURLs": ["http://ca.example.test/root.pem"]}}}),
    )
    .await;
    field(&secret(ns, "root-ca").await, "tls.crt").to_vec()
}

/// The CA issuer `ca`'s CRL as stored in its ConfigMap, once it lists `serial`.
async fn crl_listing(ns: &TestNamespace, serial: &str) -> crl::CrlState {
    let api = ns.api::<ConfigMap>();
    let name = crl::object_name(&certsmith::issuer::IssuerId::issuer(&ns.name, "ca"));
    let want = crl::serial_bytes(serial).expect("serial");
    wait_for(&format!("the CRL to list {serial}"), WAIT, || {
        let (api, name, want) = (api.clone(), name.clone(), want.clone());
        async move {
            let cm = api.get(&name).await.ok()?;
            let state = crl::parse(cm.data?.get(crl::KEY)?).ok()?;
            state
                .entries
                .iter()
                .any(|e| e.serial == want)
                .then_some(state)
        }
    })
    .await
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Event reasons in the namespace.
async fn event_reasons(ns: &TestNamespace) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(ns.client.clone(), &ns.name);
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

#[tokio::test]
async fn a_ca_issuers_crl_rejects_the_revoked_leaf_and_its_replacement_verifies() {
    let (ns, operator) = setup("revoke-ca").await;
    let addr = free_port();
    let server = tokio::spawn(certsmith::crl_http::serve(
        addr,
        ns.client.clone(),
        ns.name.clone(),
    ));
    let url = format!("http://{addr}/crl/issuer/{}/ca.crl", ns.name);
    let root = ca_issuer(&ns, &url).await;
    certificate(&ns, "agent", json!({"secretName": "agent-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["agent.example.test"]})).await;
    wait_ready(&ns, "agent").await;
    let before = secret(&ns, "agent-tls").await;
    let old = leaf(&before);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(path("root.pem"), &root).expect("write");
    std::fs::write(path("old.pem"), field(&before, "tls.crt")).expect("write");
    // The leaf names where its CRL and its CA certificate are published.
    let (ok, text) = openssl(&["x509", "-in", &path("old.pem"), "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("X509v3 CRL Distribution Points") && text.contains(&url),
        "{text}"
    );
    assert!(
        text.contains("CA Issuers - URI:http://ca.example.test/root.pem"),
        "{text}"
    );

    // `certsmith revoke`: re-issued with a new key, then the old serial revoked.
    let out = certsmith::cli::revoke::revoke(
        ns.client.clone(),
        &ns.name,
        "agent",
        RevocationReason::KeyCompromise,
        WAIT,
    )
    .await
    .expect("certsmith revoke");
    assert!(out.contains(&old.serial), "{out}");
    let after = secret(&ns, "agent-tls").await;
    assert_ne!(leaf(&after).serial, old.serial);
    assert_ne!(field(&after, "tls.key"), field(&before, "tls.key"));
    std::fs::write(path("new.pem"), field(&after, "tls.crt")).expect("write");

    // Served over HTTP as DER and PEM, and the DER is what openssl reads.
    let der = reqwest::get(&url)
        .await
        .expect("GET crl")
        .bytes()
        .await
        .expect("body");
    std::fs::write(path("crl.der"), &der).expect("write");
    let pem_url = url.replace(".crl", ".pem");
    let pem_text = reqwest::get(&pem_url)
        .await
        .expect("GET pem")
        .text()
        .await
        .expect("body");
    assert!(
        pem_text.starts_with("-----BEGIN X509 CRL-----"),
        "{pem_text}"
    );
    std::fs::write(path("crl.pem"), &pem_text).expect("write");
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path("crl.der"),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains(&old.serial.to_uppercase()), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Next Update"), "{text}");
    let verify = |leaf: &str| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            &path("root.pem"),
            "-CRLfile",
            &path("crl.pem"),
            &path(leaf),
        ])
    };
    let (ok, text) = verify("old.pem");
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = verify("new.pem");
    assert!(ok, "the replacement verifies with the CRL: {text}");
    let missing = reqwest::get(format!("http://{addr}/crl/issuer/{}/nope.crl", ns.name))
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);

    // The history shows both, the revoked one with its reason, signed by the same CA.
    let cert = ns.api::<Certificate>().get("agent").await.expect("cert");
    let history = cert.status.expect("status").history;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1].serial_number, old.serial);
    assert_eq!(
        history[1].revocation_reason,
        Some(RevocationReason::KeyCompromise)
    );
    assert!(history[0].revoked_at.is_none());
    assert!(history[0].ca_fingerprint.is_some());
    assert_eq!(history[0].ca_fingerprint, history[1].ca_fingerprint);
    assert!(certsmith::cli::status::history(&history).contains("keyCompromise"));
    // The issuer shows its CRL.
    let issuer = wait_for("Issuer ca status.crl", WAIT, || {
        let api = ns.api::<Issuer>();
        async move {
            api.get("ca")
                .await
                .ok()?
                .status?
                .crl
                .filter(|c| c.revoked_certificates >= 1)
        }
    })
    .await;
    assert!(issuer.number >= 2, "{issuer:?}");
    server.abort();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn revoke_on_renewal_and_revoke_on_delete_each_revoke_at_the_ca() {
    let (ns, operator) = setup("revoke-policy").await;
    ca_issuer(&ns, "http://crl.example.test/ca.crl").await;
    certificate(&ns, "agent", json!({"secretName": "agent-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["agent.example.test"],
        "revocationPolicy": {"revokeOnRenewal": true, "revokeOnDelete": true}})).await;
    wait_ready(&ns, "agent").await;
    let first = leaf(&secret(&ns, "agent-tls").await).serial;
    let cert = wait_until(&ns, "agent", "the revoke-on-delete finalizer", |c| {
        c.finalizers()
            .iter()
            .any(|f| f == "certsmith.dev/revoke-on-delete")
    })
    .await;
    assert!(cert.metadata.deletion_timestamp.is_none());

    // Renewal: the superseded certificate is revoked once its replacement is written.
    request_renewal(&ns, "agent", "r1").await;
    let second = leaf(&wait_reissued(&ns, "agent-tls", &first).await).serial;
    let state = crl_listing(&ns, &first).await;
    let entry = state
        .entries
        .iter()
        .find(|e| e.serial == crl::serial_bytes(&first).expect("serial"))
        .expect("listed");
    assert_eq!(entry.reason, Some(RevocationReason::Superseded));
    wait_until(
        &ns,
        "agent",
        "the superseded serial revoked in history",
        |c| {
            c.status.as_ref().is_some_and(|s| {
                s.history
                    .iter()
                    .any(|e| e.serial_number == first && e.revoked_at.is_some())
            })
        },
    )
    .await;
    assert!(
        !state
            .entries
            .iter()
            .any(|e| e.serial == crl::serial_bytes(&second).expect("serial")),
        "the certificate in the Secret is not revoked"
    );

    // Deletion: the finalizer holds it until the CA revoked the current certificate.
    ns.api::<Certificate>()
        .delete("agent", &DeleteParams::default())
        .await
        .expect("delete");
    let state = crl_listing(&ns, &second).await;
    assert!(
        state
            .entries
            .iter()
            .any(|e| e.serial == crl::serial_bytes(&second).expect("serial")
                && e.reason == Some(RevocationReason::CessationOfOperation))
    );
    wait_for("the Certificate to be gone", WAIT, || {
        let api = ns.api::<Certificate>();
        async move { api.get_opt("agent").await.ok()?.is_none().then_some(()) }
    })
    .await;
    // The Secret (secretCleanupPolicy Keep) is still there: nothing issued is lost.
    assert_eq!(leaf(&secret(&ns, "agent-tls").await).serial, second);
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_crl_that_cannot_be_written_surfaces_and_the_revocation_completes_later() {
    let (ns, operator) = setup("revoke-frozen").await;
    ca_issuer(&ns, "http://crl.example.test/ca.crl").await;
    certificate(&ns, "agent", json!({"secretName": "agent-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["agent.example.test"],
        "revocationPolicy": {"revokeOnRenewal": true}})).await;
    wait_ready(&ns, "agent").await;
    let first = leaf(&secret(&ns, "agent-tls").await).serial;
    // The issuer published its (empty) CRL, so revocations update the ConfigMap.
    crl_listing_or_empty(&ns).await;
    let frozen = Frozen::new(&ns, "configmaps").await;
    request_renewal(&ns, "agent", "r1").await;
    let second = leaf(&wait_reissued(&ns, "agent-tls", &first).await).serial;
    let cert = wait_until(&ns, "agent", "Reconciling=CRLWriteFailed", |c| {
        condition(c, "Reconciling").is_some_and(|r| r.reason == "CRLWriteFailed")
    })
    .await;
    let message = condition(&cert, "Reconciling")
        .expect("reconciling")
        .message;
    assert!(
        message.contains(&first) && message.contains("frozen"),
        "{message}"
    );
    assert_eq!(
        condition(&cert, "Ready").map(|r| r.status),
        Some("True".to_string()),
        "the new certificate is in use"
    );
    assert!(
        event_reasons(&ns)
            .await
            .iter()
            .any(|r| r == "CRLWriteFailed")
    );
    // Nothing issued is lost: the Secret holds the replacement, the history the old serial
    // still to revoke.
    assert_eq!(leaf(&secret(&ns, "agent-tls").await).serial, second);
    let history = cert.status.expect("status").history;
    assert!(history.iter().any(|e| e.serial_number == first
        && e.revocation_requested == Some(RevocationReason::Superseded)));

    frozen.thaw().await;
    crl_listing(&ns, &first).await;
    wait_until(&ns, "agent", "revoked and Reconciling gone", |c| {
        condition(c, "Reconciling").is_none()
            && c.status.as_ref().is_some_and(|s| {
                s.history
                    .iter()
                    .any(|e| e.serial_number == first && e.revoked_at.is_some())
            })
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

/// Wait until the issuer `ca` has published a CRL (its status says so).
async fn crl_listing_or_empty(ns: &TestNamespace) {
    wait_for("Issuer ca CRLPublished", WAIT, || {
        let api = ns.api::<Issuer>();
        async move {
            api.get("ca")
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "CRLPublished" && c.status == "True")
        }
    })
    .await;
}

#[tokio::test]
async fn a_self_signed_certificate_cannot_be_revoked_and_says_so() {
    let (ns, operator) = setup("revoke-self").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    certificate(&ns, "agent", json!({"secretName": "agent-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["agent.example.test"]})).await;
    wait_ready(&ns, "agent").await;
    let first = leaf(&secret(&ns, "agent-tls").await).serial;
    let err = certsmith::cli::revoke::revoke(
        ns.client.clone(),
        &ns.name,
        "agent",
        RevocationReason::KeyCompromise,
        WAIT,
    )
    .await
    .expect_err("a self-signed certificate cannot be revoked");
    assert!(err.0.contains("was not revoked"), "{err}");
    // It was still re-issued with a new key, and the refusal has its reason.
    assert_ne!(leaf(&secret(&ns, "agent-tls").await).serial, first);
    assert!(
        event_reasons(&ns)
            .await
            .iter()
            .any(|r| r == "RevocationNotSupported")
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn openbao_lists_the_revoked_serial_once_its_policy_allows_revoking() {
    let ns = TestNamespace::new("revoke-vault").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "vault",
        &env("VAULT_ADDR"),
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    issuer_ready_reason(&ns, "vault", "True").await;
    certificate(&ns, "agent", json!({"secretName": "agent-tls", "issuerRef": {"name": "vault"}, "dnsNames": ["agent.example.test"]})).await;
    wait_ready(&ns, "agent").await;
    let first = leaf(&secret(&ns, "agent-tls").await).serial;

    // The token may only sign: OpenBao refuses the revocation, which is retried.
    let cli = tokio::spawn({
        let (client, namespace) = (ns.client.clone(), ns.name.clone());
        async move {
            certsmith::cli::revoke::revoke(
                client,
                &namespace,
                "agent",
                RevocationReason::KeyCompromise,
                Duration::from_secs(180),
            )
            .await
        }
    });
    let cert = wait_until(&ns, "agent", "Reconciling=RevocationFailed", |c| {
        condition(c, "Reconciling").is_some_and(|r| r.reason == "RevocationFailed")
    })
    .await;
    let message = condition(&cert, "Reconciling")
        .expect("reconciling")
        .message;
    assert!(
        message.contains("403") && message.contains("/revoke"),
        "{message}"
    );
    assert!(
        !message.contains("s."),
        "no token in the message: {message}"
    );
    assert!(
        event_reasons(&ns)
            .await
            .iter()
            .any(|r| r == "RevocationFailed")
    );
    assert_ne!(leaf(&secret(&ns, "agent-tls").await).serial, first);

    // The capability the README documents: update on <mount>/revoke.
    let mount = format!("int-{}", pki.id);
    pki.bao
        .post(
            &format!("sys/policies/acl/{}", pki.policy),
            json!({"policy": format!(
                "path \"{mount}/sign/agents\" {{ capabilities = [\"create\", \"update\"] }}\npath \"{mount}/revoke\" {{ capabilities = [\"update\"] }}"
            )}),
        )
        .await;
    let out = cli.await.expect("join").expect("certsmith revoke");
    assert!(out.contains(&first), "{out}");
    let crl_pem = reqwest::get(format!("{}/v1/{mount}/crl/pem", pki.bao.addr))
        .await
        .expect("GET crl")
        .text()
        .await
        .expect("crl");
    let state = crl::parse(&crl_pem).expect("OpenBao's CRL parses");
    assert!(
        state
            .entries
            .iter()
            .any(|e| e.serial == crl::serial_bytes(&first).expect("serial")),
        "OpenBao's CRL lists {first}: {state:?}"
    );
    operator.stop().await;
    ns.delete().await;
}

/// The RevokeCertificate requests the emulator received for `ca_arn` (recording on).
async fn revoke_requests(ca_arn: &str) -> Vec<Value> {
    crate::aws_pca::recorded_requests("RevokeCertificate")
        .await
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["CertificateAuthorityArn"].as_str() == Some(ca_arn))
        .collect()
}

#[tokio::test]
async fn the_aws_pca_emulator_records_revoke_certificate_with_the_serial_and_ca_arn() {
    revoke_requests("none").await;
    let ns = TestNamespace::new("revoke-pca").await;
    install_crds(&ns.client).await;
    let pca = crate::aws_pca::client().await;
    let ca = crate::aws_pca::create_ca(&pca, true).await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "pca"},
        "spec": {"awsPCA": {"arn": ca.arn, "region": "us-east-1", "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA")}}}))
        .await;
    let operator = Operator::start(&ns.name).await;
    issuer_ready_reason(&ns, "pca", "True").await;
    certificate(&ns, "agent", json!({"secretName": "agent-tls", "issuerRef": {"name": "pca"}, "dnsNames": ["agent.example.test"]})).await;
    wait_ready(&ns, "agent").await;
    let first = leaf(&secret(&ns, "agent-tls").await).serial;
    certsmith::cli::revoke::revoke(
        ns.client.clone(),
        &ns.name,
        "agent",
        RevocationReason::KeyCompromise,
        WAIT,
    )
    .await
    .expect("certsmith revoke");
    let requests = revoke_requests(&ca.arn).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0]["CertificateSerial"].as_str(),
        Some(certsmith::issuer::vault::colon_serial(&first).as_str())
    );
    assert_eq!(
        requests[0]["RevocationReason"].as_str(),
        Some("KEY_COMPROMISE")
    );
    operator.stop().await;
    ns.delete().await;
}

/// The issuer `ca`'s emergency rotation status, if any.
async fn rotation_status(ns: &TestNamespace) -> Option<certsmith::api::EmergencyRotationStatus> {
    ns.api::<Issuer>()
        .get("ca")
        .await
        .ok()?
        .status?
        .emergency_rotation
}

#[tokio::test]
async fn an_emergency_rotation_of_200_certificates_renews_every_key_and_revokes_every_old_serial() {
    const N: usize = 200;
    const RATE: u32 = 25;
    let (ns, operator) = setup("rotate").await;
    ca_issuer(&ns, "http://crl.example.test/ca.crl").await;
    for i in 0..N {
        certificate(&ns, &format!("a{i:03}"), json!({"secretName": format!("a{i:03}-tls"), "issuerRef": {"name": "ca"}, "dnsNames": [format!("a{i:03}.example.test")]})).await;
    }
    let before = wait_for("every Certificate issued", Duration::from_secs(300), || {
        let api = ns.api::<k8s_openapi::api::core::v1::Secret>();
        async move {
            let list = api
                .list(&kube::api::ListParams::default().labels("certsmith.dev/managed"))
                .await
                .ok()?;
            let secrets: std::collections::BTreeMap<String, (String, Vec<u8>)> = list
                .items
                .iter()
                .filter(|s| s.name_any().ends_with("-tls") && s.name_any() != "root-ca")
                .map(|s| (s.name_any(), (leaf(s).serial, field(s, "tls.key").to_vec())))
                .collect();
            (secrets.len() == N).then_some(secrets)
        }
    })
    .await;

    let cli = tokio::spawn({
        let (client, namespace) = (ns.client.clone(), ns.name.clone());
        async move {
            certsmith::cli::rotate::rotate(
                client,
                certsmith::cli::rotate::Rotation {
                    issuer: "ca".into(),
                    namespace: Some(namespace),
                    revoke: true,
                    rate: RATE,
                    reason: RevocationReason::KeyCompromise,
                    timeout: Duration::from_secs(600),
                },
            )
            .await
        }
    });
    // Progress is visible throughout, and never ahead of the rate.
    let mut seen = std::collections::BTreeSet::new();
    let finished = loop {
        if let Some(s) = rotation_status(&ns).await {
            assert!(s.done <= s.triggered && s.triggered <= s.total, "{s:?}");
            assert_eq!((s.total, s.rate, s.revoke), (N as u32, RATE, true));
            let started = certsmith::time::parse(&s.started_at).expect("startedAt");
            let elapsed = certsmith::time::now() - started;
            assert!(
                i64::from(s.triggered) <= i64::from(RATE) * (elapsed + 2),
                "{} asked after {elapsed}s at {RATE}/s",
                s.triggered
            );
            seen.insert(s.done);
            if s.finished_at.is_some() {
                break s;
            }
        }
        assert!(!cli.is_finished() || seen.len() > 1, "the CLI ended early");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!((finished.done, finished.failed), (N as u32, 0));
    assert!(
        seen.iter().filter(|d| **d > 0 && **d < N as u32).count() >= 3,
        "intermediate progress was visible: {seen:?}"
    );
    let out = cli.await.expect("join").expect("certsmith rotate exits 0");
    assert!(out.contains("200 certificate(s) re-issued"), "{out}");

    // Every Secret holds a new key, every superseded serial is in the CRL.
    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    let state = {
        let cm = ns
            .api::<ConfigMap>()
            .get(&crl::object_name(&certsmith::issuer::IssuerId::issuer(
                &ns.name, "ca",
            )))
            .await
            .expect("CRL ConfigMap");
        crl::parse(cm.data.expect("data").get(crl::KEY).expect("ca.crl")).expect("CRL")
    };
    for (name, (serial, key)) in &before {
        let s = secrets.get(name).await.expect("secret");
        assert_ne!(field(&s, "tls.key"), key.as_slice(), "{name}: a new key");
        assert_ne!(&leaf(&s).serial, serial, "{name}: a new certificate");
        let old = crl::serial_bytes(serial).expect("serial");
        assert!(
            state
                .entries
                .iter()
                .any(|e| e.serial == old && e.reason == Some(RevocationReason::KeyCompromise)),
            "{name}: serial {serial} revoked"
        );
    }
    assert_eq!(
        state.entries.len(),
        N,
        "only the superseded serials are revoked"
    );
    operator.stop().await;
    ns.delete().await;
}
