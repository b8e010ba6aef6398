//! The chart's RBAC on the real API server. The operator binary runs with the chart's own
//! flags, authenticated only by a token of the chart's ServiceAccount (TokenRequest API), with
//! exactly the ServiceAccount and RBAC objects that `helm template` renders: it must issue
//! through every issuer type, write status and Events and hold its Lease without a single
//! "forbidden", publish a TrustBundle into its namespace (and a ClusterTrustBundle), and be
//! denied Secrets outside its namespaces. With one verb taken out of the rendered rules, that
//! same check fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1beta1::ClusterTrustBundle;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use certsmith::api::{Certificate, ClusterIssuer, Issuer, TrustBundle};

use crate::chart::{CHART, kubectl, template, tool};
use crate::support::{
    OperatorProcess, TestNamespace, admin_client, certificate, condition, env, field, install_crds,
    openssl_verify, service_account_client, service_account_token,
};

/// The Deployment's container args as the chart renders them.
fn deployment_args(rendered: &str) -> Vec<String> {
    for value in documents(rendered) {
        if value["kind"].as_str() == Some("Deployment") {
            return value["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("arg").to_string())
                .collect();
        }
    }
    panic!("no Deployment rendered");
}

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    certsmith::yaml::documents::<serde_json::Value>(yaml)
        .expect("yaml")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// Take `verb` out of every rendered rule on `resource` (in the Roles and ClusterRoles whose
/// name ends with `role`, if given); returns how many rules lost it.
fn remove_verb(
    docs: &mut [serde_json::Value],
    role: Option<&str>,
    resource: &str,
    verb: &str,
) -> usize {
    let mut removed = 0;
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        if role.is_some_and(|suffix| !name.ends_with(suffix)) {
            continue;
        }
        let Some(rules) = doc.get_mut("rules").and_then(|r| r.as_array_mut()) else {
            continue;
        };
        for rule in rules.iter_mut() {
            let on_resource = rule["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r.as_str() == Some(resource)));
            let Some(verbs) = rule.get_mut("verbs").and_then(|v| v.as_array_mut()) else {
                continue;
            };
            let before = verbs.len();
            if on_resource {
                verbs.retain(|v| v.as_str() != Some(verb));
            }
            removed += before - verbs.len();
        }
        // A rule needs at least one verb: one left with none goes.
        rules.retain(|r| r["verbs"].as_array().is_none_or(|v| !v.is_empty()));
    }
    removed
}

/// The ServiceAccount in `app` the chart lets the operator mint Vault login tokens for.
const VAULT_SERVICE_ACCOUNT: &str = "vault-auth";

/// The operator installed from the chart in a namespaced configuration: release (and
/// cluster-resource) namespace `home`, serving only `app`.
struct Install {
    admin: Client,
    home: TestNamespace,
    app: TestNamespace,
    log_path: PathBuf,
    /// Where the operator serves /metrics.
    metrics: std::net::SocketAddr,
    _kubeconfig: tempfile::NamedTempFile,
    _operator: OperatorProcess,
}

impl Install {
    /// Render the chart, apply its ServiceAccount and RBAC exactly as rendered (after
    /// `edit`), and start the operator with the chart's flags and a token of that
    /// ServiceAccount. ClusterIssuers are cluster-wide, so the operator serves only those
    /// labelled `test=<home namespace>`, leaving other tests' alone.
    async fn new(prefix: &str, edit: impl FnOnce(&mut [serde_json::Value])) -> Self {
        let admin = admin_client().await;
        let home = TestNamespace::new(&format!("{prefix}-home")).await;
        let app = TestNamespace::new(&format!("{prefix}-app")).await;
        install_crds(&admin).await;
        // ClusterRoles are cluster-wide, so each release gets a unique name.
        let sets = [
            format!("watchNamespaces={{{}}}", app.name),
            format!("fullnameOverride={}", home.name),
            "crds.enabled=false".to_string(),
            "leaderElection.leaseDuration=6s".to_string(),
            // The AWS Issuer uses the environment's (emulator) identity, which namespaced
            // Issuers may do only with this flag.
            "extraArgs={--issuer-ambient-credentials}".to_string(),
            // The Vault Issuer logs in with tokens minted for this ServiceAccount.
            format!("vault.tokenServiceAccounts[0].namespace={}", app.name),
            format!("vault.tokenServiceAccounts[0].name={VAULT_SERVICE_ACCOUNT}"),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let rendered = template(&home.name, &sets);
        let args = [
            &["template", "certsmith", CHART, "--namespace", &home.name][..],
            &sets.iter().flat_map(|s| ["--set", s]).collect::<Vec<_>>()[..],
            &[
                "-s",
                "templates/rbac.yaml",
                "-s",
                "templates/serviceaccount.yaml",
            ][..],
        ]
        .concat();
        let (ok, rbac) = tool("helm", &args, None);
        assert!(ok, "{rbac}");
        let mut docs = documents(&rbac);
        edit(&mut docs);
        let mut manifest = String::new();
        for doc in &docs {
            manifest.push_str("---\n");
            manifest.push_str(&certsmith::yaml::to_string(doc).expect("yaml"));
        }
        let (ok, out) = kubectl(&["apply", "-f", "-"], Some(&manifest));
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

        // The chart's own flags (metrics on a free loopback port).
        let mut args = deployment_args(&rendered);
        args.push(format!("--cluster-issuer-selector=test={}", home.name));
        args.push(format!("--trust-bundle-selector=test={}", home.name));
        let log_path = std::env::temp_dir().join(format!("{}-operator.log", home.name));
        eprintln!("operator log: {}", log_path.display());
        let operator = OperatorProcess::command(args)
            .env("KUBECONFIG", kubeconfig.path().display().to_string())
            .env("POD_NAME", "rbac-test")
            .log_to(&log_path)
            .start();
        Install {
            admin,
            home,
            app,
            log_path,
            metrics: operator.http,
            _kubeconfig: kubeconfig,
            _operator: operator,
        }
    }

    fn issuer(&self, name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
            "metadata": {"name": name, "namespace": self.app.name}, "spec": spec})
    }

    /// What "the chart's RBAC is enough" means: every named Certificate in `app` Ready
    /// within `within`, every TrustBundle of this install Ready, and not one request of the
    /// operator refused. Err says what failed.
    async fn verdict(&self, names: &[&str], within: Duration) -> Result<(), String> {
        let api = self.app.api::<Certificate>();
        let bundles = Api::<TrustBundle>::all(self.admin.clone());
        let mine = ListParams::default().labels(&format!("test={}", self.home.name));
        let deadline = Instant::now() + within;
        let mut not_ready: Vec<String>;
        loop {
            not_ready = Vec::new();
            for bundle in bundles
                .list(&mine)
                .await
                .map_err(|e| format!("list TrustBundles: {e}"))?
            {
                let ready = bundle.status.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == "Ready")
                        .filter(|c| c.observed_generation == bundle.metadata.generation)
                });
                if ready.is_none_or(|c| c.status != "True") {
                    let why = ready.map(|c| c.message.clone()).unwrap_or_default();
                    not_ready.push(format!("TrustBundle {} ({why})", bundle.name_any()));
                }
            }
            for name in names {
                let cert = api
                    .get(name)
                    .await
                    .map_err(|e| format!("get {name}: {e}"))?;
                let ready = condition(&cert, "Ready").is_some_and(|r| r.status == "True")
                    && cert.status.as_ref().and_then(|s| s.observed_generation)
                        == cert.metadata.generation;
                if !ready {
                    let why = condition(&cert, "Ready")
                        .map(|r| r.message)
                        .unwrap_or_default();
                    not_ready.push(format!("{name} ({why})"));
                }
            }
            if not_ready.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // Events and Lease renewals trail the status write by a moment.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let log = std::fs::read_to_string(&self.log_path).map_err(|e| e.to_string())?;
        let refused: Vec<&str> = log
            .lines()
            .filter(|l| l.to_lowercase().contains("forbidden"))
            .collect();
        if not_ready.is_empty() && refused.is_empty() {
            return Ok(());
        }
        Err(format!(
            "not Ready after {within:?}: {not_ready:?}; refused requests in the operator log:\n{}",
            refused.join("\n")
        ))
    }

    /// A Secret left in `app` by a Certificate that no longer exists, and a Certificate
    /// `adopter` naming it: taking it over and re-issuing into it patches it (merge patch of
    /// the owner annotation, then an apply at the version read), which creating never needs.
    async fn adoption(&self) {
        let orphan: Secret = serde_json::from_value(json!({
            "metadata": {"name": "orphan-tls", "labels": {"certsmith.dev/managed": "true"},
                         "annotations": {"certsmith.dev/certificate-name": "gone"}},
            "type": "kubernetes.io/tls", "stringData": {"tls.crt": "", "tls.key": ""},
        }))
        .expect("orphan secret");
        self.app
            .api::<Secret>()
            .create(&PostParams::default(), &orphan)
            .await
            .expect("create the orphan Secret");
        certificate(
            &self.app,
            "adopter",
            json!({"secretName": "orphan-tls", "issuerRef": {"name": "selfsigned"},
            "dnsNames": ["adopter.example.test"]}),
        )
        .await;
    }

    /// A CA ClusterIssuer (labelled for this install) on a CA key pair that the test puts in
    /// the cluster-resource namespace, where only the chart's cluster-resources Role lets the
    /// operator read it. Returns its name and the CA certificate (PEM).
    async fn ca_cluster_issuer(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rbac cluster CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&key).expect("self-sign CA").pem();
        self.home
            .apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "cluster-ca"}, "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": ca, "tls.key": key.serialize_pem(), "ca.crt": ca}}))
            .await;
        let name = format!("{}-ca", self.home.name);
        Api::<ClusterIssuer>::all(self.admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1",
                    "kind": "ClusterIssuer", "metadata": {"name": name, "labels": {"test": self.home.name}},
                    "spec": {"ca": {"secretName": "cluster-ca",
                        "crlDistributionPoints": ["http://crl.example.test/cluster-ca.crl"]}}}))
                .expect("cluster issuer"),
            )
            .await
            .expect("create ClusterIssuer");
        (name, ca)
    }

    /// A CA ClusterIssuer with a SPIFFE policy on [`Install::ca_cluster_issuer`]'s key pair, and
    /// a request for its signer made by the node for a pod in `app`. Returns the issuer's and
    /// the request's names.
    async fn pod_certificate_request(&self) -> (String, String) {
        let issuer = format!("{}-pods", self.home.name);
        Api::<ClusterIssuer>::all(self.admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1",
                    "kind": "ClusterIssuer", "metadata": {"name": issuer, "labels": {"test": self.home.name}},
                    "spec": {"ca": {"secretName": "cluster-ca"},
                             "policy": {"spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true}}}}))
                .expect("cluster issuer"),
            )
            .await
            .expect("create ClusterIssuer");
        let node = crate::support::node(&self.admin).await;
        let (request, _) = crate::support::request_as_node(
            &self.app,
            &node,
            "pod-agent",
            "pod-agent",
            &certsmith::api::pod_certificate::signer_name(&issuer),
            3600,
            None,
        )
        .await;
        (issuer, request)
    }

    /// A TrustBundle of this install's CA ClusterIssuer, the CA Issuer `ca` in `app` if
    /// `with_issuer`, a ConfigMap in `app` and a Secret in the cluster-resource namespace,
    /// published into `app` (selected by label) and as a ClusterTrustBundle. Returns its name.
    async fn trust_bundle(&self, cluster_issuer: &str, with_issuer: bool) -> String {
        let (extra, _) = {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "rbac extra root");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            (params.self_signed(&key).expect("self-sign").pem(), key)
        };
        self.app
            .apply::<ConfigMap>(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extra-roots"}, "data": {"ca.pem": extra}}))
            .await;
        self.home
            .apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "extra-roots"}, "stringData": {"ca.pem": extra}}))
            .await;
        let mut sources = vec![
            json!({"issuerRef": {"name": cluster_issuer, "kind": "ClusterIssuer"}}),
            json!({"configMap": {"namespace": self.app.name, "name": "extra-roots", "key": "ca.pem"}}),
            json!({"secret": {"namespace": self.home.name, "name": "extra-roots", "key": "ca.pem"}}),
        ];
        if with_issuer {
            sources.push(
                json!({"issuerRef": {"name": "ca", "kind": "Issuer", "namespace": self.app.name}}),
            );
        }
        let name = format!("{}-trust", self.home.name);
        Api::<TrustBundle>::all(self.admin.clone())
            .patch(
                &name,
                &PatchParams::apply("certsmith-tests").force(),
                &Patch::Apply(
                    json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "TrustBundle",
                    "metadata": {"name": name, "labels": {"test": self.home.name}},
                    "spec": {"sources": sources, "target": {"configMap": {"key": "ca.crt"},
                        "namespaceSelector": {"matchLabels": {"rbac-trust": self.home.name}},
                        "clusterTrustBundle": {}}}}),
                ),
            )
            .await
            .expect("apply TrustBundle");
        self.select_app(true).await;
        name
    }

    /// Label `app` for this install's TrustBundle, or take the label off.
    async fn select_app(&self, on: bool) {
        let value = if on {
            json!(self.home.name)
        } else {
            serde_json::Value::Null
        };
        Api::<Namespace>::all(self.admin.clone())
            .patch(
                &self.app.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"rbac-trust": value}}})),
            )
            .await
            .expect("label app");
    }

    async fn delete(self) {
        let _ = kubectl(
            &[
                "delete",
                "clusterissuers.certsmith.dev,trustbundles.certsmith.dev",
                "-l",
                &format!("test={}", self.home.name),
            ],
            None,
        );
        for kind in ["role", "rolebinding"] {
            let _ = kubectl(
                &[
                    "delete",
                    "-n",
                    "default",
                    kind,
                    &format!("{}-trustbundle-events", self.home.name),
                    "--ignore-not-found",
                ],
                None,
            );
        }
        for kind in ["clusterrole", "clusterrolebinding"] {
            for role in [
                "controller",
                "clusterissuers",
                "trustbundles",
                "podcertificates",
            ] {
                let _ = kubectl(
                    &[
                        "delete",
                        kind,
                        &format!("{}-{role}", self.home.name),
                        "--ignore-not-found",
                    ],
                    None,
                );
            }
        }
        self.home.delete().await;
        self.app.delete().await;
    }
}

