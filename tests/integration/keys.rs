//! Every key the operator writes is readable by OpenSSL, the library most workloads load
//! `tls.key` with: for each key type × encoding, `openssl pkey` must read the key and derive
//! the same public key as the certificate's.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use certsmith::api::Issuer;

use crate::support::{
    Operator, TestNamespace, certificate, field, install_crds, secret, wait_ready,
};

/// Every (algorithm, size, encoding) a Certificate can ask for, with the PEM label of `tls.key`.
/// RSA is the same code at every size, so 2048 stands for all of them (larger sizes only slow
/// the test down); Ed25519 has no PKCS#1 form.
const KEY_TYPES: &[(&str, u32, &str, &str)] = &[
    ("ECDSA", 256, "PKCS8", "PRIVATE KEY"),
    ("ECDSA", 256, "PKCS1", "EC PRIVATE KEY"),
    ("ECDSA", 384, "PKCS8", "PRIVATE KEY"),
    ("ECDSA", 384, "PKCS1", "EC PRIVATE KEY"),
    ("ECDSA", 521, "PKCS8", "PRIVATE KEY"),
    ("ECDSA", 521, "PKCS1", "EC PRIVATE KEY"),
    ("RSA", 2048, "PKCS8", "PRIVATE KEY"),
    ("RSA", 2048, "PKCS1", "RSA PRIVATE KEY"),
    ("Ed25519", 0, "PKCS8", "PRIVATE KEY"),
];

fn name_of(algorithm: &str, size: u32, encoding: &str) -> String {
    format!("{algorithm}-{size}-{encoding}").to_lowercase()
}

#[tokio::test]
async fn openssl_reads_every_key_type_and_encoding_and_it_matches_the_certificate() {
    let ns = TestNamespace::new("keys").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ca_issuer(&ns).await;

    for &(algorithm, size, encoding, _) in KEY_TYPES {
        let name = name_of(algorithm, size, encoding);
        let mut key = json!({"algorithm": algorithm, "encoding": encoding});
        if size != 0 {
            key["size"] = json!(size);
        }
        certificate(
            &ns,
            &name,
            json!({
                "secretName": format!("{name}-tls"), "issuerRef": {"name": "ca"},
                "dnsNames": [format!("{name}.keys.svc")], "privateKey": key,
            }),
        )
        .await;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for &(algorithm, size, encoding, label) in KEY_TYPES {
        let name = name_of(algorithm, size, encoding);
        wait_ready(&ns, &name).await;
        let s = secret(&ns, &format!("{name}-tls")).await;
        if let Err(e) = check_with_openssl(&s, label, &dir.path().join(&name)) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "keys OpenSSL cannot use:\n{}",
        failures.join("\n")
    );
    operator.stop().await;
    ns.delete().await;
}

/// A self-signed root and a CA Issuer `ca` on it (ECDSA P-256): every key type is signed by it.
async fn ca_issuer(ns: &TestNamespace) {
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    certificate(ns, "root", json!({"secretName": "root-ca", "issuerRef": {"name": "selfsigned"}, "commonName": "keys root", "isCA": true})).await;
    wait_ready(ns, "root").await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "root-ca"}}})).await;
}

/// `tls.key` has the PEM label of its encoding, `openssl pkey` reads it, and the public key it
/// derives is the certificate's (`openssl x509 -pubkey`). Errors carry OpenSSL's words, never
/// the key.
fn check_with_openssl(s: &Secret, label: &str, base: &Path) -> Result<(), String> {
    let key = field(s, "tls.key");
    let begin = format!("-----BEGIN {label}-----");
    if !key.starts_with(begin.as_bytes()) {
        return Err(format!("tls.key does not start with {begin}"));
    }
    let key_file = base.with_extension("key");
    let crt_file = base.with_extension("crt");
    std::fs::write(&key_file, key).map_err(|e| e.to_string())?;
    std::fs::write(&crt_file, field(s, "tls.crt")).map_err(|e| e.to_string())?;
    let from_key = openssl(&["pkey", "-pubout", "-in"], &key_file)?;
    let from_crt = openssl(&["x509", "-noout", "-pubkey", "-in"], &crt_file)?;
    if from_key != from_crt {
        return Err(format!(
            "public key from tls.key differs from the certificate's:\n{from_key}\n{from_crt}"
        ));
    }
    Ok(())
}

/// Run `openssl <args> <file>`; its stdout, or its stderr as the error.
fn openssl(args: &[&str], file: &Path) -> Result<String, String> {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| format!("running openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
