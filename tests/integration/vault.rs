//! The Vault issuer against a real OpenBao: a root and an intermediate PKI mount, a role, and
//! token, AppRole and Kubernetes auth (OpenBao's kubernetes auth calls TokenReview on the local
//! API server). Each test uses mounts and auth paths of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use certsmith::api::{Certificate, ClusterIssuer, Issuer};
use certsmith::pki::inspect::parse_chain;

use crate::hostile::{self, Hostile, Recorded};
use crate::openbao::{Pki, PrivateBao, secret};
use crate::support::{
    Bao, Operator, TestNamespace, WAIT, certificate, condition, env, field, install_crds, leaf,
    openssl_verify, request_renewal, wait_for, wait_ready, wait_reissued, wait_until,
};

pub(crate) async fn vault_issuer(
    ns: &TestNamespace,
    name: &str,
    server: &str,
    path: &str,
    auth: Value,
) {
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": name},
                              "spec": {"vault": {"server": server, "path": path, "auth": auth}}}),
    )
    .await;
}

pub(crate) async fn issuer_ready_reason(
    ns: &TestNamespace,
    name: &str,
    status: &str,
) -> certsmith::api::Condition {
    let api = ns.api::<Issuer>();
    wait_for(&format!("Issuer {name} Ready={status}"), WAIT, || {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == status)
        }
    })
    .await
}

/// The issuer's Ready condition, once it has one.
async fn issuer_ready(ns: &TestNamespace, name: &str) -> certsmith::api::Condition {
    let api = ns.api::<Issuer>();
    wait_for(&format!("Issuer {name} Ready"), WAIT, || {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")
        }
    })
    .await
}

