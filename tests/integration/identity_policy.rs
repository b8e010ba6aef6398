//! Identity policy enforced by the running operator: one test per rule, each proving the
//! denial (Ready=False PolicyDenied naming the field, a Warning Event, the metric) and that
//! nothing reached the backend (no Secret; for Vault and AWS Private CA, the servers' own
//! counts do not move), and that allowed names issue normally.

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use certsmith::api::{Certificate, ClusterIssuer, Issuer};

use crate::openbao::Pki;
use crate::support::{
    Bao, Operator, TestNamespace, WAIT, admin_client, certificate, condition, env, field,
    install_crds, leaf, request_renewal, wait_for, wait_ready,
};

/// A cluster-resource namespace holding a root CA, a tenant namespace, and an operator
/// serving both (ClusterIssuers labelled `test=<crn>`).
struct Tenancy {
    crn: TestNamespace,
    tenant: TestNamespace,
    operator: Operator,
    cluster_issuers: Vec<String>,
}

impl Tenancy {
    async fn new(prefix: &str) -> Self {
        let crn = TestNamespace::new(&format!("{prefix}-crn")).await;
        let tenant = TestNamespace::new(&format!("{prefix}-a")).await;
        install_crds(&crn.client).await;
        let operator =
            Operator::start_scoped(admin_client().await, &[&crn.name, &tenant.name]).await;
        crn.apply::<Issuer>(
            json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
            "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
        )
        .await;
        certificate(
            &crn,
            "root",
            json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"},
            "commonName": "policy test root", "isCA": true}),
        )
        .await;
        wait_ready(&crn, "root").await;
        Tenancy {
            crn,
            tenant,
            operator,
            cluster_issuers: Vec::new(),
        }
    }

    /// Apply the CA ClusterIssuer `name` (made unique per test) with `policy` (null: none);
    /// returns its full name once it is Ready.
    async fn ca_cluster_issuer(&mut self, name: &str, policy: Value) -> String {
        let full = format!("{name}-{}", self.crn.name);
        let mut spec = json!({"ca": {"secretName": "root-ca"}});
        if !policy.is_null() {
            spec["policy"] = policy;
        }
        let api = Api::<ClusterIssuer>::all(self.crn.client.clone());
        api.patch(
            &full,
            &PatchParams::apply("certsmith-tests").force(),
            &Patch::Apply(
                json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                "metadata": {"name": full, "labels": {"test": self.crn.name}}, "spec": spec}),
            ),
        )
        .await
        .expect("apply ClusterIssuer");
        if !self.cluster_issuers.contains(&full) {
            self.cluster_issuers.push(full.clone());
        }
        wait_for(&format!("ClusterIssuer {full} Ready"), WAIT, || {
            let (api, full) = (api.clone(), full.clone());
            async move {
                let status = api.get(&full).await.ok()?.status?;
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
        full
    }

    async fn delete(self) {
        let api = Api::<ClusterIssuer>::all(self.crn.client.clone());
        for name in &self.cluster_issuers {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        self.operator.stop().await;
        self.crn.delete().await;
        self.tenant.delete().await;
    }
}

/// Wait until `name` is denied by policy; checks that no Secret was written and a Warning
/// Event says why. Returns the Ready message.
async fn denied(ns: &TestNamespace, name: &str) -> String {
    let api = ns.api::<Certificate>();
    let message = wait_for(&format!("{name} denied by policy"), WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            condition(&c, "Ready")
                .filter(|r| r.status == "False" && r.reason == "PolicyDenied")
                .map(|r| r.message)
        }
    })
    .await;
    let secret_name = api.get(name).await.expect("cert").spec.secret_name;
    assert!(
        ns.api::<Secret>()
            .get_opt(&secret_name)
            .await
            .expect("get")
            .is_none(),
        "a denied Certificate gets no Secret"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(ns.client.clone(), &ns.name);
    let warned = wait_for("the PolicyDenied Event", WAIT, || {
        let events = events.clone();
        async move {
            events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                        && e.reason.as_deref() == Some("PolicyDenied")
                })
        }
    })
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    message
}

