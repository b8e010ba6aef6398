//! Which Certificates name which Secrets besides their own (keystore passwords), so a change
//! to such a Secret reaches exactly those Certificates: a lookup, not a scan of the cache.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

type Key = (String, String);

/// Secrets named by Certificates, by namespace; filled in as Certificates are reconciled.
#[derive(Default)]
pub struct SecretRefs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_certificate: HashMap<Key, BTreeSet<String>>,
    by_secret: HashMap<Key, BTreeSet<String>>,
}

impl SecretRefs {
    /// The Secrets Certificate `namespace/name` names now (empty: none).
    pub fn set(&self, namespace: &str, certificate: &str, secrets: BTreeSet<String>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let key = (namespace.to_string(), certificate.to_string());
        if inner.by_certificate.get(&key) == Some(&secrets) {
            return;
        }
        let old = inner.by_certificate.remove(&key).unwrap_or_default();
        for secret in old.difference(&secrets) {
            let secret_key = (namespace.to_string(), secret.clone());
            if let Some(certs) = inner.by_secret.get_mut(&secret_key) {
                certs.remove(certificate);
                if certs.is_empty() {
                    inner.by_secret.remove(&secret_key);
                }
            }
        }
        for secret in &secrets {
            inner
                .by_secret
                .entry((namespace.to_string(), secret.clone()))
                .or_default()
                .insert(certificate.to_string());
        }
        if !secrets.is_empty() {
            inner.by_certificate.insert(key, secrets);
        }
    }

    /// The Certificates in `namespace` that name Secret `secret`.
    pub fn certificates(&self, namespace: &str, secret: &str) -> Vec<String> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner
            .by_secret
            .get(&(namespace.to_string(), secret.to_string()))
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_maps_to_the_certificates_naming_it_now() {
        let refs = SecretRefs::default();
        refs.set("a", "web", BTreeSet::from(["pw".to_string()]));
        refs.set(
            "a",
            "api",
            BTreeSet::from(["pw".to_string(), "jks".to_string()]),
        );
        assert_eq!(refs.certificates("a", "pw"), vec!["api", "web"]);
        assert!(refs.certificates("b", "pw").is_empty());
        refs.set("a", "api", BTreeSet::from(["jks".to_string()]));
        assert_eq!(refs.certificates("a", "pw"), vec!["web"]);
        refs.set("a", "web", BTreeSet::new());
        assert!(refs.certificates("a", "pw").is_empty());
        assert_eq!(refs.certificates("a", "jks"), vec!["api"]);
    }
}
