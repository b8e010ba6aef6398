//! TrustBundles on the real API server, with the in-process operator serving a few test
//! namespaces. TrustBundles are cluster-scoped: each test names its bundles after its home
//! namespace, labels them `test=<home>` (the only ones its operator serves) and selects its
//! target namespaces by a label unique to the test, so parallel tests never meet.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1beta1::ClusterTrustBundle;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use certsmith::api::{ClusterIssuer, Issuer, TrustBundle};
use certsmith::controller::trust_bundle::{fingerprint, parse_source};

use crate::support::{
    Bao, Operator, TestNamespace, WAIT, admin_client, certificate, env, field, install_crds,
    openssl_verify, wait_for, wait_ready,
};

/// The label a test's target namespaces carry (valued with its home namespace).
const SELECT: &str = "certsmith-test-trust";

/// A test's world: a home namespace (the operator's cluster-resource namespace, where
/// issuers live), target namespaces, and the operator serving all of them.
pub(crate) struct World {
    pub(crate) admin: Client,
    pub(crate) home: TestNamespace,
    pub(crate) targets: Vec<TestNamespace>,
    operator: Operator,
}

impl World {
    pub(crate) async fn new(prefix: &str, targets: usize) -> Self {
        let admin = admin_client().await;
        install_crds(&admin).await;
        let home = TestNamespace::new(prefix).await;
        let mut namespaces = Vec::new();
        for i in 0..targets {
            namespaces.push(TestNamespace::new(&format!("{prefix}-t{i}")).await);
        }
        let mut served = vec![home.name.as_str()];
        served.extend(namespaces.iter().map(|n| n.name.as_str()));
        let operator = Operator::start_scoped(admin.clone(), &served).await;
        World {
            admin,
            home,
            targets: namespaces,
            operator,
        }
    }

    /// A TrustBundle's name for this test.
    pub(crate) fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.home.name)
    }

    pub(crate) fn bundles(&self) -> Api<TrustBundle> {
        Api::all(self.admin.clone())
    }

    /// Apply a TrustBundle served by this test's operator, selecting this test's namespaces.
    pub(crate) async fn bundle(&self, suffix: &str, sources: Value, extra_target: Value) -> String {
        let name = self.name(suffix);
        let mut target = json!({"configMap": {"key": "ca.crt"},
            "namespaceSelector": {"matchLabels": {SELECT: self.home.name}}});
        if let (Some(target), Some(extra)) = (target.as_object_mut(), extra_target.as_object()) {
            target.extend(extra.clone());
        }
        let body = json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "TrustBundle",
            "metadata": {"name": name, "labels": {"test": self.home.name}},
            "spec": {"sources": sources, "target": target}});
        self.bundles()
            .patch(
                &name,
                &PatchParams::apply("certsmith-tests").force(),
                &Patch::Apply(body),
            )
            .await
            .expect("apply TrustBundle");
        name
    }

    /// Select (or stop selecting) a namespace by this test's label.
    pub(crate) async fn select(&self, namespace: &str, on: bool) {
        let value = if on {
            Value::String(self.home.name.clone())
        } else {
            Value::Null
        };
        Api::<Namespace>::all(self.admin.clone())
            .patch(
                namespace,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {SELECT: value}}})),
            )
            .await
            .expect("label namespace");
    }

    /// Wait until the bundle's status satisfies `pred`.
    pub(crate) async fn wait_bundle(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&TrustBundle) -> bool,
    ) -> TrustBundle {
        let api = self.bundles();
        let pred = &pred;
        wait_for(&format!("TrustBundle {name}: {what}"), WAIT, || {
            let api = api.clone();
            async move { api.get(name).await.ok().filter(|b| pred(b)) }
        })
        .await
    }

    /// Wait until the bundle is Ready (Synced) for its generation.
    pub(crate) async fn wait_synced(&self, name: &str) -> TrustBundle {
        self.wait_bundle(name, "Ready=True", |b| {
            ready(b).is_some_and(|(s, _, _)| s == "True")
        })
        .await
    }

    pub(crate) async fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        Api::<ConfigMap>::namespaced(self.admin.clone(), namespace)
            .get_opt(name)
            .await
            .expect("get ConfigMap")
    }

    /// Wait until `namespace` holds the bundle's ConfigMap with `pem` (or none, for None).
    async fn wait_config_map(&self, namespace: &str, name: &str, pem: Option<&str>) {
        let api = Api::<ConfigMap>::namespaced(self.admin.clone(), namespace);
        wait_for(
            &format!(
                "ConfigMap {namespace}/{name} holding {}",
                if pem.is_some() {
                    "the bundle"
                } else {
                    "nothing (gone)"
                }
            ),
            WAIT,
            || {
                let api = api.clone();
                async move {
                    let cm = api.get_opt(name).await.ok()?;
                    let held = cm
                        .as_ref()
                        .and_then(|c| c.data.as_ref()?.get("ca.crt").cloned());
                    (held.as_deref() == pem).then_some(())
                }
            },
        )
        .await;
    }

    pub(crate) async fn delete(self) {
        let _ = self
            .bundles()
            .delete_collection(
                &DeleteParams::default(),
                &kube::api::ListParams::default().labels(&format!("test={}", self.home.name)),
            )
            .await;
        let _ = Api::<ClusterIssuer>::all(self.admin.clone())
            .delete_collection(
                &DeleteParams::default(),
                &kube::api::ListParams::default().labels(&format!("test={}", self.home.name)),
            )
            .await;
        self.operator.stop().await;
        for ns in self.targets {
            ns.delete().await;
        }
        self.home.delete().await;
    }
}

