//! Test support: per-test namespaces on the shared environment, admin and ServiceAccount
//! clients, and an in-process operator scoped to one namespace.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use serde_json::{Value, json};

use certsmith::api::Certificate;
use certsmith::pki::inspect::{CertInfo, parse_chain};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio_util::sync::CancellationToken;

/// Read a variable the test environment's env file exports; fail with a clear hint.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (it starts tests/testenv)")
    })
}

pub async fn config() -> Config {
    let kubeconfig = Kubeconfig::read_from(env("KUBECONFIG")).expect("read KUBECONFIG");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig")
}

/// A client with cluster-admin rights (the env's system:masters certificate).
pub async fn admin_client() -> Client {
    Client::try_from(config().await).expect("admin client")
}

/// A client authenticated as `namespace/name` with a short-lived token from the TokenRequest
/// API, with nothing of the admin's credentials: what that ServiceAccount may do, it may do.
pub async fn service_account_client(admin: &Client, namespace: &str, name: &str) -> Client {
    let token = service_account_token(admin, namespace, name).await;
    let mut config = config().await;
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Client::try_from(config).expect("service account client")
}

/// A one-hour token for `namespace/name` from the TokenRequest API.
pub async fn service_account_token(admin: &Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    token.status.expect("token status").token
}

/// A fresh namespace for one test, with a unique name.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> Self {
        let client = admin_client().await;
        let suffix: u32 = rand_u32();
        let name = format!("{prefix}-{suffix:08x}");
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        TestNamespace { name, client }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Apply a YAML or JSON manifest into this namespace with server-side apply.
    pub async fn apply<K>(&self, value: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = value["metadata"]["name"]
            .as_str()
            .expect("manifest name")
            .to_string();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply("certsmith-tests").force(),
                &Patch::Apply(value),
            )
            .await
            .expect("apply manifest")
    }

    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// The operator, running in-process against the test environment, watching one namespace.
pub struct Operator {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    health: tokio::task::JoinHandle<()>,
    pub metrics: Arc<certsmith::metrics::Metrics>,
    /// Where /healthz, /readyz and /metrics are served.
    pub http: std::net::SocketAddr,
}