#[tokio::test]
async fn the_operator_works_with_exactly_the_chart_rbac_and_no_more() {
    let other = TestNamespace::new("rbac-other").await;
    let install = Install::new("rbac", |_| {}).await;
    let (admin, app, home) = (&install.admin, &install.app, &install.home.name);

    // Namespaced issuers, a CA built on them, a ClusterIssuer, and AWS Private CA (its
    // pending-request Secrets need create, patch and delete).
    app.apply::<Issuer>(install.issuer("selfsigned", json!({"selfSigned": {}})))
        .await;
    certificate(
        app,
        "root",
        json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"},
        "commonName": "rbac root", "isCA": true}),
    )
    .await;
    // With a CRL distribution point: its CRL ConfigMap is created in `app`.
    app.apply::<Issuer>(install.issuer(
        "ca",
        json!({"ca": {"secretName": "root-ca", "crlDistributionPoints": ["http://crl.example.test/ca.crl"]}}),
    ))
    .await;
    certificate(
        app,
        "leaf",
        json!({"secretName": "leaf-tls", "issuerRef": {"name": "ca"},
        "dnsNames": ["leaf.example.test"]}),
    )
    .await;
    let cluster_issuer_name = format!("{home}-selfsigned");
    Api::<ClusterIssuer>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                "metadata": {"name": cluster_issuer_name, "labels": {"test": home}}, "spec": {"selfSigned": {}}}))
            .expect("cluster issuer"),
        )
        .await
        .expect("create ClusterIssuer");
    certificate(app, "cluster", json!({"secretName": "cluster-tls",
        "issuerRef": {"name": cluster_issuer_name, "kind": "ClusterIssuer"}, "dnsNames": ["cluster.example.test"]}))
    .await;
    let (ca_cluster_issuer, cluster_ca) = install.ca_cluster_issuer().await;
    // Pod certificates: a request from the node for a pod in `app`, answered through the
    // status subresource (sign on the signer), and the signer's ClusterTrustBundle (attest).
    let (pods_issuer, pod_request) = install.pod_certificate_request().await;
    certificate(app, "cluster-ca", json!({"secretName": "cluster-ca-tls",
        "issuerRef": {"name": ca_cluster_issuer, "kind": "ClusterIssuer"}, "dnsNames": ["cluster-ca.example.test"]}))
    .await;
    let pca = crate::aws_pca::client().await;
    let ca = crate::aws_pca::create_ca(&pca, true).await;
    app.apply::<Issuer>(install.issuer(
        "pca",
        json!({"awsPCA": {"arn": ca.arn, "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA")}}),
    ))
    .await;
    certificate(
        app,
        "aws",
        json!({"secretName": "aws-tls", "issuerRef": {"name": "pca"},
        "dnsNames": ["aws.example.test"]}),
    )
    .await;

    // Vault with Kubernetes auth: tokens minted for the one ServiceAccount the chart names.
    let pki = crate::openbao::Pki::setup(crate::support::Bao::from_env(), json!({})).await;
    let mount = pki.kubernetes(app, VAULT_SERVICE_ACCOUNT).await;
    app.apply::<Issuer>(install.issuer(
        "vault",
        json!({"vault": {"server": env("VAULT_ADDR"), "path": pki.sign_path(), "auth": {"kubernetes":
            {"mountPath": mount, "role": "certsmith", "serviceAccountRef": {"name": VAULT_SERVICE_ACCOUNT}}}}}),
    ))
    .await;
    certificate(
        app,
        "vault",
        json!({"secretName": "vault-tls", "issuerRef": {"name": "vault"},
        "dnsNames": ["vault.example.test"]}),
    )
    .await;

    install.adoption().await;

    // An identity policy that needs the namespace's labels and the SVID's ServiceAccount
    // (namespaces get, serviceaccounts get).
    let svid_issuer = format!("{home}-svid");
    Api::<ClusterIssuer>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                "metadata": {"name": svid_issuer, "labels": {"test": home}},
                "spec": {"selfSigned": {}, "policy": {
                    "namespaces": {"selector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}},
                    "spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true}}}}))
            .expect("cluster issuer"),
        )
        .await
        .expect("create ClusterIssuer");
    app.apply::<k8s_openapi::api::core::v1::ServiceAccount>(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "agent"}}),
    )
    .await;
    certificate(
        app,
        "svid",
        json!({"secretName": "svid-tls",
        "issuerRef": {"name": svid_issuer, "kind": "ClusterIssuer"},
        "uris": [format!("spiffe://cluster.local/ns/{}/sa/agent", app.name)]}),
    )
    .await;
    // Keystores (their password Secret read and watched) and an owner reference.
    app.apply::<Secret>(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "store-pw"},
        "stringData": {"password": "changeit"}}),
    )
    .await;
    let stores = |keystores: bool| {
        let mut spec = json!({"secretName": "stores-tls", "issuerRef": {"name": "ca"},
            "dnsNames": ["stores.example.test"], "secretCleanupPolicy": "Delete"});
        if keystores {
            spec["keystores"] = json!({"pkcs12": {"create": true, "passwordSecretRef": {"name": "store-pw", "key": "password"}}});
        }
        spec
    };
    certificate(app, "stores", stores(true)).await;
    // A TrustBundle of the CA ClusterIssuer, the CA Issuer, a ConfigMap and a Secret, into
    // `app` and a ClusterTrustBundle: written (create), moved out when `app` is no longer
    // selected (delete) and back in, Events in `default`.
    let bundle = install.trust_bundle(&ca_cluster_issuer, true).await;
    let maps = app.api::<ConfigMap>();
    let holds = |present: bool| {
        let (maps, bundle) = (maps.clone(), bundle.clone());
        async move {
            crate::support::wait_for(
                &format!("ConfigMap {bundle} present={present}"),
                Duration::from_secs(60),
                || {
                    let (maps, bundle) = (maps.clone(), bundle.clone());
                    async move {
                        let cm = maps.get_opt(&bundle).await.ok()?;
                        (cm.is_some() == present).then_some(())
                    }
                },
            )
            .await;
        }
    };
    holds(true).await;
    install.select_app(false).await;
    holds(false).await;
    install.select_app(true).await;
    holds(true).await;

    let verdict = install
        .verdict(
            &[
                "root",
                "leaf",
                "cluster",
                "cluster-ca",
                "aws",
                "vault",
                "adopter",
                "svid",
                "stores",
            ],
            Duration::from_secs(60),
        )
        .await;
    assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    let requests = app.api::<certsmith::api::pod_certificate::PodCertificateRequest>();
    let answer = crate::support::wait_for(
        "the pod certificate answered",
        Duration::from_secs(60),
        || {
            let requests = requests.clone();
            let name = pod_request.clone();
            async move { requests.get(&name).await.ok()?.answer().cloned() }
        },
    )
    .await;
    assert_eq!(answer.type_, "Issued", "{}", answer.message);
    Api::<ClusterTrustBundle>::all(admin.clone())
        .get(&format!("clusterissuers.certsmith.dev:{pods_issuer}:ca"))
        .await
        .expect("the pod-certificate signer's ClusterTrustBundle");
    // Dropping the keystores replaces the Secret around the same certificate (update).
    certificate(app, "stores", stores(false)).await;
    crate::support::wait_for("keystore.p12 removed", Duration::from_secs(60), || async {
        let s = crate::support::secret(app, "stores-tls").await;
        (!s.data.unwrap_or_default().contains_key("keystore.p12")).then_some(())
    })
    .await;
    let verdict = install.verdict(&["stores"], Duration::from_secs(30)).await;
    assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    let leaf = crate::support::secret(app, "leaf-tls").await;
    openssl_verify(field(&leaf, "ca.crt"), field(&leaf, "tls.crt")).expect("leaf verifies");
    let published = maps.get(&bundle).await.expect("the bundle's ConfigMap");
    let bundle_pem = published.data.unwrap_or_default()["ca.crt"].clone();
    openssl_verify(bundle_pem.as_bytes(), field(&leaf, "tls.crt"))
        .expect("the leaf verifies against the TrustBundle");
    let ctb = Api::<ClusterTrustBundle>::all(admin.clone())
        .get(&bundle)
        .await
        .expect("the ClusterTrustBundle");
    assert_eq!(ctb.spec.trust_bundle, bundle_pem, "all CAs: the same PEM");
    let on_cluster_ca = crate::support::secret(app, "cluster-ca-tls").await;
    openssl_verify(cluster_ca.as_bytes(), field(&on_cluster_ca, "tls.crt"))
        .expect("the CA ClusterIssuer signed with the key pair in the cluster-resource namespace");
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

    // The chart's alerts query series this operator exports, with the labels they use (the
    // CRL alert: the CA ClusterIssuer above names a distribution point, so it has a CRL).
    let alerts = template(home, &["prometheus.rules.enabled=true"]);
    let scraped = reqwest::get(format!("http://{}/metrics", install.metrics))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    let names = metric_names(&alerts);
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        let series = format!("{name}{{");
        let labels = if name.starts_with("certsmith_certificate_") {
            format!("namespace=\"{}\",name=\"leaf\"", app.name)
        } else {
            format!("kind=\"ClusterIssuer\",namespace=\"\",name=\"{ca_cluster_issuer}\"")
        };
        assert!(
            scraped
                .lines()
                .any(|l| l.starts_with(&series) && l.contains(&labels)),
            "an alert queries {name} but /metrics has no such series with {labels}:\n{scraped}"
        );
    }

    // And no more: the ServiceAccount cannot read Secrets outside its namespaces.
    other
        .apply::<Secret>(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "private"},
                                "stringData": {"password": "hunter2"}}),
        )
        .await;
    let sa = service_account_client(admin, home, home).await;
    let denied = Api::<Secret>::namespaced(sa.clone(), &other.name)
        .get("private")
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
        "{denied:?}"
    );
    // In its home (the cluster-resource namespace) it may get, list and watch Secrets: the
    // ClusterIssuers' key pairs and credentials, followed by a metadata-only watch.
    for (namespace, verb) in [(&other.name, "get"), (&other.name, "list")] {
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

    // Tokens only for the ServiceAccount named in values: never the operator's own, nor
    // another in the same namespace.
    for (namespace, name, allowed) in [
        (&app.name, VAULT_SERVICE_ACCOUNT, true),
        (&app.name, "default", false),
        (home, home.as_str(), false),
        (home, "default", false),
    ] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.clone()),
                    verb: Some("create".into()),
                    resource: Some("serviceaccounts".into()),
                    subresource: Some("token".into()),
                    name: Some(name.into()),
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
        assert_eq!(
            answer.status.is_some_and(|s| s.allowed),
            allowed,
            "create serviceaccounts/token for {namespace}/{name}"
        );
    }

    // revokeOnDelete: the finalizer is added and removed (certificates: patch), and the
    // deletion revokes at the CA issuer (its CRL ConfigMap: get, update).
    certificate(
        app,
        "revocable",
        json!({"secretName": "revocable-tls", "issuerRef": {"name": "ca"},
        "dnsNames": ["revocable.example.test"], "revocationPolicy": {"revokeOnDelete": true}}),
    )
    .await;
    crate::support::wait_until(app, "revocable", "Ready with the finalizer", |c| {
        condition(c, "Ready").is_some_and(|r| r.status == "True")
            && c.finalizers()
                .iter()
                .any(|f| f == "certsmith.dev/revoke-on-delete")
    })
    .await;
    app.api::<Certificate>()
        .delete("revocable", &Default::default())
        .await
        .expect("delete");
    crate::support::wait_for(
        "the revocable Certificate gone",
        crate::support::WAIT,
        || {
            let api = app.api::<Certificate>();
            async move { api.get_opt("revocable").await.ok()?.is_none().then_some(()) }
        },
    )
    .await;
    install
        .verdict(&["leaf"], Duration::from_secs(10))
        .await
        .expect("revocation and finalizers need nothing the chart does not grant");

    install.delete().await;
    other.delete().await;
}