/// The Ready condition: (status, reason, message), current for the generation.
fn ready(b: &TrustBundle) -> Option<(String, String, String)> {
    let status = b.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    (c.observed_generation == b.metadata.generation)
        .then(|| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn reason(b: &TrustBundle) -> String {
    ready(b).map(|(_, r, _)| r).unwrap_or_default()
}

/// A certificate and its key (PEM), self-signed, valid from `not_before` to `not_after`
/// (seconds from now).
pub(crate) fn cert(cn: &str, ca: bool, not_before: i64, not_after: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::seconds(not_before);
    params.not_after = now + time::Duration::seconds(not_after);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
    }
    (
        params.self_signed(&key).expect("self-sign").pem(),
        key.serialize_pem(),
    )
}

/// A CA certificate valid for a year.
pub(crate) fn ca(cn: &str) -> (String, String) {
    cert(cn, true, -60, 365 * 86_400)
}

/// The fingerprints of the certificates in a PEM text.
pub(crate) fn prints(pem: &str) -> BTreeSet<String> {
    parse_source("test", pem)
        .expect("PEM certificates")
        .into_iter()
        .map(|e| e.fingerprint)
        .collect()
}

fn status_prints(b: &TrustBundle) -> Vec<String> {
    b.status
        .iter()
        .flat_map(|s| s.certificates.iter().map(|c| c.fingerprint.clone()))
        .collect()
}

/// A `kubernetes.io/tls` CA Secret in `ns`.
async fn ca_secret(ns: &TestNamespace, name: &str, cn: &str) -> String {
    let (crt, key) = ca(cn);
    ns.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key}}))
        .await;
    crt
}

async fn pem_secret(ns: &TestNamespace, name: &str, key: &str, pem: &str) {
    ns.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "stringData": {key: pem}}))
        .await;
}

fn issuer(ns: &TestNamespace, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": name, "namespace": ns.name}, "spec": spec})
}

