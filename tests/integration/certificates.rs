//! The operator core against the real API server: issuance, every re-issue trigger, rotation,
//! chains, renewal, refusals and issuer readiness. Each test runs its own namespace and an
//! operator instance that watches only that namespace.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use certsmith::api::{Certificate, ClusterIssuer, Issuer};
use certsmith::pki::inspect::parse_chain;
use certsmith::pki::keys::PrivateKey;

use crate::support::{
    Operator, TestNamespace, WAIT, certificate, condition, field, install_crds, leaf,
    openssl_verify, request_renewal, secret, wait_for, wait_ready, wait_reissued, wait_until,
};

async fn setup(prefix: &str) -> (TestNamespace, Operator) {
    let ns = TestNamespace::new(prefix).await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    (ns, operator)
}

/// A self-signed Issuer, a root CA Certificate from it, and a CA Issuer named `ca` on that root.
async fn ca_issuer(ns: &TestNamespace) {
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    certificate(ns, "root", json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"}, "commonName": "test root", "isCA": true})).await;
    wait_ready(ns, "root").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "root-ca"}}})).await;
}

/// The notes of every Event in the namespace.
async fn event_notes(ns: &TestNamespace) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(ns.client.clone(), &ns.name);
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

fn key_matches(s: &Secret) -> bool {
    let key = PrivateKey::from_pem(std::str::from_utf8(field(s, "tls.key")).expect("utf8"))
        .expect("tls.key parses");
    key.public_key_info() == leaf(s).public_key_info
}

