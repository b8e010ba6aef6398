//! Identity policies on the real API server: `spec.policy` admission (CEL and schema), and
//! `certsmith policy check` as a GitOps pipeline runs it (allowed, denied, issuer missing).

use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use certsmith::api::{ClusterIssuer, Issuer};

use crate::support::{TestNamespace, env, install_crds};

fn check(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_certsmith"))
        .args(["policy", "check"])
        .args(args)
        .env("KUBECONFIG", env("KUBECONFIG"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("CERTSMITH_CLUSTER_RESOURCE_NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run certsmith");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("certsmith output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Apply a ClusterIssuer (cluster-scoped: named after the test namespace, deleted by the test).
async fn cluster_issuer(ns: &TestNamespace, name: &str, spec: Value) {
    Api::<ClusterIssuer>::all(ns.client.clone())
        .patch(
            name,
            &PatchParams::apply("certsmith-tests").force(),
            &Patch::Apply(
                json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                                 "metadata": {"name": name}, "spec": spec}),
            ),
        )
        .await
        .expect("apply ClusterIssuer");
}

async fn delete_cluster_issuers(ns: &TestNamespace, names: &[&str]) {
    let api = Api::<ClusterIssuer>::all(ns.client.clone());
    for name in names {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

fn certificate(namespace: &str, name: &str, spec: Value) -> String {
    let mut spec = spec;
    spec["secretName"] = json!(format!("{name}-tls"));
    serde_json::to_string(&json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
                                  "metadata": {"name": name, "namespace": namespace}, "spec": spec}))
    .expect("json")
}

#[tokio::test]
async fn the_policy_api_is_validated_at_admission() {
    let ns = TestNamespace::new("policy-admission").await;
    install_crds(&ns.client).await;
    let name = format!("{}-ok", ns.name);
    let full = json!({
        "namespaces": {"matchNames": ["agents"], "selector": {"matchLabels": {"tenant": "yes"},
                       "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}},
        "allowed": {
            "commonName": ["{name}"],
            "dnsNames": ["*.{namespace}.svc", "{name}.{namespace}.svc.cluster.local"],
            "ipAddresses": ["10.0.0.0/8", "fd00::/64", "10.1.2.3/32"],
            "uris": ["spiffe://cluster.local/ns/{namespace}/sa/*", "https://[::1]:8443/a/{name}"],
            "emailAddresses": ["{name}@{namespace}.example.com"],
        },
        "spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true},
        "maxDuration": "24h",
        "keyAlgorithms": [{"algorithm": "ECDSA", "sizes": [256, 384]}, {"algorithm": "Ed25519"}],
        "usages": ["digital signature", "server auth", "client auth"],
        "isCA": false,
    });
    cluster_issuer(&ns, &name, json!({"selfSigned": {}, "policy": full})).await;
    let stored = Api::<ClusterIssuer>::all(ns.client.clone())
        .get(&name)
        .await
        .expect("stored");
    let policy = stored.spec.0.policy.expect("policy kept");
    assert_eq!(
        policy.spiffe.map(|s| s.trust_domain).as_deref(),
        Some("cluster.local")
    );

    let cases = [
        (
            json!({"allowed": {"dnsNames": ["**.a"]}}),
            "must be a DNS name pattern",
        ),
        (
            json!({"allowed": {"dnsNames": ["*.{ns}.svc"]}}),
            "must be a DNS name pattern",
        ),
        (
            json!({"allowed": {"dnsNames": ["x.a.svc."]}}),
            "must be a DNS name pattern",
        ),
        (
            json!({"allowed": {"commonName": ["{nom}"]}}),
            "must be a common name pattern",
        ),
        (
            json!({"allowed": {"uris": ["spiffe://cluster.local/ns/{namespace}/sa/*?x"]}}),
            "must be a URI pattern",
        ),
        (
            json!({"allowed": {"uris": ["spiffe://u@cluster.local/ns/{namespace}"]}}),
            "must be a URI pattern",
        ),
        (
            json!({"allowed": {"uris": ["spiffe://cluster.local/ns/%2F"]}}),
            "must be a URI pattern",
        ),
        (
            json!({"allowed": {"uris": ["spiffe://cluster.local/ns/../x"]}}),
            "may not be . or ..",
        ),
        (
            json!({"allowed": {"emailAddresses": ["{name}"]}}),
            "must be an email pattern",
        ),
        (
            json!({"allowed": {"ipAddresses": ["10.0.0.1/8"]}}),
            "without host bits",
        ),
        (
            json!({"allowed": {"ipAddresses": ["10.0.0.1"]}}),
            "must be a CIDR",
        ),
        (
            json!({"spiffe": {"trustDomain": "Cluster.Local"}}),
            "spec.policy.spiffe.trustDomain",
        ),
        (json!({"maxDuration": "1m"}), "at least 5m"),
        (json!({"maxDuration": "10d"}), "spec.policy.maxDuration"),
        (
            json!({"keyAlgorithms": [{"algorithm": "Ed25519", "sizes": [256]}]}),
            "unset for Ed25519",
        ),
        (
            json!({"keyAlgorithms": [{"algorithm": "ECDSA", "sizes": [2048]}]}),
            "sizes must be",
        ),
        (
            json!({"keyAlgorithms": [{"algorithm": "ECDSA"}, {"algorithm": "ECDSA", "sizes": [256]}]}),
            "uplicate",
        ),
        (json!({"keyAlgorithms": []}), "at least 1 items"),
        (
            json!({"usages": ["server auth", "server auth"]}),
            "uplicate",
        ),
        (
            json!({"namespaces": {}}),
            "set matchNames, selector or both",
        ),
        (
            json!({"namespaces": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
            "In and NotIn need values",
        ),
        (
            json!({"namespaces": {"matchNames": ["Not_A_Namespace"]}}),
            "spec.policy.namespaces.matchNames",
        ),
        (
            json!({"allowed": {"dnsNames": vec!["*.x"; 65]}}),
            "must have at most 64 items",
        ),
    ];
    let api = Api::<ClusterIssuer>::all(ns.client.clone());
    for (i, (policy, expected)) in cases.iter().enumerate() {
        let object = json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                            "metadata": {"name": format!("{}-bad-{i}", ns.name)},
                            "spec": {"selfSigned": {}, "policy": policy}});
        let err = api
            .patch(
                &format!("{}-bad-{i}", ns.name),
                &PatchParams::apply("certsmith-tests").dry_run(),
                &Patch::Apply(object),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{policy}: accepted"));
        assert!(err.to_string().contains(expected), "{policy}: {err}");
    }

    // `namespaces` is for ClusterIssuers only: an Issuer with it is refused at admission.
    let issuers = ns.api::<Issuer>();
    let err = issuers
        .patch(
            "scoped",
            &PatchParams::apply("certsmith-tests").dry_run(),
            &Patch::Apply(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
                                 "metadata": {"name": "scoped"},
                                 "spec": {"selfSigned": {}, "policy": {"namespaces": {"matchNames": ["a"]}}}})),
        )
        .await
        .expect_err("an Issuer with namespaces");
    assert!(err.to_string().contains("only for ClusterIssuers"), "{err}");
    // The rest of the policy is fine on an Issuer.
    let mut issuer_policy = full.clone();
    issuer_policy
        .as_object_mut()
        .expect("object")
        .remove("namespaces");
    issuers
        .patch(
            "scoped",
            &PatchParams::apply("certsmith-tests").dry_run(),
            &Patch::Apply(
                json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
                                 "metadata": {"name": "scoped"},
                                 "spec": {"selfSigned": {}, "policy": issuer_policy}}),
            ),
        )
        .await
        .expect("an Issuer with a policy");

    // `kubectl get clusterissuer -o wide` shows the summary.
    let crds = Api::<CustomResourceDefinition>::all(ns.client.clone());
    for crd in ["issuers.certsmith.dev", "clusterissuers.certsmith.dev"] {
        let crd = crds.get(crd).await.expect("crd");
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert!(
            columns.iter().any(|c| c.name == "Policy"
                && c.json_path == ".status.policy"
                && c.priority == Some(1)),
            "{columns:?}"
        );
    }
    delete_cluster_issuers(&ns, &[&name]).await;
    ns.delete().await;
}

#[tokio::test]
async fn policy_check_allows_denies_and_reports_a_missing_issuer() {
    let ns = TestNamespace::new("policy-check").await;
    install_crds(&ns.client).await;
    let tenant = ns.name.clone();
    // The namespace carries the label the ClusterIssuer selects, and one ServiceAccount.
    Api::<Namespace>::all(ns.client.clone())
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"certsmith.dev/tenant": "yes"}}})),
        )
        .await
        .expect("label namespace");
    let sa = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some("orders-agent".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .expect("ServiceAccount");

    let spiffe_ca = format!("{tenant}-spiffe");
    let plain_ca = format!("{tenant}-plain");
    cluster_issuer(
        &ns,
        &spiffe_ca,
        json!({"selfSigned": {}, "policy": {
            "namespaces": {"selector": {"matchLabels": {"certsmith.dev/tenant": "yes"}}},
            "allowed": {"commonName": ["{name}"], "dnsNames": ["{name}.{namespace}.svc"]},
            "spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true},
            "maxDuration": "24h",
            "keyAlgorithms": [{"algorithm": "ECDSA", "sizes": [256, 384]}],
        }}),
    )
    .await;
    cluster_issuer(&ns, &plain_ca, json!({"selfSigned": {}})).await;

    let svid = |sa: &str, namespace: &str| format!("spiffe://cluster.local/ns/{namespace}/sa/{sa}");
    let good = certificate(
        &tenant,
        "orders-agent",
        json!({"issuerRef": {"name": spiffe_ca, "kind": "ClusterIssuer"}, "commonName": "orders-agent",
               "dnsNames": [format!("orders-agent.{tenant}.svc")], "uris": [svid("orders-agent", &tenant)],
               "duration": "1h"}),
    );
    let dir = tempfile::tempdir().expect("dir");
    let good_file = dir.path().join("good.yaml");
    std::fs::write(&good_file, &good).expect("write");

    // Allowed: exit 0.
    let out = check(&["-f", good_file.to_str().expect("path")], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "allowed  {tenant}/orders-agent  ClusterIssuer/{spiffe_ca}\n"
        )),
        "{text}"
    );
    assert!(
        text.ends_with("1 Certificate: 1 allowed, 0 denied, 0 not checked\n"),
        "{text}"
    );

    // Denied, one rule each: exit 1, every denial named with its value and rule.
    let denied = [
        (
            "cross-ns-svid",
            json!({"uris": [svid("billing", "payments")]}),
            format!(
                r#"uris[0] "spiffe://cluster.local/ns/payments/sa/billing" matches none of spiffe://cluster.local/ns/{tenant}/sa/<service account>"#
            ),
        ),
        (
            "cross-ns-dns",
            json!({"uris": [svid("orders-agent", &tenant)], "dnsNames": ["cross-ns-dns.payments.svc"]}),
            r#"dnsNames[0] "cross-ns-dns.payments.svc" matches none of {name}.{namespace}.svc"#
                .to_string(),
        ),
        (
            "no-sa",
            json!({"uris": [svid("ghost", &tenant)]}),
            format!("ServiceAccount {tenant}/ghost does not exist"),
        ),
        (
            "too-long",
            json!({"uris": [svid("orders-agent", &tenant)], "duration": "48h"}),
            r#"duration "48h" exceeds the issuer's maxDuration 24h"#.to_string(),
        ),
        (
            "rsa",
            json!({"uris": [svid("orders-agent", &tenant)], "privateKey": {"algorithm": "RSA", "size": 2048}}),
            "privateKey RSA 2048 is not among the issuer's keyAlgorithms (ECDSA 256/384)"
                .to_string(),
        ),
        (
            "sub-ca",
            json!({"uris": [svid("orders-agent", &tenant)], "isCA": true}),
            "isCA: the issuer's policy does not allow CA certificates".to_string(),
        ),
    ];
    let mut stream = String::new();
    for (name, spec, _) in &denied {
        let mut spec = spec.clone();
        spec["issuerRef"] = json!({"name": spiffe_ca, "kind": "ClusterIssuer"});
        spec["duration"] = spec.get("duration").cloned().unwrap_or(json!("1h"));
        stream.push_str("---\n");
        stream.push_str(&certificate(&tenant, name, spec));
        stream.push('\n');
    }
    let out = check(&["-f", "-"], Some(&stream));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for (name, _, message) in &denied {
        assert!(
            text.contains(&format!("DENIED   {tenant}/{name}")),
            "{name}: {text}"
        );
        assert!(text.contains(message.as_str()), "{name}: {message}\n{text}");
    }
    assert!(text.contains("policy: namespaces selector certsmith.dev/tenant=yes; names CN {name}, DNS {name}.{namespace}.svc, SVID spiffe://cluster.local/ns/{namespace}/sa/<existing service account>; maxDuration 24h; keys ECDSA 256/384; no isCA"), "{text}");
    assert!(
        text.ends_with("6 Certificates: 0 allowed, 6 denied, 0 not checked\n"),
        "{text}"
    );

    // A namespace the selector does not select: denied.
    let other = TestNamespace::new("policy-check-other").await;
    let out = check(
        &["-f", "-", "-n", &other.name],
        Some(&certificate(
            &other.name,
            "x",
            json!({"issuerRef": {"name": spiffe_ca, "kind": "ClusterIssuer"}, "uris": [svid("x", &other.name)], "duration": "1h"}),
        )),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            r#"namespace "{}" does not match the ClusterIssuer's namespace selector: certsmith.dev/tenant=yes"#,
            other.name
        )),
        "{}",
        stdout(&out)
    );

    // Without a policy a ClusterIssuer signs CA certificates only in the cluster-resource
    // namespace; the manifest without a namespace takes -n.
    let ca = serde_json::to_string(&json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
        "metadata": {"name": "sub-ca"},
        "spec": {"secretName": "sub-ca", "issuerRef": {"name": plain_ca, "kind": "ClusterIssuer"}, "commonName": "sub", "isCA": true}}))
        .expect("json");
    let out = check(&["-f", "-", "-n", &tenant], Some(&ca));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("only in the cluster-resource namespace"));
    let out = check(
        &[
            "-f",
            "-",
            "-n",
            &tenant,
            "--cluster-resource-namespace",
            &tenant,
        ],
        Some(&ca),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // The issuer is missing: exit 2 and a distinct message, even next to allowed ones.
    let missing = certificate(
        &tenant,
        "lost",
        json!({"issuerRef": {"name": format!("{tenant}-nope"), "kind": "ClusterIssuer"}, "dnsNames": ["a.example"]}),
    );
    let missing_file = dir.path().join("missing.yaml");
    std::fs::write(&missing_file, &missing).expect("write");
    let out = check(&["-f", dir.path().to_str().expect("path")], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "ERROR    {tenant}/lost          ClusterIssuer/{tenant}-nope\n         - issuer missing: ClusterIssuer {tenant}-nope does not exist in the cluster"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("allowed  {tenant}/orders-agent")),
        "{text}"
    );
    assert!(
        text.ends_with("2 Certificates: 1 allowed, 0 denied, 1 not checked\n"),
        "{text}"
    );

    // A ServiceAccount added in the same change counts, with a note.
    let with_sa = format!(
        "{}\n---\n{}\n",
        serde_json::to_string(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "new-agent", "namespace": tenant}})).expect("json"),
        certificate(&tenant, "new-agent", json!({"issuerRef": {"name": spiffe_ca, "kind": "ClusterIssuer"}, "uris": [svid("new-agent", &tenant)], "duration": "1h"})),
    );
    let out = check(&["-f", "-"], Some(&with_sa));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("not in the cluster yet: found in the manifests"));

    // Unreadable input: exit 2 with one sentence.
    let out = check(&["-f", "/nonexistent/certs.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: /nonexistent/certs.yaml: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    delete_cluster_issuers(&ns, &[&spiffe_ca, &plain_ca]).await;
    other.delete().await;
    ns.delete().await;
}