#[tokio::test]
async fn a_bundle_gathers_every_source_kind() {
    let w = World::new("tb-sources", 2).await;
    let (home, t0, t1) = (&w.home, &w.targets[0], &w.targets[1]);
    // CA Issuer and CA ClusterIssuer (its Secret in the cluster-resource namespace).
    let ca_root = ca_secret(home, "root-ca", "tb CA issuer root").await;
    home.apply::<Issuer>(issuer(home, "ca", json!({"ca": {"secretName": "root-ca"}})))
        .await;
    let cluster_root = ca_secret(home, "cluster-ca", "tb CA cluster issuer root").await;
    let cluster_issuer = w.name("cluster");
    Api::<ClusterIssuer>::all(w.admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer",
                "metadata": {"name": cluster_issuer, "labels": {"test": home.name}},
                "spec": {"ca": {"secretName": "cluster-ca"}}}),
            )
            .expect("cluster issuer"),
        )
        .await
        .expect("create ClusterIssuer");
    // Vault (OpenBao): the signing mount's CA chain, intermediate and root.
    let pki = crate::openbao::Pki::setup(Bao::from_env(), json!({})).await;
    pki.token_secret(home, "vault-token").await;
    home.apply::<Issuer>(issuer(home, "vault", json!({"vault": {"server": env("VAULT_ADDR"),
        "path": pki.sign_path(), "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}})))
        .await;
    let vault_chain = Bao::from_env()
        .get(&format!("int-{}/cert/ca_chain", pki.id))
        .await["data"]["certificate"]
        .as_str()
        .expect("ca_chain")
        .to_string();
    assert_eq!(prints(&vault_chain).len(), 2, "intermediate and root");
    // AWS Private CA (the emulator).
    let pca = crate::aws_pca::create_ca(&crate::aws_pca::client().await, true).await;
    home.apply::<Issuer>(issuer(
        home,
        "pca",
        json!({"awsPCA": {"arn": pca.arn, "endpoint": env("AWS_ENDPOINT_URL_ACM_PCA")}}),
    ))
    .await;
    // A Secret with two certificates (one of them the CA issuer's root again), a ConfigMap,
    // and inline PEM repeating the AWS root.
    let (secret_a, _) = ca("tb secret A");
    pem_secret(
        t0,
        "extra-roots",
        "roots.pem",
        &format!("{secret_a}{ca_root}"),
    )
    .await;
    let (config_map_cert, _) = ca("tb configmap");
    t1.apply::<ConfigMap>(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "more-roots"}, "data": {"ca.pem": config_map_cert}}))
        .await;
    let (inline_cert, _) = ca("tb inline");
    let name = w
        .bundle(
            "all",
            json!([
                {"issuerRef": {"name": "ca", "kind": "Issuer", "namespace": home.name}},
                {"issuerRef": {"name": cluster_issuer, "kind": "ClusterIssuer"}},
                {"issuerRef": {"name": "vault", "kind": "Issuer", "namespace": home.name}},
                {"issuerRef": {"name": "pca", "kind": "Issuer", "namespace": home.name}},
                {"secret": {"namespace": t0.name, "name": "extra-roots", "key": "roots.pem"}},
                {"configMap": {"namespace": t1.name, "name": "more-roots", "key": "ca.pem"}},
                {"inLine": format!("# inline roots\n{inline_cert}{}", pca.root_pem)},
            ]),
            json!({}),
        )
        .await;
    w.select(&t0.name, true).await;
    w.select(&t1.name, true).await;
    let bundle = w
        .wait_bundle(&name, "Synced in 2 namespaces", |b| {
            reason(b) == "Synced" && b.status.as_ref().and_then(|s| s.namespaces) == Some(2)
        })
        .await;

    let mut expected = BTreeSet::new();
    for pem in [
        &ca_root,
        &cluster_root,
        &vault_chain,
        &pca.root_pem,
        &secret_a,
        &config_map_cert,
        &inline_cert,
    ] {
        expected.extend(prints(pem));
    }
    assert_eq!(expected.len(), 8, "7 roots and Vault's intermediate");
    let held = w
        .config_map(&t0.name, &name)
        .await
        .expect("ConfigMap in t0");
    let pem = held
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .expect("ca.crt")
        .clone();
    assert_eq!(
        prints(&pem),
        expected,
        "every source, each certificate once"
    );
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 8, "deduplicated");
    assert!(
        !pem.contains('#') && !pem.contains('\r'),
        "comment-free, LF"
    );
    assert_eq!(
        w.config_map(&t1.name, &name)
            .await
            .and_then(|c| c.data)
            .and_then(|d| d.get("ca.crt").cloned()),
        Some(pem.clone()),
        "the same bundle in every namespace"
    );
    assert_eq!(held.labels().get("certsmith.dev/trust-bundle"), Some(&name));
    assert_eq!(
        held.owner_references().first().map(|r| r.uid.clone()),
        bundle.metadata.uid.clone(),
        "owned by the TrustBundle (deleted with it)"
    );
    // The status lists them in the bundle's order: by subject, then fingerprint.
    let listed = status_prints(&bundle);
    let in_pem: Vec<String> = parse_source("cm", &pem)
        .expect("pem")
        .into_iter()
        .map(|e| e.fingerprint)
        .collect();
    assert_eq!(listed, in_pem);
    let subjects: Vec<String> = bundle
        .status
        .iter()
        .flat_map(|s| s.certificates.iter().map(|c| c.subject.clone()))
        .collect();
    let mut sorted = subjects.clone();
    sorted.sort();
    assert_eq!(subjects, sorted);

    // The bundle is what relying parties need: leaves of the CA and Vault issuers verify.
    for (cert_name, issuer_name) in [("ca-leaf", "ca"), ("vault-leaf", "vault")] {
        certificate(
            home,
            cert_name,
            json!({"secretName": format!("{cert_name}-tls"),
            "issuerRef": {"name": issuer_name}, "dnsNames": [format!("{cert_name}.example.test")]}),
        )
        .await;
        wait_ready(home, cert_name).await;
        let secret = crate::support::secret(home, &format!("{cert_name}-tls")).await;
        openssl_verify(pem.as_bytes(), field(&secret, "tls.crt"))
            .unwrap_or_else(|e| panic!("{cert_name} does not verify against the bundle: {e}"));
    }
    let metrics = w.operator.metrics.render();
    assert!(
        metrics.contains(&format!(
            "certsmith_trust_bundle_certificates{{bundle=\"{name}\"}} 8"
        )),
        "{metrics}"
    );
    w.delete().await;
}