/// The metric names (`certsmith_...`) in a text.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.match_indices("certsmith_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

/// The same install with `verb` taken out of the rendered rules on `resource` (in the role
/// named `*{role}` only, if given): the verdict that passes above must fail, and name that
/// very request. Certificates on a self-signed Issuer and on a CA ClusterIssuer.
async fn fails_without(prefix: &str, role: Option<&str>, resource: &str, verb: &str) {
    let install = Install::new(prefix, |docs| {
        assert!(
            remove_verb(docs, role, resource, verb) > 0,
            "the chart has no rule granting {verb} on {resource}"
        );
    })
    .await;
    install
        .app
        .apply::<Issuer>(install.issuer("selfsigned", json!({"selfSigned": {}})))
        .await;
    certificate(
        &install.app,
        "leaf",
        json!({"secretName": "leaf-tls", "issuerRef": {"name": "selfsigned"},
        "dnsNames": ["leaf.example.test"]}),
    )
    .await;
    let (ca_cluster_issuer, _) = install.ca_cluster_issuer().await;
    certificate(
        &install.app,
        "cluster-ca",
        json!({"secretName": "cluster-ca-tls",
        "issuerRef": {"name": ca_cluster_issuer, "kind": "ClusterIssuer"},
        "dnsNames": ["cluster-ca.example.test"]}),
    )
    .await;
    install.adoption().await;
    install.trust_bundle(&ca_cluster_issuer, false).await;
    let verdict = install
        .verdict(&["leaf", "cluster-ca", "adopter"], Duration::from_secs(20))
        .await;
    install.delete().await;
    let Err(why) = verdict else {
        panic!("the operator needed no {verb} on {resource}: the rule is not least privilege")
    };
    assert!(
        why.contains(&format!("cannot {verb} resource")) && why.contains(resource),
        "failed, but not for want of {verb} on {resource}: {why}"
    );
}

