//! State shared by every reconcile: the client, settings, the injected clock, metrics, the
//! backends' long-lived clients and the limits around them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::Reporter;

use crate::issuer::{BackendSettings, Caches};
use crate::leader::Guard;
use crate::metrics::Metrics;

use super::certificate_cache::Certificates;
use super::events::Recorder;
use super::limits::Gates;

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
    /// Run the TrustBundle controller.
    pub trust_bundles: bool,
    /// Serve only TrustBundles matching this label selector (None: all); like
    /// `cluster_issuer_selector`, for the other cluster-scoped kind.
    pub trust_bundle_selector: Option<String>,
    /// Answer PodCertificateRequests for certsmith's signers (where the API serves them).
    pub pod_certificates: bool,
    /// What backends may do.
    pub backends: BackendSettings,
}

/// Seconds since the Unix epoch; injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(crate::time::now)
}

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub clock: Clock,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Every Certificate the controller knows (typed), indexed for duplicate-Secret and
    /// issuer lookups.
    pub certificates: Certificates,
    /// Long-lived backend clients, shared by every controller in the process.
    pub caches: Arc<Caches>,
    /// Per-issuer concurrency limit and circuit breaker for remote backends.
    pub gates: Arc<Gates>,
    /// Process-wide memory of the controllers (see [`Shared`]).
    pub shared: Arc<Shared>,
    /// Whether this replica may write now (leader election; always true without it). Asked
    /// before every write, so a replica that lost its lease (or was paused past its renew
    /// deadline) writes nothing more.
    pub leading: Guard,
}

/// What the reconcilers remember between runs, for the whole process.
pub struct Shared {
    pub caches: Arc<Caches>,
    pub gates: Arc<Gates>,
    /// Certificates signed but not yet written (the API server refused the Secret), by
    /// Certificate UID: a retry writes them instead of signing again.
    pub unwritten: Mutex<HashMap<String, super::certificate::Unwritten>>,
    /// Panics per object (`kind/namespace/name`), for the backoff after an internal error.
    pub panics: Mutex<HashMap<String, u32>>,
    /// Ask the issuer controllers to look at an issuer again (its backend became unreachable).
    pub rechecks: super::issuer::Rechecks,
    /// Ask the TrustBundle controller to rebuild the bundles sourcing an issuer.
    pub trust_bundles: super::trust_bundle::Triggers,
    /// Keystore password Secrets and the Certificates that name them.
    pub secret_refs: super::secret_refs::SecretRefs,
    /// Set at start-up when pod certificates are enabled and the API server serves
    /// PodCertificateRequests: ClusterIssuers then publish their signer's ClusterTrustBundle.
    pub pod_certificates: std::sync::atomic::AtomicBool,
    /// The emergency rotations running in this process, and the caches they read.
    pub rotations: super::emergency_rotation::Running,
    /// CA issuers' current (and next) CA and their re-issue budgets, for CA rotation.
    pub ca_rotations: super::ca_rotation::Rotations,
    /// Watch-fed caches read instead of the API server, and the operator's own writes.
    pub watched: Arc<super::watched::Watched>,
}

impl Shared {
    pub fn new(settings: &Settings) -> Self {
        Shared {
            caches: Arc::new(Caches::new(&settings.backends)),
            // An issuer's backend may hold at most half of the workers.
            gates: Arc::new(Gates::new(usize::from(settings.concurrency / 2))),
            unwritten: Mutex::default(),
            panics: Mutex::default(),
            rechecks: super::issuer::Rechecks::default(),
            trust_bundles: super::trust_bundle::Triggers::default(),
            secret_refs: super::secret_refs::SecretRefs::default(),
            pod_certificates: std::sync::atomic::AtomicBool::new(false),
            rotations: super::emergency_rotation::Running::default(),
            ca_rotations: super::ca_rotation::Rotations::default(),
            watched: Arc::default(),
        }
    }
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        certificates: Certificates,
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
            caches: shared.caches.clone(),
            gates: shared.gates.clone(),
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
