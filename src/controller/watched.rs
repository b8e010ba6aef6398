//! What the reconciles read from watch-fed caches instead of the API server, and the memory
//! of the operator's own writes:
//!
//! - Secrets' metadata (never their data): whether a Certificate's Secret exists, and the
//!   resourceVersion an issuer's Secret is at now;
//! - Issuers and ClusterIssuers, parsed once per resourceVersion;
//! - the Secrets an issuer reads (a CA key pair, credentials), reused only while the watch
//!   shows them at the very version read, so a changed CA Secret is read again as soon as the
//!   watch delivers the change;
//! - the resourceVersions the operator's own Secret and status writes produced, so the watch
//!   events they cause do not each cost a reconcile and a read.
//!
//! Every answer errs towards a live read: a store not yet primed, or a namespace no store
//! covers, is "unknown".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{ClusterIssuer, Issuer, IssuerSpec, IssuerStatus};
use crate::issuer::{IssuerId, SecretCache};

/// How long a remembered own write waits for its watch event before it is forgotten.
const OWN_WRITE_TTL: Duration = Duration::from_secs(600);

/// An issuer as its cache holds it: the spec and status, parsed.
pub type ParsedIssuer = (IssuerSpec, Option<IssuerStatus>);

/// A Secret metadata store and the namespace it covers (None: all).
type SecretStore = (Option<String>, Store<PartialObjectMeta<Secret>>);

#[derive(Default)]
pub struct Watched {
    /// Secret metadata stores, each with the namespace it covers (None: all).
    secrets: Mutex<Vec<SecretStore>>,
    issuers: Mutex<Vec<Store<DynamicObject>>>,
    cluster_issuers: Mutex<Vec<Store<DynamicObject>>>,
    parsed: Mutex<HashMap<IssuerId, (String, Arc<ParsedIssuer>)>>,
    /// Issuers' Secrets as last read, by `namespace/name`.
    read: Mutex<HashMap<String, Arc<Secret>>>,
    own: Mutex<OwnWrites>,
}

/// Is a Secret there? What the metadata cache can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    /// A primed store does not hold it and the operator wrote nothing there it has not seen
    /// since: no read needed.
    Absent,
    /// Present, or not known: read it.
    Read,
}

impl Watched {
    pub fn add_secrets(&self, namespace: Option<String>, store: Store<PartialObjectMeta<Secret>>) {
        if let Ok(mut stores) = self.secrets.lock() {
            stores.push((namespace, store));
        }
    }

    pub fn add_issuers(&self, store: Store<DynamicObject>) {
        if let Ok(mut stores) = self.issuers.lock() {
            stores.push(store);
        }
    }

    pub fn add_cluster_issuers(&self, store: Store<DynamicObject>) {
        if let Ok(mut stores) = self.cluster_issuers.lock() {
            stores.push(store);
        }
    }

    /// The resourceVersion of Secret `namespace/name` as the watch shows it: Some(Some(rv))
    /// present, Some(None) absent, None unknown (no primed store covers the namespace).
    pub fn secret_version(&self, namespace: &str, name: &str) -> Option<Option<String>> {
        let stores = self.secrets.lock().ok()?;
        let (_, store) = stores.iter().find(|(covers, store)| {
            covers.as_deref().is_none_or(|ns| ns == namespace) && primed(store)
        })?;
        let found = store.get(&ObjectRef::new(name).within(namespace));
        Some(found.map(|s| s.resource_version().unwrap_or_default()))
    }

    /// Whether the Certificate's Secret must be read. Safe without a read only when a primed
    /// store does not have it and no write of the operator's may still be on its way there
    /// (a stale "absent" then only makes the Secret write a create, which the API server
    /// refuses with a conflict if it exists after all).
    pub fn existence(&self, namespace: &str, name: &str) -> Existence {
        let key = key(namespace, name);
        let watched = self.secret_version(namespace, name);
        let Ok(mut own) = self.own.lock() else {
            return Existence::Read;
        };
        if matches!(watched, Some(Some(_))) {
            own.unsure.remove(&key);
        }
        existence(watched.as_ref(), own.unsure.contains_key(&key))
    }

    /// A read of the Secret found it missing: nothing of the operator's is on its way.
    pub fn read_missing(&self, namespace: &str, name: &str) {
        if let Ok(mut own) = self.own.lock() {
            own.unsure.remove(&key(namespace, name));
        }
    }

    /// The Secret may exist though the watch does not show it yet (written, or a create
    /// refused because it existed): read it until the watch has it.
    pub fn unsure(&self, namespace: &str, name: &str) {
        if let Ok(mut own) = self.own.lock() {
            own.unsure.insert(key(namespace, name), Instant::now());
        }
    }

    /// The operator wrote Secret `namespace/name`, which is now at `version`.
    pub fn wrote_secret(&self, namespace: &str, name: &str, version: Option<String>) {
        if let Ok(mut own) = self.own.lock() {
            let key = key(namespace, name);
            own.unsure.insert(key.clone(), Instant::now());
            if let Some(v) = version {
                own.secrets.wrote(key, v);
            }
        }
    }