#[tokio::test]
async fn without_patch_on_secrets_the_rbac_check_fails() {
    fails_without("rbac-nopatch", None, "secrets", "patch").await;
}

#[tokio::test]
async fn without_create_on_events_the_rbac_check_fails() {
    fails_without("rbac-noevents", None, "events", "create").await;
}

#[tokio::test]
async fn without_update_on_leases_the_rbac_check_fails() {
    fails_without("rbac-nolease", None, "leases", "update").await;
}

#[tokio::test]
async fn without_create_on_configmaps_the_rbac_check_fails() {
    fails_without("rbac-nocm", None, "configmaps", "create").await;
}

#[tokio::test]
async fn without_list_on_the_served_namespaces_the_rbac_check_fails() {
    fails_without("rbac-nons", Some("-trustbundles"), "namespaces", "list").await;
}

#[tokio::test]
async fn without_create_on_configmaps_in_the_cluster_resource_namespace_the_crl_is_refused() {
    fails_without(
        "rbac-nocrl",
        Some("-cluster-resources"),
        "configmaps",
        "create",
    )
    .await;
}

#[tokio::test]
async fn without_get_on_secrets_in_the_cluster_resource_namespace_the_rbac_check_fails() {
    fails_without("rbac-nocrn", Some("-cluster-resources"), "secrets", "get").await;
}

/// Without `sign` on certsmith's signers the API server refuses every answer ("... is not
/// permitted to \"sign\" for signer ..."): the operator says so in its log, and the request
/// stays unanswered (the rule is needed).
#[tokio::test]
async fn without_sign_on_the_signers_pod_certificates_are_refused() {
    let install = Install::new("rbac-nosign", |docs| {
        assert!(remove_verb(docs, Some("-podcertificates"), "signers", "sign") > 0);
    })
    .await;
    install.ca_cluster_issuer().await;
    let (_, request) = install.pod_certificate_request().await;
    let log_path = install.log_path.clone();
    crate::support::wait_for(
        "the operator's log to show the refused answer",
        Duration::from_secs(60),
        || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move { log.contains("is not permitted to").then_some(()) }
        },
    )
    .await;
    let pcr = install
        .app
        .api::<certsmith::api::pod_certificate::PodCertificateRequest>()
        .get(&request)
        .await
        .expect("request");
    assert!(pcr.answer().is_none(), "answered without sign: {pcr:?}");
    install.delete().await;
}
