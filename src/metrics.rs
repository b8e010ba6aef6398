//! Prometheus metrics. Label values come from fixed sets (reasons, issuer kinds, results) or
//! from object names, never from error text.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::reason::Reason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuanceLabels {
    issuer_kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    issuer_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
    operation: String,
    result: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    issuances: Family<IssuanceLabels, Counter>,
    issuance_seconds: Family<KindLabels, Histogram>,
    reconcile_errors: Family<ReasonLabels, Counter>,
    issuer_ready: Family<IssuerLabels, Gauge>,
    backend_requests: Family<BackendLabels, Counter>,
    backend_seconds: Family<BackendLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("certsmith");
        let issuances = Family::<IssuanceLabels, Counter>::default();
        registry.register(
            "issuances",
            "Certificate issuances by issuer kind and result",
            issuances.clone(),
        );
        let issuance_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "issuance_duration_seconds",
            "Time from decision to Secret written",
            issuance_seconds.clone(),
        );
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile failures by reason",
            reconcile_errors.clone(),
        );
        let issuer_ready = Family::<IssuerLabels, Gauge>::default();
        registry.register(
            "issuer_ready_status",
            "1 when the issuer is Ready, else 0",
            issuer_ready.clone(),
        );
        let backend_requests = Family::<BackendLabels, Counter>::default();
        registry.register(
            "backend_requests",
            "Requests to signing backends by backend, operation and result",
            backend_requests.clone(),
        );
        let backend_seconds = Family::<BackendLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "backend_request_duration_seconds",
            "Latency of requests to signing backends",
            backend_seconds.clone(),
        );
        Metrics {
            backend_requests,
            backend_seconds,
            registry: Mutex::new(registry),
            issuances,
            issuance_seconds,
            reconcile_errors,
            issuer_ready,
        }
    }
}

impl Metrics {
    pub fn issuance(&self, issuer_kind: &str, result: &str, took: Duration) {
        self.issuances
            .get_or_create(&IssuanceLabels {
                issuer_kind: issuer_kind.into(),
                result: result.into(),
            })
            .inc();
        self.issuance_seconds
            .get_or_create(&KindLabels {
                issuer_kind: issuer_kind.into(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_error(&self, reason: Reason) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: reason.as_str().into(),
            })
            .inc();
    }

    pub fn issuer_ready(&self, kind: &str, name: &str, namespace: &str, ready: bool) {
        let labels = IssuerLabels {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.issuer_ready
            .get_or_create(&labels)
            .set(i64::from(ready));
    }

    /// One request to a signing backend (`operation` and `result` from fixed sets).
    pub fn backend_request(&self, backend: &str, operation: &str, result: &str, took: Duration) {
        let labels = BackendLabels {
            backend: backend.into(),
            operation: operation.into(),
            result: result.into(),
        };
        self.backend_requests.get_or_create(&labels).inc();
        self.backend_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// How many requests of one operation a backend has seen (all results).
    pub fn backend_request_count(&self, backend: &str, operation: &str) -> u64 {
        ["success", "error", "unreachable"]
            .iter()
            .map(|result| {
                let labels = BackendLabels {
                    backend: backend.into(),
                    operation: operation.into(),
                    result: (*result).into(),
                };
                self.backend_requests.get(&labels).map_or(0, |c| c.get())
            })
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Encoding into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}
