//! One long-lived client per issuer, rebuilt only when the configuration it was built from
//! changes (a fingerprint of it), and dropped when the issuer is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::IssuerId;

/// Clients of type `T` by issuer, each with the fingerprint of the configuration it was built
/// from. Builders may be async, so a client is looked up and inserted in two steps; two
/// racing builds of the same issuer keep the later one, which is harmless.
pub struct ClientCache<T> {
    clients: Mutex<HashMap<IssuerId, Built<T>>>,
}

/// A client and the fingerprint of the configuration it was built from.
type Built<T> = ([u8; 32], Arc<T>);

impl<T> Default for ClientCache<T> {
    fn default() -> Self {
        ClientCache {
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> ClientCache<T> {
    /// The client for `id` if it was built from this very configuration.
    pub fn get(&self, id: &IssuerId, fingerprint: &[u8; 32]) -> Option<Arc<T>> {
        let clients = self.clients.lock().ok()?;
        clients
            .get(id)
            .filter(|(known, _)| known == fingerprint)
            .map(|(_, client)| client.clone())
    }

    /// Keep `client` for `id`, replacing one built from an older configuration.
    pub fn insert(&self, id: &IssuerId, fingerprint: [u8; 32], client: Arc<T>) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(id.clone(), (fingerprint, client));
        }
    }

    /// Forget the clients of issuers that no longer exist.
    pub fn retain(&self, exists: impl Fn(&IssuerId) -> bool) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.retain(|id, _| exists(id));
        }
    }

    pub fn len(&self) -> usize {
        self.clients.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_reused_rebuilt_on_change_and_evicted_with_its_issuer() {
        let cache: ClientCache<u32> = ClientCache::default();
        let id = IssuerId::issuer("ns", "v");
        assert!(cache.get(&id, &[1; 32]).is_none());
        cache.insert(&id, [1; 32], Arc::new(7));
        assert_eq!(cache.get(&id, &[1; 32]).as_deref(), Some(&7));
        assert!(cache.get(&id, &[2; 32]).is_none(), "another configuration");
        cache.insert(&IssuerId::cluster_issuer("c"), [1; 32], Arc::new(8));
        cache.retain(|i| i.is_cluster_issuer());
        assert!(cache.get(&id, &[1; 32]).is_none());
        assert_eq!(cache.len(), 1);
    }
}