    /// Whether this watch event of a Secret is the operator's own write (seen once).
    pub fn own_secret(&self, namespace: &str, name: &str, version: Option<&str>) -> bool {
        let Some(version) = version else { return false };
        self.own
            .lock()
            .is_ok_and(|mut own| own.secrets.seen(&key(namespace, name), version))
    }

    /// The operator wrote a Certificate's status, which left it at `version`.
    pub fn wrote_status(&self, namespace: &str, name: &str, version: Option<String>) {
        if let (Ok(mut own), Some(v)) = (self.own.lock(), version) {
            own.statuses.wrote(key(namespace, name), v);
        }
    }

    /// Whether this watch event of a Certificate is the operator's own status write (seen
    /// once): anyone else's change, spec, annotations, deletion or a status edit, comes with
    /// another resourceVersion.
    pub fn own_status(&self, namespace: &str, name: &str, version: Option<&str>) -> bool {
        let Some(version) = version else { return false };
        self.own
            .lock()
            .is_ok_and(|mut own| own.statuses.seen(&key(namespace, name), version))
    }

    /// The issuer from the informer cache, parsed once per resourceVersion; None when the
    /// cache does not hold it (then it is read live).
    pub fn issuer(&self, id: &IssuerId) -> Option<Arc<ParsedIssuer>> {
        let obj = match &id.namespace {
            Some(ns) => {
                let r = ObjectRef::new_with(&id.name, ApiResource::erase::<Issuer>(&())).within(ns);
                let stores = self.issuers.lock().ok()?;
                stores.iter().find_map(|s| s.get(&r))
            }
            None => {
                let r = ObjectRef::new_with(&id.name, ApiResource::erase::<ClusterIssuer>(&()));
                let stores = self.cluster_issuers.lock().ok()?;
                stores.iter().find_map(|s| s.get(&r))
            }
        }?;
        let version = obj.resource_version().unwrap_or_default();
        let mut parsed = self.parsed.lock().ok()?;
        if let Some((v, p)) = parsed.get(id)
            && *v == version
        {
            return Some(p.clone());
        }
        let spec: IssuerSpec = serde_json::from_value(obj.data.get("spec")?.clone()).ok()?;
        let status = obj
            .data
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok());
        let p = Arc::new((spec, status));
        parsed.insert(id.clone(), (version, p.clone()));
        Some(p)
    }

    /// Forget what is older than a watch event can be late, and issuers that are gone.
    pub fn sweep(&self, issuer_exists: impl Fn(&IssuerId) -> bool) {
        if let Ok(mut own) = self.own.lock() {
            own.sweep(Instant::now());
        }
        if let Ok(mut parsed) = self.parsed.lock() {
            parsed.retain(|id, _| issuer_exists(id));
        }
        if let Ok(mut read) = self.read.lock() {
            read.retain(|k, s| {
                let (ns, name) = k.split_once('/').unwrap_or_default();
                cached_is_current(s, self.secret_version(ns, name).as_ref())
            });
        }
    }
}

impl SecretCache for Watched {
    fn get(&self, namespace: &str, name: &str) -> Option<Secret> {
        let cached = self.read.lock().ok()?.get(&key(namespace, name)).cloned()?;
        cached_is_current(&cached, self.secret_version(namespace, name).as_ref())
            .then(|| (*cached).clone())
    }

    fn put(&self, namespace: &str, secret: &Secret) {
        if let Ok(mut read) = self.read.lock() {
            read.insert(key(namespace, &secret.name_any()), Arc::new(secret.clone()));
        }
    }
}

/// Whether a store has had its first complete list.
fn primed<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// (pure) See [`Watched::existence`].
fn existence(watched: Option<&Option<String>>, unsure: bool) -> Existence {
    match (watched, unsure) {
        (Some(None), false) => Existence::Absent,
        _ => Existence::Read,
    }
}

/// (pure) A Secret read earlier may stand for the one there now only while the watch shows it
/// at the very version read: changed, gone or unknown means read again.
fn cached_is_current(cached: &Secret, watched: Option<&Option<String>>) -> bool {
    matches!((watched, cached.resource_version()), (Some(Some(now)), Some(read)) if *now == read)
}

/// The resourceVersions the operator's writes produced, each skipped once when its watch
/// event arrives.
#[derive(Default)]
struct Versions(HashMap<String, (String, Instant)>);

impl Versions {
    fn wrote(&mut self, key: String, version: String) {
        self.0.insert(key, (version, Instant::now()));
    }

    /// Whether `version` is the one remembered for `key`; it is forgotten then, so a later
    /// event of the same version (a re-list) is looked at as usual.
    fn seen(&mut self, key: &str, version: &str) -> bool {
        let own = self.0.get(key).is_some_and(|(v, _)| v == version);
        if own {
            self.0.remove(key);
        }
        own
    }
}

