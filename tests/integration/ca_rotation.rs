//! CA rotation on the real API server: a CA issuer whose CA is a certsmith Certificate
//! (`isCA: true`) renews it, and the order publish → move the leaves → retire is proven from
//! the objects' own history, watched as it happened (etcd resourceVersions order every write),
//! and from their timestamps. Also a CA key pair replaced out of band.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use certsmith::api::{CaRotationStatus, Issuer};
use certsmith::pki::CertInfo;
use certsmith::pki::inspect::{issued_by, parse_chain};

use crate::support::{certificate, field, request_renewal, wait_for, wait_ready};
use crate::trust_bundles::{World, ca, prints};

/// What the watches saw, in the order etcd wrote it.
#[derive(Clone)]
enum Seen {
    /// The bundle ConfigMap's PEM, and when certsmith last wrote it (its managedFields time).
    Bundle { pem: String, at: i64 },
    /// A leaf Secret: its name, the certificate and when certsmith wrote it (`issued-at`).
    Leaf {
        name: String,
        leaf: Box<CertInfo>,
        at: i64,
    },
}

type History = Arc<Mutex<BTreeMap<u64, Seen>>>;

/// Record every version of the objects `api` holds that `keep` turns into a [`Seen`].
fn record<K>(api: Api<K>, history: History, keep: fn(&K) -> Option<Seen>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut version = "0".to_string();
        loop {
            let Ok(stream) = api
                .watch(&WatchParams::default().timeout(60), &version)
                .await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut stream = stream.boxed();
            while let Some(Ok(event)) = stream.next().await {
                let obj = match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
                    _ => continue,
                };
                let Some(rv) = obj.meta().resource_version.clone() else {
                    continue;
                };
                version = rv.clone();
                if let (Ok(rv), Some(seen)) = (rv.parse::<u64>(), keep(&obj)) {
                    history.lock().expect("history").insert(rv, seen);
                }
            }
        }
    });
}

fn bundle_seen(cm: &ConfigMap) -> Option<Seen> {
    let pem = cm.data.as_ref()?.get("ca.crt")?.clone();
    let at = cm
        .managed_fields()
        .iter()
        .filter(|f| f.manager.as_deref() == Some(certsmith::secret::FIELD_MANAGER))
        .filter_map(|f| f.time.as_ref().map(|t| t.0.as_second()))
        .max()?;
    Some(Seen::Bundle { pem, at })
}

fn leaf_seen(s: &Secret) -> Option<Seen> {
    if !s.name_any().starts_with("leaf-") {
        return None;
    }
    let leaf = parse_chain(field(s, "tls.crt")).ok()?.remove(0);
    let at = s
        .annotations()
        .get(certsmith::secret::ISSUED_AT_ANNOTATION)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())?
        .as_second();
    Some(Seen::Leaf {
        name: s.name_any(),
        leaf: Box::new(leaf),
        at,
    })
}

fn first_cert(pem: &[u8]) -> CertInfo {
    parse_chain(pem).expect("PEM").remove(0)
}

fn fingerprint(c: &CertInfo) -> String {
    certsmith::controller::trust_bundle::fingerprint(&c.der)
}

async fn rotation(issuers: &Api<Issuer>, name: &str) -> Option<CaRotationStatus> {
    issuers.get(name).await.ok()?.status?.ca_rotation
}