#[tokio::test]
async fn issues_through_token_approle_and_kubernetes_auth_with_a_chain_to_the_root() {
    let ns = TestNamespace::new("vault-auth").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    let server = env("VAULT_ADDR");
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "by-token",
        &server,
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let (approle, role_id) = pki.approle(&ns, "approle").await;
    vault_issuer(&ns, "by-approle", &server, &pki.sign_path(), json!({"appRole": {"path": approle, "roleId": role_id, "secretRef": {"name": "approle", "key": "secret-id"}}})).await;
    let k8s = pki.kubernetes(&ns, "vault-auth").await;
    vault_issuer(&ns, "by-kubernetes", &server, &pki.sign_path(), json!({"kubernetes": {"mountPath": k8s, "role": "certsmith", "serviceAccountRef": {"name": "vault-auth"}}})).await;
    let operator = Operator::start(&ns.name).await;

    for issuer in ["by-token", "by-approle", "by-kubernetes"] {
        let issuer_ready = issuer_ready_reason(&ns, issuer, "True").await;
        assert_eq!(
            issuer_ready.reason, "IssuerReady",
            "{issuer}: {issuer_ready:?}"
        );
        certificate(&ns, issuer, json!({"secretName": format!("{issuer}-tls"), "issuerRef": {"name": issuer}, "commonName": format!("{issuer}.example.test"),
                                       "dnsNames": [format!("{issuer}.example.test")], "uris": [format!("spiffe://cluster.local/ns/x/sa/{issuer}")]})).await;
    }
    for issuer in ["by-token", "by-approle", "by-kubernetes"] {
        wait_ready(&ns, issuer).await;
        let s = ns
            .api::<Secret>()
            .get(&format!("{issuer}-tls"))
            .await
            .expect("secret");
        let (ca, root) = (
            parse_chain(field(&s, "ca.crt")).expect("ca.crt"),
            parse_chain(pki.root_pem.as_bytes()).expect("root"),
        );
        assert_eq!(ca[0].der, root[0].der, "ca.crt is the root");
        openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt"))
            .unwrap_or_else(|e| panic!("{issuer}: {e}"));
        let chain = parse_chain(field(&s, "tls.crt")).expect("chain");
        assert_eq!(chain.len(), 2, "leaf then the intermediate, no root");
        assert_eq!(chain[1].subject, "CN=Vault Test Intermediate");
        assert!(
            chain[0]
                .uris
                .contains(&format!("spiffe://cluster.local/ns/x/sa/{issuer}"))
        );
    }

    // Renewal through Vault rotates the key.
    let before = ns
        .api::<Secret>()
        .get("by-approle-tls")
        .await
        .expect("secret");
    let old_serial = leaf(&before).serial;
    request_renewal(&ns, "by-approle", "now").await;
    let after = wait_reissued(&ns, "by-approle-tls", &old_serial).await;
    assert_ne!(
        field(&before, "tls.key"),
        field(&after, "tls.key"),
        "a new key on renewal"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_wrong_token_leaves_the_issuer_not_ready_and_never_shows_the_token() {
    let ns = TestNamespace::new("vault-badtoken").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    secret(&ns, "vault-token", "token", "s.not-a-real-token-7f3a").await;
    vault_issuer(
        &ns,
        "v",
        &env("VAULT_ADDR"),
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    let issuer_ready = issuer_ready_reason(&ns, "v", "False").await;
    assert_eq!(issuer_ready.reason, "VaultAuthFailed", "{issuer_ready:?}");
    assert!(
        issuer_ready.message.contains("permission denied"),
        "{}",
        issuer_ready.message
    );
    assert!(
        !issuer_ready.message.contains("not-a-real-token"),
        "the token leaked: {}",
        issuer_ready.message
    );

    certificate(
        &ns,
        "c",
        json!({"secretName": "c-tls", "issuerRef": {"name": "v"}, "dnsNames": ["c.example.test"]}),
    )
    .await;
    let c = wait_until(&ns, "c", "not ready", |c| {
        condition(c, "Ready").is_some_and(|r| r.status == "False")
    })
    .await;
    let message = condition(&c, "Ready")
        .map(|r| r.message)
        .unwrap_or_default();
    assert!(
        message.contains("permission denied") && !message.contains("not-a-real-token"),
        "{message}"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn vault_refusals_reach_the_certificate_and_the_real_not_after_drives_renewal() {
    let ns = TestNamespace::new("vault-role").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({"max_ttl": "1h"})).await;
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "v",
        &env("VAULT_ADDR"),
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;

    // A name outside the role's allowed domains: Vault's own message on the Certificate.
    certificate(&ns, "outside", json!({"secretName": "outside-tls", "issuerRef": {"name": "v"}, "dnsNames": ["evil.example.org"]})).await;
    let c = wait_until(&ns, "outside", "refused", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "SigningFailed")
    })
    .await;
    let message = condition(&c, "Ready")
        .map(|r| r.message)
        .unwrap_or_default();
    assert!(message.contains("not allowed"), "{message}");

    // 24h asked, the role caps at 1h: status shows the real notAfter and renews inside it.
    certificate(&ns, "capped", json!({"secretName": "capped-tls", "issuerRef": {"name": "v"}, "dnsNames": ["capped.example.test"], "duration": "24h"})).await;
    let c = wait_ready(&ns, "capped").await;
    let status = c.status.expect("status");
    let not_after: jiff::Timestamp = status
        .not_after
        .as_deref()
        .expect("notAfter")
        .parse()
        .expect("time");
    let renewal: jiff::Timestamp = status
        .renewal_time
        .as_deref()
        .expect("renewalTime")
        .parse()
        .expect("time");
    let now = jiff::Timestamp::now();
    let lifetime = not_after.as_second() - now.as_second();
    assert!(
        (3500..=3700).contains(&lifetime),
        "notAfter follows the role's 1h max_ttl, got {lifetime}s"
    );
    assert!(
        renewal < not_after && renewal.as_second() - now.as_second() < 3600,
        "renewal inside the real lifetime"
    );
    let s = ns.api::<Secret>().get("capped-tls").await.expect("secret");
    assert_eq!(
        parse_chain(field(&s, "tls.crt")).expect("chain")[0].not_after,
        not_after.as_second()
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn fifty_certificates_through_one_issuer_share_one_login() {
    let ns = TestNamespace::new("vault-logins").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    let (approle, role_id) = pki.approle(&ns, "approle").await;
    vault_issuer(&ns, "v", &env("VAULT_ADDR"), &pki.sign_path(), json!({"appRole": {"path": approle, "roleId": role_id, "secretRef": {"name": "approle", "key": "secret-id"}}})).await;
    let operator = Operator::start(&ns.name).await;
    for i in 0..50 {
        certificate(&ns, &format!("agent-{i}"), json!({"secretName": format!("agent-{i}-tls"), "issuerRef": {"name": "v"}, "dnsNames": [format!("agent-{i}.example.test")]})).await;
    }
    let certs = ns.api::<Certificate>();
    wait_for(
        "50 Vault certificates Ready",
        Duration::from_secs(120),
        || {
            let certs = certs.clone();
            async move {
                let list = certs.list(&Default::default()).await.ok()?;
                (list
                    .items
                    .iter()
                    .filter(|c| condition(c, "Ready").is_some_and(|r| r.status == "True"))
                    .count()
                    == 50)
                    .then_some(())
            }
        },
    )
    .await;
    let logins = operator.metrics.backend_request_count("vault", "login");
    let signs = operator.metrics.backend_request_count("vault", "sign");
    assert_eq!(signs, 50, "one sign request per certificate");
    assert_eq!(
        logins, 1,
        "the issuer check and all 50 issuances share one AppRole login"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_openbao_outage_changes_no_secret_and_issuance_resumes_after_it() {
    let ns = TestNamespace::new("vault-outage").await;
    install_crds(&ns.client).await;
    let bao = PrivateBao::start().await;
    let pki = Pki::setup(Bao::new(bao.addr.clone(), bao.token.clone()), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "v",
        &bao.addr,
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    certificate(&ns, "svc", json!({"secretName": "svc-tls", "issuerRef": {"name": "v"}, "dnsNames": ["svc.example.test"]})).await;
    wait_ready(&ns, "svc").await;
    let before = ns.api::<Secret>().get("svc-tls").await.expect("secret");

    bao.signal("STOP");
    request_renewal(&ns, "svc", "during-outage").await;
    // The renewal fails (Vault does not answer); the Secret is untouched and Ready stays True.
    let c = wait_until(&ns, "svc", "renewal failing", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.failed_issuance_attempts)
            .unwrap_or(0)
            >= 1
    })
    .await;
    assert_eq!(
        condition(&c, "Ready").map(|r| r.status),
        Some("True".into()),
        "a valid certificate stays Ready during the outage"
    );
    let during = ns.api::<Secret>().get("svc-tls").await.expect("secret");
    assert_eq!(
        during.data, before.data,
        "nothing issued is touched while Vault is down"
    );
    assert_eq!(
        during.metadata.resource_version,
        before.metadata.resource_version
    );

    let resumed = std::time::Instant::now();
    bao.signal("CONT");
    wait_reissued(&ns, "svc-tls", &leaf(&before).serial).await;
    eprintln!(
        "issuance resumed {:?} after OpenBao returned",
        resumed.elapsed()
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_not_replaced_by_a_new_login() {
    let ns = TestNamespace::new("vault-renew").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    // A 6 s token: past its refresh point (TTL minus 5 s) after 1 s, so the next issuance renews it.
    let (approle, role_id) = pki.approle_with_ttl(&ns, "approle", "6s").await;
    vault_issuer(&ns, "v", &env("VAULT_ADDR"), &pki.sign_path(), json!({"appRole": {"path": approle, "roleId": role_id, "secretRef": {"name": "approle", "key": "secret-id"}}})).await;
    let operator = Operator::start(&ns.name).await;
    certificate(&ns, "first", json!({"secretName": "first-tls", "issuerRef": {"name": "v"}, "dnsNames": ["first.example.test"]})).await;
    wait_ready(&ns, "first").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    certificate(&ns, "second", json!({"secretName": "second-tls", "issuerRef": {"name": "v"}, "dnsNames": ["second.example.test"]})).await;
    wait_ready(&ns, "second").await;
    assert_eq!(
        operator.metrics.backend_request_count("vault", "login"),
        1,
        "one login"
    );
    assert!(
        operator.metrics.backend_request_count("vault", "renew") >= 1,
        "the token was renewed"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_sealed_vault_makes_the_issuer_not_ready_with_that_reason() {
    let ns = TestNamespace::new("vault-sealed").await;
    install_crds(&ns.client).await;
    let bao = PrivateBao::start().await;
    let root = Bao::new(bao.addr.clone(), bao.token.clone());
    let pki = Pki::setup(root.clone(), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "v",
        &bao.addr,
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    issuer_ready_reason(&ns, "v", "True").await;
    root.request(reqwest::Method::PUT, "sys/seal", None).await;
    // Re-applying the Issuer (a new generation) makes the operator look again at once.
    vault_issuer(
        &ns,
        "v",
        &format!("{}/", bao.addr),
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let issuer_ready = issuer_ready_reason(&ns, "v", "False").await;
    assert_eq!(issuer_ready.reason, "VaultSealed", "{issuer_ready:?}");
    assert!(
        issuer_ready.message.contains("sealed"),
        "{}",
        issuer_ready.message
    );
    operator.stop().await;
    ns.delete().await;
}

// ----- A Vault server a tenant controls -----
//
// Any namespace may point an Issuer at any URL, so "Vault" may be hostile: these servers
// (tests/integration/hostile.rs) stand for it.

fn is_health(r: &Recorded) -> bool {
    r.path.starts_with("/v1/sys/health")
}

/// A token issuer in `ns` pointed at `server`, with a token the test can look for.
async fn token_issuer(ns: &TestNamespace, name: &str, server: &str) {
    secret(ns, "vault-token", "token", TENANT_TOKEN).await;
    vault_issuer(
        ns,
        name,
        server,
        "pki/sign/r",
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
}

const TENANT_TOKEN: &str = "s.tenant-token-3f9a71";
const TENANT_SECRET_ID: &str = "secret-id-5c1e08";

#[tokio::test]
async fn a_vault_answering_an_absurd_ttl_does_not_take_the_operator_down() {
    let ns = TestNamespace::new("vault-ttl").await;
    install_crds(&ns.client).await;
    // Healthy, and the token lives for u64::MAX seconds.
    let vault = Hostile::start(|r| match is_health(r) {
        true => hostile::json(200, json!({"initialized": true, "sealed": false})),
        false => hostile::json(200, json!({"data": {"ttl": u64::MAX, "renewable": true}})),
    })
    .await;
    token_issuer(&ns, "hostile", &vault.url).await;
    let operator = Operator::start(&ns.name).await;
    wait_for("the operator looked the token up", WAIT, || async {
        vault.received("/v1/auth/token/lookup-self").then_some(())
    })
    .await;

    // The operator is still there: it issues in that namespace.
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    certificate(
        &ns,
        "after",
        json!({"secretName": "after-tls", "issuerRef": {"name": "selfsigned"},
        "dnsNames": ["after.example.test"]}),
    )
    .await;
    wait_ready(&ns, "after").await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_redirect_never_carries_a_credential_to_another_origin() {
    let ns = TestNamespace::new("vault-redirect").await;
    install_crds(&ns.client).await;
    // Another port on the same host is another origin. It would gladly accept anything.
    let elsewhere = Hostile::start(|_| {
        hostile::json(
            200,
            json!({"data": {"ttl": 3600}, "auth": {"client_token": "s.x", "lease_duration": 3600}}),
        )
    })
    .await;
    let target = elsewhere.url.clone();
    let vault = Hostile::start(move |r| match is_health(r) {
        true => hostile::json(200, json!({})),
        false => hostile::redirect(307, &format!("{target}{}", r.path)),
    })
    .await;
    token_issuer(&ns, "by-token", &vault.url).await;
    secret(&ns, "approle", "secret-id", TENANT_SECRET_ID).await;
    vault_issuer(
        &ns,
        "by-approle",
        &vault.url,
        "pki/sign/r",
        json!({"appRole":
        {"roleId": "r", "secretRef": {"name": "approle", "key": "secret-id"}}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    wait_for("both issuers redirected", WAIT, || async {
        (vault.received("/v1/auth/token/lookup-self") && vault.received("/v1/auth/approle/login"))
            .then_some(())
    })
    .await;

    let mut readiness = Vec::new();
    for issuer in ["by-token", "by-approle"] {
        readiness.push(issuer_ready(&ns, issuer).await);
    }
    let leaked: Vec<String> = elsewhere
        .requests()
        .iter()
        .map(Recorded::everything)
        .collect();
    assert!(
        leaked.is_empty(),
        "the other origin received {} request(s); token leaked: {}, secret ID leaked: {}:\n{}",
        leaked.len(),
        leaked.iter().any(|r| r.contains(TENANT_TOKEN)),
        leaked.iter().any(|r| r.contains(TENANT_SECRET_ID)),
        leaked.join("\n---\n")
    );
    for ready in readiness {
        assert!(
            ready.status == "False"
                && ready.reason == "VaultUnreachable"
                && ready.message.contains("redirect"),
            "{ready:?}"
        );
    }
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_vault_answer_is_read_up_to_one_mebibyte_only() {
    let ns = TestNamespace::new("vault-body").await;
    install_crds(&ns.client).await;
    // Every answer is 96 MiB of JSON whitespace with no Content-Length; each counts what the
    // operator made the server produce (what it read, plus socket buffers).
    let answers: Arc<Mutex<Vec<Arc<AtomicUsize>>>> = Arc::default();
    let vault = Hostile::start({
        let answers = answers.clone();
        move |_| {
            let sent = Arc::new(AtomicUsize::new(0));
            answers.lock().expect("lock").push(sent.clone());
            hostile::endless(96 << 20, sent)
        }
    })
    .await;
    token_issuer(&ns, "v", &vault.url).await;
    let operator = Operator::start(&ns.name).await;
    let ready = issuer_ready(&ns, "v").await;
    let most = answers
        .lock()
        .expect("lock")
        .iter()
        .map(|sent| sent.load(Ordering::SeqCst))
        .max()
        .unwrap_or_default();
    assert!(
        most < 16 << 20,
        "the operator read about {} MiB of a 96 MiB answer ({ready:?})",
        most >> 20
    );
    assert!(
        ready.status == "False"
            && ready.reason == "VaultUnreachable"
            && ready.message.contains("1 MiB"),
        "{ready:?}"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn the_api_server_refuses_a_vault_server_that_is_not_a_base_url() {
    let ns = TestNamespace::new("vault-url").await;
    install_crds(&ns.client).await;
    let apply = |server: &str| {
        let api = ns.api::<Issuer>();
        let body = json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
            "metadata": {"name": "v"}, "spec": {"vault": {"server": server, "path": "pki/sign/r",
            "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}}});
        async move {
            api.patch(
                "v",
                &PatchParams::apply("certsmith-tests").force(),
                &Patch::Apply(body),
            )
            .await
        }
    };
    let mut accepted = Vec::new();
    for bad in [
        "http://host/admin#",
        "http://host/admin#/x",
        "http://user@host",
        "http://user:pass@host:8200/",
        "http://host?x=1",
        "http://host/v1?",
        "ftp://host",
        "https://",
        "http:///path",
    ] {
        match apply(bad).await {
            Err(kube::Error::Api(e)) if e.code == 422 => {}
            other => accepted.push(format!("{bad}: {:?}", other.map(|_| "accepted"))),
        }
    }
    assert!(
        accepted.is_empty(),
        "not refused at admission: {accepted:#?}"
    );
    for good in [
        "http://127.0.0.1:8200",
        "https://vault.example",
        "https://vault.example:8200/prefix/",
        "https://[::1]:8200",
    ] {
        apply(good)
            .await
            .unwrap_or_else(|e| panic!("{good} refused: {e}"));
    }
    ns.delete().await;
}

#[tokio::test]
async fn namespaced_issuers_may_use_only_the_allowed_vault_servers() {
    let ns = TestNamespace::new("vault-allowed").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    let auth = json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}});
    let allowed = env("VAULT_ADDR");
    vault_issuer(&ns, "allowed", &allowed, &pki.sign_path(), auth.clone()).await;
    // The same host on another port is another server.
    let elsewhere = Hostile::start(|_| hostile::json(200, json!({"data": {"ttl": 3600}}))).await;
    vault_issuer(
        &ns,
        "elsewhere",
        &elsewhere.url,
        &pki.sign_path(),
        auth.clone(),
    )
    .await;
    // A ClusterIssuer may use any server: only cluster admins create them.
    let for_cluster = Hostile::start(|_| hostile::json(200, json!({"data": {"ttl": 3600}}))).await;
    let cluster_issuer = format!("{}-vault", ns.name);
    let cluster_issuers = Api::<ClusterIssuer>::all(ns.client.clone());
    cluster_issuers
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1",
                "kind": "ClusterIssuer", "metadata": {"name": cluster_issuer, "labels": {"test": ns.name}},
                "spec": {"vault": {"server": for_cluster.url, "path": pki.sign_path(), "auth": auth}}}))
            .expect("cluster issuer"),
        )
        .await
        .expect("create ClusterIssuer");

    let mut settings = crate::support::settings(&[&ns.name]);
    settings.backends.issuer_vault_servers = vec![
        format!("{allowed}/").parse().expect("prefix"),
        "https://vault.example:8200".parse().expect("prefix"),
    ];
    let operator = Operator::start_configured(ns.client.clone(), settings).await;
    issuer_ready_reason(&ns, "allowed", "True").await;
    let refused = issuer_ready_reason(&ns, "elsewhere", "False").await;
    assert!(
        refused.reason == "VaultServerNotAllowed"
            && refused.message.contains("--issuer-vault-servers"),
        "{refused:?}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "a server that is not allowed was called: {:?}",
        elsewhere.requests()
    );
    wait_for("the ClusterIssuer Ready", WAIT, || async {
        let issuer = cluster_issuers.get(&cluster_issuer).await.ok()?;
        let ready = issuer
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;
    operator.stop().await;
    let _ = cluster_issuers
        .delete(&cluster_issuer, &Default::default())
        .await;
    ns.delete().await;
}

#[tokio::test]
async fn minted_service_account_tokens_carry_the_issuer_audience() {
    let ns = TestNamespace::new("vault-aud").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    // The Vault role accepts only tokens meant for this one issuer.
    let audience = format!("vault://{}/by-kubernetes", ns.name);
    let mount = pki
        .kubernetes_with_audience(&ns, "vault-auth", &audience)
        .await;
    vault_issuer(
        &ns,
        "by-kubernetes",
        &env("VAULT_ADDR"),
        &pki.sign_path(),
        json!({"kubernetes":
        {"mountPath": mount, "role": "certsmith", "serviceAccountRef": {"name": "vault-auth"}}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    let ready = issuer_ready_reason(&ns, "by-kubernetes", "True").await;
    assert_eq!(ready.reason, "IssuerReady", "{ready:?}");
    operator.stop().await;
    ns.delete().await;
}

/// The audiences the API server gives a token that names none: its own.
async fn api_server_audiences(ns: &TestNamespace) -> Vec<String> {
    let request = k8s_openapi::api::authentication::v1::TokenRequest::default();
    let answer = ns
        .api::<ServiceAccount>()
        .create_token_request("default", &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    answer.spec.audiences
}

#[tokio::test]
async fn a_token_the_api_server_would_accept_is_never_minted_for_vault() {
    let ns = TestNamespace::new("vault-apiaud").await;
    install_crds(&ns.client).await;
    wait_for("the default ServiceAccount", WAIT, || async {
        ns.api::<ServiceAccount>()
            .get_opt("default")
            .await
            .ok()
            .flatten()
    })
    .await;
    let api_audience = api_server_audiences(&ns).await.remove(0);
    let vault = Hostile::start(|r| match is_health(r) {
        true => hostile::json(200, json!({})),
        false => hostile::json(403, json!({"errors": ["permission denied"]})),
    })
    .await;
    vault_issuer(
        &ns,
        "v",
        &vault.url,
        "pki/sign/r",
        json!({"kubernetes": {"role": "r",
        "serviceAccountRef": {"name": "default", "audiences": [api_audience]}}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    let ready = issuer_ready_reason(&ns, "v", "False").await;
    assert!(
        !vault.received("/login"),
        "a token valid for the API server ({api_audience}) was sent to the Vault server"
    );
    assert!(
        ready.reason == "InvalidSpec" && ready.message.contains(&api_audience),
        "{ready:?}"
    );
    operator.stop().await;
    ns.delete().await;
}

/// A CA and a server certificate for 127.0.0.1 it signed: (CA PEM, server PEM, server key PEM).
fn ca_and_server_certificate(name: &str) -> (String, String, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &*ca)
        .expect("server certificate");
    (ca.pem(), server.pem(), key.serialize_pem())
}

#[tokio::test]
async fn a_ca_bundle_replaces_the_system_roots() {
    use base64::Engine;
    let ns = TestNamespace::new("vault-roots").await;
    install_crds(&ns.client).await;
    // The operator's "system roots" (SSL_CERT_FILE) hold a CA that signed the server's
    // certificate; the issuer's caBundle names another CA.
    let (system_ca, server_chain, server_key) = ca_and_server_certificate("System Root Stand-in");
    let (other_ca, _, _) = ca_and_server_certificate("The Issuer's Own CA");
    let roots = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(roots.path(), &system_ca).expect("write roots");
    let vault = Hostile::start_tls(&server_chain, &server_key, |r| match is_health(r) {
        true => hostile::json(200, json!({})),
        false => hostile::json(200, json!({"data": {"ttl": 3600}})),
    })
    .await;
    secret(&ns, "vault-token", "token", TENANT_TOKEN).await;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    for (name, bundle) in [
        ("system-roots", None),
        ("bundle-with-that-ca", Some(b64(&system_ca))),
        ("bundle-with-another-ca", Some(b64(&other_ca))),
    ] {
        let mut spec = json!({"server": vault.url, "path": "pki/sign/r",
            "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}});
        if let Some(bundle) = bundle {
            spec["caBundle"] = json!(bundle);
        }
        ns.apply::<Issuer>(
            json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
            "metadata": {"name": name}, "spec": {"vault": spec}}),
        )
        .await;
    }
    let _operator = crate::support::OperatorProcess::scoped(&ns.name)
        .env("SSL_CERT_FILE", roots.path().display().to_string())
        .start();
    issuer_ready_reason(&ns, "system-roots", "True").await;
    issuer_ready_reason(&ns, "bundle-with-that-ca", "True").await;
    let refused = issuer_ready_reason(&ns, "bundle-with-another-ca", "False").await;
    assert_eq!(refused.reason, "VaultUnreachable", "{refused:?}");
    ns.delete().await;
}
