//! An index of the watched Certificates by the Secret they claim and by the issuer they name,
//! fed by the watch events (not by reconciles), so that a reconcile finds the other claimants
//! of its Secret, and an issuer its Certificates, without scanning the cache (pure).
//!
//! A relist (`Init`, `InitApply`…, `InitDone`) builds a new index aside and replaces the live
//! one at `InitDone`, as the reflector store does: until then lookups see the previous state.

use std::collections::{BTreeSet, HashMap};

use crate::issuer::IssuerId;

/// The rank a claim on a Secret is judged by: (creation time, name); the smaller wins.
pub type Rank = (Option<jiff::Timestamp>, String);

/// What the index keeps of one Certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub namespace: String,
    pub name: String,
    pub rank: Rank,
    /// `spec.secretName`, when it can be read (also from a Certificate that is otherwise
    /// malformed: it still claims its Secret).
    pub secret_name: Option<String>,
    /// The issuer it names, when its spec is readable.
    pub issuer: Option<IssuerId>,
}

/// A (namespace, name) pair.
type Key = (String, String);

/// The index proper.
#[derive(Debug, Default)]
pub struct CertificateIndex {
    entries: HashMap<Key, Entry>,
    /// (namespace, secretName) → the claimants' ranks, sorted: nearly always one, and a
    /// one-element BTreeSet would allocate a whole node (about 500 bytes a Certificate).
    by_secret: HashMap<Key, Vec<Rank>>,
    /// Issuer → (namespace, name) of the Certificates naming it.
    by_issuer: HashMap<IssuerId, BTreeSet<Key>>,
}

impl CertificateIndex {
    /// Add or replace the entry of a Certificate (its secretName or issuer may have changed).
    pub fn upsert(&mut self, entry: Entry) {
        let key = (entry.namespace.clone(), entry.name.clone());
        if self.entries.get(&key) == Some(&entry) {
            return;
        }
        self.remove(&entry.namespace, &entry.name);
        if let Some(secret) = &entry.secret_name {
            let ranks = self
                .by_secret
                .entry((entry.namespace.clone(), secret.clone()))
                .or_default();
            if let Err(at) = ranks.binary_search(&entry.rank) {
                ranks.insert(at, entry.rank.clone());
            }
        }
        if let Some(issuer) = &entry.issuer {
            self.by_issuer
                .entry(issuer.clone())
                .or_default()
                .insert(key.clone());
        }
        self.entries.insert(key, entry);
    }

