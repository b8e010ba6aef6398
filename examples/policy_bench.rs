//! The identity policy's cost per Certificate: `cargo run --release --example policy_bench`.
//!
//! Times `policy::evaluate` (pattern parsing included: the evaluator keeps no compiled state)
//! for a typical SPIFFE + DNS policy and Certificate, and for a large one (64 patterns per
//! kind, 100 names per kind, the CRD's limits).

use std::hint::black_box;
use std::time::{Duration, Instant};

use certsmith::api::policy::Policy;
use certsmith::api::{CertificateSpec, IssuerKind};
use certsmith::policy::{self, Request};
use serde_json::json;

fn time(label: &str, iterations: u32, mut f: impl FnMut() -> bool) -> Duration {
    // Warm up, then take the best of five runs (the least disturbed by the machine).
    for _ in 0..iterations / 10 {
        black_box(f());
    }
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(f());
        }
        best = best.min(start.elapsed() / iterations);
    }
    println!("{label:<58} {:>9.0} ns per Certificate", best.as_nanos());
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let typical: Policy = serde_json::from_value(json!({
        "namespaces": {"matchNames": ["agents", "payments", "orders"]},
        "allowed": {
            "commonName": ["{name}"],
            "dnsNames": ["{name}.{namespace}.svc", "{name}.{namespace}.svc.cluster.local"],
        },
        "spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true},
        "maxDuration": "24h",
        "keyAlgorithms": [{"algorithm": "ECDSA", "sizes": [256, 384]}, {"algorithm": "Ed25519"}],
        "usages": ["digital signature", "server auth", "client auth"],
    }))?;
    let spec: CertificateSpec = serde_json::from_value(json!({
        "secretName": "orders-agent-tls",
        "issuerRef": {"name": "agents-ca", "kind": "ClusterIssuer"},
        "commonName": "orders-agent",
        "dnsNames": ["orders-agent.agents.svc", "orders-agent.agents.svc.cluster.local"],
        "uris": ["spiffe://cluster.local/ns/agents/sa/orders-agent"],
        "duration": "5m",
    }))?;
    let request = Request {
        namespace: "agents",
        name: "orders-agent",
        spec: &spec,
        issuer_kind: IssuerKind::ClusterIssuer,
        in_cluster_resource_namespace: false,
        namespace_labels: None,
        service_account_exists: Some(true),
    };
    if let Err(denial) = policy::evaluate(Some(&typical), &request) {
        return Err(format!("the typical Certificate is denied: {denial}").into());
    }
    time(
        "typical: SPIFFE + DNS policy, CN + 2 DNS + SVID (allowed)",
        200_000,
        || policy::evaluate(black_box(Some(&typical)), black_box(&request)).is_ok(),
    );
    let foreign: CertificateSpec = serde_json::from_value(json!({
        "secretName": "x", "issuerRef": {"name": "agents-ca", "kind": "ClusterIssuer"},
        "commonName": "orders-agent",
        "dnsNames": ["orders-agent.agents.svc"],
        "uris": ["spiffe://cluster.local/ns/payments/sa/billing"],
        "duration": "5m",
    }))?;
    let denied = Request {
        spec: &foreign,
        ..request
    };
    time(
        "typical policy, foreign SVID (denied, message built)",
        200_000,
        || policy::evaluate(black_box(Some(&typical)), black_box(&denied)).is_err(),
    );
    time("no policy (today's behaviour)", 1_000_000, || {
        policy::evaluate(black_box(None), black_box(&request)).is_ok()
    });

    // The CRD's limits: 64 patterns per kind, 100 names per kind; every name matches only
    // the last pattern, so every pattern is tried for every name.
    let patterns: Vec<String> = (0..64)
        .map(|i| format!("*-{i}.{{namespace}}.svc.cluster.local"))
        .collect();
    let large: Policy = serde_json::from_value(json!({
        "allowed": {"dnsNames": patterns, "uris": (0..64).map(|i| format!("https://{{namespace}}.example/p{i}/*")).collect::<Vec<_>>()},
    }))?;
    let names: Vec<String> = (0..100)
        .map(|i| format!("w{i}-63.agents.svc.cluster.local"))
        .collect();
    let uris: Vec<String> = (0..100)
        .map(|i| format!("https://agents.example/p63/w{i}"))
        .collect();
    let big: CertificateSpec = serde_json::from_value(json!({
        "secretName": "x", "issuerRef": {"name": "agents-ca", "kind": "ClusterIssuer"},
        "dnsNames": names, "uris": uris,
    }))?;
    let worst = Request {
        spec: &big,
        ..request
    };
    if let Err(denial) = policy::evaluate(Some(&large), &worst) {
        return Err(format!("the large Certificate is denied: {denial}").into());
    }
    time(
        "limits: 64+64 patterns, 100 DNS names + 100 URIs (allowed)",
        200,
        || policy::evaluate(black_box(Some(&large)), black_box(&worst)).is_ok(),
    );
    Ok(())
}
