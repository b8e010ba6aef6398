//! `certsmith inspect secret NAME`: what a TLS Secret really holds, and whether it is sound.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::PrivateKey;
use crate::time::rfc3339;

use super::{CliError, explain};

pub async fn secret(client: kube::Client, namespace: &str, name: &str) -> Result<String, CliError> {
    let secret = Api::<Secret>::namespaced(client, namespace)
        .get(name)
        .await
        .map_err(|e| explain(e, &format!("Secret {namespace}/{name}")))?;
    Ok(describe_secret(&secret, jiff::Timestamp::now().as_second()))
}

/// The report for a TLS Secret's `tls.crt`, `tls.key` and `ca.crt`.
pub fn describe_secret(secret: &Secret, now: i64) -> String {
    let get = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.clone())
            .unwrap_or_default()
    };
    describe(&get("tls.crt"), &get("tls.key"), &get("ca.crt"), now)
}

/// The report for a Secret's three keys (pure: testable without a cluster).
pub fn describe(tls_crt: &[u8], tls_key: &[u8], ca_crt: &[u8], now: i64) -> String {
    let mut out = String::new();
    let chain = match inspect::parse_chain(tls_crt) {
        Ok(chain) => chain,
        Err(e) => return format!("tls.crt: cannot be read: {e}\n"),
    };
    let leaf = &chain[0];
    let _ = writeln!(out, "Subject:       {}", leaf.subject);
    let _ = writeln!(out, "SANs:          {}", sans(leaf));
    let _ = writeln!(out, "Issuer:        {}", leaf.issuer);
    let _ = writeln!(out, "Serial:        {}", leaf.serial);
    let _ = writeln!(
        out,
        "Valid:         {} to {} ({})",
        rfc3339(leaf.not_before),
        rfc3339(leaf.not_after),
        validity(leaf, now)
    );
    let _ = writeln!(out, "Key:           {}", key_text(leaf));
    let _ = writeln!(out, "Usages:        {:?}", leaf.usages);
    let _ = writeln!(out, "Chain ({} in tls.crt):", chain.len());
    for (i, c) in chain.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {i}: {}  (valid until {})",
            c.subject,
            rfc3339(c.not_after)
        );
    }
    let roots = inspect::parse_chain(ca_crt).ok();
    if let Some(root) = roots.as_ref().and_then(|r| r.first()) {
        let _ = writeln!(
            out,
            "ca.crt:        {}  (valid until {})",
            root.subject,
            rfc3339(root.not_after)
        );
    } else {
        let _ = writeln!(out, "ca.crt:        missing or unreadable");
    }
    let key_match = std::str::from_utf8(tls_key)
        .ok()
        .and_then(|k| PrivateKey::from_pem(k).ok())
        .map(|k| k.public_key_info() == leaf.public_key_info);
    let _ = writeln!(
        out,
        "Key matches certificate:      {}",
        match key_match {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "tls.key missing or unreadable",
        }
    );
    let verdict = match roots.as_deref() {
        Some(roots) => match verify(&chain, roots, now) {
            Ok(()) => "yes".to_string(),
            Err(e) => format!("NO: {e}"),
        },
        None => "cannot tell: no ca.crt".into(),
    };
    let _ = writeln!(out, "Chain verifies against ca.crt: {verdict}");
    out
}

fn sans(c: &CertInfo) -> String {
    let mut all: Vec<String> = c.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    all.extend(c.ip_addresses.iter().map(|i| format!("IP:{i}")));
    all.extend(c.uris.iter().map(|u| format!("URI:{u}")));
    all.extend(c.emails.iter().map(|e| format!("email:{e}")));
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

fn key_text(c: &CertInfo) -> String {
    match c.key {
        Some(k) if k.size > 0 => format!("{:?} {}", k.algorithm, k.size),
        Some(k) => format!("{:?}", k.algorithm),
        None => "unknown type".into(),
    }
}

fn validity(c: &CertInfo, now: i64) -> String {
    if now < c.not_before {
        "not yet valid".into()
    } else if now >= c.not_after {
        "EXPIRED".into()
    } else {
        format!("expires in {}", super::until(now, c.not_after))
    }
}

fn parse(c: &CertInfo) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(&c.der)
        .map(|(_, x)| x)
        .map_err(|e| e.to_string())
}

/// Each certificate is signed by the next, the last by a certificate in ca.crt, all valid now.
fn verify(chain: &[CertInfo], roots: &[CertInfo], now: i64) -> Result<(), String> {
    for (i, cert) in chain.iter().enumerate() {
        if now < cert.not_before || now >= cert.not_after {
            return Err(format!("{} is not valid now", cert.subject));
        }
        let subject = parse(cert)?;
        let issuer = match chain.get(i + 1) {
            Some(next) => next,
            None => roots
                .iter()
                .find(|r| r.subject == cert.issuer)
                .ok_or_else(|| format!("no certificate in ca.crt issued {}", cert.subject))?,
        };
        let issuer_x509 = parse(issuer)?;
        subject
            .verify_signature(Some(issuer_x509.public_key()))
            .map_err(|_| {
                format!(
                    "the signature on {} does not verify with {}",
                    cert.subject, issuer.subject
                )
            })?;
        if chain.get(i + 1).is_none() && issuer.subject != cert.subject {
            // The last link: also check the trust anchor's own validity.
            if now >= issuer.not_after {
                return Err(format!("{} in ca.crt expired", issuer.subject));
            }
        }
    }
    Ok(())
}
