//! `certsmith inspect secret NAME`: what a TLS Secret really holds, and whether mTLS peers
//! will accept it.
//!
//! The verdicts come from webpki (`rustls-webpki`), the verifier rustls itself uses, with
//! `ca.crt` as the trust anchors and the rest of `tls.crt` as intermediates, at the current
//! time: signatures, validity of every certificate, basicConstraints (a CA as leaf, a leaf as
//! CA), path length, name constraints, and the extended key usage for server and for client
//! authentication. So "usable as mTLS server: yes" means a rustls client trusting `ca.crt`
//! accepts this chain (for one of the names listed), and "client: yes" that a rustls server
//! requiring client certificates from `ca.crt` does.

use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{ExtendedKeyUsageValidator, KeyPurposeIdIter, KeyUsage as Eku};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::api::KeyUsage;
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
    let _ = writeln!(out, "Usages:        {}", usages(leaf));
    let _ = writeln!(out, "CA:            {}", ca_text(leaf));
    let _ = writeln!(out, "Chain ({} in tls.crt):", chain.len());
    for (i, c) in chain.iter().enumerate() {
        let ca = if c.is_ca {
            format!("CA, {}; ", ca_text(c))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {i}: {}  ({ca}valid until {})",
            c.subject,
            rfc3339(c.not_after)
        );
    }
    let roots = inspect::parse_chain(ca_crt).ok();
    match roots.as_deref() {
        Some(roots) => {
            for (i, root) in roots.iter().enumerate() {
                let label = if i == 0 { "ca.crt:" } else { "" };
                let _ = writeln!(
                    out,
                    "{label:<15}{}  (valid until {})",
                    root.subject,
                    rfc3339(root.not_after)
                );
            }
        }
        None => {
            let _ = writeln!(out, "ca.crt:        missing or unreadable");
        }
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
    let Some(roots) = roots else {
        let _ = writeln!(out, "Chain verifies against ca.crt: cannot tell: no ca.crt");
        let _ = writeln!(
            out,
            "Usable as mTLS server: cannot tell, client: cannot tell, because there is no ca.crt to verify against"
        );
        return out;
    };
    let verdicts = Verdicts::of(&chain, &roots, now);
    let _ = writeln!(
        out,
        "Chain verifies against ca.crt: {}",
        match &verdicts.chain {
            Ok(()) => "yes (webpki, the verifier rustls uses)".to_string(),
            Err(e) => format!("NO: {e}"),
        }
    );
    let _ = writeln!(out, "{}", verdicts.sentence(key_match));
    for note in notes(leaf, &verdicts) {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

/// What webpki says about the chain for any use, as a TLS server, and as a TLS client.
#[derive(Debug)]
pub struct Verdicts {
    pub chain: Result<(), String>,
    pub server: Result<(), String>,
    pub client: Result<(), String>,
}

impl Verdicts {
    pub fn of(chain: &[CertInfo], roots: &[CertInfo], now: i64) -> Self {
        let check = |usage: &dyn Usage| verify(chain, roots, now, usage);
        Verdicts {
            chain: check(&AnyUsage),
            server: check(&Purpose(Eku::server_auth(), KeyUsage::ServerAuth)),
            client: check(&Purpose(Eku::client_auth(), KeyUsage::ClientAuth)),
        }
    }

    /// "Usable as mTLS server: yes, client: no, because …". A key that does not match the
    /// certificate makes both a no: the handshake's signature would not verify.
    pub fn sentence(&self, key_match: Option<bool>) -> String {
        let key_problem = (key_match == Some(false))
            .then(|| "tls.key does not match the certificate".to_string());
        let server = key_problem.clone().map_or(self.server.clone(), Err);
        let client = key_problem.map_or(self.client.clone(), Err);
        let word = |r: &Result<(), String>| if r.is_ok() { "yes" } else { "no" };
        let head = format!(
            "Usable as mTLS server: {}, client: {}",
            word(&server),
            word(&client)
        );
        match (server, client) {
            (Ok(()), Ok(())) => head,
            (Err(s), Err(c)) if s == c => format!("{head}, because {s}"),
            (Err(s), Err(c)) => format!("{head}, because as a server {s}; as a client {c}"),
            (Err(s), Ok(())) => format!("{head}, because {s}"),
            (Ok(()), Err(c)) => format!("{head}, because {c}"),
        }
    }
}

/// What a verdict is checked for.
trait Usage {
    fn validator(&self) -> &dyn ExtendedKeyUsageValidator;
    /// The extended key usage that was required, if any.
    fn required(&self) -> Option<KeyUsage>;
}

/// The chain alone: any extended key usage will do.
struct AnyUsage;

impl ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

impl Usage for AnyUsage {
    fn validator(&self) -> &dyn ExtendedKeyUsageValidator {
        self
    }
    fn required(&self) -> Option<KeyUsage> {
        None
    }
}

/// Server or client authentication, as rustls requires it (the purpose must be listed when
/// the certificate has an extended key usage at all).
struct Purpose(Eku, KeyUsage);

impl Usage for Purpose {
    fn validator(&self) -> &dyn ExtendedKeyUsageValidator {
        &self.0
    }
    fn required(&self) -> Option<KeyUsage> {
        Some(self.1)
    }
}

struct Dyn<'a>(&'a dyn ExtendedKeyUsageValidator);

impl ExtendedKeyUsageValidator for Dyn<'_> {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        self.0.validate(iter)
    }
}