impl Operator {
    /// Start with the admin client; ClusterIssuers served are those labelled `test=<namespace>`,
    /// and their Secrets are read from the test namespace.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with(admin_client().await, namespace).await
    }

    pub async fn start_with(client: Client, namespace: &str) -> Self {
        Self::start_scoped(client, &[namespace]).await
    }

    /// Watch several namespaces; the first is the cluster-resource namespace and names the
    /// ClusterIssuer label selector.
    pub async fn start_scoped(client: Client, namespaces: &[&str]) -> Self {
        Self::start_configured(client, settings(namespaces)).await
    }

    /// Start with `settings` (from [`settings`], then adjusted by the test).
    pub async fn start_configured(
        client: Client,
        settings: certsmith::controller::Settings,
    ) -> Self {
        let metrics = Arc::new(certsmith::metrics::Metrics::default());
        let shutdown = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(certsmith::controller::run::run(
            client,
            settings,
            metrics.clone(),
            ready.clone(),
            shutdown.clone(),
            certsmith::leader::Guard::unelected(),
        ));
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let health = tokio::spawn({
            let metrics = metrics.clone();
            async move {
                let _ = certsmith::health::serve(http, ready, metrics).await;
            }
        });
        Operator {
            shutdown,
            task,
            health,
            metrics,
            http,
        }
    }

    pub async fn stop(self) {
        self.health.abort();
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// The test operator's settings: watch `namespaces`; the first is the cluster-resource
/// namespace and names the ClusterIssuer label selector.
pub fn settings(namespaces: &[&str]) -> certsmith::controller::Settings {
    let namespace = namespaces[0];
    certsmith::controller::Settings {
        cluster_resource_namespace: namespace.to_string(),
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        concurrency: 8,
        cluster_issuer_selector: Some(format!("test={namespace}")),
        trust_bundles: true,
        trust_bundle_selector: Some(format!("test={namespace}")),
        pod_certificates: true,
        backends: certsmith::issuer::BackendSettings {
            aws_pca_issue_rate: std::num::NonZeroU32::new(20).expect("nonzero"),
            // The AWS tests use namespaced Issuers with the environment's (emulator) identity.
            issuer_ambient_credentials: true,
            issuer_vault_servers: Vec::new(),
        },
    }
}

/// Poll `check` until it returns Some, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Install the CRDs from `crds/` (server-side apply; idempotent across tests) and wait until
/// the API server serves them.
pub async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/certsmith.yaml"))
        .expect("crds file");
    for doc in text
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
    {
        let crd: CustomResourceDefinition = certsmith::yaml::from_str(doc).expect("crd yaml");
        let name = crd.metadata.name.clone().expect("crd name");
        api.patch(
            &name,
            &PatchParams::apply("certsmith-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply crd");
        wait_for(
            &format!("CRD {name} established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await;
    }
}

/// `openssl verify -CAfile ca -untrusted chain-rest leaf`: a real X.509 path validation.
pub fn openssl_verify(ca_pem: &[u8], chain_pem: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let blocks = pem::parse_many(chain_pem).map_err(|e| e.to_string())?;
    let leaf = dir.path().join("leaf.pem");
    let rest = dir.path().join("untrusted.pem");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&leaf, pem::encode(&blocks[0])).map_err(|e| e.to_string())?;
    std::fs::write(&rest, pem::encode_many(&blocks[1..])).map_err(|e| e.to_string())?;
    std::fs::write(&ca, ca_pem).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(&ca);
    if blocks.len() > 1 {
        cmd.arg("-untrusted").arg(&rest);
    }
    let out = cmd
        .arg(&leaf)
        .output()
        .map_err(|e| format!("running openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

// ----- Helpers shared by the Certificate, Vault and CLI tests -----

/// How long a test waits for the operator to get somewhere.
pub const WAIT: Duration = Duration::from_secs(60);

/// A Vault-API client for test setup, with the root token.
#[derive(Clone)]
pub struct Bao {
    pub http: reqwest::Client,
    pub addr: String,
    pub token: String,
}

impl Bao {
    pub fn new(addr: String, token: String) -> Self {
        Bao {
            http: reqwest::Client::new(),
            addr,
            token,
        }
    }

    pub fn from_env() -> Self {
        Bao::new(env("VAULT_ADDR"), env("VAULT_TOKEN"))
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.request(reqwest::Method::GET, path, None).await
    }
}

pub async fn certificate(ns: &TestNamespace, name: &str, spec: serde_json::Value) -> Certificate {
    ns.apply::<Certificate>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": name}, "spec": spec})).await
}

pub fn condition(cert: &Certificate, type_: &str) -> Option<certsmith::api::Condition> {
    cert.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Wait until Ready=True for the current generation.
pub async fn wait_ready(ns: &TestNamespace, name: &str) -> Certificate {
    wait_until(ns, name, "Ready=True", |c| {
        condition(c, "Ready").is_some_and(|r| r.status == "True")
            && c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
    })
    .await
}

pub async fn wait_until(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    pred: impl Fn(&Certificate) -> bool,
) -> Certificate {
    let api = ns.api::<Certificate>();
    let pred = &pred;
    wait_for(&format!("Certificate {name}: {what}"), WAIT, || {
        let api = api.clone();
        async move { api.get(name).await.ok().filter(|c| pred(c)) }
    })
    .await
}

pub fn field<'a>(s: &'a Secret, key: &str) -> &'a [u8] {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
        .unwrap_or_default()
}

pub async fn secret(ns: &TestNamespace, name: &str) -> Secret {
    ns.api::<Secret>().get(name).await.expect("secret")
}

pub fn leaf(s: &Secret) -> CertInfo {
    parse_chain(field(s, "tls.crt"))
        .expect("tls.crt parses")
        .remove(0)
}

/// Wait until the Secret holds a certificate other than `serial`.
pub async fn wait_reissued(ns: &TestNamespace, name: &str, serial: &str) -> Secret {
    let api = ns.api::<Secret>();
    wait_for(
        &format!("Secret {name} re-issued (old serial {serial})"),
        WAIT,
        || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                let current = parse_chain(field(&s, "tls.crt")).ok()?.remove(0);
                (current.serial != serial).then_some(s)
            }
        },
    )
    .await
}

/// Ask the operator to re-issue `name` (what `certsmith renew` does), with `value` as the request.
pub async fn request_renewal(ns: &TestNamespace, name: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {certsmith::api::RENEW_ANNOTATION: value}}});
    ns.api::<Certificate>()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("request renewal");
}