#[tokio::test]
async fn namespaces_gain_and_lose_the_config_map_as_they_match() {
    let w = World::new("tb-select", 3).await;
    let (t0, t1, t2) = (&w.targets[0], &w.targets[1], &w.targets[2]);
    let (root, _) = ca("tb select root");
    let name = w.name("sel");
    // t2 already has a ConfigMap of that name, not the operator's.
    t2.apply::<ConfigMap>(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"mine": "do not touch"}}))
        .await;
    w.select(&t0.name, true).await;
    w.select(&t2.name, true).await;
    w.bundle("sel", json!([{"inLine": root}]), json!({})).await;
    let pem = root.replace("\r\n", "\n");
    w.wait_config_map(&t0.name, &name, Some(&pem)).await;
    let b = w
        .wait_bundle(&name, "TargetConflict", |b| reason(b) == "TargetConflict")
        .await;
    let (_, _, message) = ready(&b).expect("ready");
    assert!(
        message.contains(&format!("ConfigMap {}/{name}", t2.name))
            && message.contains("left alone"),
        "{message}"
    );
    assert_eq!(b.status.as_ref().and_then(|s| s.namespaces), Some(1));
    let foreign = w
        .config_map(&t2.name, &name)
        .await
        .expect("foreign ConfigMap");
    assert_eq!(
        foreign.data.and_then(|d| d.get("mine").cloned()).as_deref(),
        Some("do not touch")
    );
    assert!(
        !foreign
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("certsmith.dev/trust-bundle")
    );
    assert!(
        w.config_map(&t1.name, &name).await.is_none(),
        "t1 is not selected"
    );

    // A namespace labelled later gets it; one unlabelled loses it.
    w.select(&t1.name, true).await;
    w.wait_config_map(&t1.name, &name, Some(&pem)).await;
    w.select(&t0.name, false).await;
    w.wait_config_map(&t0.name, &name, None).await;

    // Edited or deleted by someone, it is restored.
    Api::<ConfigMap>::namespaced(w.admin.clone(), &t1.name)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"ca.crt": "tampered"}})),
        )
        .await
        .expect("tamper");
    w.wait_config_map(&t1.name, &name, Some(&pem)).await;
    Api::<ConfigMap>::namespaced(w.admin.clone(), &t1.name)
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    w.wait_config_map(&t1.name, &name, Some(&pem)).await;

    // Once the foreign ConfigMap is gone, the operator writes its own there.
    Api::<ConfigMap>::namespaced(w.admin.clone(), &t2.name)
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete foreign");
    w.wait_config_map(&t2.name, &name, Some(&pem)).await;
    w.wait_bundle(&name, "Synced in t1 and t2", |b| {
        reason(b) == "Synced" && b.status.as_ref().and_then(|s| s.namespaces) == Some(2)
    })
    .await;
    w.delete().await;
}

/// Writes (Added, Modified, Deleted) seen on `api` during `window`, of objects `pick` keeps.
async fn writes<K>(api: Api<K>, window: Duration, pick: impl Fn(&K) -> bool) -> Vec<String>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let list = api.list_metadata(&Default::default()).await.expect("list");
    let mut version = list.metadata.resource_version.unwrap_or_default();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < deadline {
        let left = deadline - tokio::time::Instant::now();
        let params = WatchParams::default().timeout(left.as_secs().max(1) as u32);
        let mut stream = api.watch(&params, &version).await.expect("watch").boxed();
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(
                    WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o),
                ))) => {
                    version = o.meta().resource_version.clone().unwrap_or_default();
                    if pick(&o) {
                        seen.push(format!(
                            "{}/{}",
                            o.meta().namespace.clone().unwrap_or_default(),
                            o.meta().name.clone().unwrap_or_default()
                        ));
                    }
                }
                Ok(Some(Ok(WatchEvent::Bookmark(b)))) => version = b.metadata.resource_version,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    seen
}

