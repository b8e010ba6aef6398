//! Pod certificates on the real API server (PodCertificateRequest beta, Node authorizer and
//! NodeRestriction on, as tests/testenv/testenv.sh starts it): each request is made as a kubelet
//! makes it, with the node's own client certificate, for a Pod bound to that Node, with a key
//! made here and the proof of possession the API server checks. The operator answers through
//! the status subresource, where the API server checks the answer in turn.

use k8s_openapi::api::certificates::v1beta1::ClusterTrustBundle;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use certsmith::api::pod_certificate::{PodCertificateRequest, signer_name};
use certsmith::api::{ClusterIssuer, Issuer};
use certsmith::pki::inspect::parse_chain;

use crate::openbao::Pki;
use crate::support::{
    Bao, Operator, TestNamespace, WAIT, admin_client, certificate, env, field, install_crds, node,
    openssl_verify, request_as_node, request_renewal, secret, wait_for, wait_ready, wait_reissued,
};

/// A cluster-resource namespace holding a root CA (Secret `root-ca`), a tenant namespace
/// whose pods run on the environment's Node, and an operator serving both.
struct World {
    admin: Client,
    crn: TestNamespace,
    tenant: TestNamespace,
    operator: Operator,
    node: (String, String),
    cluster_issuers: Vec<String>,
}

