//! The Certificate controller's cache: typed objects, read once per watch event, and an index
//! by claimed Secret and by issuer (`certificate_index`) fed by the same events.
//!
//! Certificates are read leniently: one that does not deserialize is kept as
//! [`CachedCertificate::Malformed`] (its metadata and why), so it is reported on its own
//! instead of failing the whole watch. `metadata.managedFields` is dropped on reading: it is
//! large and nothing here reads it.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Deserializer};

use crate::api::{Certificate, IssuerRef};
use crate::issuer::IssuerId;

use super::certificate_index::{Change, Entry, Indexer, Rank};

/// A watched Certificate: typed, or why it could not be read.
#[derive(Debug, Clone)]
pub enum CachedCertificate {
    Valid(Box<Certificate>),
    Malformed(Box<Malformed>),
}

/// A Certificate the API server accepted but this operator cannot read.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub metadata: ObjectMeta,
    /// `spec.secretName`, when it is a string: the Secret is still claimed.
    pub secret_name: Option<String>,
    /// The issuer `spec.issuerRef` names, when it reads: an emergency rotation of that issuer
    /// counts this Certificate (and never finishes without it).
    pub issuer: Option<IssuerId>,
    /// Why it cannot be read.
    pub error: String,
}

impl CachedCertificate {
    pub fn valid(&self) -> Option<&Certificate> {
        match self {
            CachedCertificate::Valid(c) => Some(c),
            CachedCertificate::Malformed(_) => None,
        }
    }

    /// The Secret it claims, when that can be read.
    pub fn secret_name(&self) -> Option<&str> {
        match self {
            CachedCertificate::Valid(c) => Some(&c.spec.secret_name),
            CachedCertificate::Malformed(m) => m.secret_name.as_deref(),
        }
    }

    /// The issuer it names, when that can be read.
    pub fn issuer(&self) -> Option<IssuerId> {
        match self {
            CachedCertificate::Valid(c) => Some(IssuerId::referenced(
                c.metadata.namespace.as_deref().unwrap_or_default(),
                &c.spec.issuer_ref,
            )),
            CachedCertificate::Malformed(m) => m.issuer.clone(),
        }
    }

    /// Read one object as the API server sent it (pure). Only metadata that does not parse
    /// is an error; any other problem makes it `Malformed`.
    pub fn read(mut value: serde_json::Value) -> Result<Self, serde_json::Error> {
        if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("managedFields");
        }
        let metadata_value = value.get("metadata").cloned().unwrap_or_default();
        let secret_name = value
            .pointer("/spec/secretName")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let issuer_ref = value
            .pointer("/spec/issuerRef")
            .cloned()
            .and_then(|r| serde_json::from_value::<IssuerRef>(r).ok());
        match serde_json::from_value::<Certificate>(value) {
            Ok(cert) => Ok(CachedCertificate::Valid(Box::new(cert))),
            Err(error) => {
                let metadata: ObjectMeta = serde_json::from_value(metadata_value)?;
                let namespace = metadata.namespace.clone().unwrap_or_default();
                Ok(CachedCertificate::Malformed(Box::new(Malformed {
                    issuer: issuer_ref.map(|r| IssuerId::referenced(&namespace, &r)),
                    metadata,
                    secret_name,
                    error: error.to_string(),
                })))
            }
        }
    }

    /// What the index keeps of it.
    pub fn entry(&self) -> Entry {
        let meta = self.meta();
        let namespace = meta.namespace.clone().unwrap_or_default();
        Entry {
            rank: claim_rank(meta),
            name: meta.name.clone().unwrap_or_default(),
            secret_name: self.secret_name().map(str::to_string),
            issuer: self.issuer(),
            namespace,
        }
    }
}

impl<'de> Deserialize<'de> for CachedCertificate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        CachedCertificate::read(value).map_err(serde::de::Error::custom)
    }
}

impl Resource for CachedCertificate {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Certificate::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Certificate::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Certificate::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Certificate::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            CachedCertificate::Valid(c) => &c.metadata,
            CachedCertificate::Malformed(m) => &m.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            CachedCertificate::Valid(c) => &mut c.metadata,
            CachedCertificate::Malformed(m) => &mut m.metadata,
        }
    }
}

/// The (creation time, name) a claim on a Secret is judged by: the older Certificate wins,
/// and of two created in the same second the one whose name sorts first.
pub fn claim_rank(meta: &ObjectMeta) -> Rank {
    (
        meta.creation_timestamp.clone().map(|t| t.0),
        meta.name.clone().unwrap_or_default(),
    )
}

/// One scope's Certificates: the reflector's store and the index beside it.
#[derive(Clone)]
pub struct Certificates {
    store: Store<CachedCertificate>,
    index: Arc<RwLock<Indexer>>,
}