    /// Forget a Certificate.
    pub fn remove(&mut self, namespace: &str, name: &str) {
        let Some(old) = self
            .entries
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            return;
        };
        if let Some(secret) = old.secret_name {
            let key = (old.namespace.clone(), secret);
            if let Some(ranks) = self.by_secret.get_mut(&key) {
                if let Ok(at) = ranks.binary_search(&old.rank) {
                    ranks.remove(at);
                }
                if ranks.is_empty() {
                    self.by_secret.remove(&key);
                }
            }
        }
        if let Some(issuer) = old.issuer
            && let Some(names) = self.by_issuer.get_mut(&issuer)
        {
            names.remove(&(old.namespace, old.name));
            if names.is_empty() {
                self.by_issuer.remove(&issuer);
            }
        }
    }

    /// The ranks of every Certificate in `namespace` claiming `secret_name`, oldest first.
    pub fn claimants(&self, namespace: &str, secret_name: &str) -> Vec<Rank> {
        self.by_secret
            .get(&(namespace.to_string(), secret_name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The oldest Certificate in `namespace` other than `me` claiming `secret_name`, if it
    /// ranks before `me`.
    pub fn older_claimant(&self, namespace: &str, secret_name: &str, me: &Rank) -> Option<String> {
        self.by_secret
            .get(&(namespace.to_string(), secret_name.to_string()))?
            .iter()
            .find(|other| other.1 != me.1)
            .filter(|other| *other < me)
            .map(|(_, name)| name.clone())
    }

    /// (namespace, name) of every Certificate naming `issuer`.
    pub fn using(&self, issuer: &IssuerId) -> Vec<Key> {
        self.by_issuer
            .get(issuer)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A watch event, reduced to what the index needs.
#[derive(Debug, Clone)]
pub enum Change {
    Apply(Entry),
    Delete {
        namespace: String,
        name: String,
    },
    /// A relist starts.
    Init,
    InitApply(Entry),
    /// The relist is complete: it replaces the index.
    InitDone,
}

/// The live index and the one a relist is building.
#[derive(Debug, Default)]
pub struct Indexer {
    pub live: CertificateIndex,
    building: Option<CertificateIndex>,
}

impl Indexer {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Apply(entry) => self.live.upsert(entry),
            Change::Delete { namespace, name } => self.live.remove(&namespace, &name),
            Change::Init => self.building = Some(CertificateIndex::default()),
            Change::InitApply(entry) => self.building.get_or_insert_default().upsert(entry),
            Change::InitDone => {
                if let Some(built) = self.building.take() {
                    self.live = built;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, secs: i64, secret: &str, issuer: &str) -> Entry {
        Entry {
            namespace: "ns".into(),
            name: name.into(),
            rank: (jiff::Timestamp::from_second(secs).ok(), name.into()),
            secret_name: Some(secret.into()),
            issuer: Some(IssuerId::issuer("ns", issuer)),
        }
    }

    fn rank(name: &str, secs: i64) -> Rank {
        (jiff::Timestamp::from_second(secs).ok(), name.into())
    }

    #[test]
    fn added_certificates_are_found_by_secret_and_by_issuer() {
        let mut index = CertificateIndex::default();
        index.upsert(entry("b", 2, "tls", "ca"));
        index.upsert(entry("a", 1, "tls", "ca"));
        index.upsert(entry("c", 3, "other", "vault"));
        assert_eq!(
            index.claimants("ns", "tls"),
            vec![rank("a", 1), rank("b", 2)]
        );
        assert!(index.claimants("elsewhere", "tls").is_empty());
        assert_eq!(
            index.using(&IssuerId::issuer("ns", "ca")),
            vec![("ns".into(), "a".into()), ("ns".into(), "b".into())]
        );
        assert!(index.using(&IssuerId::cluster_issuer("ca")).is_empty());
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn the_older_claimant_is_the_oldest_other_one_and_only_when_older() {
        let mut index = CertificateIndex::default();
        index.upsert(entry("b", 2, "tls", "ca"));
        index.upsert(entry("a", 2, "tls", "ca"));
        index.upsert(entry("c", 1, "other", "ca"));
        assert_eq!(
            index.older_claimant("ns", "tls", &rank("b", 2)),
            Some("a".into()),
            "same second: the name decides"
        );
        assert_eq!(index.older_claimant("ns", "tls", &rank("a", 2)), None);
        assert_eq!(
            index.older_claimant("ns", "tls", &rank("z", 9)),
            Some("a".into())
        );
        assert_eq!(index.older_claimant("ns", "nobody", &rank("z", 9)), None);
    }

    #[test]
    fn an_update_moves_the_certificate_to_its_new_secret_and_issuer() {
        let mut index = CertificateIndex::default();
        index.upsert(entry("a", 1, "tls", "ca"));
        index.upsert(entry("b", 2, "tls", "ca"));
        index.upsert(entry("a", 1, "moved", "vault"));
        assert_eq!(index.claimants("ns", "tls"), vec![rank("b", 2)]);
        assert_eq!(index.claimants("ns", "moved"), vec![rank("a", 1)]);
        assert_eq!(index.older_claimant("ns", "tls", &rank("b", 2)), None);
        assert_eq!(
            index.using(&IssuerId::issuer("ns", "ca")),
            vec![("ns".into(), "b".into())]
        );
        assert_eq!(
            index.using(&IssuerId::issuer("ns", "vault")),
            vec![("ns".into(), "a".into())]
        );
        let mut unreadable = entry("b", 2, "tls", "ca");
        unreadable.issuer = None;
        index.upsert(unreadable);
        assert!(index.using(&IssuerId::issuer("ns", "ca")).is_empty());
        assert_eq!(
            index.claimants("ns", "tls"),
            vec![rank("b", 2)],
            "still claims"
        );
    }

    #[test]
    fn a_delete_forgets_everything_of_it() {
        let mut index = CertificateIndex::default();
        index.upsert(entry("a", 1, "tls", "ca"));
        index.remove("ns", "a");
        index.remove("ns", "never-there");
        assert!(index.claimants("ns", "tls").is_empty());
        assert!(index.using(&IssuerId::issuer("ns", "ca")).is_empty());
        assert!(index.is_empty());
        assert!(index.by_secret.is_empty() && index.by_issuer.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_at_once_when_done() {
        let mut indexer = Indexer::default();
        indexer.apply(Change::Apply(entry("a", 1, "tls", "ca")));
        indexer.apply(Change::Apply(entry("gone", 1, "old", "ca")));
        indexer.apply(Change::Init);
        indexer.apply(Change::InitApply(entry("a", 1, "tls", "ca")));
        indexer.apply(Change::InitApply(entry("new", 3, "tls", "ca")));
        // Until the relist is done, lookups see the previous state.
        assert_eq!(indexer.live.claimants("ns", "old"), vec![rank("gone", 1)]);
        assert_eq!(indexer.live.claimants("ns", "tls"), vec![rank("a", 1)]);
        indexer.apply(Change::InitDone);
        assert!(
            indexer.live.claimants("ns", "old").is_empty(),
            "deleted while away"
        );
        assert_eq!(
            indexer.live.claimants("ns", "tls"),
            vec![rank("a", 1), rank("new", 3)]
        );
        indexer.apply(Change::Delete {
            namespace: "ns".into(),
            name: "a".into(),
        });
        assert_eq!(indexer.live.claimants("ns", "tls"), vec![rank("new", 3)]);
    }

    #[test]
    fn an_empty_relist_empties_the_index() {
        let mut indexer = Indexer::default();
        indexer.apply(Change::Apply(entry("a", 1, "tls", "ca")));
        indexer.apply(Change::Init);
        indexer.apply(Change::InitDone);
        assert!(indexer.live.is_empty());
    }
}
