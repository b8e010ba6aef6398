//! Hardening (issue 17): what a tenant with rights in one namespace, or a busy cluster, can do
//! to the operator. Each test feeds one hostile or broken input and checks that the operator
//! neither crashes, loops, goes blind nor loses what it issued.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use certsmith::api::{Certificate, Issuer};

use crate::openbao::{Pki, PrivateBao};
use crate::support::{
    Bao, Frozen, Operator, OperatorProcess, TestNamespace, WAIT, certificate, condition, field,
    install_crds, leaf, request_renewal, secret, wait_for, wait_ready, wait_until,
};
use crate::vault::vault_issuer;

/// How long the sign-request counts of the loop tests are observed.
const OBSERVE: Duration = Duration::from_secs(60);

fn self_signed_issuer(name: &str) -> Value {
    json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": name}, "spec": {"selfSigned": {}}})
}

/// Item 2: a Secret the API server refuses after signing is a failed issuance (counted, backed
/// off, `SecretWriteFailed` with the server's words), and the retry writes the certificate
/// already signed instead of signing again.
#[tokio::test]
async fn a_refused_secret_write_backs_off_and_reuses_the_signed_certificate() {
    let ns = TestNamespace::new("harden-write").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "v",
        &crate::support::env("VAULT_ADDR"),
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let frozen = Frozen::new(&ns, "secrets").await;
    let operator = Operator::start(&ns.name).await;
    certificate(&ns, "svc", json!({"secretName": "svc-tls", "issuerRef": {"name": "v"}, "dnsNames": ["svc.example.test"]})).await;
    tokio::time::sleep(OBSERVE).await;
    let signs = operator.metrics.backend_request_count("vault", "sign");
    let c = ns.api::<Certificate>().get("svc").await.expect("cert");
    let attempts = c
        .status
        .as_ref()
        .and_then(|s| s.failed_issuance_attempts)
        .unwrap_or(0);
    let ready = condition(&c, "Ready");
    eprintln!(
        "refused Secret write: {signs} sign requests and {attempts} counted failures in {OBSERVE:?}; Ready: {ready:?}"
    );
    let ready = ready.expect("a Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretWriteFailed")
    );
    assert!(
        ready.message.contains("frozen"),
        "the API server's words: {}",
        ready.message
    );
    assert!(attempts >= 2, "failures are counted: {attempts}");
    assert!(attempts <= 6, "and backed off: {attempts}");
    assert_eq!(signs, 1, "the retries reuse the signed certificate");
    // The next attempt comes when the backoff (by now over a minute) has run out.
    frozen.thaw().await;
    let api = ns.api::<Certificate>();
    wait_for(
        "Ready once Secrets may be written",
        Duration::from_secs(180),
        || {
            let api = api.clone();
            async move {
                let c = api.get("svc").await.ok()?;
                condition(&c, "Ready")
                    .is_some_and(|r| r.status == "True")
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        operator.metrics.backend_request_count("vault", "sign"),
        1,
        "the certificate signed during the freeze is the one written"
    );
    operator.stop().await;
    ns.delete().await;
}

/// Item 4: a certificate whose renewal time would already be past when it is issued (Vault
/// backdates notBefore 30 s; 5 minutes with renewBeforePercentage 99) is not re-issued in a loop.
#[tokio::test]
async fn a_renewal_time_before_issuance_does_not_loop() {
    let ns = TestNamespace::new("harden-floor").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    vault_issuer(
        &ns,
        "v",
        &crate::support::env("VAULT_ADDR"),
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    certificate(&ns, "svc", json!({"secretName": "svc-tls", "issuerRef": {"name": "v"}, "dnsNames": ["svc.example.test"],
                                    "duration": "5m", "renewBeforePercentage": 99})).await;
    let started = jiff::Timestamp::now();
    let ready = wait_ready(&ns, "svc").await;
    tokio::time::sleep(OBSERVE).await;
    let signs = operator.metrics.backend_request_count("vault", "sign");
    eprintln!("renewal floor: {signs} sign requests in {OBSERVE:?}");
    // The floor is a tenth of the lifetime (5 min + Vault's 30 s backdating) after issuance:
    // 33 s, so a minute sees the first issuance and at most one renewal.
    assert!(signs <= 2, "{signs} sign requests: a loop");
    let status = ready.status.expect("status");
    let renews: jiff::Timestamp = status
        .renewal_time
        .expect("renewalTime")
        .parse()
        .expect("time");
    assert!(
        renews.duration_since(started) >= jiff::SignedDuration::from_secs(30),
        "renewal time {renews}, certificate asked for at {started}"
    );
    operator.stop().await;
    ns.delete().await;
}

/// Item 3: with several watched namespaces, each namespace's metric series survive the others'
/// sweeps (the expiry and NotReady alerts read them).
#[tokio::test]
async fn metric_series_of_every_watched_namespace_survive_the_sweep() {
    let a = TestNamespace::new("harden-sweep-a").await;
    let b = TestNamespace::new("harden-sweep-b").await;
    install_crds(&a.client).await;
    let operator = Operator::start_scoped(a.client.clone(), &[&a.name, &b.name]).await;
    for ns in [&a, &b] {
        ns.apply::<Issuer>(self_signed_issuer("selfsigned")).await;
        certificate(ns, "web", json!({"secretName": "web-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]})).await;
        wait_ready(ns, "web").await;
    }
    // Longer than the sweep period (30 s).
    tokio::time::sleep(Duration::from_secs(40)).await;
    let text = reqwest::get(format!("http://{}/metrics", operator.http))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    for ns in [&a, &b] {
        let series = format!(
            "certsmith_certificate_ready_status{{namespace=\"{}\",name=\"web\"",
            ns.name
        );
        assert!(text.contains(&series), "{series} missing after the sweep");
    }
    operator.stop().await;
    a.delete().await;
    b.delete().await;
}

/// Item 9: Secrets any tenant can label `certsmith.dev/managed=true` do not bring their data
/// into the operator's memory (200 Secrets of 1 MiB; the chart's limit is 256 MiB).
#[tokio::test]
async fn labelled_secrets_do_not_cost_their_size_in_memory() {
    let ns = TestNamespace::new("harden-memory").await;
    install_crds(&ns.client).await;
    let mib = "A".repeat(1024 * 1024 - 64);
    for i in 0..200 {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("big-{i}"), "labels": {"certsmith.dev/managed": "true"}},
            "stringData": {"blob": mib},
        }))
        .expect("secret");
        ns.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("create big secret");
    }
    let operator = OperatorProcess::start(&ns.name, &[]);
    operator.wait_ready().await;
    // Let the watches settle, then read the peak.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = operator.peak_rss_kib();
    eprintln!(
        "peak RSS with 200 labelled 1 MiB Secrets: {:.1} MiB",
        peak as f64 / 1024.0
    );
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
    drop(operator);
    ns.delete().await;
}

/// Item 10: a Secret left by a Certificate that was deleted is adopted by a new Certificate
/// naming it, with an `Adopted` Event.
#[tokio::test]
async fn a_secret_of_a_deleted_certificate_is_adopted() {
    let ns = TestNamespace::new("harden-adopt").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ns.apply::<Issuer>(self_signed_issuer("selfsigned")).await;
    certificate(&ns, "old", json!({"secretName": "shared-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]})).await;
    wait_ready(&ns, "old").await;
    ns.api::<Certificate>()
        .delete("old", &DeleteParams::default())
        .await
        .expect("delete old");
    certificate(&ns, "new", json!({"secretName": "shared-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]})).await;
    wait_ready(&ns, "new").await;
    let s = secret(&ns, "shared-tls").await;
    assert_eq!(
        s.annotations()
            .get("certsmith.dev/certificate-name")
            .map(String::as_str),
        Some("new")
    );
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    wait_for("an Adopted Event", WAIT, || {
        let events = events.clone();
        async move {
            events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .any(|e| e.reason.as_deref() == Some("Adopted"))
                .then_some(())
        }
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

/// Item 10: two Certificates created in the same second that name one Secret get a
/// deterministic winner (creation time, then name), even when the loser wrote the Secret.
#[tokio::test]
async fn same_second_claimants_get_a_deterministic_winner() {
    let ns = TestNamespace::new("harden-race").await;
    install_crds(&ns.client).await;
    ns.apply::<Issuer>(self_signed_issuer("selfsigned")).await;
    // Two Certificates in the same second (retry until the API server stamps them so).
    let (winner, loser) = loop {
        let suffix = format!("{:04x}", crate::support::rand_u32() & 0xffff);
        let (a, b) = (format!("a-{suffix}"), format!("b-{suffix}"));
        let spec = json!({"secretName": format!("shared-{suffix}"), "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]});
        let ca = certificate(&ns, &a, spec.clone()).await;
        let cb = certificate(&ns, &b, spec).await;
        if ca.metadata.creation_timestamp == cb.metadata.creation_timestamp {
            break (a, b);
        }
    };
    let secret_name = format!("shared-{}", &winner[2..]);
    // The loser got there first: the Secret says it was written for it.
    let planted: Secret = serde_json::from_value(json!({
        "metadata": {"name": secret_name, "labels": {"certsmith.dev/managed": "true"},
                     "annotations": {"certsmith.dev/certificate-name": loser}},
        "type": "kubernetes.io/tls", "stringData": {"tls.crt": "", "tls.key": ""},
    }))
    .expect("secret");
    ns.api::<Secret>()
        .create(&PostParams::default(), &planted)
        .await
        .expect("plant secret");
    let operator = Operator::start(&ns.name).await;
    wait_ready(&ns, &winner).await;
    wait_until(&ns, &loser, "DuplicateSecretName", |c| {
        condition(c, "Ready").is_some_and(|r| r.reason == "DuplicateSecretName")
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

/// Item 10 and item 2: a Certificate may not name another Certificate's pending-request Secret,
/// and a secretTemplate is validated at admission (label syntax and size, no certsmith.dev/ keys).
#[tokio::test]
async fn secret_names_and_templates_the_api_server_would_refuse_are_refused_at_admission() {
    let ns = TestNamespace::new("harden-admission").await;
    install_crds(&ns.client).await;
    let base = json!({"secretName": "s", "issuerRef": {"name": "i"}, "dnsNames": ["ok.example"]});
    let long = "x".repeat(64);
    let cases = [
        json!({"secretName": "other-certsmith-pending"}),
        json!({"secretTemplate": {"labels": {"team": long}}}),
        json!({"secretTemplate": {"labels": {"bad key!": "v"}}}),
        json!({"secretTemplate": {"labels": {"certsmith.dev/pending": "true"}}}),
        json!({"secretTemplate": {"annotations": {"certsmith.dev/renew-request": "x"}}}),
        json!({"secretTemplate": {"annotations": {"big": "x".repeat(300 * 1024)}}}),
    ];
    for (i, change) in cases.iter().enumerate() {
        let mut spec = base.clone();
        for (k, v) in change.as_object().expect("object") {
            spec[k] = v.clone();
        }
        let body = json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
                          "metadata": {"name": format!("c{i}")}, "spec": spec});
        let result = ns
            .api::<Certificate>()
            .patch(
                &format!("c{i}"),
                &PatchParams::apply("certsmith-tests"),
                &Patch::Apply(body),
            )
            .await;
        assert!(result.is_err(), "accepted: {change}");
    }
    // What stays allowed.
    certificate(&ns, "fine", json!({"secretName": "s", "issuerRef": {"name": "i"}, "dnsNames": ["ok.example"],
        "secretTemplate": {"labels": {"app.kubernetes.io/name": "web", "team": "x".repeat(63)}, "annotations": {"note": "y".repeat(2000)}}})).await;
    ns.delete().await;
}

/// Item 12: the revision in a Secret is tenant-writable; a huge one cannot overflow.
#[tokio::test]
async fn a_huge_revision_in_the_secret_does_not_crash_the_operator() {
    let ns = TestNamespace::new("harden-revision").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ns.apply::<Issuer>(self_signed_issuer("selfsigned")).await;
    certificate(&ns, "web", json!({"secretName": "web-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]})).await;
    wait_ready(&ns, "web").await;
    let patch =
        json!({"metadata": {"annotations": {"certsmith.dev/revision": i64::MAX.to_string()}}});
    ns.api::<Secret>()
        .patch("web-tls", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("patch revision");
    let serial = leaf(&secret(&ns, "web-tls").await).serial;
    request_renewal(&ns, "web", "after-huge-revision").await;
    // Whatever the operator does with that revision, it keeps working.
    certificate(&ns, "other", json!({"secretName": "other-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["other.example"]})).await;
    wait_ready(&ns, "other").await;
    // The renewal cannot be numbered: it fails with that reason, and the certificate in the
    // Secret stays in place and Ready.
    let c = wait_until(&ns, "web", "the renewal refused with InvalidData", |c| {
        condition(c, "Reconciling").is_some_and(|r| r.reason == "InvalidData")
    })
    .await;
    let reconciling = condition(&c, "Reconciling").expect("Reconciling");
    assert!(
        reconciling.message.contains("revision"),
        "{}",
        reconciling.message
    );
    assert_eq!(
        condition(&c, "Ready").map(|r| r.status),
        Some("True".into())
    );
    assert_eq!(leaf(&secret(&ns, "web-tls").await).serial, serial);
    operator.stop().await;
    ns.delete().await;
}

/// Item 16: garbage in `ca.crt` of a managed Secret is repaired, not left in place while the
/// Certificate reports Ready.
#[tokio::test]
async fn a_corrupt_ca_crt_is_repaired() {
    let ns = TestNamespace::new("harden-cacrt").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ns.apply::<Issuer>(self_signed_issuer("selfsigned")).await;
    certificate(&ns, "web", json!({"secretName": "web-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]})).await;
    wait_ready(&ns, "web").await;
    for garbage in [
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        let patch = json!({"data": {"ca.crt": ByteString(garbage.as_bytes().to_vec())}});
        ns.api::<Secret>()
            .patch("web-tls", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("corrupt ca.crt");
        let api = ns.api::<Secret>();
        let repaired = wait_for("ca.crt repaired", WAIT, || {
            let api = api.clone();
            async move {
                let s = api.get("web-tls").await.ok()?;
                let ca = certsmith::pki::inspect::parse_chain(field(&s, "ca.crt")).ok()?;
                (!ca.is_empty()).then_some(s)
            }
        })
        .await;
        crate::support::openssl_verify(field(&repaired, "ca.crt"), field(&repaired, "tls.crt"))
            .expect("the repaired ca.crt verifies tls.crt");
        wait_ready(&ns, "web").await;
    }
    operator.stop().await;
    ns.delete().await;
}

/// Count writes to Certificates, Events and Secrets in a namespace while `window` passes.
async fn writes_during(ns: &TestNamespace, window: Duration) -> BTreeMap<&'static str, usize> {
    async fn count<K>(api: Api<K>, window: Duration) -> usize
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        use futures::StreamExt;
        let list = api.list(&Default::default()).await.expect("list");
        let rv = list.metadata.resource_version.unwrap_or_default();
        let mut n = 0;
        let deadline = tokio::time::Instant::now() + window;
        let mut version = rv;
        while tokio::time::Instant::now() < deadline {
            let left = deadline - tokio::time::Instant::now();
            let wp = WatchParams::default().timeout(left.as_secs().max(1) as u32);
            let mut stream = api.watch(&wp, &version).await.expect("watch").boxed();
            loop {
                let next = tokio::time::timeout_at(deadline, stream.next()).await;
                match next {
                    Ok(Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)))) => {
                        n += 1;
                        version = o.meta().resource_version.clone().unwrap_or_default();
                    }
                    Ok(Some(Ok(WatchEvent::Bookmark(b)))) => version = b.metadata.resource_version,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        n
    }
    let (certs, events, secrets) = tokio::join!(
        count(ns.api::<Certificate>(), window),
        count(
            Api::<Event>::namespaced(ns.client.clone(), &ns.name),
            window
        ),
        count(ns.api::<Secret>(), window),
    );
    BTreeMap::from([
        ("certificates", certs),
        ("events", events),
        ("secrets", secrets),
    ])
}

/// Item 14: an issuer whose CA Secret is replaced by a non-CA certificate follows its Secret
/// (NotReady within seconds), and the failing Certificate backs off instead of storming the
/// API server with status writes and Events.
#[tokio::test]
async fn a_ca_secret_swapped_for_a_non_ca_makes_the_issuer_not_ready_without_a_write_storm() {
    let ns = TestNamespace::new("harden-storm").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ns.apply::<Issuer>(self_signed_issuer("selfsigned")).await;
    // A CA and a non-CA certificate, both issued by the operator, then copied into a plain
    // Secret the CA issuer reads (as a user would provide a key pair).
    certificate(&ns, "root", json!({"secretName": "root-tls", "issuerRef": {"name": "selfsigned"}, "commonName": "root", "isCA": true})).await;
    certificate(&ns, "plain", json!({"secretName": "plain-tls", "issuerRef": {"name": "selfsigned"}, "commonName": "plain"})).await;
    wait_ready(&ns, "root").await;
    wait_ready(&ns, "plain").await;
    let copy = |from: &Secret| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-ca"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": ByteString(field(from, "tls.crt").to_vec()), "tls.key": ByteString(field(from, "tls.key").to_vec())}})
    };
    let apply = |body: Value| {
        let api = ns.api::<Secret>();
        async move {
            api.patch(
                "my-ca",
                &PatchParams::apply("certsmith-tests").force(),
                &Patch::Apply(body),
            )
            .await
            .expect("apply my-ca")
        }
    };
    apply(copy(&secret(&ns, "root-tls").await)).await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "my-ca"}}})).await;
    crate::vault::issuer_ready_reason(&ns, "ca", "True").await;
    certificate(&ns, "leaf", json!({"secretName": "leaf-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["leaf.example"]})).await;
    wait_ready(&ns, "leaf").await;

    let swapped = jiff::Timestamp::now();
    apply(copy(&secret(&ns, "plain-tls").await)).await;
    request_renewal(&ns, "leaf", "after-swap").await;
    let writes = writes_during(&ns, Duration::from_secs(30)).await;
    let total: usize = writes.values().sum();
    eprintln!("API writes in 30 s with a non-CA CA Secret: {writes:?} (total {total})");
    let c = crate::vault::issuer_ready_reason(&ns, "ca", "False").await;
    let noticed: jiff::Timestamp = c.last_transition_time.parse().expect("time");
    let took = noticed.duration_since(swapped);
    eprintln!(
        "issuer NotReady ({}) {:#} after its Secret was swapped",
        c.reason, took
    );
    assert_eq!(c.reason, "NotACA");
    assert!(
        took < jiff::SignedDuration::from_secs(10),
        "the issuer follows its Secret"
    );
    assert!(total <= 12, "{writes:?}");
    let c = ns.api::<Certificate>().get("leaf").await.expect("leaf");
    assert_eq!(
        condition(&c, "Ready").map(|r| r.status),
        Some("True".into())
    );
    operator.stop().await;
    ns.delete().await;
}

/// Item 15: with one Vault issuer's server stopped (SIGSTOP: connections hang), its pending
/// Certificates may not hold every worker: a Certificate of another issuer is Ready within
/// seconds, and once the server answers again everything pending is issued within 30 s.
#[tokio::test]
async fn an_unreachable_backend_does_not_starve_other_tenants() {
    // One namespace, so one pool of workers, as with an operator serving the whole cluster
    // (an operator given several namespaces runs a pool per namespace).
    let vault_ns = TestNamespace::new("harden-starve").await;
    let other = &vault_ns;
    install_crds(&vault_ns.client).await;
    let bao = PrivateBao::start().await;
    let pki = Pki::setup(Bao::new(bao.addr.clone(), bao.token.clone()), json!({})).await;
    pki.token_secret(&vault_ns, "vault-token").await;
    vault_issuer(
        &vault_ns,
        "v",
        &bao.addr,
        &pki.sign_path(),
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await;
    other
        .apply::<Issuer>(self_signed_issuer("selfsigned"))
        .await;
    let operator = Operator::start(&vault_ns.name).await;
    crate::vault::issuer_ready_reason(&vault_ns, "v", "True").await;

    bao.signal("STOP");
    let names: Vec<String> = (0..64).map(|i| format!("v{i}")).collect();
    for name in &names {
        certificate(&vault_ns, name, json!({"secretName": format!("{name}-tls"), "issuerRef": {"name": "v"}, "dnsNames": [format!("{name}.example.test")]})).await;
    }
    // Let the Vault Certificates take the workers first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let asked = Instant::now();
    certificate(other, "web", json!({"secretName": "web-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["web.example"]})).await;
    wait_ready(other, "web").await;
    let other_ready = asked.elapsed();
    eprintln!("another issuer's Certificate Ready after {other_ready:?} while Vault hangs");
    assert!(other_ready < Duration::from_secs(10), "{other_ready:?}");

    // Long enough for backoffs to grow, then the server comes back.
    tokio::time::sleep(Duration::from_secs(30)).await;
    bao.signal("CONT");
    let back = Instant::now();
    let api = vault_ns.api::<Certificate>();
    wait_for(
        "every Vault Certificate Ready",
        Duration::from_secs(120),
        || {
            let api = api.clone();
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                let ready = list
                    .items
                    .iter()
                    .filter(|c| c.spec.issuer_ref.name == "v")
                    .filter(|c| condition(c, "Ready").is_some_and(|r| r.status == "True"))
                    .count();
                (ready == 64).then_some(())
            }
        },
    )
    .await;
    let recovered = back.elapsed();
    eprintln!("all 64 Vault Certificates Ready {recovered:?} after OpenBao returned");
    assert!(recovered < Duration::from_secs(30), "{recovered:?}");
    operator.stop().await;
    vault_ns.delete().await;
}

/// Item 12: an Issuer's readiness series disappears with the Issuer.
#[tokio::test]
async fn an_issuers_series_disappears_with_it() {
    let ns = TestNamespace::new("harden-issuer-gone").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ns.apply::<Issuer>(self_signed_issuer("gone")).await;
    let series = format!(
        "certsmith_issuer_ready_status{{issuer_kind=\"Issuer\",namespace=\"{}\",name=\"gone\"}}",
        ns.name
    );
    let url = format!("http://{}/metrics", operator.http);
    let has = |url: String, series: String| async move {
        reqwest::get(url)
            .await
            .ok()?
            .text()
            .await
            .ok()
            .map(|t| t.contains(&series))
    };
    wait_for("the issuer's series", WAIT, || {
        let (url, series) = (url.clone(), series.clone());
        async move { has(url, series).await.filter(|h| *h).map(|_| ()) }
    })
    .await;
    ns.api::<Issuer>()
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete issuer");
    wait_for("the issuer's series to go", WAIT, || {
        let (url, series) = (url.clone(), series.clone());
        async move { has(url, series).await.filter(|h| !*h).map(|_| ()) }
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}
