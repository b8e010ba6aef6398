//! Two operator processes with leader election: one writes; when it is killed, the other takes
//! over within the lease duration, keeps issuing, and re-issues nothing that is fine.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;

use certsmith::api::{Certificate, Issuer};

use crate::support::{TestNamespace, certificate, env, install_crds, wait_for, wait_ready};

const LEASE: Duration = Duration::from_secs(6);

struct Replica {
    name: &'static str,
    child: Child,
    http: std::net::SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(name: &'static str, ns: &str) -> Replica {
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let child = Command::new(env!("CARGO_BIN_EXE_certsmith"))
        .args([
            "controller",
            "--leader-elect",
            "--leader-election-namespace",
            ns,
            "--leader-election-lease-duration",
            "6s",
        ])
        .args([
            "--namespace",
            ns,
            "--cluster-resource-namespace",
            ns,
            "--cluster-issuer-selector",
            &format!("test={ns}"),
        ])
        .args(["--metrics-addr", &http.to_string(), "--log-format", "text"])
        .env("POD_NAME", name)
        .env("KUBECONFIG", env("KUBECONFIG"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start replica");
    Replica { name, child, http }
}

async fn holder(ns: &TestNamespace) -> Option<String> {
    ns.api::<Lease>()
        .get_opt("certsmith-controller")
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
    let mut replicas = vec![
        replica("replica-a", &ns.name),
        replica("replica-b", &ns.name),
    ];
    let leader = wait_for("a leader", Duration::from_secs(30), || holder(&ns)).await;

    // The standby is alive and ready (it serves, it just does not write).
    let standby = replicas.iter().find(|r| r.name != leader).expect("standby");
    let http = reqwest::Client::new();
    for path in ["healthz", "readyz"] {
        let url = format!("http://{}/{path}", standby.http);
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
