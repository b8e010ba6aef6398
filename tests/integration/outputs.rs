//! Extra outputs, keystores and the Secret cleanup policy on the real API server; the stores
//! are opened by real readers: `openssl pkcs12` and Java's `keytool`.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use certsmith::api::{Certificate, Issuer};
use certsmith::pki::inspect::parse_chain;
use certsmith::pki::keys::PrivateKey;

use crate::support::{
    Operator, TestNamespace, WAIT, certificate, condition, field, install_crds, leaf,
    request_renewal, secret, wait_for, wait_ready, wait_reissued,
};

/// A self-signed root and a CA Issuer `ca` on it.
async fn ca_issuer(ns: &TestNamespace) {
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    certificate(
        ns,
        "root",
        json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"},
        "commonName": "outputs test root", "isCA": true}),
    )
    .await;
    wait_ready(ns, "root").await;
    ns.apply::<Issuer>(
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer",
        "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "root-ca"}}}),
    )
    .await;
}

async fn password_secret(ns: &TestNamespace, name: &str, password: &str) {
    ns.apply::<Secret>(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "stringData": {"password": password}}),
    )
    .await;
}

/// Run a command; its stdout, or a panic with its stderr.
fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// keytool from the test environment (tests/testenv/tools/keytool.sh), or the PATH's.
fn keytool() -> String {
    std::env::var("CERTSMITH_KEYTOOL").unwrap_or_else(|_| "keytool".into())
}

fn write(dir: &Path, s: &Secret, key: &str) -> String {
    let path = dir.join(key);
    std::fs::write(&path, field(s, key)).expect("write store");
    path.to_string_lossy().into_owned()
}

/// The certificates `openssl pkcs12` finds in `store` (DER), opened with `password`.
fn p12_certs(store: &str, password: &str, extra: &[&str]) -> Vec<Vec<u8>> {
    let pass = format!("pass:{password}");
    let mut args = vec!["pkcs12", "-in", store, "-passin", &pass, "-nokeys"];
    args.extend_from_slice(extra);
    let pem = run("openssl", &args);
    parse_chain(&pem)
        .expect("certificates")
        .into_iter()
        .map(|c| c.der)
        .collect()
}

/// The DER certificate keytool exports for `alias`.
fn keytool_cert(store: &str, storetype: &str, password: &str, alias: &str) -> Vec<u8> {
    let pem = run(
        &keytool(),
        &[
            "-exportcert",
            "-rfc",
            "-keystore",
            store,
            "-storetype",
            storetype,
            "-storepass",
            password,
            "-alias",
            alias,
        ],
    );
    parse_chain(&pem).expect("exported")[0].der.clone()
}

fn keytool_list(store: &str, storetype: &str, password: &str) -> String {
    String::from_utf8_lossy(&run(
        &keytool(),
        &[
            "-list",
            "-v",
            "-keystore",
            store,
            "-storetype",
            storetype,
            "-storepass",
            password,
        ],
    ))
    .into_owned()
}

fn outputs_spec(profile: &str) -> Value {
    json!({
        "secretName": "app-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["app.example"],
        "privateKey": {"algorithm": "RSA", "size": 2048},
        "additionalOutputFormats": [{"type": "CombinedPEM"}, {"type": "DER"}],
        "keystores": {
            "pkcs12": {"create": true, "profile": profile, "passwordSecretRef": {"name": "store-pw", "key": "password"}},
            "jks": {"create": true, "alias": "app", "passwordSecretRef": {"name": "store-pw", "key": "password"}},
        },
    })
}

