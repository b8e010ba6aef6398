//! The Helm chart: lint, kube-score, every value documented, config/ rendered from it, the
//! rendered manifests accepted by the real API server, and its RBAC proven by running the
//! operator as the chart's ServiceAccount with exactly those rules.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::Deserialize;
use serde_json::json;

use certsmith::api::{ClusterIssuer, Issuer};

use crate::support::{
    TestNamespace, admin_client, certificate, env, field, install_crds, openssl_verify,
    service_account_client, service_account_token, wait_ready,
};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/certsmith");

/// Run a chart tool (helm, kube-score) built by tests/testenv/tools/build.sh.
fn tool(name: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let path = format!("{}/{name}", env("CERTSMITH_TOOLS_BIN"));
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn template(namespace: &str, sets: &[&str]) -> String {
    let mut args = vec!["template", "certsmith", CHART, "--namespace", namespace];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, out) = tool("helm", &args, None);
    assert!(ok, "helm template failed: {out}");
    out
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", env("KUBECONFIG"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const FULL: &[&str] = &[
    "replicaCount=2",
    "prometheus.servicemonitor.enabled=true",
    "prometheus.rules.enabled=true",
    "podDisruptionBudget.enabled=true",
];

#[test]
fn the_chart_lints_and_scores_clean() {
    let (ok, out) = tool("helm", &["lint", "--strict", CHART], None);
    assert!(ok, "{out}");
    let mut all = vec!["lint", "--strict", CHART, "--set", "watchNamespaces={a,b}"];
    for s in FULL {
        all.extend(["--set", s]);
    }
    let (ok, out) = tool("helm", &all, None);
    assert!(ok, "{out}");
    // Ignored checks: imagePullPolicy Always (a pinned tag with IfNotPresent is the norm) and
    // a NetworkPolicy (the operator must reach the API server, Vault and AWS, which differ by
    // cluster; not shipped).
    for rendered in [
        template("certsmith", &[]),
        template("certsmith", &[FULL, &["watchNamespaces={a,b}"]].concat()),
    ] {
        let (ok, out) = tool(
            "kube-score",
            &[
                "score",
                "--ignore-test",
                "container-image-pull-policy",
                "--ignore-test",
                "pod-networkpolicy",
                "-",
            ],
            Some(&rendered),
        );
        assert!(ok, "kube-score found critical problems:\n{out}");
    }
}

/// Leaf keys of values.yaml (`a.b.c`): scalars, lists and empty maps.
fn value_keys(prefix: &str, value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.as_str().expect("string key");
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                value_keys(&path, v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_value_is_documented_in_the_chart_readme() {
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{CHART}/values.yaml")).expect("values.yaml"),
    )
    .expect("parse values.yaml");
    let readme = std::fs::read_to_string(format!("{CHART}/README.md")).expect("README");
    let mut keys = Vec::new();
    value_keys("", &values, &mut keys);
    assert!(keys.len() > 40, "{keys:?}");
    // A row documents its key and, for free-form maps (securityContext, resources), all of
    // the key's children.
    let documented = |key: &str| {
        let parts: Vec<&str> = key.split('.').collect();
        (1..=parts.len()).any(|n| readme.contains(&format!("| `{}` |", parts[..n].join("."))))
    };
    let missing: Vec<_> = keys.iter().filter(|k| !documented(k)).collect();
    assert!(
        missing.is_empty(),
        "values not in charts/certsmith/README.md: {missing:?}"
    );
}

#[test]
fn config_default_is_the_chart_rendered_with_defaults() {
    let rendered = template("certsmith", &[]);
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/default/certsmith.yaml"
    ))
    .expect("config/default/certsmith.yaml");
    let body = on_disk.split_once('\n').map_or("", |(_, rest)| rest);
    assert!(
        body == rendered,
        "config/default/certsmith.yaml is stale: run `make manifests` and commit the result"
    );
}