async fn wait_phase(issuers: &Api<Issuer>, name: &str, phase: &str) -> CaRotationStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = rotation(issuers, name).await;
        if let Some(s) = status.as_ref().filter(|r| r.phase == phase) {
            return s.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let mut shown = status.map(|s| serde_json::to_value(s).unwrap_or_default());
            for ca in ["active", "next", "previous"] {
                if let Some(c) = shown.as_mut().and_then(|s| s.get_mut(ca)) {
                    c["certificate"] = json!("...");
                }
            }
            let certs = Api::<certsmith::api::Certificate>::namespaced(
                issuers.clone().into_client(),
                issuers.namespace().unwrap_or_default(),
            );
            for c in certs
                .list(&ListParams::default())
                .await
                .expect("list")
                .items
            {
                eprintln!("{}: {:?}", c.name_any(), c.status);
            }
            panic!("Issuer {name}: caRotation.phase never {phase}: {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `leaves` Ready on the home namespace's Issuer `ca`, and a synced TrustBundle (named after
/// `suffix`) of that issuer.
async fn ready_leaves_and_bundle(world: &World, leaves: &[&str], suffix: &str) {
    let home = &world.home;
    for name in leaves {
        certificate(
            home,
            name,
            json!({"secretName": name, "issuerRef": {"name": "ca"},
            "dnsNames": [format!("{name}.example.test")], "duration": "24h"}),
        )
        .await;
    }
    for name in leaves {
        wait_ready(home, name).await;
    }
    let bundle = world
        .bundle(
            suffix,
            json!([{"issuerRef": {"name": "ca", "kind": "Issuer", "namespace": home.name}}]),
            json!({}),
        )
        .await;
    world.wait_synced(&bundle).await;
}

/// Events with reason `IssuerCAChanged` per Certificate in `namespace`.
async fn ca_changed_events(world: &World) -> BTreeMap<String, usize> {
    let events = Api::<Event>::namespaced(world.admin.clone(), &world.home.name)
        .list(&ListParams::default())
        .await
        .expect("events");
    let mut out = BTreeMap::new();
    for e in events {
        if e.reason.as_deref() == Some("IssuerCAChanged") {
            let name = e.involved_object.name.unwrap_or_default();
            *out.entry(name).or_default() += e.count.unwrap_or(1).max(1) as usize;
        }
    }
    out
}

/// Replay the history in write order and check that at every moment each leaf's certificate
/// (each one `only` signed, when given) was signed by a CA the published bundle held.
fn replay(history: &BTreeMap<u64, Seen>, only: Option<&CertInfo>) {
    let mut bundle: Option<Vec<CertInfo>> = None;
    let mut leaves: BTreeMap<String, CertInfo> = BTreeMap::new();
    for (rv, seen) in history {
        match seen {
            Seen::Bundle { pem, .. } => bundle = Some(parse_chain(pem.as_bytes()).expect("bundle")),
            Seen::Leaf { name, leaf, .. } => {
                leaves.insert(name.clone(), (**leaf).clone());
            }
        }
        if let Some(bundle) = &bundle {
            for (name, leaf) in &leaves {
                if only.is_some_and(|ca| !issued_by(leaf, ca)) {
                    continue;
                }
                assert!(
                    bundle.iter().any(|ca| issued_by(leaf, ca)),
                    "at resourceVersion {rv}, leaf {name} (issuer {}) had no CA in the bundle",
                    leaf.issuer
                );
            }
        }
    }
}

#[tokio::test]
async fn a_renewed_ca_is_published_before_use_then_leaves_move_then_the_old_ca_retires() {
    let world = World::new("carot", 1).await;
    let home = &world.home;
    let target = world.targets[0].name.clone();
    world.select(&target, true).await;
    let bundle_name = world.name("rot");
    let history: History = Arc::default();
    record(
        Api::<ConfigMap>::namespaced(world.admin.clone(), &target),
        history.clone(),
        bundle_seen,
    );
    record(home.api::<Secret>(), history.clone(), leaf_seen);

    let delay = 6;
    home.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    certificate(
        home,
        "root",
        json!({"secretName": "root-ca", "isCA": true,
        "commonName": "rotating root", "duration": "24h",
        "issuerRef": {"name": "selfsigned"}}),
    )
    .await;
    wait_ready(home, "root").await;
    home.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "root-ca",
            "trustPropagationDelay": format!("{delay}s"), "rotationWindow": "4s",
            "rotationRateLimit": 2}}}),
    )
    .await;
    let leaves = ["leaf-a", "leaf-b", "leaf-c"];
    ready_leaves_and_bundle(&world, &leaves, "rot").await;
    let issuers = home.api::<Issuer>();
    // Outside a rotation the counts follow on the issuer's periodic look, not at once.
    let stable = wait_phase(&issuers, "ca", "Stable").await;
    let old_root = first_cert(field(
        &crate::support::secret(home, "root-ca").await,
        "tls.crt",
    ));
    assert_eq!(
        stable.active.as_ref().map(|a| a.fingerprint.clone()),
        Some(fingerprint(&old_root))
    );

    // Renew the root CA.
    request_renewal(home, "root", "rotate-1").await;
    let publishing = wait_phase(&issuers, "ca", "Publishing").await;
    let new_root = first_cert(field(
        &crate::support::secret(home, "root-ca").await,
        "tls.crt",
    ));
    assert_ne!(fingerprint(&new_root), fingerprint(&old_root));
    assert_eq!(
        publishing.next.as_ref().map(|n| n.fingerprint.clone()),
        Some(fingerprint(&new_root))
    );
    let retired = wait_phase(&issuers, "ca", "Retired").await;
    assert_eq!(
        (retired.leaves_on_active, retired.leaves_on_previous),
        (3, 0)
    );
    assert_eq!(
        retired.previous.as_ref().map(|p| p.fingerprint.clone()),
        Some(fingerprint(&old_root))
    );
    // The bundle ends with the new CA alone.
    let only_new = [fingerprint(&new_root)].into_iter().collect();
    wait_for(
        "the bundle holds only the new CA",
        Duration::from_secs(60),
        || async {
            let cm = world.config_map(&target, &bundle_name).await?;
            let pem = cm.data?.get("ca.crt")?.clone();
            (prints(&pem) == only_new).then_some(())
        },
    )
    .await;
    // Every leaf moved, once, for the CA change.
    for name in leaves {
        let s = crate::support::secret(home, name).await;
        assert!(
            issued_by(&first_cert(field(&s, "tls.crt")), &new_root),
            "{name} on the new CA"
        );
    }
    let events = ca_changed_events(&world).await;
    for name in leaves {
        assert!(
            events.contains_key(name),
            "IssuerCAChanged Events: {events:?}"
        );
        let revision = wait_ready(home, name).await.status.and_then(|s| s.revision);
        assert_eq!(revision, Some(2), "{name} re-issued once");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let history = history.lock().expect("history").clone();
    replay(&history, None);
    let new_fp = fingerprint(&new_root);
    let old_fp = fingerprint(&old_root);
    let holds = |pem: &str, fp: &str| prints(pem).contains(fp);
    // Publish before use: the new CA reached the target before any leaf it signed was
    // written, and by at least the delay (both times from the API server's clock, seconds).
    let (published_rv, published_at) = history
        .iter()
        .find_map(|(rv, s)| match s {
            Seen::Bundle { pem, at } if holds(pem, &new_fp) => Some((*rv, *at)),
            _ => None,
        })
        .expect("the new CA was published");
    let new_leaves: Vec<(u64, i64)> = history
        .iter()
        .filter_map(|(rv, s)| match s {
            Seen::Leaf { leaf, at, .. } if issued_by(leaf, &new_root) => Some((*rv, *at)),
            _ => None,
        })
        .collect();
    let (first_rv, first_at) = new_leaves[0];
    assert!(
        published_rv < first_rv,
        "bundle {published_rv} before leaf {first_rv}"
    );
    assert!(
        first_at - published_at >= delay - 1,
        "the first new leaf came {} s after the new CA was published; the delay is {delay} s",
        first_at - published_at
    );
    // Retire only after the last leaf moved, and its new Secret had the delay to propagate.
    let (last_move_rv, last_move_at) = *new_leaves.last().expect("leaves");
    let (retired_rv, retired_at) = history
        .iter()
        .find_map(|(rv, s)| match s {
            Seen::Bundle { pem, at } if *rv > published_rv && !holds(pem, &old_fp) => {
                Some((*rv, *at))
            }
            _ => None,
        })
        .expect("the old CA left the bundle");
    assert!(
        last_move_rv < retired_rv,
        "last leaf {last_move_rv} before retirement {retired_rv}"
    );
    assert!(
        retired_at - last_move_at >= delay - 1,
        "the old CA left {} s after the last leaf moved; the delay is {delay} s",
        retired_at - last_move_at
    );
    world.delete().await;
}