/// Every store opens with `password` in openssl and keytool and holds the Secret's leaf,
/// key and CA.
fn check_stores(s: &Secret, password: &str, legacy: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let the_leaf = leaf(s).der;
    let ca = parse_chain(field(s, "ca.crt")).expect("ca.crt")[0]
        .der
        .clone();
    let extra: &[&str] = if legacy { &["-legacy"] } else { &[] };

    let ks = write(dir.path(), s, "keystore.p12");
    let mut clcerts = vec!["-clcerts"];
    clcerts.extend_from_slice(extra);
    assert_eq!(p12_certs(&ks, password, &clcerts), vec![the_leaf.clone()]);
    let pass = format!("pass:{password}");
    let mut key_args = vec!["pkcs12", "-in", &ks, "-passin", &pass, "-nocerts", "-nodes"];
    key_args.extend_from_slice(extra);
    let key_pem = run("openssl", &key_args);
    let key_text = String::from_utf8_lossy(&key_pem);
    let begin = key_text.find("-----BEGIN").expect("a key in keystore.p12");
    let key = PrivateKey::from_pem(&key_text[begin..]).expect("key parses");
    assert_eq!(key.public_key_info(), leaf(s).public_key_info);
    let ts = write(dir.path(), s, "truststore.p12");
    assert_eq!(p12_certs(&ts, password, extra), vec![ca.clone()]);
    let mut wrong = vec![
        "pkcs12",
        "-in",
        &ks,
        "-passin",
        "pass:wrong-password",
        "-nokeys",
    ];
    wrong.extend_from_slice(extra);
    assert!(!succeeds("openssl", &wrong), "a wrong password is refused");
    if !legacy {
        // Java reads the PKCS#12 store too.
        assert_eq!(
            keytool_cert(&ks, "PKCS12", password, "certificate"),
            the_leaf
        );
    }

    let jks = write(dir.path(), s, "keystore.jks");
    let listing = keytool_list(&jks, "JKS", password);
    assert!(listing.contains("PrivateKeyEntry"), "{listing}");
    assert_eq!(keytool_cert(&jks, "JKS", password, "app"), the_leaf);
    assert_eq!(keytool_cert(&jks, "JKS", password, "ca"), ca);
    let tjks = write(dir.path(), s, "truststore.jks");
    let listing = keytool_list(&tjks, "JKS", password);
    assert!(listing.contains("trustedCertEntry"), "{listing}");
    assert_eq!(keytool_cert(&tjks, "JKS", password, "ca"), ca);

    // The PEM outputs are the Secret's own key and chain.
    let mut combined = field(s, "tls.key").to_vec();
    combined.extend_from_slice(field(s, "tls.crt"));
    assert_eq!(field(s, "tls-combined.pem"), combined.as_slice());
    let der = write(dir.path(), s, "key.der");
    let from_der = run(
        "openssl",
        &["pkey", "-inform", "DER", "-in", &der, "-pubout"],
    );
    let from_pem_path = write(dir.path(), s, "tls.key");
    let from_pem = run("openssl", &["pkey", "-in", &from_pem_path, "-pubout"]);
    assert_eq!(from_der, from_pem, "key.der is tls.key in DER");
}