/// Path validation by webpki: `chain[0]` the leaf, the rest intermediates, `roots` the
/// trust anchors, at `now`.
fn verify(
    chain: &[CertInfo],
    roots: &[CertInfo],
    now: i64,
    usage: &dyn Usage,
) -> Result<(), String> {
    let leaf_der = CertificateDer::from(chain[0].der.as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| format!("webpki cannot read the certificate: {e:?}"))?;
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.der.as_slice()))
        .collect();
    let mut anchors = Vec::new();
    for (der, root) in root_ders.iter().zip(roots) {
        match webpki::anchor_from_trusted_cert(der) {
            Ok(anchor) => anchors.push(anchor),
            Err(e) => {
                return Err(format!(
                    "{} in ca.crt is not a usable trust anchor: {e:?}",
                    root.subject
                ));
            }
        }
    }
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        time,
        Dyn(usage.validator()),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| plain(&e, chain, roots, now, usage.required()))
}

/// webpki's error in the words of someone fixing the Secret.
fn plain(
    error: &webpki::Error,
    chain: &[CertInfo],
    roots: &[CertInfo],
    now: i64,
    required: Option<KeyUsage>,
) -> String {
    use webpki::Error as E;
    let everything = || chain.iter().chain(roots);
    match error {
        E::CertExpired { .. } => match everything().find(|c| now >= c.not_after) {
            Some(c) => format!("{} expired at {}", c.subject, rfc3339(c.not_after)),
            None => "a certificate of the chain has expired".into(),
        },
        E::CertNotValidYet { .. } => match everything().find(|c| now < c.not_before) {
            Some(c) => format!("{} is not valid before {}", c.subject, rfc3339(c.not_before)),
            None => "a certificate of the chain is not valid yet".into(),
        },
        E::UnknownIssuer => {
            let last = chain.last().map(|c| c.issuer.as_str()).unwrap_or_default();
            format!(
                "no path from tls.crt to a certificate in ca.crt: the issuer of the chain's last certificate ({last}) is not in ca.crt, or a signature does not verify"
            )
        }
        E::CaUsedAsEndEntity => {
            "it is a CA certificate (basicConstraints CA:TRUE), which TLS peers refuse as a leaf".into()
        }
        E::EndEntityUsedAsCa => {
            "a certificate that signs another in the chain is not a CA (basicConstraints CA:FALSE or missing)".into()
        }
        E::PathLenConstraintViolated => {
            "the chain is longer than a CA's path length constraint allows".into()
        }
        E::NameConstraintViolation => {
            "a name of the certificate lies outside a CA's name constraints".into()
        }
        E::RequiredEkuNotFoundContext(_) => {
            let wanted = match required {
                Some(KeyUsage::ServerAuth) => "server auth",
                Some(KeyUsage::ClientAuth) => "client auth",
                _ => "the required purpose",
            };
            let has: Vec<&str> = chain[0]
                .usages
                .iter()
                .filter_map(|u| extended_usage_name(*u))
                .collect();
            format!(
                "its extended key usage does not include {wanted} (it has: {})",
                if has.is_empty() { "none".into() } else { has.join(", ") }
            )
        }
        E::InvalidSignatureForPublicKey => "a signature in the chain does not verify".into(),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate is signed with an algorithm rustls does not accept".into()
        }
        other => format!("webpki refuses the chain: {other:?}"),
    }
}