/// The operator binary as users run it, as its own process (so it can be killed, paused or
/// measured for real). Its metrics are served on a free loopback port; its log goes to a file
/// when asked (else nowhere, or to the test's stderr with CERTSMITH_TEST_OPERATOR_LOGS set);
/// its exit time is recorded; it is killed when dropped.
pub struct OperatorProcess {
    child: Arc<std::sync::Mutex<std::process::Child>>,
    pid: u32,
    pub http: std::net::SocketAddr,
    exited: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How to start an [`OperatorProcess`].
pub struct OperatorCommand {
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: Option<std::path::PathBuf>,
}

impl OperatorCommand {
    /// Set an environment variable (KUBECONFIG defaults to the test environment's).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Append flags.
    pub fn args<S: AsRef<str>>(mut self, extra: &[S]) -> Self {
        self.args
            .extend(extra.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Write the operator's log (stderr) to `path`.
    pub fn log_to(mut self, path: &std::path::Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    pub fn start(self) -> OperatorProcess {
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certsmith"));
        command
            .args(
                self.args
                    .iter()
                    .filter(|a| !a.starts_with("--metrics-addr")),
            )
            .arg(format!("--metrics-addr={http}"))
            .env("KUBECONFIG", env("KUBECONFIG"))
            .stdout(std::process::Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let stderr = match &self.log {
            Some(path) => std::fs::File::create(path)
                .map(std::process::Stdio::from)
                .expect("operator log file"),
            None if std::env::var_os("CERTSMITH_TEST_OPERATOR_LOGS").is_some() => {
                std::process::Stdio::inherit()
            }
            None => std::process::Stdio::null(),
        };
        let child = command
            .stderr(stderr)
            .spawn()
            .expect("start the operator binary");
        let pid = child.id();
        let child = Arc::new(std::sync::Mutex::new(child));
        let exited = Arc::new(std::sync::Mutex::new(None));
        // Watch for its exit (every 10 ms), so tests can tell when it stopped.
        std::thread::spawn({
            let (child, exited) = (child.clone(), exited.clone());
            move || {
                loop {
                    let done = match child.lock() {
                        Ok(mut c) => !matches!(c.try_wait(), Ok(None)),
                        Err(_) => true,
                    };
                    if done {
                        if let Ok(mut e) = exited.lock() {
                            *e = Some(std::time::Instant::now());
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        OperatorProcess {
            child,
            pid,
            http,
            exited,
        }
    }
}

impl OperatorProcess {
    /// `certsmith controller` watching `namespace`, which is also its cluster-resource
    /// namespace and names the ClusterIssuers it serves (`test=<namespace>`), logging text.
    pub fn scoped(namespace: &str) -> OperatorCommand {
        Self::command([
            "controller".to_string(),
            format!("--namespace={namespace}"),
            format!("--cluster-resource-namespace={namespace}"),
            format!("--cluster-issuer-selector=test={namespace}"),
            format!("--trust-bundle-selector=test={namespace}"),
            "--log-format=text".to_string(),
        ])
    }

    /// Exactly these arguments (but the metrics address, always a free port).
    pub fn command(args: impl IntoIterator<Item = String>) -> OperatorCommand {
        OperatorCommand {
            args: args.into_iter().collect(),
            env: Vec::new(),
            log: None,
        }
    }

    /// [`OperatorProcess::scoped`] with `extra` flags, started.
    pub fn start(namespace: &str, extra: &[&str]) -> Self {
        Self::scoped(namespace).args(extra).start()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When the process was seen to have exited, if it has.
    pub fn exited_at(&self) -> Option<std::time::Instant> {
        self.exited.lock().ok().and_then(|e| *e)
    }

    /// `kill -<signal> <pid>`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid);
    }

    /// Kill it now (SIGKILL) and wait for it.
    pub fn kill(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait until /readyz answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.http);
        let http = reqwest::Client::new();
        wait_for("the operator's /readyz", WAIT, || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let status = http.get(&url).send().await.ok()?.status();
                status.is_success().then_some(())
            }
        })
        .await;
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----- Acting as a kubelet (PodCertificateRequests) -----

/// A client with the test environment's kubelet credentials: `system:node:<node>` in
/// `system:nodes`, judged by the Node authorizer and NodeRestriction admission.
pub async fn node_client() -> Client {
    let kubeconfig = Kubeconfig::read_from(env("CERTSMITH_TESTENV_NODE_KUBECONFIG"))
        .expect("read the node kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("node kubeconfig");
    Client::try_from(config).expect("node client")
}

/// The environment's Node (created on first use; parallel tests share it) and its UID.
pub async fn node(admin: &Client) -> (String, String) {
    use k8s_openapi::api::core::v1::Node;
    let name = env("CERTSMITH_TESTENV_NODE_NAME");
    let nodes: Api<Node> = Api::all(admin.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create Node {name}: {e}"),
    }
    let uid = nodes
        .get(&name)
        .await
        .expect("get Node")
        .metadata
        .uid
        .expect("node uid");
    (name, uid)
}

/// A ServiceAccount `sa` and a Pod `name` running as it, bound to the environment's Node (as
/// the scheduler would bind it); returns the Pod's and the ServiceAccount's UIDs.
pub async fn pod_on_node(ns: &TestNamespace, name: &str, sa: &str, node: &str) -> (String, String) {
    use k8s_openapi::api::core::v1::Pod;
    let account = ns
        .apply::<ServiceAccount>(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}),
        )
        .await;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "serviceAccountName": sa, "automountServiceAccountToken": false,
                 "containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }))
    .expect("pod");
    let pods = ns.api::<Pod>();
    // The ServiceAccount admission plugin may not see a ServiceAccount created a moment ago.
    let created = wait_for(&format!("Pod {name} created"), WAIT, || {
        let (pods, pod) = (pods.clone(), pod.clone());
        async move { pods.create(&PostParams::default(), &pod).await.ok() }
    })
    .await;
    (
        created.metadata.uid.expect("pod uid"),
        account.metadata.uid.expect("service account uid"),
    )
}

/// A Pod `pod` running as `sa` on `node` (name, UID), and a request for its certificate made
/// as that node's kubelet makes it: a new ECDSA P-256 key, the proof of possession (the pod
/// UID signed with it), `max_expiration` and `annotations`. Returns the request's name and
/// the key's PKIX public key.
pub async fn request_as_node(
    ns: &TestNamespace,
    node: &(String, String),
    pod: &str,
    sa: &str,
    signer: &str,
    max_expiration: i32,
    annotations: Option<Value>,
) -> (String, Vec<u8>) {
    use certsmith::api::pod_certificate::{PodCertificateRequest, PodCertificateRequestSpec};
    use k8s_openapi::ByteString;
    use rcgen::SigningKey;
    let (pod_uid, sa_uid) = pod_on_node(ns, pod, sa, &node.0).await;
    let key = certsmith::pki::keys::PrivateKey::generate(certsmith::api::KeyAlgorithm::Ecdsa, 256)
        .expect("key");
    let proof = key
        .pair()
        .sign(pod_uid.as_bytes())
        .expect("proof of possession");
    let spki = key.public_key_info();
    let name = format!("{pod}-req");
    let pcr = PodCertificateRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.name.clone()),
            ..Default::default()
        },
        spec: PodCertificateRequestSpec {
            signer_name: signer.into(),
            pod_name: pod.into(),
            pod_uid,
            service_account_name: sa.into(),
            service_account_uid: sa_uid,
            node_name: node.0.clone(),
            node_uid: node.1.clone(),
            max_expiration_seconds: Some(max_expiration),
            pkix_public_key: Some(ByteString(spki.clone())),
            proof_of_possession: Some(ByteString(proof)),
            unverified_user_annotations: annotations
                .map(|a| serde_json::from_value(a).expect("annotations")),
            ..Default::default()
        },
        status: None,
    };
    let as_node: Api<PodCertificateRequest> = Api::namespaced(node_client().await, &ns.name);
    // NodeRestriction reads the Pod, Node and ServiceAccount from informers, and answers 500
    // ("retries may succeed") until they have seen ones created a moment ago.
    wait_for(&format!("the node to create {name}"), WAIT, || {
        let (as_node, pcr) = (as_node.clone(), pcr.clone());
        async move {
            match as_node.create(&PostParams::default(), &pcr).await {
                Ok(_) => Some(()),
                Err(kube::Error::Api(s)) if s.code == 500 => None,
                Err(e) => panic!("the node could not create the PodCertificateRequest: {e}"),
            }
        }
    })
    .await;
    (name, spki)
}

/// A ValidatingAdmissionPolicy refusing every write of `resource` in one namespace.
pub struct Frozen {
    client: Client,
    name: String,
}

impl Frozen {
    pub async fn new(ns: &TestNamespace, resource: &str) -> Self {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let name = format!("freeze-{resource}-{}", ns.name);
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": [resource]}]},
                "validations": [{"expression": "false", "message": format!("{resource} are frozen in this namespace")}],
            },
        }))
        .expect("policy");
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name}}}},
        }))
        .expect("binding");
        let pp = PostParams::default();
        Api::<ValidatingAdmissionPolicy>::all(ns.client.clone())
            .create(&pp, &policy)
            .await
            .expect("create policy");
        Api::<ValidatingAdmissionPolicyBinding>::all(ns.client.clone())
            .create(&pp, &binding)
            .await
            .expect("create binding");
        // A probe of the frozen kind: refused once the policy is in force.
        let (kind, extra) = match resource {
            "secrets" => ("Secret", json!({"stringData": {"a": "b"}})),
            "configmaps" => ("ConfigMap", json!({})),
            other => panic!("Frozen: no probe for {other}"),
        };
        let gvk = kube::api::GroupVersionKind::gvk("", "v1", kind);
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            ns.client.clone(),
            &ns.name,
            &kube::api::ApiResource::from_gvk(&gvk),
        );
        wait_for("the admission policy to refuse writes", WAIT, || {
            let api = api.clone();
            let mut body =
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"generateName": "probe-"}});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            async move {
                let probe: kube::api::DynamicObject = serde_json::from_value(body).ok()?;
                match api.create(&PostParams::default(), &probe).await {
                    Err(kube::Error::Api(e)) if e.message.contains("frozen") => Some(()),
                    Ok(c) => {
                        let _ = api
                            .delete(&kube::ResourceExt::name_any(&c), &DeleteParams::default())
                            .await;
                        None
                    }
                    Err(_) => None,
                }
            }
        })
        .await;
        Frozen {
            client: ns.client.clone(),
            name,
        }
    }

    pub async fn thaw(self) {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let dp = DeleteParams::default();
        let _ = Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
            .delete(&self.name, &dp)
            .await;
        let _ = Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
            .delete(&self.name, &dp)
            .await;
    }
}