#[tokio::test]
async fn an_idle_bundle_makes_no_writes() {
    let w = World::new("tb-idle", 2).await;
    let home = &w.home;
    ca_secret(home, "root-ca", "tb idle root").await;
    home.apply::<Issuer>(issuer(home, "ca", json!({"ca": {"secretName": "root-ca"}})))
        .await;
    let (extra, _) = ca("tb idle extra");
    pem_secret(home, "extra", "ca.pem", &extra).await;
    for t in &w.targets {
        w.select(&t.name, true).await;
    }
    let name = w
        .bundle(
            "idle",
            json!([
                {"issuerRef": {"name": "ca", "kind": "Issuer", "namespace": home.name}},
                {"secret": {"namespace": home.name, "name": "extra", "key": "ca.pem"}},
            ]),
            json!({"clusterTrustBundle": {}}),
        )
        .await;
    w.wait_bundle(&name, "Synced in 2 namespaces", |b| {
        reason(b) == "Synced" && b.status.as_ref().and_then(|s| s.namespaces) == Some(2)
    })
    .await;
    // Let the first round of events (the writes' own watch events, the issuer's checks) pass.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let window = Duration::from_secs(20);
    let counting = {
        let admin = w.admin.clone();
        let (targets, bundle) = (
            w.targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            name.clone(),
        );
        tokio::spawn(async move {
            let mut counts = Vec::new();
            let ours = |n: &str| n == bundle;
            let maps = targets.iter().map(|t| {
                writes(
                    Api::<ConfigMap>::namespaced(admin.clone(), t),
                    window,
                    |c: &ConfigMap| ours(&c.name_any()),
                )
            });
            let (maps, bundles, ctbs, events) = tokio::join!(
                futures::future::join_all(maps),
                writes(
                    Api::<TrustBundle>::all(admin.clone()),
                    window,
                    |b: &TrustBundle| ours(&b.name_any())
                ),
                writes(
                    Api::<ClusterTrustBundle>::all(admin.clone()),
                    window,
                    |b: &ClusterTrustBundle| ours(&b.name_any())
                ),
                writes(
                    Api::<k8s_openapi::api::events::v1::Event>::namespaced(
                        admin.clone(),
                        "default"
                    ),
                    window,
                    |e: &k8s_openapi::api::events::v1::Event| e
                        .regarding
                        .as_ref()
                        .and_then(|r| r.name.as_deref())
                        == Some(bundle.as_str()),
                ),
            );
            counts.push(("configmaps", maps.into_iter().flatten().collect::<Vec<_>>()));
            counts.push(("trustbundles", bundles));
            counts.push(("clustertrustbundles", ctbs));
            counts.push(("events", events));
            counts
        })
    };
    // Reasons to look again, none of which changes the bundle: a namespace's unrelated
    // label, an annotation on a source Secret, on the issuer, on the TrustBundle itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let annotate = json!({"metadata": {"annotations": {"certsmith-test/poke": "1"}}});
    Api::<Namespace>::all(w.admin.clone())
        .patch(
            &w.targets[0].name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"unrelated": "yes"}}})),
        )
        .await
        .expect("label namespace");
    home.api::<Secret>()
        .patch(
            "extra",
            &PatchParams::default(),
            &Patch::Merge(annotate.clone()),
        )
        .await
        .expect("annotate secret");
    home.api::<Issuer>()
        .patch(
            "ca",
            &PatchParams::default(),
            &Patch::Merge(annotate.clone()),
        )
        .await
        .expect("annotate issuer");
    w.bundles()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(annotate.clone()),
        )
        .await
        .expect("annotate bundle");
    let counts = counting.await.expect("count");
    let total: usize = counts.iter().map(|(_, w)| w.len()).sum();
    eprintln!(
        "API writes by the operator in {window:?} with an idle TrustBundle (4 pokes): {counts:?} (total {total})"
    );
    // The annotation on the TrustBundle is the test's own write.
    let own: usize = counts
        .iter()
        .filter(|(k, _)| *k == "trustbundles")
        .map(|(_, w)| w.len())
        .sum();
    assert!(own <= 1, "{counts:?}");
    assert_eq!(total - own, 0, "an idle bundle writes nothing: {counts:?}");
    w.delete().await;
}

