//! State shared by every reconcile: the client, settings, the injected clock, metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::issuer::aws_pca::{AwsPcaClient, RateLimits};
use crate::issuer::vault::VaultClient;

use super::limits::Gates;
use crate::leader::Guard;

use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use crate::metrics::Metrics;

/// Operator settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where ClusterIssuers' Secrets live.
    pub cluster_resource_namespace: String,
    /// Watch only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Parallel reconciles per watched namespace (or for the whole cluster).
    pub concurrency: u16,
    /// Serve only ClusterIssuers matching this label selector (None: all). Lets several
    /// operator instances share a cluster without fighting over ClusterIssuer status.
    pub cluster_issuer_selector: Option<String>,
    /// AWS Private CA IssueCertificate calls per second per CA (reads get three times that).
    pub aws_pca_issue_rate: std::num::NonZeroU32,
    /// Whether namespaced Issuers may use the operator's own cloud identity (AWS default
    /// chain). ClusterIssuers always may: only cluster admins create them.
    pub issuer_ambient_credentials: bool,
    /// Vault servers namespaced Issuers may use (URL prefixes; empty: any). ClusterIssuers
    /// may use any: only cluster admins create them.
    pub issuer_vault_servers: Vec<crate::issuer::vault::ServerPrefix>,
}

/// Seconds since the Unix epoch; injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| jiff::Timestamp::now().as_second())
}

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub clock: Clock,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Every Certificate the controller knows, for duplicate-Secret and issuer lookups.
    pub certificates: Store<DynamicObject>,
    /// Long-lived backend clients, shared by every controller in the process.
    pub backends: Backends,
    /// Process-wide memory of the controllers (see [`Shared`]).
    pub shared: Arc<Shared>,
    /// Whether this replica may write now (leader election; always true without it). Asked
    /// before every write, so a replica that lost its lease (or was paused past its renew
    /// deadline) writes nothing more.
    pub leading: Guard,
}

/// What the reconcilers remember between runs, for the whole process.
#[derive(Default)]
pub struct Shared {
    /// Certificates signed but not yet written (the API server refused the Secret), by
    /// Certificate UID: a retry writes them instead of signing again.
    pub unwritten: Mutex<HashMap<String, super::certificate::Unwritten>>,
    /// Panics per object (`kind/namespace/name`), for the backoff after an internal error.
    pub panics: Mutex<HashMap<String, u32>>,
    /// Ask the issuer controllers to look at an issuer again (its backend became unreachable).
    pub rechecks: super::issuer::Rechecks,
}

/// Clients keyed by issuer identity, with a fingerprint of the configuration they were built
/// from (a changed issuer gets a new client).
pub type ClientCache<T> = Arc<Mutex<HashMap<String, ([u8; 32], Arc<T>)>>>;
pub type VaultClients = ClientCache<VaultClient>;

/// What outlives a single issuance: Vault clients (tokens are reused), AWS clients (credential
/// providers and CA descriptions are reused) and the per-CA AWS rate limits.
#[derive(Clone, Debug)]
pub struct Backends {
    pub vault: VaultClients,
    pub aws: ClientCache<AwsPcaClient>,
    pub aws_limits: Arc<RateLimits>,
    /// Per-issuer concurrency limit and circuit breaker for remote backends.
    pub gates: Arc<Gates>,
}

impl Backends {
    pub fn new(settings: &Settings) -> Self {
        Backends {
            vault: VaultClients::default(),
            aws: ClientCache::default(),
            aws_limits: Arc::new(RateLimits::new(settings.aws_pca_issue_rate)),
            // An issuer's backend may hold at most half of the workers.
            gates: Arc::new(Gates::new(usize::from(settings.concurrency / 2))),
        }
    }

    /// Forget clients and limits of issuers that no longer exist (by identity).
    pub fn retain(&self, exists: impl Fn(&str) -> bool) {
        if let Ok(mut clients) = self.vault.lock() {
            clients.retain(|k, _| exists(k));
        }
        if let Ok(mut clients) = self.aws.lock() {
            clients.retain(|k, _| exists(k));
        }
        self.gates.retain(&exists);
    }
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        certificates: Store<DynamicObject>,
        backends: Backends,
        shared: Arc<Shared>,
        leading: Guard,
    ) -> Self {
        let reporter = Reporter {
            controller: "certsmith".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            clock: system_clock(),
            metrics,
            certificates,
            backends,
            shared,
            leading,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Whether this replica may write now.
    pub fn is_leading(&self) -> bool {
        self.leading.is_leading()
    }
}