#[tokio::test]
async fn rendered_manifests_are_accepted_by_the_api_server() {
    let ns = TestNamespace::new("chart-dry").await;
    // ServiceMonitor and PrometheusRule need prometheus-operator's CRDs, which this API server
    // does not have; they are linted above.
    for sets in [
        vec![],
        vec![
            "watchNamespaces={default,kube-public}",
            "replicaCount=2",
            "podDisruptionBudget.enabled=true",
        ],
    ] {
        let rendered = template(&ns.name, &sets);
        let (ok, out) = kubectl(
            &["apply", "--dry-run=server", "--server-side", "-f", "-"],
            Some(&rendered),
        );
        assert!(ok, "dry-run apply of {sets:?} failed:\n{out}");
        assert!(
            out.contains("deployment.apps/certsmith serverside-applied (server dry run)"),
            "{out}"
        );
    }
    ns.delete().await;
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Deployment's container args as the chart renders them.
fn deployment_args(rendered: &str) -> Vec<String> {
    for doc in serde_yaml::Deserializer::from_str(rendered) {
        let value = serde_yaml::Value::deserialize(doc).expect("yaml");
        if value["kind"].as_str() == Some("Deployment") {
            return value["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_sequence()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("arg").to_string())
                .collect();
        }
    }
    panic!("no Deployment rendered");
}

#[tokio::test]
async fn the_operator_works_with_exactly_the_chart_rbac_and_no_more() {
    let admin = admin_client().await;
    let home = TestNamespace::new("rbac-home").await;
    let app = TestNamespace::new("rbac-app").await;
    let other = TestNamespace::new("rbac-other").await;
    install_crds(&admin).await;
    // A namespaced install serving `app`; ClusterRoles are cluster-wide, so the release gets
    // a unique name. ClusterIssuers are limited to this test's by label.
    let selector = format!("test={}", home.name);
    let sets = [
        format!("watchNamespaces={{{}}}", app.name),
        format!("fullnameOverride={}", home.name),
        "crds.enabled=false".to_string(),
        "leaderElection.leaseDuration=6s".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let rendered = template(&home.name, &sets);
    let rbac_only = tool(
        "helm",
        &[
            &["template", "certsmith", CHART, "--namespace", &home.name][..],
            &sets.iter().flat_map(|s| ["--set", s]).collect::<Vec<_>>()[..],
            &[
                "-s",
                "templates/rbac.yaml",
                "-s",
                "templates/serviceaccount.yaml",
            ][..],
        ]
        .concat(),
        None,
    );
    assert!(rbac_only.0, "{}", rbac_only.1);
    let (ok, out) = kubectl(&["apply", "-f", "-"], Some(&rbac_only.1));
    assert!(ok, "applying the chart's RBAC failed:\n{out}");

    // A kubeconfig holding only the ServiceAccount's token.
    let token = service_account_token(&admin, &home.name, &home.name).await;
    let kubeconfig = tempfile::NamedTempFile::new().expect("tempfile");
    let server = crate::support::config().await.cluster_url.to_string();
    let ca = std::path::Path::new(&env("KUBECONFIG"))
        .parent()
        .expect("env dir")
        .join("certs/ca.crt");
    std::fs::write(
        kubeconfig.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: sa}}\ncurrent-context: c\n",
            ca.display()
        ),
    )
    .expect("write kubeconfig");

    // The operator with the chart's own flags (metrics on loopback, ClusterIssuers filtered).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let mut args: Vec<String> = deployment_args(&rendered)
        .into_iter()
        .filter(|a| !a.starts_with("--metrics-addr="))
        .collect();
    args.push(format!("--metrics-addr={port}"));
    args.push(format!("--cluster-issuer-selector={selector}"));
    let log_path = std::env::temp_dir().join(format!("{}-operator.log", home.name));
    let log = std::fs::File::create(&log_path).expect("log");
    eprintln!("operator log: {}", log_path.display());
    let _operator = Process(
        Command::new(env!("CARGO_BIN_EXE_certsmith"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig.path())
            .env("POD_NAME", "rbac-test")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start operator"),
    );

    // Namespaced issuers, a CA built on them, a ClusterIssuer, and AWS Private CA (its
    // pending-request Secrets need create, patch and delete).
    let issuer = |name: &str, spec: serde_json::Value| json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": name}, "spec": spec});
    app.apply::<Issuer>(issuer("selfsigned", json!({"selfSigned": {}})))
        .await;
    certificate(
        &app,
        "root",
        json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"},
        "commonName": "rbac root", "isCA": true}),
    )
    .await;
    app.apply::<Issuer>(issuer("ca", json!({"ca": {"secretName": "root-ca"}})))
        .await;
    certificate(
        &app,
        "leaf",
        json!({"secretName": "leaf-tls", "issuerRef": {"name": "ca"},
        "dnsNames": ["leaf.example.test"]}),
    )
    .await;
    let cluster_issuer_name = format!("{}-selfsigned", home.name);
    Api::<ClusterIssuer>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                "metadata": {"name": cluster_issuer_name, "labels": {"test": home.name}}, "spec": {"selfSigned": {}}}))
            .expect("cluster issuer"),
        )
        .await
        .expect("create ClusterIssuer");
    certificate(&app, "cluster", json!({"secretName": "cluster-tls",
        "issuerRef": {"name": cluster_issuer_name, "kind": "ClusterIssuer"}, "dnsNames": ["cluster.example.test"]}))
    .await;
    let pca = crate::aws_pca::client().await;
    let ca = crate::aws_pca::create_ca(&pca, true).await;
    app.apply::<Issuer>(issuer(
        "pca",
        json!({"awsPCA": {"arn": ca.arn, "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA")}}),
    ))
    .await;
    certificate(
        &app,
        "aws",
        json!({"secretName": "aws-tls", "issuerRef": {"name": "pca"},
        "dnsNames": ["aws.example.test"]}),
    )
    .await;

    for name in ["root", "leaf", "cluster", "aws"] {
        wait_ready(&app, name).await;
    }
    let leaf = crate::support::secret(&app, "leaf-tls").await;
    openssl_verify(field(&leaf, "ca.crt"), field(&leaf, "tls.crt")).expect("leaf verifies");
    assert!(
        app.api::<Secret>()
            .get_opt("aws-certsmith-pending")
            .await
            .expect("get")
            .is_none(),
        "the pending Secret was deleted"
    );
    let events = app
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("DoesNotExist")),
        "the operator could publish Events"
    );
    let cluster_issuer = Api::<ClusterIssuer>::all(admin.clone())
        .get(&cluster_issuer_name)
        .await
        .expect("cluster issuer");
    assert!(
        cluster_issuer.status.is_some_and(|s| s
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")),
        "ClusterIssuer status written"
    );

    // And no more: the ServiceAccount cannot read Secrets outside its namespaces.
    other
        .apply::<Secret>(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "private"},
                                "stringData": {"password": "hunter2"}}),
        )
        .await;
    let sa = service_account_client(&admin, &home.name, &home.name).await;
    let denied = Api::<Secret>::namespaced(sa.clone(), &other.name)
        .get("private")
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
        "{denied:?}"
    );
    for (namespace, verb) in [
        (&other.name, "get"),
        (&other.name, "list"),
        (&home.name, "list"),
    ] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.clone()),
                    verb: Some(verb.into()),
                    resource: Some("secrets".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(sa.clone())
            .create(&PostParams::default(), &review)
            .await
            .expect("access review");
        assert!(
            !answer.status.is_some_and(|s| s.allowed),
            "{verb} secrets in {namespace} must be denied"
        );
    }
    let logs = std::fs::read_to_string(&log_path).expect("operator log");
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "the operator hit a missing permission:\n{logs}"
    );

    let _ = Api::<ClusterIssuer>::all(admin.clone())
        .delete(&cluster_issuer_name, &Default::default())
        .await;
    for role in ["controller", "clusterissuers"] {
        let _ = kubectl(
            &[
                "delete",
                "clusterrole,clusterrolebinding",
                &format!("{}-{role}", home.name),
                "--ignore-not-found",
            ],
            None,
        );
    }
    for ns in [home, app, other] {
        ns.delete().await;
    }
}
