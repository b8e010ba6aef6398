//! PKCS#12 and Java KeyStore encodings of a key and its chain (p12-keystore and jks crates),
//! and the check that a store found in a Secret still opens with today's password and holds
//! today's key and certificates. Stores are salted, so they are compared by content, never
//! by bytes.

use std::time::{Duration, UNIX_EPOCH};

use crate::api::Pkcs12Profile;

/// A key (PKCS#8 DER) and its chain (DER, leaf first), and the CA certificates (DER).
pub struct Material<'a> {
    pub key_pkcs8: &'a [u8],
    pub chain: &'a [Vec<u8>],
    pub ca: &'a [Vec<u8>],
    /// Creation time written into JKS entries (Unix seconds): the certificate's notBefore, so
    /// the same material always encodes to the same entries.
    pub created: i64,
}

/// Alias of the CA entries in truststores and in `keystore.jks` (as cert-manager names it).
pub const CA_ALIAS: &str = "ca";
/// Default alias of the key entry.
pub const KEY_ALIAS: &str = "certificate";
/// JKS refuses shorter passwords.
pub const JKS_MIN_PASSWORD: usize = 6;

fn p12_writer_settings(
    profile: Pkcs12Profile,
) -> (
    p12_keystore::EncryptionAlgorithm,
    p12_keystore::MacAlgorithm,
) {
    use p12_keystore::{EncryptionAlgorithm as E, MacAlgorithm as M};
    match profile {
        Pkcs12Profile::Modern2023 => (E::PbeWithHmacSha256AndAes256, M::HmacSha256),
        Pkcs12Profile::LegacyDes => (E::PbeWithShaAnd3KeyTripleDesCbc, M::HmacSha1),
        // The crate's name for pbeWithSHAAnd40BitRC2-CBC (OID 1.2.840.113549.1.12.1.6).
        Pkcs12Profile::LegacyRc2 => (E::PbeWithShaAnd40BitRc4Cbc, M::HmacSha1),
    }
}

fn p12_certificate(der: &[u8]) -> Result<p12_keystore::Certificate, String> {
    p12_keystore::Certificate::from_der(der).map_err(|e| format!("certificate for PKCS#12: {e}"))
}

