//! Two operator processes with leader election: one writes; when it is killed, the other takes
//! over within the lease duration, keeps issuing, and re-issues nothing that is fine. When the
//! leader is cut off from the API server (a stalled connection) or frozen (SIGSTOP) while it
//! issues, it stops writing before the standby takes over, and every Secret is written once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use certsmith::api::{Certificate, Issuer};

use crate::support::{
    OperatorProcess, TestNamespace, certificate, env, install_crds, wait_for, wait_ready,
};

/// Long enough that a replica on a machine busy with the rest of the suite still renews within its
/// deadline (two thirds of it).
const LEASE: Duration = Duration::from_secs(10);
const LEASE_NAME: &str = "certsmith-controller";

/// One `certsmith controller --leader-elect` process; its log goes to a file.
struct Replica {
    name: &'static str,
    process: OperatorProcess,
    log: PathBuf,
}

impl Replica {
    /// Start a replica in `ns` whose API server is the one `kubeconfig` names.
    fn start(name: &'static str, ns: &str, kubeconfig: &Path, logs: &Path) -> Replica {
        let log = logs.join(format!("{name}.log"));
        let lease = format!("{}s", LEASE.as_secs());
        let process = OperatorProcess::scoped(ns)
            .args(&[
                "--leader-elect",
                "--leader-election-namespace",
                ns,
                "--leader-election-lease-duration",
                &lease,
            ])
            .env("POD_NAME", name)
            .env("KUBECONFIG", kubeconfig.display().to_string())
            .env("RUST_LOG", "info,kube=warn")
            .log_to(&log)
            .start();
        Replica { name, process, log }
    }

    /// When the process was seen to have exited, if it has.
    fn exited_at(&self) -> Option<Instant> {
        self.process.exited_at()
    }

    /// `kill -<signal> <pid>`.
    fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// The last `lines` lines of its log that mention the lease.
    fn lease_log(&self, lines: usize) -> String {
        let text = match std::fs::read(&self.log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return format!("({}: {e})", self.log.display()),
        };
        let all: Vec<&str> = text.lines().filter(|l| l.contains("lease")).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    async fn wait_ready(&self) {
        self.process.wait_ready().await;
    }
}

/// The test environment's kubeconfig.
fn kubeconfig() -> PathBuf {
    PathBuf::from(env("KUBECONFIG"))
}

fn replica(name: &'static str, ns: &str, logs: &Path) -> Replica {
    Replica::start(name, ns, &kubeconfig(), logs)
}

async fn holder(ns: &TestNamespace) -> Option<String> {
    ns.api::<Lease>()
        .get_opt(LEASE_NAME)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn the_standby_takes_over_within_the_lease_and_reissues_nothing() {
    let ns = TestNamespace::new("leader").await;
    install_crds(&ns.client).await;
    let logs = tempfile::tempdir().expect("log dir");
    let mut replicas = vec![
        replica("replica-a", &ns.name, logs.path()),
        replica("replica-b", &ns.name, logs.path()),
    ];
    let leader = wait_for("a leader", Duration::from_secs(30), || holder(&ns)).await;

    // The standby is alive and ready (it serves, it just does not write).
    let standby = replicas.iter().find(|r| r.name != leader).expect("standby");
    let http = reqwest::Client::new();
    for path in ["healthz", "readyz"] {
        let url = format!("http://{}/{path}", standby.process.http);
        let status = wait_for(&format!("standby {path}"), Duration::from_secs(10), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16())
            }
        })
        .await;
        assert_eq!(status, 200, "standby {path}");
    }

    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    for name in ["a", "b", "c"] {
        certificate(&ns, name, json!({"secretName": format!("{name}-tls"), "issuerRef": {"name": "selfsigned"}, "dnsNames": [format!("{name}.example")]})).await;
    }
    for name in ["a", "b", "c"] {
        wait_ready(&ns, name).await;
    }

    // Kill the leader without letting it release the lease.
    let index = replicas
        .iter()
        .position(|r| r.name == leader)
        .expect("leader is one of ours");
    let killed = Instant::now();
    drop(replicas.remove(index));
    let survivor = replicas[0].name;
    wait_for(
        "the standby to take the lease",
        Duration::from_secs(30),
        || {
            let ns = &ns;
            async move { (holder(ns).await.as_deref() == Some(survivor)).then_some(()) }
        },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!(
        "failover: {survivor} took over {takeover:?} after the leader was killed (lease {LEASE:?})"
    );
    assert!(
        takeover <= LEASE + LEASE / 3 + Duration::from_secs(2),
        "takeover took {takeover:?}"
    );

    // The new leader keeps issuing, and re-issues nothing that is fine.
    certificate(&ns, "d", json!({"secretName": "d-tls", "issuerRef": {"name": "selfsigned"}, "dnsNames": ["d.example"]})).await;
    wait_ready(&ns, "d").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["a", "b", "c", "d"] {
        let cert = ns.api::<Certificate>().get(name).await.expect("cert");
        assert_eq!(
            cert.status.and_then(|s| s.revision),
            Some(1),
            "{name} was issued once"
        );
    }
    drop(replicas);
    ns.delete().await;
}