fn extended_usage_name(usage: KeyUsage) -> Option<&'static str> {
    Some(match usage {
        KeyUsage::ServerAuth => "server auth",
        KeyUsage::ClientAuth => "client auth",
        KeyUsage::CodeSigning => "code signing",
        KeyUsage::EmailProtection => "email protection",
        KeyUsage::Timestamping => "timestamping",
        KeyUsage::OcspSigning => "ocsp signing",
        _ => return None,
    })
}

/// What rustls accepts but a peer on another TLS stack, or a client checking a name, may not.
fn notes(leaf: &CertInfo, verdicts: &Verdicts) -> Vec<String> {
    let mut notes = Vec::new();
    if verdicts.server.is_ok() {
        if leaf.dns_names.is_empty() && leaf.ip_addresses.is_empty() {
            notes.push(
                "no DNS or IP name: clients that check the server's name (rustls, Go and OpenSSL by default) refuse it as a server; only peers verifying URI SANs (SPIFFE) accept it".to_string(),
            );
        } else {
            let names: Vec<String> = leaf
                .dns_names
                .iter()
                .map(|d| format!("DNS:{d}"))
                .chain(leaf.ip_addresses.iter().map(|i| format!("IP:{i}")))
                .collect();
            notes.push(format!(
                "as a server, for clients dialling {}",
                names.join(", ")
            ));
        }
    }
    let has_key_usage = leaf.usages.iter().any(|u| {
        matches!(
            u,
            KeyUsage::DigitalSignature
                | KeyUsage::ContentCommitment
                | KeyUsage::KeyEncipherment
                | KeyUsage::DataEncipherment
                | KeyUsage::KeyAgreement
                | KeyUsage::CertSign
                | KeyUsage::CrlSign
        )
    });
    if has_key_usage && !leaf.usages.contains(&KeyUsage::DigitalSignature) {
        notes.push(
            "its key usage lacks digital signature: rustls does not check it, but Go and OpenSSL peers refuse such a certificate for TLS 1.3".to_string(),
        );
    }
    notes
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

/// The usages as cert-manager and certsmith spell them.
fn usages(c: &CertInfo) -> String {
    let names: Vec<String> = c
        .usages
        .iter()
        .filter_map(|u| serde_json::to_value(u).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if names.is_empty() {
        "none listed (any)".into()
    } else {
        names.join(", ")
    }
}

/// "no", "yes", "yes, path length 0".
fn ca_text(c: &CertInfo) -> String {
    if !c.is_ca {
        return "no".into();
    }
    let path_len = X509Certificate::from_der(&c.der)
        .ok()
        .and_then(|(_, x)| {
            x.basic_constraints()
                .ok()
                .flatten()
                .map(|b| b.value.path_len_constraint)
        })
        .flatten();
    match path_len {
        Some(n) => format!("yes, path length {n}"),
        None => "yes".into(),
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

#[cfg(test)]
mod tests;