#[tokio::test]
async fn a_cluster_trust_bundle_is_published_with_the_ca_certificates() {
    let w = World::new("tb-ctb", 1).await;
    let (root, _) = ca("tb ctb root");
    let (pinned, _) = cert("tb pinned server", false, -60, 86_400);
    w.select(&w.targets[0].name, true).await;
    let name = w
        .bundle(
            "ctb",
            json!([{"inLine": format!("{root}{pinned}")}]),
            json!({"clusterTrustBundle": {}}),
        )
        .await;
    let b = w.wait_synced(&name).await;
    let (_, _, message) = ready(&b).expect("ready");
    assert!(
        message.contains(&format!("ClusterTrustBundle {name}")) && message.contains("1 not CAs"),
        "{message}"
    );
    assert_eq!(
        b.status
            .as_ref()
            .and_then(|s| s.cluster_trust_bundle.clone()),
        Some(name.clone())
    );
    let ctbs: Api<ClusterTrustBundle> = Api::all(w.admin.clone());
    let ctb = ctbs.get(&name).await.expect("ClusterTrustBundle");
    assert_eq!(
        ctb.spec.trust_bundle,
        root.replace("\r\n", "\n"),
        "the CA certificate only"
    );
    assert_eq!(ctb.spec.signer_name, None);
    assert_eq!(ctb.labels().get("certsmith.dev/trust-bundle"), Some(&name));
    let cm = w
        .config_map(&w.targets[0].name, &name)
        .await
        .expect("ConfigMap");
    assert_eq!(
        prints(&cm.data.unwrap_or_default()["ca.crt"]).len(),
        2,
        "the ConfigMap keeps the pinned leaf"
    );

    // With a signer the name carries its prefix; the one without is removed.
    let signer = format!("certsmith.test/{}", w.home.name);
    w.bundle(
        "ctb",
        json!([{"inLine": format!("{root}{pinned}")}]),
        json!({"clusterTrustBundle": {"signerName": signer}}),
    )
    .await;
    let signed = format!("certsmith.test:{}:{name}", w.home.name);
    w.wait_bundle(&name, "the signer's ClusterTrustBundle", |b| {
        reason(b) == "Synced"
            && b.status
                .as_ref()
                .and_then(|s| s.cluster_trust_bundle.clone())
                == Some(signed.clone())
    })
    .await;
    let ctb = ctbs.get(&signed).await.expect("signed ClusterTrustBundle");
    assert_eq!(ctb.spec.signer_name.as_deref(), Some(signer.as_str()));
    assert!(
        ctbs.get_opt(&name).await.expect("get").is_none(),
        "the unsigned one was removed"
    );

    // Not asked for any more: removed.
    w.bundle(
        "ctb",
        json!([{"inLine": format!("{root}{pinned}")}]),
        json!({}),
    )
    .await;
    w.wait_bundle(&name, "no ClusterTrustBundle", |b| {
        reason(b) == "Synced"
            && b.status
                .as_ref()
                .is_some_and(|s| s.cluster_trust_bundle.is_none())
    })
    .await;
    assert!(ctbs.get_opt(&signed).await.expect("get").is_none());
    w.delete().await;
}