/// The value of `certsmith_policy_denials_total` for these labels (0 when absent).
async fn denials_metric(operator: &Operator, issuer: &str, kind: &str, field: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", operator.http))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("certsmith_policy_denials_total{"))
        .filter(|l| {
            l.contains(&format!("issuer=\"{issuer}\""))
                && l.contains(&format!("issuer_kind=\"{kind}\""))
                && l.contains(&format!("field=\"{field}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn spiffe_policy() -> Value {
    json!({
        "spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true},
        "allowed": {"dnsNames": ["*.{namespace}.svc", "*.{namespace}.svc.cluster.local"]},
    })
}

async fn service_account(ns: &TestNamespace, name: &str) {
    ns.apply::<ServiceAccount>(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
    )
    .await;
}

#[tokio::test]
async fn a_namespace_gets_its_own_svids_and_dns_names_and_nothing_else() {
    let mut t = Tenancy::new("pol-svid").await;
    let issuer = t.ca_cluster_issuer("agents", spiffe_policy()).await;
    let a = t.tenant.name.clone();
    let issuer_ref = json!({"name": issuer, "kind": "ClusterIssuer"});
    service_account(&t.tenant, "billing").await;

    // Its own SVID and DNS name: issued.
    certificate(
        &t.tenant,
        "own",
        json!({"secretName": "own-tls", "issuerRef": issuer_ref,
        "uris": [format!("spiffe://cluster.local/ns/{a}/sa/billing")],
        "dnsNames": [format!("billing.{a}.svc")]}),
    )
    .await;
    wait_ready(&t.tenant, "own").await;
    let s = crate::support::secret(&t.tenant, "own-tls").await;
    let issued = leaf(&s);
    assert!(
        issued
            .uris
            .contains(&format!("spiffe://cluster.local/ns/{a}/sa/billing")),
        "{:?}",
        issued.uris
    );
    assert!(!field(&s, "tls.key").is_empty());

    // Another namespace's SVID.
    certificate(
        &t.tenant,
        "foreign-svid",
        json!({"secretName": "foreign-svid-tls", "issuerRef": issuer_ref,
        "uris": ["spiffe://cluster.local/ns/payments/sa/billing"]}),
    )
    .await;
    let message = denied(&t.tenant, "foreign-svid").await;
    assert!(
        message.contains("uris[0]")
            && message.contains("spiffe://cluster.local/ns/payments/sa/billing"),
        "{message}"
    );
    assert!(denials_metric(&t.operator, &issuer, "ClusterIssuer", "uris").await >= 1);

    // Another namespace's DNS name, with its own SVID.
    certificate(
        &t.tenant,
        "foreign-dns",
        json!({"secretName": "foreign-dns-tls", "issuerRef": issuer_ref,
        "uris": [format!("spiffe://cluster.local/ns/{a}/sa/billing")],
        "dnsNames": ["billing.payments.svc"]}),
    )
    .await;
    let message = denied(&t.tenant, "foreign-dns").await;
    assert!(
        message.contains("dnsNames[0]") && message.contains("billing.payments.svc"),
        "{message}"
    );
    assert!(denials_metric(&t.operator, &issuer, "ClusterIssuer", "dnsNames").await >= 1);

    // A ServiceAccount that does not exist; once it does, the Certificate is issued.
    certificate(
        &t.tenant,
        "ghost",
        json!({"secretName": "ghost-tls", "issuerRef": issuer_ref,
        "uris": [format!("spiffe://cluster.local/ns/{a}/sa/ghost")]}),
    )
    .await;
    let message = denied(&t.tenant, "ghost").await;
    assert!(message.contains("ghost"), "{message}");
    assert!(denials_metric(&t.operator, &issuer, "ClusterIssuer", "serviceAccount").await >= 1);
    service_account(&t.tenant, "ghost").await;
    request_renewal(&t.tenant, "ghost", "sa-created").await;
    wait_ready(&t.tenant, "ghost").await;

    // The issuer tells a tenant what it may ask for.
    let status = Api::<ClusterIssuer>::all(t.crn.client.clone())
        .get(&issuer)
        .await
        .expect("issuer")
        .status
        .expect("status");
    let summary = status.policy.expect("status.policy");
    assert!(
        summary.contains("spiffe://cluster.local/ns/{namespace}/sa/"),
        "{summary}"
    );
    t.delete().await;
}

#[tokio::test]
async fn a_tenant_gets_a_ca_certificate_only_from_an_explicit_policy() {
    let mut t = Tenancy::new("pol-isca").await;
    let issuer = t.ca_cluster_issuer("shared", Value::Null).await;
    let issuer_ref = json!({"name": issuer, "kind": "ClusterIssuer"});
    // Without a policy, names are as free as before...
    certificate(
        &t.tenant,
        "leaf",
        json!({"secretName": "leaf-tls", "issuerRef": issuer_ref,
        "dnsNames": ["anything.example"]}),
    )
    .await;
    wait_ready(&t.tenant, "leaf").await;
    // ...but no intermediate CA for a tenant namespace.
    certificate(
        &t.tenant,
        "sub-ca",
        json!({"secretName": "sub-ca-tls", "issuerRef": issuer_ref,
        "commonName": "tenant intermediate", "isCA": true}),
    )
    .await;
    let message = denied(&t.tenant, "sub-ca").await;
    assert!(message.contains("isCA"), "{message}");
    assert!(denials_metric(&t.operator, &issuer, "ClusterIssuer", "isCA").await >= 1);
    // The cluster-resource namespace may still make one.
    certificate(
        &t.crn,
        "sub-ca",
        json!({"secretName": "sub-ca-tls", "issuerRef": issuer_ref,
        "commonName": "platform intermediate", "isCA": true}),
    )
    .await;
    wait_ready(&t.crn, "sub-ca").await;
    // An explicit policy allows it; the issuer's change brings the Certificate back.
    t.ca_cluster_issuer("shared", json!({"isCA": true})).await;
    wait_ready(&t.tenant, "sub-ca").await;
    let s = crate::support::secret(&t.tenant, "sub-ca-tls").await;
    assert!(leaf(&s).is_ca);
    t.delete().await;
}

#[tokio::test]
async fn a_namespace_outside_the_policy_is_refused_and_a_selected_one_served() {
    let mut t = Tenancy::new("pol-ns").await;
    let elsewhere = t
        .ca_cluster_issuer(
            "elsewhere",
            json!({"namespaces": {"matchNames": ["somewhere-else"]}}),
        )
        .await;
    certificate(
        &t.tenant,
        "outside",
        json!({"secretName": "outside-tls",
        "issuerRef": {"name": elsewhere, "kind": "ClusterIssuer"}, "dnsNames": ["a.example"]}),
    )
    .await;
    let message = denied(&t.tenant, "outside").await;
    assert!(message.contains(&t.tenant.name), "{message}");
    assert!(denials_metric(&t.operator, &elsewhere, "ClusterIssuer", "namespace").await >= 1);

    // Selected by a label the tenant's namespace carries.
    Api::<Namespace>::all(t.tenant.client.clone())
        .patch(
            &t.tenant.name,
            &PatchParams::apply("certsmith-tests"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": t.tenant.name, "labels": {"certsmith-test/tier": "agents"}}})),
        )
        .await
        .expect("label namespace");
    let selected = t
        .ca_cluster_issuer(
            "selected",
            json!({"namespaces": {"selector": {"matchLabels": {"certsmith-test/tier": "agents"}}}}),
        )
        .await;
    certificate(
        &t.tenant,
        "inside",
        json!({"secretName": "inside-tls",
        "issuerRef": {"name": selected, "kind": "ClusterIssuer"}, "dnsNames": ["a.example"]}),
    )
    .await;
    wait_ready(&t.tenant, "inside").await;
    t.delete().await;
}

#[tokio::test]
async fn durations_and_key_algorithms_beyond_the_policy_are_refused() {
    let mut t = Tenancy::new("pol-limits").await;
    let issuer = t
        .ca_cluster_issuer(
            "limits",
            json!({"maxDuration": "1h", "keyAlgorithms": [{"algorithm": "ECDSA", "sizes": [256]}]}),
        )
        .await;
    let issuer_ref = json!({"name": issuer, "kind": "ClusterIssuer"});
    certificate(
        &t.tenant,
        "long",
        json!({"secretName": "long-tls", "issuerRef": issuer_ref,
        "dnsNames": ["a.example"], "duration": "2h"}),
    )
    .await;
    let message = denied(&t.tenant, "long").await;
    assert!(message.contains("duration"), "{message}");
    assert!(denials_metric(&t.operator, &issuer, "ClusterIssuer", "duration").await >= 1);

    certificate(&t.tenant, "rsa", json!({"secretName": "rsa-tls", "issuerRef": issuer_ref,
        "dnsNames": ["a.example"], "duration": "30m", "privateKey": {"algorithm": "RSA", "size": 2048}}))
    .await;
    let message = denied(&t.tenant, "rsa").await;
    assert!(message.contains("RSA"), "{message}");
    assert!(denials_metric(&t.operator, &issuer, "ClusterIssuer", "privateKey").await >= 1);

    certificate(&t.tenant, "fits", json!({"secretName": "fits-tls", "issuerRef": issuer_ref,
        "dnsNames": ["a.example"], "duration": "30m", "privateKey": {"algorithm": "ECDSA", "size": 256}}))
    .await;
    wait_ready(&t.tenant, "fits").await;
    t.delete().await;
}

#[tokio::test]
async fn a_tightened_policy_leaves_the_secret_and_says_it_will_not_be_renewed() {
    let mut t = Tenancy::new("pol-tight").await;
    let issuer = t
        .ca_cluster_issuer(
            "tight",
            json!({"allowed": {"dnsNames": ["*.{namespace}.svc"]}}),
        )
        .await;
    let a = t.tenant.name.clone();
    certificate(&t.tenant, "svc", json!({"secretName": "svc-tls",
        "issuerRef": {"name": issuer, "kind": "ClusterIssuer"}, "dnsNames": [format!("web.{a}.svc")]}))
    .await;
    wait_ready(&t.tenant, "svc").await;
    let before = crate::support::secret(&t.tenant, "svc-tls").await;
    t.ca_cluster_issuer(
        "tight",
        json!({"allowed": {"dnsNames": ["*.{namespace}.svc.cluster.local"]}}),
    )
    .await;
    request_renewal(&t.tenant, "svc", "after-tightening").await;
    let api = t.tenant.api::<Certificate>();
    let message = wait_for("the renewal denied", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get("svc").await.ok()?;
            condition(&c, "Ready")
                .filter(|r| r.reason == "PolicyDenied")
                .map(|r| r.message)
        }
    })
    .await;
    assert!(message.contains("will not be renewed"), "{message}");
    let after = crate::support::secret(&t.tenant, "svc-tls").await;
    assert_eq!(before.data, after.data, "the Secret is left alone");
    t.delete().await;
}

/// The number of certificates OpenBao's mount has signed (it stores each one).
async fn openbao_issued(pki: &Pki) -> usize {
    let listed = pki
        .bao
        .request(
            reqwest::Method::from_bytes(b"LIST").expect("LIST"),
            &format!("int-{}/certs", pki.id),
            None,
        )
        .await;
    listed["data"]["keys"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_denial_never_reaches_openbao() {
    let ns = TestNamespace::new("pol-vault").await;
    install_crds(&ns.client).await;
    let pki = Pki::setup(Bao::from_env(), json!({})).await;
    pki.token_secret(&ns, "vault-token").await;
    let a = ns.name.clone();
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "v"},
        "spec": {"vault": {"server": env("VAULT_ADDR"), "path": pki.sign_path(),
                           "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}},
                 "policy": {"allowed": {"dnsNames": ["*.{namespace}.example.test"]}}}}),
    )
    .await;
    let operator = Operator::start(&ns.name).await;
    certificate(
        &ns,
        "own",
        json!({"secretName": "own-tls", "issuerRef": {"name": "v"},
        "dnsNames": [format!("web.{a}.example.test")]}),
    )
    .await;
    wait_ready(&ns, "own").await;
    let issued = openbao_issued(&pki).await;
    let signs = operator.metrics.backend_request_count("vault", "sign");
    assert!(issued >= 1 && signs >= 1);

    certificate(
        &ns,
        "foreign",
        json!({"secretName": "foreign-tls", "issuerRef": {"name": "v"},
        "dnsNames": ["web.payments.example.test"]}),
    )
    .await;
    let message = denied(&ns, "foreign").await;
    assert!(message.contains("web.payments.example.test"), "{message}");
    let issuer_label = format!("{a}/v");
    assert!(denials_metric(&operator, &issuer_label, "Issuer", "dnsNames").await >= 1);
    assert_eq!(
        openbao_issued(&pki).await,
        issued,
        "OpenBao signed nothing more"
    );
    assert_eq!(
        operator.metrics.backend_request_count("vault", "sign"),
        signs,
        "no sign request was sent"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_denial_never_reaches_aws_private_ca() {
    let ns = TestNamespace::new("pol-pca").await;
    install_crds(&ns.client).await;
    let pca = crate::aws_pca::client().await;
    let ca = crate::aws_pca::create_ca(&pca, true).await;
    ns.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-creds"},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIACERTSMITHPOLICY1", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-key-2"}}))
    .await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "pca"},
        "spec": {"awsPCA": {"arn": ca.arn, "region": "us-east-1", "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA"),
                            "credentials": {"secretRef": {"name": "aws-creds"}}},
                 "policy": {"spiffe": {"trustDomain": "cluster.local"}}}}))
    .await;
    let before = crate::aws_pca::issue_requests(&ca.arn).await.len();
    let operator = Operator::start(&ns.name).await;
    certificate(
        &ns,
        "foreign",
        json!({"secretName": "foreign-tls", "issuerRef": {"name": "pca"},
        "uris": ["spiffe://cluster.local/ns/payments/sa/billing"]}),
    )
    .await;
    denied(&ns, "foreign").await;
    assert_eq!(
        crate::aws_pca::issue_requests(&ca.arn).await.len(),
        before,
        "the emulator received no IssueCertificate"
    );
    assert_eq!(
        operator
            .metrics
            .backend_request_count("awsPCA", "IssueCertificate"),
        0
    );
    // Its own SVID is issued through the same CA.
    let a = ns.name.clone();
    certificate(
        &ns,
        "own",
        json!({"secretName": "own-tls", "issuerRef": {"name": "pca"},
        "uris": [format!("spiffe://cluster.local/ns/{a}/sa/agent")]}),
    )
    .await;
    wait_ready(&ns, "own").await;
    assert_eq!(
        crate::aws_pca::issue_requests(&ca.arn).await.len(),
        before + 1
    );
    operator.stop().await;
    ns.delete().await;
}