// ----- A leader cut off from the API server, or frozen, while it issues -----

/// A TCP proxy on 127.0.0.1 in front of `upstream`. `stall` stops forwarding in both
/// directions while every connection stays open and nothing read is dropped: what either side
/// sends meanwhile waits (in the proxy or in the kernel's socket buffers) and is delivered
/// after `resume`. TLS passes through unchanged.
struct StallProxy {
    addr: std::net::SocketAddr,
    stalled: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StallProxy {
    async fn start(upstream: String) -> StallProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listens");
        let addr = listener.local_addr().expect("proxy address");
        let (stalled, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                let Ok(upstream) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = downstream.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (down_read, down_write) = downstream.into_split();
                let (up_read, up_write) = upstream.into_split();
                tokio::spawn(pump(down_read, up_write, watch.clone()));
                tokio::spawn(pump(up_read, down_write, watch.clone()));
            }
        });
        StallProxy {
            addr,
            stalled,
            task,
        }
    }

    fn stall(&self) {
        self.stalled.send_replace(true);
    }

    fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copy `from` to `to`, reading and writing nothing while stalled; an end of stream is passed
/// on (after a stall, like the bytes before it).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = from.read(&mut buf).await.unwrap_or(0);
        // A read that completed as the stall began is held, not forwarded, until it ends.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The `host:port` of the environment's API server.
fn upstream() -> String {
    let text = std::fs::read_to_string(kubeconfig()).expect("read KUBECONFIG");
    let config: serde_json::Value = certsmith::yaml::from_str(&text).expect("kubeconfig yaml");
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("cluster server");
    server
        .trim_start_matches("https://")
        .split('/')
        .next()
        .expect("server host")
        .to_string()
}

/// A copy of the environment's kubeconfig whose server is `addr` (the same TLS checks apply:
/// the serving certificate covers 127.0.0.1).
fn kubeconfig_via(addr: std::net::SocketAddr, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig()).expect("read KUBECONFIG");
    let mut config: serde_json::Value = certsmith::yaml::from_str(&text).expect("kubeconfig yaml");
    for cluster in config["clusters"]
        .as_array_mut()
        .expect("kubeconfig clusters")
    {
        cluster["cluster"]["server"] = serde_json::Value::String(format!("https://{addr}"));
    }
    let path = dir.join("kubeconfig-via-proxy");
    std::fs::write(
        &path,
        certsmith::yaml::to_string(&config).expect("kubeconfig yaml"),
    )
    .expect("write kubeconfig");
    path
}

/// One change seen by a watch, when the test saw it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    kind: &'static str,
    name: String,
    resource_version: String,
    /// The Lease's holder (Leases only).
    holder: Option<String>,
}

/// Records every ADDED, MODIFIED and DELETED event of one kind in a namespace, from the
/// moment it starts (it resumes from the last resourceVersion if the server ends the watch).
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Describe {
    fn holder(&self) -> Option<String> {
        None
    }
}

impl Describe for Secret {}