/// `keystore.p12`: the key with its chain under `alias`.
pub fn pkcs12_keystore(
    m: &Material<'_>,
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, String> {
    let key = p12_keystore::PrivateKey::from_der(m.key_pkcs8)
        .map_err(|e| format!("key for PKCS#12: {e}"))?;
    let certs = m
        .chain
        .iter()
        .map(|c| p12_certificate(c))
        .collect::<Result<Vec<_>, _>>()?;
    // The local key ID ties the key bag to its certificate; any stable value does.
    let chain = p12_keystore::PrivateKeyChain::new(KEY_ALIAS.as_bytes().to_vec(), key, certs);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        KEY_ALIAS,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    write_p12(&store, password, profile)
}

/// `truststore.p12`: the CA certificates as trusted entries (`ca`, `ca-1`, ...).
pub fn pkcs12_truststore(
    m: &Material<'_>,
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, String> {
    let mut store = p12_keystore::KeyStore::new();
    for (i, der) in m.ca.iter().enumerate() {
        store.add_entry(
            &ca_alias(i),
            p12_keystore::KeyStoreEntry::Certificate(p12_certificate(der)?),
        );
    }
    write_p12(&store, password, profile)
}

fn write_p12(
    store: &p12_keystore::KeyStore,
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, String> {
    let (encryption, mac) = p12_writer_settings(profile);
    store
        .writer(password)
        .encryption_algorithm(encryption)
        .mac_algorithm(mac)
        .write()
        .map_err(|e| format!("writing PKCS#12: {e}"))
}

fn ca_alias(i: usize) -> String {
    match i {
        0 => CA_ALIAS.to_string(),
        n => format!("{CA_ALIAS}-{n}"),
    }
}

/// Whether `store` opens with `password` and holds exactly the key and chain of `m`.
pub fn pkcs12_keystore_holds(store: &[u8], password: &str, m: &Material<'_>) -> bool {
    let Ok(opened) = p12_keystore::KeyStore::from_pkcs12(
        store,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    ) else {
        return false;
    };
    let Some((_, chain)) = opened.private_key_chain() else {
        return false;
    };
    let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
    let wanted: Vec<&[u8]> = m.chain.iter().map(Vec::as_slice).collect();
    chain.key().as_der() == m.key_pkcs8 && certs == wanted
}

/// Whether `store` opens with `password` and holds exactly the CA certificates of `m`.
pub fn pkcs12_truststore_holds(store: &[u8], password: &str, m: &Material<'_>) -> bool {
    let Ok(opened) =
        p12_keystore::KeyStore::from_pkcs12(store, password, p12_keystore::Pkcs12ImportPolicy::Raw)
    else {
        return false;
    };
    let mut found: Vec<&[u8]> = opened
        .entries()
        .filter_map(|(_, e)| match e {
            p12_keystore::KeyStoreEntry::Certificate(c) => Some(c.as_der()),
            _ => None,
        })
        .collect();
    let mut wanted: Vec<&[u8]> = m.ca.iter().map(Vec::as_slice).collect();
    found.sort();
    wanted.sort();
    opened.entries_len() == found.len() && found == wanted
}

fn jks_certificate(der: &[u8]) -> jks::Certificate {
    jks::Certificate {
        cert_type: "X509".into(),
        content: der.to_vec(),
    }
}

fn jks_options() -> jks::KeyStoreOptions {
    jks::KeyStoreOptions {
        // Entries in a fixed order: the same material encodes the same way.
        ordered_aliases: true,
        ..jks::KeyStoreOptions::default()
    }
}

fn created(m: &Material<'_>) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(m.created).unwrap_or(0))
}

fn check_jks_password(password: &str) -> Result<(), String> {
    if password.chars().count() < JKS_MIN_PASSWORD {
        return Err(format!(
            "a JKS password needs at least {JKS_MIN_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// `keystore.jks`: the key with its chain under `alias` (key password = store password), and
/// the CA certificates as trusted entries, as cert-manager writes it.
pub fn jks_keystore(m: &Material<'_>, password: &str, alias: &str) -> Result<Vec<u8>, String> {
    check_jks_password(password)?;
    let mut store = jks::KeyStore::with_options(jks_options());
    let entry = jks::PrivateKeyEntry {
        creation_time: created(m),
        private_key: m.key_pkcs8.to_vec(),
        certificate_chain: m.chain.iter().map(|c| jks_certificate(c)).collect(),
    };
    store
        .set_private_key_entry(alias, entry, password.as_bytes())
        .map_err(|e| format!("JKS key entry: {e}"))?;
    add_jks_cas(&mut store, m)?;
    write_jks(&store, password)
}

/// `truststore.jks`: the CA certificates as trusted entries.
pub fn jks_truststore(m: &Material<'_>, password: &str) -> Result<Vec<u8>, String> {
    check_jks_password(password)?;
    let mut store = jks::KeyStore::with_options(jks_options());
    add_jks_cas(&mut store, m)?;
    write_jks(&store, password)
}

fn add_jks_cas(store: &mut jks::KeyStore, m: &Material<'_>) -> Result<(), String> {
    for (i, der) in m.ca.iter().enumerate() {
        let entry = jks::TrustedCertificateEntry {
            creation_time: created(m),
            certificate: jks_certificate(der),
        };
        store
            .set_trusted_certificate_entry(&ca_alias(i), entry)
            .map_err(|e| format!("JKS trusted entry: {e}"))?;
    }
    Ok(())
}

fn write_jks(store: &jks::KeyStore, password: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    store
        .store(&mut out, password.as_bytes())
        .map_err(|e| format!("writing JKS: {e}"))?;
    Ok(out)
}

fn open_jks(store: &[u8], password: &str) -> Option<jks::KeyStore> {
    let mut opened = jks::KeyStore::with_options(jks_options());
    // `load` verifies the store's integrity digest, which is keyed by the password.
    opened.load(store, password.as_bytes()).ok()?;
    Some(opened)
}

fn jks_trusted(store: &jks::KeyStore) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = store
        .aliases()
        .iter()
        .filter_map(|a| store.get_trusted_certificate_entry(a).ok())
        .map(|e| e.certificate.content)
        .collect();
    found.sort();
    found
}

fn sorted(ca: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut wanted = ca.to_vec();
    wanted.sort();
    wanted
}

/// Whether `store` opens with `password` and holds the key and chain of `m` under `alias`,
/// and its CA certificates.
pub fn jks_keystore_holds(store: &[u8], password: &str, alias: &str, m: &Material<'_>) -> bool {
    let Some(opened) = open_jks(store, password) else {
        return false;
    };
    let Ok(entry) = opened.get_private_key_entry(alias, password.as_bytes()) else {
        return false;
    };
    let chain: Vec<&[u8]> = entry
        .certificate_chain
        .iter()
        .map(|c| c.content.as_slice())
        .collect();
    let wanted: Vec<&[u8]> = m.chain.iter().map(Vec::as_slice).collect();
    entry.private_key == m.key_pkcs8
        && chain == wanted
        && jks_trusted(&opened) == sorted(m.ca)
        && opened.len() == m.ca.len() + 1
}

/// Whether `store` opens with `password` and holds exactly the CA certificates of `m`.
pub fn jks_truststore_holds(store: &[u8], password: &str, m: &Material<'_>) -> bool {
    let Some(opened) = open_jks(store, password) else {
        return false;
    };
    opened.len() == m.ca.len() && jks_trusted(&opened) == sorted(m.ca)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm, KeyEncoding};
    use crate::pki::keys::PrivateKey;
    use crate::pki::request::sign_request;

    fn material() -> (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "s", "issuerRef": {"name": "i"}, "commonName": "app", "isCA": true,
        }))
        .unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let request = sign_request(&spec, &key).unwrap();
        let cert = request.params.clone().self_signed(key.pair()).unwrap();
        let pkcs8 = pem::parse(key.to_pem(KeyEncoding::Pkcs8).unwrap())
            .unwrap()
            .into_contents();
        let der = cert.der().to_vec();
        (pkcs8, vec![der.clone()], vec![der])
    }

    #[test]
    fn stores_open_with_their_password_only_and_hold_the_material() {
        let (key, chain, ca) = material();
        let m = Material {
            key_pkcs8: &key,
            chain: &chain,
            ca: &ca,
            created: 1_800_000_000,
        };
        for profile in [
            Pkcs12Profile::Modern2023,
            Pkcs12Profile::LegacyDes,
            Pkcs12Profile::LegacyRc2,
        ] {
            let ks = pkcs12_keystore(&m, "changeit", profile).unwrap();
            assert!(pkcs12_keystore_holds(&ks, "changeit", &m), "{profile:?}");
            assert!(!pkcs12_keystore_holds(&ks, "other-pw", &m), "{profile:?}");
            let ts = pkcs12_truststore(&m, "changeit", profile).unwrap();
            assert!(pkcs12_truststore_holds(&ts, "changeit", &m), "{profile:?}");
            assert!(!pkcs12_truststore_holds(&ts, "other-pw", &m));
        }
        let ks = jks_keystore(&m, "changeit", "app").unwrap();
        assert!(jks_keystore_holds(&ks, "changeit", "app", &m));
        assert!(!jks_keystore_holds(&ks, "changeit", "other", &m));
        assert!(!jks_keystore_holds(&ks, "changeme", "app", &m));
        let ts = jks_truststore(&m, "changeit").unwrap();
        assert!(jks_truststore_holds(&ts, "changeit", &m));
        assert!(!jks_truststore_holds(&ts, "changeme", &m));
        assert!(jks_keystore(&m, "short", "app").is_err());
    }

    #[test]
    fn a_store_of_other_material_does_not_count() {
        let (key, chain, ca) = material();
        let (other_key, other_chain, other_ca) = material();
        let m = Material {
            key_pkcs8: &key,
            chain: &chain,
            ca: &ca,
            created: 0,
        };
        let other = Material {
            key_pkcs8: &other_key,
            chain: &other_chain,
            ca: &other_ca,
            created: 0,
        };
        let ks = pkcs12_keystore(&other, "changeit", Pkcs12Profile::Modern2023).unwrap();
        assert!(!pkcs12_keystore_holds(&ks, "changeit", &m));
        let ks = jks_keystore(&other, "changeit", KEY_ALIAS).unwrap();
        assert!(!jks_keystore_holds(&ks, "changeit", KEY_ALIAS, &m));
        assert!(!jks_truststore_holds(b"garbage", "changeit", &m));
        assert!(!pkcs12_truststore_holds(b"garbage", "changeit", &m));
    }
}