#[derive(Default)]
struct OwnWrites {
    secrets: Versions,
    statuses: Versions,
    /// Secrets that may exist though the watch may not show them yet.
    unsure: HashMap<String, Instant>,
}

impl OwnWrites {
    fn sweep(&mut self, now: Instant) {
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < OWN_WRITE_TTL;
        self.secrets.0.retain(|_, (_, at)| fresh(at));
        self.statuses.0.retain(|_, (_, at)| fresh(at));
        self.unsure.retain(|_, at| fresh(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn meta(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some("ns".into());
        m.metadata.resource_version = Some(version.into());
        m
    }

    fn secret(version: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("ca".into());
        s.metadata.resource_version = Some(version.into());
        s
    }

    #[test]
    fn only_a_primed_store_says_a_secret_is_absent() {
        let watched = Watched::default();
        let (reader, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
        watched.add_secrets(Some("ns".into()), reader);
        assert_eq!(watched.secret_version("ns", "s"), None, "not primed");
        assert_eq!(watched.existence("ns", "s"), Existence::Read);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(meta("other", "1")));
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(watched.secret_version("ns", "s"), Some(None));
        assert_eq!(watched.existence("ns", "s"), Existence::Absent);
        assert_eq!(watched.secret_version("other-ns", "s"), None, "not covered");
        assert_eq!(
            watched.secret_version("ns", "other"),
            Some(Some("1".into()))
        );
        assert_eq!(watched.existence("ns", "other"), Existence::Read);
        // Written (or a create refused) and not yet seen by the watch: read.
        watched.wrote_secret("ns", "s", Some("5".into()));
        assert_eq!(watched.existence("ns", "s"), Existence::Read);
        watched.read_missing("ns", "s");
        assert_eq!(watched.existence("ns", "s"), Existence::Absent);
        watched.unsure("ns", "s");
        writer.apply_watcher_event(&Event::Apply(meta("s", "5")));
        assert_eq!(watched.existence("ns", "s"), Existence::Read, "present");
        writer.apply_watcher_event(&Event::Delete(meta("s", "6")));
        assert_eq!(
            watched.existence("ns", "s"),
            Existence::Absent,
            "seen once, the watch alone decides"
        );
    }

    #[test]
    fn an_own_write_is_skipped_once_and_only_at_its_version() {
        let watched = Watched::default();
        watched.wrote_secret("ns", "s", Some("7".into()));
        assert!(
            !watched.own_secret("ns", "s", Some("6")),
            "an older version"
        );
        assert!(!watched.own_secret("ns", "other", Some("7")));
        assert!(!watched.own_secret("ns", "s", None));
        assert!(watched.own_secret("ns", "s", Some("7")));
        assert!(!watched.own_secret("ns", "s", Some("7")), "once");
        watched.wrote_status("ns", "c", Some("9".into()));
        assert!(
            !watched.own_status("ns", "c", Some("10")),
            "a tenant's edit"
        );
        assert!(watched.own_status("ns", "c", Some("9")));
        assert!(!watched.own_status("ns", "c", Some("9")));
    }

    #[test]
    fn remembered_writes_expire() {
        let mut own = OwnWrites::default();
        own.secrets.wrote("ns/s".into(), "1".into());
        own.unsure.insert("ns/s".into(), Instant::now());
        own.sweep(Instant::now());
        assert_eq!((own.secrets.0.len(), own.unsure.len()), (1, 1));
        own.sweep(Instant::now() + OWN_WRITE_TTL);
        assert_eq!((own.secrets.0.len(), own.unsure.len()), (0, 0));
    }

    #[test]
    fn a_read_secret_stands_only_while_the_watch_shows_its_version() {
        let read = secret("3");
        assert!(cached_is_current(&read, Some(&Some("3".into()))));
        assert!(
            !cached_is_current(&read, Some(&Some("4".into()))),
            "changed"
        );
        assert!(!cached_is_current(&read, Some(&None)), "gone");
        assert!(!cached_is_current(&read, None), "unknown");
        assert!(!cached_is_current(
            &Secret::default(),
            Some(&Some(String::new()))
        ));
    }

    #[test]
    fn a_ca_secret_change_delivered_by_the_watch_is_read_again() {
        let watched = Watched::default();
        let (reader, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
        watched.add_secrets(None, reader);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(meta("ca", "3")));
        writer.apply_watcher_event(&Event::InitDone);
        watched.put("ns", &secret("3"));
        assert!(SecretCache::get(&watched, "ns", "ca").is_some());
        writer.apply_watcher_event(&Event::Apply(meta("ca", "4")));
        assert!(SecretCache::get(&watched, "ns", "ca").is_none(), "changed");
        watched.put("ns", &secret("4"));
        assert!(SecretCache::get(&watched, "ns", "ca").is_some());
        writer.apply_watcher_event(&Event::Delete(meta("ca", "5")));
        assert!(SecretCache::get(&watched, "ns", "ca").is_none(), "gone");
    }
}
