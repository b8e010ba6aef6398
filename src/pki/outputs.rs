//! The Secret's extra outputs, derived from `tls.key`, `tls.crt` and `ca.crt`: the combined
//! PEM and DER key (`additionalOutputFormats`) and the PKCS#12 and JKS stores (`keystores`),
//! under the keys cert-manager uses. Pure: the passwords are read by the caller.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{CertificateSpec, OutputFormatType};

use super::keystore::{self, Material};
use super::{PrivateKey, Sensitive};

pub const COMBINED_PEM: &str = "tls-combined.pem";
pub const KEY_DER: &str = "key.der";
pub const KEYSTORE_P12: &str = "keystore.p12";
pub const TRUSTSTORE_P12: &str = "truststore.p12";
pub const KEYSTORE_JKS: &str = "keystore.jks";
pub const TRUSTSTORE_JKS: &str = "truststore.jks";
/// Every key this module writes; the others in the Secret are `tls.crt`, `tls.key`, `ca.crt`.
pub const ALL: [&str; 6] = [
    COMBINED_PEM,
    KEY_DER,
    KEYSTORE_P12,
    TRUSTSTORE_P12,
    KEYSTORE_JKS,
    TRUSTSTORE_JKS,
];

/// The keystore passwords, read from the Secrets the spec names (None: not needed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passwords {
    pub pkcs12: Option<Sensitive>,
    pub jks: Option<Sensitive>,
}

/// What the outputs are derived from: the Secret's own `tls.key`, `tls.crt` and `ca.crt`.
pub struct Source<'a> {
    pub key_pem: &'a [u8],
    pub chain_pem: &'a [u8],
    pub ca_pem: &'a [u8],
    /// The leaf's notBefore (Unix seconds), stamped on JKS entries.
    pub not_before: i64,
}

/// The output keys `spec` asks for.
pub fn wanted(spec: &CertificateSpec) -> BTreeSet<&'static str> {
    let mut keys = BTreeSet::new();
    for format in &spec.additional_output_formats {
        keys.insert(match format.type_ {
            OutputFormatType::CombinedPem => COMBINED_PEM,
            OutputFormatType::Der => KEY_DER,
        });
    }
    let stores = spec.keystores.as_ref();
    if stores
        .and_then(|k| k.pkcs12.as_ref())
        .is_some_and(|p| p.create)
    {
        keys.extend([KEYSTORE_P12, TRUSTSTORE_P12]);
    }
    if stores
        .and_then(|k| k.jks.as_ref())
        .is_some_and(|j| j.create)
    {
        keys.extend([KEYSTORE_JKS, TRUSTSTORE_JKS]);
    }
    keys
}

/// The key and certificates in the forms the stores take.
struct Parsed {
    key_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    chain: Vec<Vec<u8>>,
    ca: Vec<Vec<u8>>,
}

fn parse(src: &Source<'_>) -> Result<Parsed, String> {
    let key_text = std::str::from_utf8(src.key_pem).map_err(|_| "tls.key is not text")?;
    let key_der = pem::parse(key_text)
        .map_err(|_| "tls.key is not PEM")?
        .into_contents();
    let key_pkcs8 = PrivateKey::from_pem(key_text)
        .and_then(|k| k.to_pkcs8_der())
        .map_err(|e| e.to_string())?;
    let certs = |bytes: &[u8], what: &str| -> Result<Vec<Vec<u8>>, String> {
        Ok(pem::parse_many(bytes)
            .map_err(|e| format!("{what} is not PEM: {e}"))?
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(pem::Pem::into_contents)
            .collect())
    };
    Ok(Parsed {
        key_der,
        key_pkcs8,
        chain: certs(src.chain_pem, "tls.crt")?,
        ca: certs(src.ca_pem, "ca.crt")?,
    })
}

fn password<'a>(p: &'a Option<Sensitive>, which: &str) -> Result<&'a str, String> {
    p.as_ref()
        .map(Sensitive::expose)
        .ok_or_else(|| format!("the {which} keystore password is not available"))
}