#[tokio::test]
async fn issues_from_a_ca_with_a_verifiable_chain_and_a_matching_key() {
    let (ns, operator) = setup("cert-ca").await;
    ca_issuer(&ns).await;
    certificate(
        &ns,
        "orders",
        json!({
            "secretName": "orders-tls", "issuerRef": {"name": "ca"}, "commonName": "orders",
            "dnsNames": ["orders.agents.svc"], "ipAddresses": ["10.0.0.7"],
            "uris": ["spiffe://cluster.local/ns/agents/sa/orders"], "subject": {"organizations": ["acme"]},
            "secretTemplate": {"labels": {"team": "payments"}, "annotations": {"owner": "alice"}},
        }),
    )
    .await;
    let cert = wait_ready(&ns, "orders").await;
    let s = secret(&ns, "orders-tls").await;
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt"))
        .expect("chain verifies against ca.crt");
    assert!(key_matches(&s), "tls.key matches tls.crt");
    let l = leaf(&s);
    assert!(
        l.uris
            .contains("spiffe://cluster.local/ns/agents/sa/orders")
    );
    assert_eq!(l.organizations, vec!["acme".to_string()]);
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
    let annotations = s.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("owner").map(String::as_str), Some("alice"));
    assert_eq!(
        annotations.get("certsmith.dev/serial-number"),
        Some(&l.serial)
    );
    let status = cert.status.expect("status");
    assert_eq!(status.serial_number.as_deref(), Some(l.serial.as_str()));
    assert_eq!(status.revision, Some(1));
    assert!(status.renewal_time.is_some() && status.not_after.is_some());
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn every_trigger_reissues_with_a_new_key_and_says_why() {
    let (ns, operator) = setup("cert-triggers").await;
    ca_issuer(&ns).await;
    certificate(
        &ns,
        "svc",
        json!({"secretName": "svc-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["svc.example"]}),
    )
    .await;
    wait_ready(&ns, "svc").await;
    let secrets = ns.api::<Secret>();
    let pp = PatchParams::default();

    // Each step breaks or changes one thing and expects a re-issue with that reason in the Event.
    let mut s = secret(&ns, "svc-tls").await;
    let mut seen_keys = vec![field(&s, "tls.key").to_vec()];

    // MissingData: tls.key emptied (the API server refuses a kubernetes.io/tls Secret without the key).
    let serial = leaf(&s).serial;
    secrets
        .patch(
            "svc-tls",
            &pp,
            &Patch::Merge(json!({"data": {"tls.key": ""}})),
        )
        .await
        .expect("patch");
    s = wait_reissued(&ns, "svc-tls", &serial).await;
    assert!(key_matches(&s));
    seen_keys.push(field(&s, "tls.key").to_vec());

    // InvalidData: tls.crt garbage.
    let serial = leaf(&s).serial;
    let garbage =
        ByteString(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
    secrets
        .patch(
            "svc-tls",
            &pp,
            &Patch::Merge(json!({"data": {"tls.crt": garbage}})),
        )
        .await
        .expect("patch");
    let api = ns.api::<Secret>();
    s = wait_for("tls.crt repaired", WAIT, || {
        let (api, serial) = (api.clone(), serial.clone());
        async move {
            api.get("svc-tls")
                .await
                .ok()
                .filter(|s| parse_chain(field(s, "tls.crt")).is_ok_and(|c| c[0].serial != serial))
        }
    })
    .await;
    assert!(key_matches(&s));
    seen_keys.push(field(&s, "tls.key").to_vec());

    // KeyMismatch: tls.key replaced by another valid key.
    let serial = leaf(&s).serial;
    let other = PrivateKey::generate(certsmith::api::KeyAlgorithm::Ecdsa, 256)
        .expect("key")
        .to_pem(certsmith::api::KeyEncoding::Pkcs8)
        .expect("pem");
    secrets
        .patch(
            "svc-tls",
            &pp,
            &Patch::Merge(json!({"data": {"tls.key": ByteString(other.into_bytes())}})),
        )
        .await
        .expect("patch");
    s = wait_reissued(&ns, "svc-tls", &serial).await;
    assert!(key_matches(&s));
    seen_keys.push(field(&s, "tls.key").to_vec());

    // SpecMismatch: a new DNS name.
    let serial = leaf(&s).serial;
    certificate(&ns, "svc", json!({"secretName": "svc-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["svc.example", "svc2.example"]})).await;
    s = wait_reissued(&ns, "svc-tls", &serial).await;
    assert!(leaf(&s).dns_names.contains("svc2.example"));
    seen_keys.push(field(&s, "tls.key").to_vec());

    // IssuerChanged: another CA issuer on the same root.
    let serial = leaf(&s).serial;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca2"}, "spec": {"ca": {"secretName": "root-ca"}}})).await;
    certificate(&ns, "svc", json!({"secretName": "svc-tls", "issuerRef": {"name": "ca2"}, "dnsNames": ["svc.example", "svc2.example"]})).await;
    s = wait_reissued(&ns, "svc-tls", &serial).await;
    assert_eq!(
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("certsmith.dev/issuer-name"))
            .map(String::as_str),
        Some("ca2")
    );
    seen_keys.push(field(&s, "tls.key").to_vec());

    // ManualTrigger: the renew annotation. Before it, another manager labels the Secret:
    // server-side apply keeps fields certsmith does not own across the re-issue.
    secrets
        .patch("svc-tls", &PatchParams::apply("someone-else"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"labels": {"backup": "daily"}}})))
        .await
        .expect("label by another manager");
    let serial = leaf(&s).serial;
    request_renewal(&ns, "svc", "2026-11-22T10:00:00Z").await;
    s = wait_reissued(&ns, "svc-tls", &serial).await;
    seen_keys.push(field(&s, "tls.key").to_vec());
    assert_eq!(
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("backup"))
            .map(String::as_str),
        Some("daily"),
        "another manager's label survives"
    );
    let cert = wait_until(&ns, "svc", "manual request recorded", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.last_renew_request.as_deref())
            == Some("2026-11-22T10:00:00Z")
    })
    .await;
    assert!(cert.status.and_then(|s| s.revision).unwrap_or(0) >= 7);

    // DoesNotExist: Secret deleted.
    let serial = leaf(&s).serial;
    secrets
        .delete("svc-tls", &DeleteParams::default())
        .await
        .expect("delete");
    s = wait_reissued(&ns, "svc-tls", &serial).await;
    seen_keys.push(field(&s, "tls.key").to_vec());

    // Every issuance rotated the key (rotationPolicy Always by default).
    let distinct: std::collections::BTreeSet<_> = seen_keys.iter().collect();
    assert_eq!(distinct.len(), seen_keys.len(), "a key was reused");

    // The Events name the reasons.
    let notes = event_notes(&ns).await;
    for reason in [
        "DoesNotExist",
        "MissingData",
        "InvalidData",
        "KeyMismatch",
        "SpecMismatch",
        "IssuerChanged",
        "ManualTrigger",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(reason)),
            "no Event mentions {reason}: {notes:?}"
        );
    }
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_expired_certificate_in_the_secret_is_reissued() {
    let (ns, operator) = setup("cert-expired").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    let cert = certificate(&ns, "old", json!({"secretName": "old-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["old.example"], "duration": "1h"})).await;
    wait_ready(&ns, "old").await;
    // Replace the Secret's contents with a certificate for the same spec that expired an hour ago.
    let key = PrivateKey::generate(certsmith::api::KeyAlgorithm::Ecdsa, 256).expect("key");
    let request = certsmith::pki::request::sign_request(&cert.spec, &key).expect("request");
    let past = jiff::Timestamp::now().as_second() - 7200;
    let signed = certsmith::issuer::selfsigned::sign(&request, &key, past).expect("sign");
    let key_pem = key.to_pem(certsmith::api::KeyEncoding::Pkcs8).expect("pem");
    let old_serial = parse_chain(signed.chain_pem.as_bytes()).expect("parse")[0]
        .serial
        .clone();
    ns.api::<Secret>()
        .patch(
            "old-tls",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"tls.crt": ByteString(signed.chain_pem.into_bytes()), "tls.key": ByteString(key_pem.into_bytes())}})),
        )
        .await
        .expect("patch");
    let s = wait_reissued(&ns, "old-tls", &old_serial).await;
    assert!(leaf(&s).not_after > jiff::Timestamp::now().as_second());
    let notes = event_notes(&ns).await;
    assert!(notes.iter().any(|n| n.contains("Expired")), "{notes:?}");
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn rotation_policy_never_keeps_the_key() {
    let (ns, operator) = setup("cert-never").await;
    ca_issuer(&ns).await;
    let spec = json!({"secretName": "keep-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["keep.example"],
                      "privateKey": {"rotationPolicy": "Never", "algorithm": "RSA", "size": 2048, "encoding": "PKCS1"}});
    certificate(&ns, "keep", spec.clone()).await;
    wait_ready(&ns, "keep").await;
    let first = secret(&ns, "keep-tls").await;
    assert!(
        String::from_utf8_lossy(field(&first, "tls.key"))
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    request_renewal(&ns, "keep", "now").await;
    let second = wait_reissued(&ns, "keep-tls", &leaf(&first).serial).await;
    assert_eq!(
        field(&first, "tls.key"),
        field(&second, "tls.key"),
        "rotationPolicy Never reuses the key"
    );
    assert!(key_matches(&second));
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_five_minute_certificate_is_renewed_by_the_running_operator() {
    let (ns, operator) = setup("cert-short").await;
    ca_issuer(&ns).await;
    certificate(&ns, "short", json!({"secretName": "short-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["short.example"], "duration": "5m", "renewBeforePercentage": 98})).await;
    wait_ready(&ns, "short").await;
    let first = secret(&ns, "short-tls").await;
    let l = leaf(&first);
    // 5 minutes from issuance, backdated 1 s (1/200 of the duration).
    assert_eq!(l.not_after - l.not_before, 301);
    // 98% before expiry of that lifetime would be 6 s after issuance; the renewal floor (a
    // tenth of the lifetime after issuance) makes it 30 s.
    let second = wait_reissued(&ns, "short-tls", &l.serial).await;
    assert_ne!(field(&first, "tls.key"), field(&second, "tls.key"));
    let after = leaf(&second).not_before - l.not_before;
    assert!(
        (28..=45).contains(&after),
        "renewed at the floor, within seconds: {after} s"
    );
    // The Event follows the Secret and status writes: wait for it rather than race it.
    wait_for("a Renewing Event", WAIT, || async {
        event_notes(&ns)
            .await
            .iter()
            .any(|n| n.contains("Renewing"))
            .then_some(())
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_foreign_secret_is_never_overwritten_and_a_duplicate_secret_name_is_refused() {
    let (ns, operator) = setup("cert-conflict").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    let foreign: Secret = serde_json::from_value(
        json!({"metadata": {"name": "theirs"}, "stringData": {"password": "hunter2"}}),
    )
    .expect("secret");
    ns.api::<Secret>()
        .create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign");
    certificate(&ns, "intruder", json!({"secretName": "theirs", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["a.example"]})).await;
    let c = wait_until(&ns, "intruder", "SecretConflict", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "SecretConflict")
    })
    .await;
    assert_eq!(
        condition(&c, "Stalled").map(|s| s.status),
        Some("True".into())
    );
    let untouched = secret(&ns, "theirs").await;
    assert_eq!(field(&untouched, "password"), b"hunter2");
    assert!(
        untouched
            .data
            .as_ref()
            .is_some_and(|d| !d.contains_key("tls.crt"))
    );

    certificate(&ns, "first", json!({"secretName": "shared-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["first.example"]})).await;
    wait_ready(&ns, "first").await;
    let before = secret(&ns, "shared-tls").await;
    certificate(&ns, "second", json!({"secretName": "shared-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["second.example"]})).await;
    wait_until(&ns, "second", "DuplicateSecretName", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "DuplicateSecretName")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = secret(&ns, "shared-tls").await;
    assert_eq!(
        leaf(&before).serial,
        leaf(&after).serial,
        "no issuance loop over the shared Secret"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_issuer_cannot_read_a_ca_secret_from_another_namespace() {
    let (ns, operator) = setup("cert-xns").await;
    let other = TestNamespace::new("cert-xns-other").await;
    // A perfectly good CA in the other namespace.
    other.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    let other_op = Operator::start(&other.name).await;
    certificate(&other, "root", json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"}, "commonName": "other root", "isCA": true})).await;
    wait_ready(&other, "root").await;
    // An Issuer here naming that Secret only ever looks in its own namespace.
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "root-ca"}}})).await;
    certificate(
        &ns,
        "app",
        json!({"secretName": "app-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["app.example"]}),
    )
    .await;
    let c = wait_until(&ns, "app", "IssuerNotReady", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "IssuerNotReady")
    })
    .await;
    assert!(
        condition(&c, "Ready")
            .is_some_and(|r| r.message.contains("CASecretMissing") && r.message.contains(&ns.name))
    );
    assert!(
        ns.api::<Secret>()
            .get_opt("app-tls")
            .await
            .expect("get")
            .is_none()
    );
    other_op.stop().await;
    operator.stop().await;
    other.delete().await;
    ns.delete().await;
}

/// The CA issuer keeps the key pair it read while the watch shows its Secret unchanged: once
/// the Secret is replaced out of band, the next issuance signs with the new key.
#[tokio::test]
async fn a_replaced_ca_secret_signs_the_next_issuance() {
    let (ns, operator) = setup("cert-ca-swap").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    for root in ["one", "two"] {
        certificate(&ns, root, json!({"secretName": format!("{root}-ca"), "issuerRef": {"name": "selfsigned"}, "commonName": format!("root {root}"), "isCA": true})).await;
    }
    wait_ready(&ns, "one").await;
    wait_ready(&ns, "two").await;
    let (one, two) = (secret(&ns, "one-ca").await, secret(&ns, "two-ca").await);
    let pair = |s: &Secret| {
        let mut data = std::collections::BTreeMap::new();
        for k in ["tls.crt", "tls.key"] {
            data.insert(k.to_string(), ByteString(field(s, k).to_vec()));
        }
        data
    };
    let secrets = ns.api::<Secret>();
    let mut ca = Secret {
        type_: Some("kubernetes.io/tls".into()),
        data: Some(pair(&one)),
        ..Default::default()
    };
    ca.metadata.name = Some("ca-key".into());
    secrets
        .create(&PostParams::default(), &ca)
        .await
        .expect("CA Secret");
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "ca-key"}}})).await;
    certificate(&ns, "first", json!({"secretName": "first-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["first.example"]})).await;
    wait_ready(&ns, "first").await;
    let first = secret(&ns, "first-tls").await;
    openssl_verify(field(&one, "tls.crt"), field(&first, "tls.crt")).expect("signed by one");

    // Replaced out of band; the watch delivers the change within moments.
    secrets
        .patch(
            "ca-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": pair(&two)})),
        )
        .await
        .expect("replace the CA");
    tokio::time::sleep(Duration::from_secs(2)).await;
    certificate(&ns, "second", json!({"secretName": "second-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["second.example"]})).await;
    wait_ready(&ns, "second").await;
    let second = secret(&ns, "second-tls").await;
    openssl_verify(field(&two, "tls.crt"), field(&second, "tls.crt")).expect("signed by two");
    assert!(
        openssl_verify(field(&one, "tls.crt"), field(&second, "tls.crt")).is_err(),
        "the replaced key signed nothing after the change"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_missing_issuer_is_reported_then_issuance_recovers_when_it_appears() {
    let (ns, operator) = setup("cert-recover").await;
    certificate(&ns, "waiting", json!({"secretName": "waiting-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["w.example"]})).await;
    wait_until(&ns, "waiting", "IssuerNotFound", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "IssuerNotFound")
    })
    .await;
    // The CA Issuer appears before its Secret: not ready, with the precise reason.
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "root-ca"}}})).await;
    let issuers = ns.api::<Issuer>();
    wait_for("Issuer ca reports CASecretMissing", WAIT, || {
        let issuers = issuers.clone();
        async move {
            let i = issuers.get("ca").await.ok()?;
            i.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "CASecretMissing")
                .then_some(())
        }
    })
    .await;
    wait_until(&ns, "waiting", "IssuerNotReady", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "IssuerNotReady")
    })
    .await;
    // Now provide the root: the Certificate becomes Ready without anyone touching it.
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    certificate(&ns, "root", json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"}, "commonName": "late root", "isCA": true})).await;
    wait_ready(&ns, "waiting").await;
    let s = secret(&ns, "waiting-tls").await;
    openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt")).expect("verifies");
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn invalid_manifests_are_rejected_at_admission() {
    let ns = TestNamespace::new("cert-invalid").await;
    install_crds(&ns.client).await;
    let certs = ns.api::<Certificate>();
    let base = json!({"secretName": "s", "issuerRef": {"name": "i"}, "dnsNames": ["ok.example"]});
    let cases = [
        (
            "no identity",
            json!({"secretName": "s", "issuerRef": {"name": "i"}}),
            "at least one identity",
        ),
        (
            "both renew settings",
            json!({"renewBefore": "1h", "renewBeforePercentage": 10}),
            "mutually exclusive",
        ),
        ("short duration", json!({"duration": "1m"}), "at least 5m"),
        (
            "bad ECDSA size",
            json!({"privateKey": {"algorithm": "ECDSA", "size": 2048}}),
            "size must be",
        ),
        (
            "bad RSA size",
            json!({"privateKey": {"algorithm": "RSA", "size": 1024}}),
            "size must be",
        ),
        (
            "bad IP",
            json!({"ipAddresses": ["300.1.1.1"]}),
            "IPv4 or IPv6",
        ),
        ("bad URI", json!({"uris": ["not a uri"]}), "absolute URI"),
        (
            "bad DNS name",
            json!({"dnsNames": ["-bad-.example"]}),
            "dnsNames",
        ),
        (
            "Ed25519 as PKCS1",
            json!({"privateKey": {"algorithm": "Ed25519", "encoding": "PKCS1"}}),
            "PKCS8",
        ),
    ];
    for (i, (what, patch, expected)) in cases.iter().enumerate() {
        let mut spec = base.clone();
        for (k, v) in patch.as_object().expect("object") {
            spec[k] = v.clone();
        }
        if *what == "no identity" {
            spec = patch.clone();
        }
        let obj: Certificate = serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": format!("c{i}")}, "spec": spec})).expect("typed");
        let err = certs
            .create(&PostParams::default(), &obj)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(err.to_string().contains(expected), "{what}: {err}");
    }
    let issuers = ns.api::<Issuer>();
    let both: Issuer = serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "both"}, "spec": {"selfSigned": {}, "ca": {"secretName": "x"}}})).expect("typed");
    let err = issuers
        .create(&PostParams::default(), &both)
        .await
        .expect_err("two issuer types");
    assert!(err.to_string().contains("exactly one issuer type"), "{err}");
    let token = json!({"tokenSecretRef": {"name": "t", "key": "token"}});
    let vault_cases = [
        (
            "issue path (the key would be generated by Vault)",
            json!({"server": "https://v", "path": "pki/issue/agents", "auth": token}),
            "spec.vault.path",
        ),
        (
            "two auth methods",
            json!({"server": "https://v", "path": "pki/sign/agents", "auth": {"tokenSecretRef": {"name": "t", "key": "k"}, "appRole": {"roleId": "r", "secretRef": {"name": "a", "key": "s"}}}}),
            "exactly one auth method",
        ),
        (
            "no scheme",
            json!({"server": "vault:8200", "path": "pki/sign/agents", "auth": token}),
            "spec.vault.server",
        ),
        (
            "two CA bundles",
            json!({"server": "https://v", "path": "pki/sign/agents", "caBundle": "eA==", "caBundleSecretRef": {"name": "c", "key": "ca.crt"}, "auth": token}),
            "mutually exclusive",
        ),
    ];
    for (i, (what, vault, expected)) in vault_cases.iter().enumerate() {
        let issuer: Issuer = serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": format!("v{i}")}, "spec": {"vault": vault}})).expect("typed");
        let err = issuers
            .create(&PostParams::default(), &issuer)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(err.to_string().contains(expected), "{what}: {err}");
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_cluster_issuer_reads_its_ca_from_the_cluster_resource_namespace() {
    let (ns, operator) = setup("cert-cluster").await;
    // The in-process operator's cluster-resource namespace is the test namespace, and it serves
    // ClusterIssuers labelled test=<namespace>.
    ca_issuer(&ns).await;
    let name = format!("ca-{}", ns.name);
    let cluster_issuers: Api<ClusterIssuer> = Api::all(ns.client.clone());
    let issuer = json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
        "metadata": {"name": name, "labels": {"test": ns.name}}, "spec": {"ca": {"secretName": "root-ca"}}});
    cluster_issuers
        .patch(
            &name,
            &PatchParams::apply("certsmith-tests"),
            &Patch::Apply(issuer),
        )
        .await
        .expect("cluster issuer");
    wait_for("ClusterIssuer Ready", WAIT, || {
        let (api, name) = (cluster_issuers.clone(), name.clone());
        async move {
            api.get(&name)
                .await
                .ok()?
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        }
    })
    .await;
    certificate(&ns, "via-cluster", json!({"secretName": "via-cluster-tls", "issuerRef": {"name": name, "kind": "ClusterIssuer"}, "dnsNames": ["c.example"]})).await;
    wait_ready(&ns, "via-cluster").await;
    let s = secret(&ns, "via-cluster-tls").await;
    openssl_verify(field(&s, "ca.crt"), field(&s, "tls.crt")).expect("verifies");
    assert_eq!(
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("certsmith.dev/issuer-kind"))
            .map(String::as_str),
        Some("ClusterIssuer")
    );
    let _ = cluster_issuers
        .delete(&name, &DeleteParams::default())
        .await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_operator_told_to_watch_some_namespaces_leaves_the_others_alone() {
    let (a, b, c) = (
        TestNamespace::new("scope-a").await,
        TestNamespace::new("scope-b").await,
        TestNamespace::new("scope-c").await,
    );
    install_crds(&a.client).await;
    let operator =
        Operator::start_scoped(crate::support::admin_client().await, &[&a.name, &b.name]).await;
    for ns in [&a, &b, &c] {
        ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
        certificate(ns, "app", json!({"secretName": "app-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["app.example"]})).await;
    }
    wait_ready(&a, "app").await;
    wait_ready(&b, "app").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let untouched = c.api::<Certificate>().get("app").await.expect("get");
    assert!(
        untouched.status.is_none(),
        "a namespace outside the scope is not reconciled"
    );
    assert!(
        c.api::<Secret>()
            .get_opt("app-tls")
            .await
            .expect("get")
            .is_none()
    );
    operator.stop().await;
    for ns in [a, b, c] {
        ns.delete().await;
    }
}

#[tokio::test]
async fn metrics_are_served_and_the_expiration_gauge_is_the_certificates_not_after() {
    let (ns, operator) = setup("cert-metrics").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    certificate(&ns, "m", json!({"secretName": "m-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["m.example"]})).await;
    wait_ready(&ns, "m").await;
    let s = secret(&ns, "m-tls").await;
    let not_after = leaf(&s).not_after;
    let http = reqwest::Client::new();
    let base = format!("http://{}", operator.http);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16(),
        200
    );
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let series = |metric: &str| -> Option<f64> {
        text.lines()
            .filter(|l| {
                l.starts_with(metric)
                    && l.contains(&format!("namespace=\"{}\"", ns.name))
                    && l.contains("name=\"m\"")
            })
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(
        series("certsmith_certificate_expiration_timestamp_seconds{"),
        Some(not_after as f64),
        "{text}"
    );
    assert_eq!(
        series("certsmith_certificate_ready_status{"),
        Some(1.0),
        "{text}"
    );
    assert!(
        series("certsmith_certificate_renewal_timestamp_seconds{")
            .is_some_and(|r| r < not_after as f64)
    );
    assert!(
        text.contains("certsmith_issuances_total{issuer_kind=\"Issuer\",result=\"success\"}"),
        "{text}"
    );
    operator.stop().await;
    ns.delete().await;
}