impl Describe for Lease {
    fn holder(&self) -> Option<String> {
        self.spec.as_ref()?.holder_identity.clone()
    }
}

impl Recorder {
    async fn start<K>(api: Api<K>, labels: Option<&str>) -> Recorder
    where
        K: kube::Resource
            + Describe
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + 'static,
    {
        let mut list = ListParams::default();
        let mut params = WatchParams::default().timeout(120);
        if let Some(labels) = labels {
            list = list.labels(labels);
            params = params.labels(labels);
        }
        let mut version = api
            .list_metadata(&list)
            .await
            .expect("list before watching")
            .metadata
            .resource_version
            .expect("list resourceVersion");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let error = Arc::new(Mutex::new(None));
        let task = tokio::spawn({
            let (seen, error) = (seen.clone(), error.clone());
            async move {
                let fail = |e: String| {
                    if let Ok(mut slot) = error.lock() {
                        *slot = Some(e);
                    }
                };
                loop {
                    let stream = match api.watch(&params, &version).await {
                        Ok(s) => s,
                        Err(e) => return fail(format!("watch: {e}")),
                    };
                    let mut stream = std::pin::pin!(stream);
                    loop {
                        let event = match stream.try_next().await {
                            Ok(Some(event)) => event,
                            Ok(None) => break,
                            Err(e) => return fail(format!("watch stream: {e}")),
                        };
                        let (kind, object) = match event {
                            WatchEvent::Added(o) => ("ADDED", o),
                            WatchEvent::Modified(o) => ("MODIFIED", o),
                            WatchEvent::Deleted(o) => ("DELETED", o),
                            WatchEvent::Bookmark(b) => {
                                version = b.metadata.resource_version;
                                continue;
                            }
                            WatchEvent::Error(s) => return fail(format!("watch error: {s:?}")),
                        };
                        let meta = object.meta();
                        version = meta.resource_version.clone().unwrap_or_default();
                        let entry = Seen {
                            at: Instant::now(),
                            kind,
                            name: meta.name.clone().unwrap_or_default(),
                            resource_version: version.clone(),
                            holder: object.holder(),
                        };
                        if let Ok(mut seen) = seen.lock() {
                            seen.push(entry);
                        }
                    }
                }
            }
        });
        Recorder { seen, error, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("recorder").clone()
    }

    fn check(&self) {
        if let Some(e) = self.error.lock().expect("recorder").clone() {
            panic!("the test's watch failed, so its counts are incomplete: {e}");
        }
    }

    /// ADDED and MODIFIED events: writes that changed an object.
    fn writes(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.kind != "DELETED")
            .collect()
    }

    /// When the Lease was first seen held by `who` after `after`.
    fn held_by(&self, who: &str, after: Instant) -> Option<Instant> {
        self.seen()
            .into_iter()
            .find(|s| s.at >= after && s.holder.as_deref() == Some(who))
            .map(|s| s.at)
    }

    /// Wait (polling every 20 ms) until `check` holds for what has been seen.
    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Seen]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            self.check();
            if let Some(v) = check(&self.seen()) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A namespace with the CRDs, a self-signed Issuer, and watches on its Lease and its
/// managed Secrets, started before any replica.
struct Scene {
    ns: TestNamespace,
    logs: tempfile::TempDir,
    leases: Recorder,
    secrets: Recorder,
    t0: Instant,
}

impl Scene {
    async fn new(prefix: &str) -> Scene {
        let ns = TestNamespace::new(prefix).await;
        install_crds(&ns.client).await;
        ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
        let leases = Recorder::start(ns.api::<Lease>(), None).await;
        let managed = format!("{}=true", certsmith::secret::MANAGED_LABEL);
        let secrets = Recorder::start(ns.api::<Secret>(), Some(&managed)).await;
        Scene {
            ns,
            logs: tempfile::tempdir().expect("log dir"),
            leases,
            secrets,
            t0: Instant::now(),
        }
    }

    /// Seconds since the scene started, for the timeline.
    fn at(&self, t: Instant) -> String {
        format!(
            "{:7.3} s",
            t.saturating_duration_since(self.t0).as_secs_f64()
        )
    }