/// Render every output `spec` asks for.
pub fn render(
    spec: &CertificateSpec,
    src: &Source<'_>,
    passwords: &Passwords,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let keys = wanted(spec);
    let mut out = BTreeMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let parsed = parse(src)?;
    let m = Material {
        key_pkcs8: &parsed.key_pkcs8,
        chain: &parsed.chain,
        ca: &parsed.ca,
        created: src.not_before,
    };
    let stores = spec.keystores.clone().unwrap_or_default();
    for key in keys {
        let value = match key {
            COMBINED_PEM => combined(src),
            KEY_DER => parsed.key_der.clone(),
            KEYSTORE_P12 | TRUSTSTORE_P12 => {
                let profile = stores
                    .pkcs12
                    .as_ref()
                    .and_then(|p| p.profile)
                    .unwrap_or_default();
                let pw = password(&passwords.pkcs12, "PKCS#12")?;
                if key == KEYSTORE_P12 {
                    keystore::pkcs12_keystore(&m, pw, profile)?
                } else {
                    keystore::pkcs12_truststore(&m, pw, profile)?
                }
            }
            KEYSTORE_JKS => {
                keystore::jks_keystore(&m, password(&passwords.jks, "JKS")?, &jks_alias(spec))?
            }
            TRUSTSTORE_JKS => keystore::jks_truststore(&m, password(&passwords.jks, "JKS")?)?,
            _ => continue,
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// The key, then the chain, as cert-manager's `tls-combined.pem`.
fn combined(src: &Source<'_>) -> Vec<u8> {
    let mut out = src.key_pem.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(src.chain_pem);
    out
}

fn jks_alias(spec: &CertificateSpec) -> String {
    spec.keystores
        .as_ref()
        .and_then(|k| k.jks.as_ref())
        .and_then(|j| j.alias.clone())
        .unwrap_or_else(|| keystore::KEY_ALIAS.to_string())
}

/// The first output that does not match what `spec` asks for (missing, left over, or not
/// holding today's key, certificates and password), or None when all are in step.
pub fn stale(
    spec: &CertificateSpec,
    src: &Source<'_>,
    passwords: &Passwords,
    present: &BTreeMap<String, Vec<u8>>,
) -> Option<String> {
    let keys = wanted(spec);
    if let Some(extra) = ALL
        .iter()
        .find(|k| present.contains_key(**k) && !keys.contains(**k))
    {
        return Some(format!("{extra} is no longer asked for"));
    }
    if keys.is_empty() {
        return None;
    }
    let Ok(parsed) = parse(src) else {
        // The certificate checks before this one re-issue an unreadable Secret.
        return None;
    };
    let m = Material {
        key_pkcs8: &parsed.key_pkcs8,
        chain: &parsed.chain,
        ca: &parsed.ca,
        created: src.not_before,
    };
    for key in keys {
        let Some(found) = present.get(key) else {
            return Some(format!("{key} is missing"));
        };
        let pkcs12 = || password(&passwords.pkcs12, "PKCS#12").ok();
        let jks = || password(&passwords.jks, "JKS").ok();
        let current = match key {
            COMBINED_PEM => *found == combined(src),
            KEY_DER => *found == parsed.key_der,
            KEYSTORE_P12 => {
                pkcs12().is_some_and(|pw| keystore::pkcs12_keystore_holds(found, pw, &m))
            }
            TRUSTSTORE_P12 => {
                pkcs12().is_some_and(|pw| keystore::pkcs12_truststore_holds(found, pw, &m))
            }
            KEYSTORE_JKS => jks()
                .is_some_and(|pw| keystore::jks_keystore_holds(found, pw, &jks_alias(spec), &m)),
            TRUSTSTORE_JKS => jks().is_some_and(|pw| keystore::jks_truststore_holds(found, pw, &m)),
            _ => true,
        };
        if !current {
            return Some(format!(
                "{key} does not hold the current key and certificates under the current password"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{KeyAlgorithm, KeyEncoding};
    use crate::pki::request::sign_request;

    fn spec(extra: serde_json::Value) -> CertificateSpec {
        let mut base =
            serde_json::json!({"secretName": "s", "issuerRef": {"name": "i"}, "commonName": "app"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn pems() -> (String, String) {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let cert = sign_request(&spec(serde_json::json!({})), &key)
            .unwrap()
            .params
            .self_signed(key.pair())
            .unwrap();
        (key.to_pem(KeyEncoding::Pkcs1).unwrap(), cert.pem())
    }

    fn source<'a>(key: &'a str, cert: &'a str) -> Source<'a> {
        Source {
            key_pem: key.as_bytes(),
            chain_pem: cert.as_bytes(),
            ca_pem: cert.as_bytes(),
            not_before: 0,
        }
    }

    fn passwords(p12: &str, jks: &str) -> Passwords {
        Passwords {
            pkcs12: Some(Sensitive::verbatim(p12)),
            jks: Some(Sensitive::verbatim(jks)),
        }
    }

    #[test]
    fn every_output_is_rendered_under_cert_managers_keys_and_then_in_step() {
        let (key, cert) = pems();
        let s = spec(serde_json::json!({
            "additionalOutputFormats": [{"type": "CombinedPEM"}, {"type": "DER"}],
            "keystores": {
                "pkcs12": {"create": true, "passwordSecretRef": {"name": "p", "key": "k"}},
                "jks": {"create": true, "passwordSecretRef": {"name": "p", "key": "k"}, "alias": "app"},
            },
        }));
        let pw = passwords("changeit", "changeit");
        let out = render(&s, &source(&key, &cert), &pw).unwrap();
        assert_eq!(
            out.keys().map(String::as_str).collect::<Vec<_>>(),
            vec![
                KEY_DER,
                KEYSTORE_JKS,
                KEYSTORE_P12,
                COMBINED_PEM,
                TRUSTSTORE_JKS,
                TRUSTSTORE_P12
            ]
        );
        assert_eq!(out[COMBINED_PEM], format!("{key}{cert}").into_bytes());
        assert_eq!(
            out[KEY_DER],
            pem::parse(&key).unwrap().into_contents(),
            "key.der keeps tls.key's encoding (here SEC 1)"
        );
        assert_eq!(stale(&s, &source(&key, &cert), &pw, &out), None);
        // A new password: the stores no longer count, the other outputs do.
        let changed = passwords("changeme", "changeit");
        let why = stale(&s, &source(&key, &cert), &changed, &out).unwrap();
        assert!(why.starts_with(KEYSTORE_P12), "{why}");
        // A new key: everything derived from it is stale.
        let (other_key, other_cert) = pems();
        assert!(stale(&s, &source(&other_key, &other_cert), &pw, &out).is_some());
    }

    #[test]
    fn outputs_no_longer_asked_for_are_stale_and_nothing_asked_is_nothing() {
        let (key, cert) = pems();
        let none = spec(serde_json::json!({}));
        let pw = Passwords::default();
        assert!(render(&none, &source(&key, &cert), &pw).unwrap().is_empty());
        let leftover = BTreeMap::from([(KEY_DER.to_string(), vec![1])]);
        assert!(stale(&none, &source(&key, &cert), &pw, &leftover).is_some());
        assert_eq!(
            stale(&none, &source(&key, &cert), &pw, &BTreeMap::new()),
            None
        );
        let off = spec(
            serde_json::json!({"keystores": {"pkcs12": {"create": false, "passwordSecretRef": {"name": "p", "key": "k"}}}}),
        );
        assert!(wanted(&off).is_empty());
    }

    #[test]
    fn a_missing_password_is_an_error_not_an_empty_store() {
        let (key, cert) = pems();
        let s = spec(
            serde_json::json!({"keystores": {"jks": {"create": true, "passwordSecretRef": {"name": "p", "key": "k"}}}}),
        );
        let err = render(&s, &source(&key, &cert), &Passwords::default()).unwrap_err();
        assert!(err.contains("JKS"), "{err}");
    }
}