#[tokio::test]
async fn an_invalid_source_is_reported_and_the_last_good_bundle_kept() {
    let w = World::new("tb-invalid", 1).await;
    let (home, t0) = (&w.home, &w.targets[0]);
    let (root, _) = ca("tb invalid root");
    pem_secret(home, "roots", "ca.pem", &root).await;
    w.select(&t0.name, true).await;
    let sources = json!([{"secret": {"namespace": home.name, "name": "roots", "key": "ca.pem"}}]);
    let name = w.bundle("inv", sources.clone(), json!({})).await;
    let pem = root.replace("\r\n", "\n");
    w.wait_config_map(&t0.name, &name, Some(&pem)).await;
    let good = w.wait_synced(&name).await;

    // Garbage in the Secret: reported, with the source named; the targets keep the bundle.
    pem_secret(
        home,
        "roots",
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .await;
    let b = w
        .wait_bundle(&name, "SourceInvalid", |b| reason(b) == "SourceInvalid")
        .await;
    let (status, _, message) = ready(&b).expect("ready");
    assert_eq!(status, "False");
    let source = format!("sources[0] (Secret {}/roots key ca.pem)", home.name);
    assert!(
        message.contains(&source) && message.contains("the targets keep the bundle last written"),
        "{message}"
    );
    assert!(
        !message.contains("bm90IGEgY2VydA"),
        "never quoted: {message}"
    );
    assert_eq!(
        status_prints(&b),
        status_prints(&good),
        "the status still lists what the targets hold"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.config_map(&t0.name, &name)
            .await
            .and_then(|c| c.data)
            .and_then(|d| d.get("ca.crt").cloned()),
        Some(pem.clone()),
        "the last good bundle stays"
    );
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(w.admin.clone(), "default")
        .list(&Default::default())
        .await
        .expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SourceInvalid")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())),
        "a Warning Event names the failure"
    );
    // A missing Secret, and an issuer that does not exist: SourceMissing, both named.
    home.api::<Secret>()
        .delete("roots", &DeleteParams::default())
        .await
        .expect("delete");
    let missing = w.name("no-such-issuer");
    let mut both = sources.as_array().cloned().unwrap_or_default();
    both.push(json!({"issuerRef": {"name": missing, "kind": "ClusterIssuer"}}));
    w.bundle("inv", Value::Array(both), json!({})).await;
    let b = w
        .wait_bundle(&name, "SourceMissing", |b| reason(b) == "SourceMissing")
        .await;
    let (_, _, message) = ready(&b).expect("ready");
    assert!(
        message.contains("roots not found")
            && message.contains(&format!("ClusterIssuer {missing} not found")),
        "{message}"
    );
    assert_eq!(
        w.config_map(&t0.name, &name)
            .await
            .and_then(|c| c.data)
            .and_then(|d| d.get("ca.crt").cloned()),
        Some(pem.clone())
    );
    let errors = w.operator.metrics.render();
    assert!(
        errors.contains(&format!(
            "certsmith_trust_bundle_sync_errors_total{{bundle=\"{name}\",reason=\"SourceInvalid\"}}"
        )),
        "{errors}"
    );

    // Fixed: synced again with the new content.
    let (next, _) = ca("tb invalid next root");
    pem_secret(home, "roots", "ca.pem", &next).await;
    w.bundle("inv", sources, json!({})).await;
    w.wait_config_map(&t0.name, &name, Some(&next.replace("\r\n", "\n")))
        .await;
    w.wait_synced(&name).await;
    w.delete().await;
}

#[tokio::test]
async fn expired_certificates_are_dropped() {
    let w = World::new("tb-expiry", 1).await;
    let t0 = &w.targets[0];
    let (expired, _) = cert("tb expired", true, -7200, -3600);
    let (lasting, _) = ca("tb lasting");
    let (short, _) = cert("tb short", true, -60, 20);
    w.select(&t0.name, true).await;
    let name = w
        .bundle(
            "exp",
            json!([{"inLine": format!("{expired}{lasting}{short}")}]),
            json!({}),
        )
        .await;
    let b = w.wait_synced(&name).await;
    assert_eq!(
        status_prints(&b).into_iter().collect::<BTreeSet<_>>(),
        prints(&format!("{lasting}{short}")),
        "the expired one is dropped"
    );
    assert!(ready(&b).is_some_and(|(_, _, m)| m.contains("1 expired dropped")));
    let cm = w.config_map(&t0.name, &name).await.expect("ConfigMap");
    assert_eq!(
        prints(&cm.data.unwrap_or_default()["ca.crt"]),
        prints(&format!("{lasting}{short}"))
    );
    // The short-lived one goes when it expires: the bundle is looked at again then.
    let pem = lasting.replace("\r\n", "\n");
    w.wait_config_map(&t0.name, &name, Some(&pem)).await;
    // The ConfigMap is written before the status: wait for the status to say so too.
    let only_lasting = vec![fingerprint(
        &pem::parse(&lasting).expect("pem").into_contents(),
    )];
    w.wait_bundle(&name, "status listing only the lasting certificate", |b| {
        ready(b).is_some_and(|(s, _, _)| s == "True") && status_prints(b) == only_lasting
    })
    .await;
    w.delete().await;
}