    async fn wait_holder(&self, who: &str, after: Instant, timeout: Duration) -> Instant {
        self.leases
            .wait_until(&format!("{who} to hold the lease"), timeout, |seen| {
                seen.iter()
                    .find(|s| s.at >= after && s.holder.as_deref() == Some(who))
                    .map(|s| s.at)
            })
            .await
    }

    /// Create `n` Certificates c0..c{n-1}, eight at a time, in the background.
    fn create_certificates(&self, n: usize) -> tokio::task::JoinHandle<()> {
        let api = self.ns.api::<Certificate>();
        tokio::spawn(async move {
            futures::stream::iter(0..n)
                .for_each_concurrent(8, |i| {
                    let api = api.clone();
                    async move {
                        let cert: Certificate = serde_json::from_value(json!({
                            "apiVersion": "certsmith.dev/v1alpha1",
                            "kind": "Certificate",
                            "metadata": {"name": format!("c{i}")},
                            "spec": {
                                "secretName": format!("c{i}-tls"),
                                "issuerRef": {"name": "selfsigned"},
                                "dnsNames": [format!("c{i}.example")],
                            },
                        }))
                        .expect("certificate");
                        api.create(&PostParams::default(), &cert)
                            .await
                            .expect("create certificate");
                    }
                })
                .await;
        })
    }

    /// Wait until at least `n` managed Secrets have been written.
    async fn wait_secrets(&self, n: usize, timeout: Duration) -> Instant {
        self.secrets
            .wait_until(&format!("{n} Secrets written"), timeout, |seen| {
                let names: std::collections::BTreeSet<&str> = seen
                    .iter()
                    .filter(|s| s.kind != "DELETED")
                    .map(|s| s.name.as_str())
                    .collect();
                (names.len() >= n).then(Instant::now)
            })
            .await
    }

    /// Wait until all `n` Certificates are Ready for their generation, then until no Secret
    /// has been written for five seconds (so late writes are counted).
    async fn wait_all_ready(&self, n: usize) -> Instant {
        let api = self.ns.api::<Certificate>();
        let ready = wait_for(
            &format!("{n} Certificates Ready"),
            Duration::from_secs(300),
            || {
                let api = api.clone();
                async move {
                    let list = api.list(&ListParams::default()).await.ok()?;
                    let ready = list
                        .items
                        .iter()
                        .filter(|c| {
                            crate::support::condition(c, "Ready")
                                .is_some_and(|r| r.status == "True")
                                && c.status.as_ref().and_then(|s| s.observed_generation)
                                    == c.metadata.generation
                        })
                        .count();
                    (ready == n).then(Instant::now)
                }
            },
        )
        .await;
        let quiet = Duration::from_secs(5);
        self.secrets
            .wait_until(
                "no Secret write for 5 s",
                Duration::from_secs(120),
                |seen| {
                    let last = seen.last().map_or(ready, |s| s.at.max(ready));
                    (last.elapsed() >= quiet).then_some(())
                },
            )
            .await;
        ready
    }