#[tokio::test]
async fn a_ca_replaced_out_of_band_moves_the_leaves_and_keeps_the_old_ca_meanwhile() {
    let world = World::new("caoob", 1).await;
    let home = &world.home;
    let target = world.targets[0].name.clone();
    world.select(&target, true).await;
    let history: History = Arc::default();
    record(
        Api::<ConfigMap>::namespaced(world.admin.clone(), &target),
        history.clone(),
        bundle_seen,
    );
    record(home.api::<Secret>(), history.clone(), leaf_seen);
    let put_ca = |cn: &'static str| {
        let (crt, key) = ca(cn);
        let body = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "oob-ca"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": crt, "tls.key": key}});
        (crt, body)
    };
    let (old_pem, body) = put_ca("out-of-band old");
    let secrets = home.api::<Secret>();
    let apply = |body: Value| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "oob-ca",
                    &PatchParams::apply("someone-else").force(),
                    &Patch::Apply(body),
                )
                .await
                .expect("write CA Secret");
        }
    };
    apply(body).await;
    home.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "oob-ca", "rotationWindow": "3s",
            "trustPropagationDelay": "2s"}}}),
    )
    .await;
    let leaves = ["leaf-x", "leaf-y"];
    ready_leaves_and_bundle(&world, &leaves, "oob").await;
    let issuers = home.api::<Issuer>();
    wait_phase(&issuers, "ca", "Stable").await;

    let (new_pem, body) = put_ca("out-of-band new");
    apply(body).await;
    let retired = wait_phase(&issuers, "ca", "Retired").await;
    assert!(retired.out_of_band);
    let (old, new) = (
        first_cert(old_pem.as_bytes()),
        first_cert(new_pem.as_bytes()),
    );
    assert_eq!(
        retired.previous.map(|p| p.fingerprint),
        Some(fingerprint(&old))
    );
    for name in leaves {
        let s = crate::support::secret(home, name).await;
        assert!(
            issued_by(&first_cert(field(&s, "tls.crt")), &new),
            "{name} on the new CA"
        );
    }
    let events = ca_changed_events(&world).await;
    for name in leaves {
        assert!(
            events.contains_key(name),
            "IssuerCAChanged Events: {events:?}"
        );
        let revision = wait_ready(home, name).await.status.and_then(|s| s.revision);
        assert_eq!(revision, Some(2), "{name} re-issued once");
    }
    let only_new = [fingerprint(&new)].into_iter().collect();
    wait_for(
        "the bundle holds only the new CA",
        Duration::from_secs(60),
        || async {
            let cm = world.config_map(&target, &world.name("oob")).await?;
            (prints(cm.data?.get("ca.crt")?) == only_new).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The old CA stayed published while the leaves it signed moved (no leaf was ever left
    // without its CA in the bundle once the bundle existed).
    replay(&history.lock().expect("history").clone(), Some(&old));
    world.delete().await;
}