impl Certificates {
    /// A cache for `api`, and the stream that fills it: watch events go to the index and
    /// the store, then the applied objects are the controller's triggers.
    pub fn watch(
        api: Api<CachedCertificate>,
        config: watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<CachedCertificate, watcher::Error>> + Send + 'static,
    ) {
        let (store, writer) = reflector::store();
        let index = Arc::new(RwLock::new(Indexer::default()));
        let feeding = index.clone();
        let stream = watcher(api, config)
            .default_backoff()
            .inspect_ok(move |event| {
                if let Ok(mut indexer) = feeding.write() {
                    indexer.apply(change_of(event));
                }
            })
            .reflect(writer)
            .applied_objects();
        (Certificates { store, index }, stream)
    }

    pub fn store(&self) -> &Store<CachedCertificate> {
        &self.store
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<CachedCertificate>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// The oldest other Certificate in `namespace` claiming `secret_name`, if older than `me`.
    pub fn older_claimant(&self, namespace: &str, secret_name: &str, me: &Rank) -> Option<String> {
        let indexer = self.index.read().ok()?;
        indexer.live.older_claimant(namespace, secret_name, me)
    }

    /// The Certificates naming `issuer`, as cached.
    pub fn using(&self, issuer: &IssuerId) -> Vec<Arc<CachedCertificate>> {
        let keys = match self.index.read() {
            Ok(indexer) => indexer.live.using(issuer),
            Err(_) => return Vec::new(),
        };
        keys.iter()
            .filter_map(|(namespace, name)| self.get(namespace, name))
            .collect()
    }

    /// (namespace, name) of the Certificates naming `issuer`.
    pub fn names_using(&self, issuer: &IssuerId) -> Vec<(String, String)> {
        self.index
            .read()
            .map(|indexer| indexer.live.using(issuer))
            .unwrap_or_default()
    }
}

/// A watch event, as the index sees it.
fn change_of(event: &watcher::Event<CachedCertificate>) -> Change {
    let delete = |c: &CachedCertificate| Change::Delete {
        namespace: c.namespace().unwrap_or_default(),
        name: c.name_any(),
    };
    match event {
        watcher::Event::Apply(c) => Change::Apply(c.entry()),
        watcher::Event::Delete(c) => delete(c),
        watcher::Event::Init => Change::Init,
        watcher::Event::InitApply(c) => Change::InitApply(c.entry()),
        watcher::Event::InitDone => Change::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "certsmith.dev/v1alpha1",
            "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": spec,
        })
    }

    #[test]
    fn a_readable_certificate_is_typed_without_its_managed_fields() {
        let value = certificate(serde_json::json!({"secretName": "web-tls",
            "issuerRef": {"name": "ca"}, "dnsNames": ["web.example"]}));
        let cached: CachedCertificate = serde_json::from_value(value).unwrap();
        let cert = cached.valid().unwrap();
        assert_eq!(cert.spec.secret_name, "web-tls");
        assert!(cert.metadata.managed_fields.is_none());
        let entry = cached.entry();
        assert_eq!(entry.secret_name.as_deref(), Some("web-tls"));
        assert_eq!(entry.issuer, Some(IssuerId::issuer("ns", "ca")));
        assert_eq!(entry.rank.1, "web");
        assert!(entry.rank.0.is_some());
    }

    #[test]
    fn an_unreadable_certificate_is_kept_with_why_and_still_claims_its_secret() {
        let value = certificate(serde_json::json!({"secretName": "web-tls",
            "issuerRef": {"name": "ca"}, "duration": 12}));
        let cached: CachedCertificate = serde_json::from_value(value).unwrap();
        let CachedCertificate::Malformed(m) = &cached else {
            panic!("read as valid");
        };
        assert!(!m.error.is_empty());
        assert_eq!(m.metadata.uid.as_deref(), Some("u1"));
        assert!(m.metadata.managed_fields.is_none());
        let entry = cached.entry();
        assert_eq!(entry.secret_name.as_deref(), Some("web-tls"));
        assert_eq!(
            entry.issuer,
            Some(IssuerId::issuer("ns", "ca")),
            "still counted"
        );
        assert_eq!(cached.name_any(), "web");
    }

    #[test]
    fn a_list_with_one_unreadable_certificate_still_reads() {
        let good = certificate(serde_json::json!({"secretName": "a", "issuerRef": {"name": "ca"}}));
        let bad = certificate(serde_json::json!("not an object"));
        let list: Vec<CachedCertificate> =
            serde_json::from_value(serde_json::json!([good, bad])).unwrap();
        assert!(list[0].valid().is_some());
        assert!(list[1].valid().is_none());
    }
}