    /// Whether every Certificate's Secret was written exactly once and every Certificate is
    /// at revision 1; either way, a summary (printed by the caller before it asserts).
    async fn issued_once(&self, n: usize) -> (bool, String) {
        self.secrets.check();
        let writes = self.secrets.writes();
        let mut per_secret: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
        for w in &writes {
            per_secret.entry(w.name.as_str()).or_default().push(w);
        }
        let twice: Vec<String> = per_secret
            .iter()
            .filter(|(_, ws)| ws.len() != 1)
            .map(|(name, ws)| {
                let events: Vec<String> = ws
                    .iter()
                    .map(|w| format!("{} {} rv {}", self.at(w.at), w.kind, w.resource_version))
                    .collect();
                format!("{name}: {}", events.join(", "))
            })
            .collect();
        let certs = self
            .ns
            .api::<Certificate>()
            .list(&ListParams::default())
            .await
            .expect("list certificates");
        let not_first: Vec<String> = certs
            .items
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.revision) != Some(1))
            .map(|c| {
                format!(
                    "{}: revision {:?}",
                    c.metadata.name.clone().unwrap_or_default(),
                    c.status.as_ref().and_then(|s| s.revision)
                )
            })
            .collect();
        let ok = twice.is_empty()
            && not_first.is_empty()
            && per_secret.len() == n
            && writes.len() == n
            && certs.items.len() == n;
        let summary = format!(
            "{} Secret writes for {n} Certificates ({} Secrets); written more than once: {}; \
             not at revision 1: {}",
            writes.len(),
            per_secret.len(),
            if twice.is_empty() {
                "none".to_string()
            } else {
                format!("{} [{}]", twice.len(), twice.join("; "))
            },
            if not_first.is_empty() {
                "none".to_string()
            } else {
                not_first.join(", ")
            },
        );
        (ok, summary)
    }

    /// Print the events in the order they happened, in seconds since the scene started.
    fn timeline(&self, title: &str, mut events: Vec<(Instant, String)>) {
        events.sort_by_key(|(t, _)| *t);
        let lines: Vec<String> = events
            .iter()
            .map(|(t, what)| format!("  {} {what}", self.at(*t)))
            .collect();
        eprintln!("{title}:\n{}", lines.join("\n"));
    }

    /// Secret writes seen in `[from, to)`.
    fn writes_between(&self, from: Instant, to: Instant) -> Vec<Seen> {
        self.secrets
            .writes()
            .into_iter()
            .filter(|w| w.at >= from && w.at < to)
            .collect()
    }
}

/// The leader's connection to the API server stalls (a TCP proxy stops forwarding, keeping
/// connections open) while it issues 200 Certificates. It must stop writing — here: exit —
/// before the standby takes the lease; after the stall ends, every Secret has been written
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_leader_stops_before_the_standby_takes_over() {
    const CERTS: usize = 200;
    let scene = Scene::new("leader-stall").await;
    let ns = &scene.ns.name;
    let proxy = StallProxy::start(upstream()).await;
    let via_proxy = kubeconfig_via(proxy.addr, scene.logs.path());

    let a = Replica::start("replica-a", ns, &via_proxy, scene.logs.path());
    let a_leads = scene
        .wait_holder("replica-a", scene.t0, Duration::from_secs(60))
        .await;
    let b = replica("replica-b", ns, scene.logs.path());
    b.wait_ready().await;

    let creating = scene.create_certificates(CERTS);
    scene
        .wait_secrets(CERTS / 3, Duration::from_secs(120))
        .await;
    proxy.stall();
    let stalled = Instant::now();
    let written_at_stall = scene.secrets.writes().len();
    let b_leads = scene
        .wait_holder("replica-b", stalled, Duration::from_secs(60))
        .await;
    // Stall for well over a lease duration, and until the standby has taken over.
    let until = stalled + 3 * LEASE;
    tokio::time::sleep_until(until.into()).await;
    proxy.resume();
    let resumed = Instant::now();
    creating.await.expect("certificates created");
    let all_ready = scene.wait_all_ready(CERTS).await;

    let a_exit = a.exited_at();
    let far = Instant::now() + Duration::from_secs(3600);
    let during = scene.writes_between(stalled, resumed);
    let after = scene.writes_between(resumed, far);
    let mut events = vec![
        (a_leads, "replica-a holds the lease".to_string()),
        (
            stalled,
            format!("replica-a's connection stalled ({written_at_stall} Secrets written)"),
        ),
        (b_leads, "replica-b took over (Lease watch)".to_string()),
        (
            resumed,
            format!(
                "stall ended (Secret writes during the stall: {} before replica-b took over, \
                 from requests already past the proxy; {} after)",
                during.iter().filter(|w| w.at < b_leads).count(),
                during.iter().filter(|w| w.at >= b_leads).count(),
            ),
        ),
        (
            all_ready,
            format!(
                "all Certificates Ready ({} Secret writes after the stall)",
                after.len()
            ),
        ),
    ];
    if let Some(first) = during.iter().find(|w| w.at >= b_leads) {
        events.push((first.at, "first Secret write by replica-b".into()));
    }
    match a_exit {
        Some(t) => events.push((t, "replica-a exited".into())),
        None => events.push((Instant::now(), "replica-a still running".into())),
    }
    scene.timeline(
        &format!("stalled-leader timeline (lease {LEASE:?}, {CERTS} Certificates)"),
        events,
    );
    let (issued_once, writes) = scene.issued_once(CERTS).await;
    eprintln!("writes: {writes}");
    eprintln!("replica-a's log on the lease:\n{}", a.lease_log(3));
    assert!(
        a_exit.is_some_and(|t| t < b_leads),
        "replica-a must stop writing (exit) before replica-b takes over: it {}",
        a_exit.map_or("is still running".to_string(), |t| format!(
            "exited at {} but replica-b took over at {}",
            scene.at(t),
            scene.at(b_leads)
        ))
    );
    assert!(
        scene.leases.held_by("replica-a", b_leads).is_none(),
        "replica-a took the lease back"
    );
    assert!(
        issued_once,
        "every Certificate's Secret must be written exactly once: {writes}"
    );
    drop((a, b, proxy));
    scene.ns.delete().await;
}