impl World {
    async fn new(prefix: &str) -> Self {
        let admin = admin_client().await;
        install_crds(&admin).await;
        let crn = TestNamespace::new(&format!("{prefix}-crn")).await;
        let tenant = TestNamespace::new(&format!("{prefix}-a")).await;
        let operator = Operator::start_scoped(admin.clone(), &[&crn.name, &tenant.name]).await;
        crn.apply::<Issuer>(
            json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
            "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
        )
        .await;
        certificate(
            &crn,
            "root",
            json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"},
            "commonName": "pod certificates test root", "isCA": true}),
        )
        .await;
        wait_ready(&crn, "root").await;
        let node = node(&admin).await;
        World {
            admin,
            crn,
            tenant,
            operator,
            node,
            cluster_issuers: Vec::new(),
        }
    }

    /// Apply the ClusterIssuer `name` (made unique per test) with `spec`; its full name once
    /// it is Ready.
    async fn cluster_issuer(&mut self, name: &str, spec: Value) -> String {
        let full = format!("{name}-{}", self.crn.name);
        let api = Api::<ClusterIssuer>::all(self.admin.clone());
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
        self.cluster_issuers.push(full.clone());
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

    /// A Pod `pod` running as `sa` on the Node, and a request for its certificate made with
    /// the node's credentials: a new `algorithm` key, the proof of possession (the pod UID
    /// signed with it), `max_expiration` and `annotations`. Returns the request's name and the
    /// key's PKIX public key.
    async fn request(
        &self,
        pod: &str,
        sa: &str,
        signer: &str,
        max_expiration: i32,
        annotations: Option<Value>,
    ) -> (String, Vec<u8>) {
        request_as_node(
            &self.tenant,
            &self.node,
            pod,
            sa,
            signer,
            max_expiration,
            annotations,
        )
        .await
    }

    fn requests(&self) -> Api<PodCertificateRequest> {
        Api::namespaced(self.admin.clone(), &self.tenant.name)
    }

    /// Wait for the request's answer: (condition type, reason, message) and the request.
    async fn answered(&self, name: &str) -> (String, String, String, PodCertificateRequest) {
        let api = self.requests();
        wait_for(&format!("{name} answered"), WAIT, || {
            let api = api.clone();
            async move {
                let pcr = api.get(name).await.ok()?;
                let c = pcr.answer()?.clone();
                Some((c.type_, c.reason, c.message, pcr))
            }
        })
        .await
    }

    async fn delete(self) {
        let api = Api::<ClusterIssuer>::all(self.admin.clone());
        for name in &self.cluster_issuers {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        self.operator.stop().await;
        self.crn.delete().await;
        self.tenant.delete().await;
    }
}

fn spiffe(extra: Value) -> Value {
    let mut policy =
        json!({"spiffe": {"trustDomain": "pods.example", "requireServiceAccount": true}});
    if let (Some(p), Some(e)) = (policy.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    policy
}

#[tokio::test]
async fn a_node_gets_its_pods_certificate_and_other_signers_are_left_alone() {
    // Also: the signer's ClusterTrustBundle carries the CA and follows a new one.
    let mut w = World::new("podcert-issue").await;
    let issuer = w
        .cluster_issuer(
            "pods-ca",
            json!({"ca": {"secretName": "root-ca"},
                   "policy": spiffe(json!({"maxDuration": "2h",
                       "allowed": {"dnsNames": ["{name}.{namespace}.svc"]}}))}),
        )
        .await;
    // Another signer's request, made first: it must stay untouched.
    let (foreign, _) = w
        .request("other", "agent", "example.com/not-certsmith", 86_400, None)
        .await;
    // 24 h asked, the policy allows 2 h; and one asking for 1 h, with a DNS name the policy
    // allows ({name} is the ServiceAccount).
    let (long, long_key) = w
        .request("agent-0", "agent", &signer_name(&issuer), 86_400, None)
        .await;
    let (short, short_key) = w
        .request(
            "agent-1",
            "agent",
            &signer_name(&issuer),
            3600,
            Some(json!({"certsmith.dev/dns-names": format!("agent.{}.svc", w.tenant.name)})),
        )
        .await;
    let root = secret(&w.crn, "root-ca").await;
    let ca_pem = field(&root, "ca.crt").to_vec();
    for (name, key, lifetime) in [(&long, &long_key, 7200), (&short, &short_key, 3600)] {
        let (type_, reason, message, pcr) = w.answered(name).await;
        assert_eq!(
            (type_.as_str(), reason.as_str()),
            ("Issued", "Issued"),
            "{message}"
        );
        let status = pcr.status.expect("status");
        let chain = status.certificate_chain.expect("certificateChain");
        openssl_verify(&ca_pem, chain.as_bytes()).expect("the chain verifies to the CA");
        let leaf = parse_chain(chain.as_bytes()).expect("chain").remove(0);
        assert_eq!(&leaf.public_key_info, key, "issued to the node's key");
        assert_eq!(
            leaf.uris.iter().collect::<Vec<_>>(),
            vec![&format!(
                "spiffe://pods.example/ns/{}/sa/agent",
                w.tenant.name
            )]
        );
        assert!(!leaf.is_ca);
        assert_eq!(leaf.not_after - leaf.not_before, lifetime, "{name}");
        let seconds = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.expect("time set").0.as_second()
        };
        let refresh = seconds(status.begin_refresh_at);
        assert_eq!(seconds(status.not_before), leaf.not_before);
        assert_eq!(seconds(status.not_after), leaf.not_after);
        assert!(
            refresh > leaf.not_before && refresh < leaf.not_after,
            "beginRefreshAt {refresh} within ({}, {})",
            leaf.not_before,
            leaf.not_after
        );
        if name == &short {
            assert_eq!(
                leaf.dns_names.iter().collect::<Vec<_>>(),
                vec![&format!("agent.{}.svc", w.tenant.name)]
            );
        } else {
            assert!(leaf.dns_names.is_empty());
        }
    }
    // Both of ours are answered; the other signer's request still has no status at all.
    let other = w.requests().get(&foreign).await.expect("foreign request");
    assert!(
        other
            .status
            .is_none_or(|s| s.conditions.is_empty() && s.certificate_chain.is_none())
    );

    // The signer's ClusterTrustBundle carries the CA, for clusterTrustBundle projections by
    // signer name.
    let bundles: Api<ClusterTrustBundle> = Api::all(w.admin.clone());
    let bundle_name = format!("clusterissuers.certsmith.dev:{issuer}:ca");
    let bundle = wait_for("the signer's ClusterTrustBundle", WAIT, || {
        let (bundles, name) = (bundles.clone(), bundle_name.clone());
        async move { bundles.get_opt(&name).await.ok().flatten() }
    })
    .await;
    assert_eq!(bundle.spec.signer_name, Some(signer_name(&issuer)));
    let root_der = parse_chain(&ca_pem).expect("root").remove(0).der;
    assert!(
        parse_chain(bundle.spec.trust_bundle.as_bytes())
            .expect("bundle")
            .iter()
            .any(|c| c.der == root_der),
        "the bundle holds the CA"
    );
    assert_eq!(
        bundle.owner_references().first().map(|o| o.name.as_str()),
        Some(issuer.as_str())
    );
    // A new CA (the root re-issued with a new key into the issuer's Secret): the bundle
    // follows it.
    let old_serial = parse_chain(field(&root, "tls.crt"))
        .expect("root")
        .remove(0)
        .serial;
    request_renewal(&w.crn, "root", "rotate").await;
    let rotated = wait_reissued(&w.crn, "root-ca", &old_serial).await;
    let new_root = parse_chain(field(&rotated, "ca.crt"))
        .expect("new root")
        .remove(0)
        .der;
    assert_ne!(new_root, root_der);
    wait_for("the ClusterTrustBundle to carry the new CA", WAIT, || {
        let (bundles, name, new_root) = (bundles.clone(), bundle_name.clone(), new_root.clone());
        async move {
            let bundle = bundles.get(&name).await.ok()?;
            parse_chain(bundle.spec.trust_bundle.as_bytes())
                .ok()?
                .iter()
                .any(|c| c.der == new_root)
                .then_some(())
        }
    })
    .await;
    w.delete().await;
}

#[tokio::test]
async fn requests_the_policy_refuses_are_denied_with_the_reason() {
    let mut w = World::new("podcert-deny").await;
    // Only the cluster-resource namespace is served: the tenant's pods are refused.
    let crn = w.crn.name.clone();
    let narrow = w
        .cluster_issuer(
            "narrow",
            json!({"ca": {"secretName": "root-ca"},
                   "policy": spiffe(json!({"namespaces": {"matchNames": [crn]}}))}),
        )
        .await;
    let (outside, _) = w
        .request("outside", "agent", &signer_name(&narrow), 3600, None)
        .await;
    let (type_, reason, message, pcr) = w.answered(&outside).await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Denied", "PolicyDenied")
    );
    assert!(
        message.contains(&format!("namespace \"{}\"", w.tenant.name)),
        "{message}"
    );
    assert!(pcr.status.expect("status").certificate_chain.is_none());

    // A DNS name the policy does not list, and an annotation certsmith does not know.
    let open = w
        .cluster_issuer(
            "open",
            json!({"ca": {"secretName": "root-ca"}, "policy": spiffe(json!({}))}),
        )
        .await;
    let (dns, _) = w
        .request(
            "dns",
            "agent",
            &signer_name(&open),
            3600,
            Some(json!({"certsmith.dev/dns-names": "payments.other.svc"})),
        )
        .await;
    let (type_, reason, message, _) = w.answered(&dns).await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Denied", "PolicyDenied")
    );
    assert!(message.contains("payments.other.svc"), "{message}");
    let (unknown, _) = w
        .request(
            "unknown",
            "agent",
            &signer_name(&open),
            3600,
            Some(json!({"example.com/wish": "isCA"})),
        )
        .await;
    let (type_, reason, message, _) = w.answered(&unknown).await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Denied", "InvalidRequest")
    );
    assert!(message.contains("example.com/wish"), "{message}");
    let text = reqwest::get(format!("http://{}/metrics", w.operator.http))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics");
    assert!(
        text.lines().any(
            |l| l.starts_with("certsmith_pod_certificate_requests_total{")
                && l.contains(&format!("issuer=\"{narrow}\""))
                && l.contains("condition=\"Denied\"")
                && l.contains("reason=\"PolicyDenied\"")
        ),
        "{text}"
    );
    w.delete().await;
}