#[tokio::test]
async fn outputs_and_keystores_open_in_openssl_and_keytool_and_follow_every_renewal() {
    let ns = TestNamespace::new("outputs").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ca_issuer(&ns).await;
    password_secret(&ns, "store-pw", "changeit").await;
    certificate(&ns, "app", outputs_spec("Modern2023")).await;
    wait_ready(&ns, "app").await;
    let s = secret(&ns, "app-tls").await;
    check_stores(&s, "changeit", false);

    // A renewal moves every output to the new key.
    let first = leaf(&s).serial;
    request_renewal(&ns, "app", "1").await;
    let renewed = wait_reissued(&ns, "app-tls", &first).await;
    check_stores(&renewed, "changeit", false);

    // A new password re-encodes the stores without re-issuing.
    let serial = leaf(&renewed).serial;
    password_secret(&ns, "store-pw", "changed-it").await;
    let reencoded = wait_for("stores under the new password", WAIT, || {
        let ns = &ns;
        async move {
            let s = secret(ns, "app-tls").await;
            let dir = tempfile::tempdir().ok()?;
            let ks = write(dir.path(), &s, "keystore.jks");
            succeeds(
                &keytool(),
                &[
                    "-list",
                    "-keystore",
                    &ks,
                    "-storetype",
                    "JKS",
                    "-storepass",
                    "changed-it",
                ],
            )
            .then_some(s)
        }
    })
    .await;
    assert_eq!(leaf(&reencoded).serial, serial, "not re-issued");
    check_stores(&reencoded, "changed-it", false);
    let cert = ns.api::<Certificate>().get("app").await.expect("cert");
    assert_eq!(
        condition(&cert, "Ready").map(|c| c.status),
        Some("True".to_string())
    );

    // Other profiles, as older readers need them.
    for (profile, legacy) in [("LegacyDES", false), ("LegacyRC2", true)] {
        let mut spec = outputs_spec(profile);
        spec["secretName"] = json!(format!("app-{}", profile.to_lowercase()));
        let name = format!("app-{}", profile.to_lowercase());
        certificate(&ns, &name, spec).await;
        wait_ready(&ns, &name).await;
        check_stores(&secret(&ns, &name).await, "changed-it", legacy);
    }

    // Outputs no longer asked for leave the Secret.
    let mut plain = outputs_spec("Modern2023");
    plain.as_object_mut().map(|m| {
        m.remove("keystores");
        m.remove("additionalOutputFormats")
    });
    certificate(&ns, "app", plain).await;
    let stripped = wait_for("outputs removed", WAIT, || {
        let ns = &ns;
        async move {
            let s = secret(ns, "app-tls").await;
            let keys: Vec<String> = s.data.clone()?.into_keys().collect();
            (keys == ["ca.crt", "tls.crt", "tls.key"]).then_some(s)
        }
    })
    .await;
    assert_eq!(leaf(&stripped).serial, serial, "not re-issued");
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_keystore_password_that_cannot_be_read_is_reported_and_nothing_written() {
    let ns = TestNamespace::new("outputs-pw").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ca_issuer(&ns).await;
    certificate(&ns, "app", outputs_spec("Modern2023")).await;
    let api = ns.api::<Certificate>();
    let message = wait_for("KeystorePasswordUnavailable", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get("app").await.ok()?;
            condition(&c, "Ready")
                .filter(|r| r.status == "False" && r.reason == "KeystorePasswordUnavailable")
                .map(|r| r.message)
        }
    })
    .await;
    assert!(message.contains("store-pw"), "{message}");
    assert!(
        ns.api::<Secret>()
            .get_opt("app-tls")
            .await
            .expect("get")
            .is_none()
    );
    // A JKS password shorter than JKS allows is named too.
    password_secret(&ns, "store-pw", "short").await;
    wait_for("the short password reported", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get("app").await.ok()?;
            condition(&c, "Ready")
                .filter(|r| r.message.contains("6 characters"))
                .map(|_| ())
        }
    })
    .await;
    // The password Secret is watched: fixing it issues at once.
    password_secret(&ns, "store-pw", "long-enough").await;
    wait_ready(&ns, "app").await;
    check_stores(&secret(&ns, "app-tls").await, "long-enough", false);
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn secret_cleanup_policy_delete_lets_garbage_collection_remove_the_secret() {
    let ns = TestNamespace::new("cleanup").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ca_issuer(&ns).await;
    let spec = |policy: &str| {
        json!({"secretName": "app-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["app.example"],
               "secretCleanupPolicy": policy})
    };
    // Keep (also the default): the Secret outlives its Certificate.
    certificate(
        &ns,
        "kept",
        json!({"secretName": "kept-tls", "issuerRef": {"name": "ca"}, "dnsNames": ["k.example"]}),
    )
    .await;
    wait_ready(&ns, "kept").await;
    assert!(
        secret(&ns, "kept-tls")
            .await
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    ns.api::<Certificate>()
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");

    certificate(&ns, "app", spec("Delete")).await;
    let cert = wait_ready(&ns, "app").await;
    let s = secret(&ns, "app-tls").await;
    let owners = s.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "Certificate");
    assert_eq!(Some(owners[0].uid.clone()), cert.metadata.uid);
    // Switching to Keep removes the reference without re-issuing.
    let serial = leaf(&s).serial;
    certificate(&ns, "app", spec("Keep")).await;
    wait_for("owner reference removed", WAIT, || {
        let ns = &ns;
        async move {
            let s = secret(ns, "app-tls").await;
            s.metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
                .then_some(())
        }
    })
    .await;
    certificate(&ns, "app", spec("Delete")).await;
    wait_for("owner reference back", WAIT, || {
        let ns = &ns;
        async move {
            let s = secret(ns, "app-tls").await;
            (!s.metadata.owner_references.unwrap_or_default().is_empty()).then_some(())
        }
    })
    .await;
    assert_eq!(leaf(&secret(&ns, "app-tls").await).serial, serial);
    ns.api::<Certificate>()
        .delete("app", &DeleteParams::default())
        .await
        .expect("delete");
    let secrets: Api<Secret> = ns.api();
    wait_for("the Secret garbage-collected", WAIT, || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt("app-tls")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(
        secrets.get_opt("kept-tls").await.expect("get").is_some(),
        "Keep leaves the Secret"
    );
    operator.stop().await;
    ns.delete().await;
}