/// The measured scenario: the leader is frozen (SIGSTOP) for well over a lease duration while
/// it issues 300 Certificates, the standby takes over, then the leader is resumed (SIGCONT).
/// Nothing it decided before the pause may reach a Secret: each is written exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_writes_nothing_after_it_resumes() {
    const CERTS: usize = 300;
    let scene = Scene::new("leader-stop").await;
    let ns = &scene.ns.name;
    let a = replica("replica-a", ns, scene.logs.path());
    let a_leads = scene
        .wait_holder("replica-a", scene.t0, Duration::from_secs(60))
        .await;
    let b = replica("replica-b", ns, scene.logs.path());
    b.wait_ready().await;

    let creating = scene.create_certificates(CERTS);
    scene
        .wait_secrets(CERTS / 3, Duration::from_secs(120))
        .await;
    a.signal("STOP");
    let stopped = Instant::now();
    let written_at_stop = scene.secrets.writes().len();
    let b_leads = scene
        .wait_holder("replica-b", stopped, Duration::from_secs(60))
        .await;
    tokio::time::sleep_until((stopped + 3 * LEASE).into()).await;
    a.signal("CONT");
    let continued = Instant::now();
    creating.await.expect("certificates created");
    let all_ready = scene.wait_all_ready(CERTS).await;
    let a_exit = a.exited_at();
    let far = Instant::now() + Duration::from_secs(3600);
    let frozen = scene.writes_between(stopped, continued);
    let late = scene.writes_between(continued, far);
    let mut events = vec![
        (a_leads, "replica-a holds the lease".to_string()),
        (
            stopped,
            format!("replica-a SIGSTOPped ({written_at_stop} Secrets written)"),
        ),
        (b_leads, "replica-b took over (Lease watch)".to_string()),
        (continued, "replica-a SIGCONTinued".to_string()),
        (
            all_ready,
            format!(
                "all Certificates Ready ({} Secret writes after SIGCONT)",
                late.len()
            ),
        ),
    ];
    if let Some(first) = frozen.iter().find(|w| w.at >= b_leads) {
        events.push((first.at, "first Secret write by replica-b".into()));
    }
    match a_exit {
        Some(t) => events.push((t, "replica-a exited".into())),
        None => events.push((Instant::now(), "replica-a still running".into())),
    }
    scene.timeline(
        &format!("frozen-leader timeline (lease {LEASE:?}, {CERTS} Certificates)"),
        events,
    );
    let (issued_once, writes) = scene.issued_once(CERTS).await;
    eprintln!("writes: {writes}");
    eprintln!("replica-a's log on the lease:\n{}", a.lease_log(3));
    assert!(
        scene.leases.held_by("replica-a", b_leads).is_none(),
        "replica-a took the lease back"
    );
    assert!(
        issued_once,
        "every Certificate's Secret must be written exactly once: {writes}"
    );
    drop((a, b));
    scene.ns.delete().await;
}