#[tokio::test]
async fn issuers_that_cannot_sign_a_bare_key_fail_the_request_with_the_reason() {
    let mut w = World::new("podcert-fail").await;
    // A working Vault ClusterIssuer (Ready): it signs only CSRs, which 1.35 requests lack.
    let pki = Pki::setup(Bao::from_env(), json!({"allow_any_name": true})).await;
    pki.token_secret(&w.crn, "vault-token").await;
    let vault = w
        .cluster_issuer(
            "vault",
            json!({"vault": {"server": env("VAULT_ADDR"), "path": pki.sign_path(),
                             "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}},
                   "policy": spiffe(json!({}))}),
        )
        .await;
    let (name, _) = w
        .request("via-vault", "agent", &signer_name(&vault), 3600, None)
        .await;
    let (type_, reason, message, pcr) = w.answered(&name).await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Failed", "UnsupportedIssuerType")
    );
    assert!(
        message.contains("vault") && message.contains("only ca ClusterIssuers"),
        "{message}"
    );
    assert!(pcr.status.expect("status").certificate_chain.is_none());

    // A CA ClusterIssuer without a SPIFFE trust domain: no identity to give.
    let bare = w
        .cluster_issuer("bare", json!({"ca": {"secretName": "root-ca"}}))
        .await;
    let (name, _) = w
        .request("bare", "agent", &signer_name(&bare), 3600, None)
        .await;
    let (type_, reason, _, _) = w.answered(&name).await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Failed", "NoTrustDomain")
    );
    // ... and its signer gets no ClusterTrustBundle (decided in the reconcile that made the
    // issuer Ready, before its status was written).
    let bundles: Api<ClusterTrustBundle> = Api::all(w.admin.clone());
    assert!(
        bundles
            .get_opt(&format!("clusterissuers.certsmith.dev:{bare}:ca"))
            .await
            .expect("get")
            .is_none()
    );
    w.delete().await;
}
