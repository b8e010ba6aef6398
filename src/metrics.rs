//! Prometheus metrics. Label values come from fixed sets (reasons, issuer kinds, backend types,
//! results) or from object names, never from error text. Two labels that are easy to confuse:
//! `issuer_kind` is Issuer or ClusterIssuer; `backend` is the backend type that signs
//! (selfSigned, ca, vault, awsPCA), spelled as the issuer spec field that selects it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    issuer_kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
    operation: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyDenialLabels {
    issuer: String,
    issuer_kind: String,
    field: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodCertificateLabels {
    issuer: String,
    condition: String,
    reason: String,
}

/// Shared strings: the four series of a Certificate and the memory of its labels hold one
/// copy of each value (they held five copies of four strings, allocated anew each reconcile).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    namespace: Arc<str>,
    name: Arc<str>,
    issuer_kind: Arc<str>,
    issuer_name: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BundleLabels {
    bundle: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BundleErrorLabels {
    bundle: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevocationLabels {
    backend: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    issuer_kind: String,
    namespace: String,
    name: String,
    state: String,
}

/// Revocations, CA issuers' CRLs and emergency rotations.
struct RevocationSeries {
    revocations: Family<RevocationLabels, Counter>,
    crl_this_update: Family<IssuerLabels, Gauge>,
    crl_next_update: Family<IssuerLabels, Gauge>,
    crl_entries: Family<IssuerLabels, Gauge>,
    /// Set from `crl_this_update` at each scrape: time since the CRL was signed.
    crl_age: Family<IssuerLabels, Gauge>,
    rotation: Family<RotationLabels, Gauge>,
}

/// Per-TrustBundle series, and the error series each bundle has, so they go with it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerCaLabels {
    issuer_kind: String,
    namespace: String,
    name: String,
    ca_fingerprint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerPhaseLabels {
    issuer_kind: String,
    namespace: String,
    name: String,
    phase: String,
}

/// CA issuers' rotations, with the fingerprints each issuer has series for.
struct RotationSeries {
    leaves: Family<IssuerCaLabels, Gauge>,
    phase: Family<IssuerPhaseLabels, Gauge>,
    known: Mutex<HashMap<IssuerLabels, std::collections::HashSet<String>>>,
}

impl RotationSeries {
    fn remove(&self, issuer: &IssuerLabels, fingerprints: &std::collections::HashSet<String>) {
        for fp in fingerprints {
            self.leaves.remove(&IssuerCaLabels {
                issuer_kind: issuer.issuer_kind.clone(),
                namespace: issuer.namespace.clone(),
                name: issuer.name.clone(),
                ca_fingerprint: fp.clone(),
            });
        }
    }
}

struct BundleSeries {
    certificates: Family<BundleLabels, Gauge>,
    expiration: Family<BundleLabels, Gauge>,
    sync_errors: Family<BundleErrorLabels, Counter>,
    known: Mutex<HashMap<String, std::collections::HashSet<String>>>,
}

/// Per-Certificate gauges, and which label set each Certificate currently has.
struct CertificateGauges {
    expiration: Family<CertificateLabels, Gauge>,
    not_before: Family<CertificateLabels, Gauge>,
    renewal: Family<CertificateLabels, Gauge>,
    ready: Family<CertificateLabels, Gauge>,
    /// The labels each Certificate's series carry, by namespace and name.
    known: Mutex<HashMap<Arc<str>, KnownInNamespace>>,
}

/// A namespace's Certificates and the labels of their series.
type KnownInNamespace = HashMap<Arc<str>, CertificateLabels>;

impl CertificateGauges {
    fn remove(&self, labels: &CertificateLabels) {
        for family in [
            &self.expiration,
            &self.not_before,
            &self.renewal,
            &self.ready,
        ] {
            family.remove(labels);
        }
    }
}

/// What the per-Certificate gauges show (Unix seconds; None leaves the gauge out).
pub struct CertificateFacts<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub issuer_kind: &'a str,
    pub issuer_name: &'a str,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub renewal: Option<i64>,
    pub ready: bool,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    certificates: CertificateGauges,
    issuances: Family<IssuanceLabels, Counter>,
    issuance_seconds: Family<KindLabels, Histogram>,
    reconcile_errors: Family<ReasonLabels, Counter>,
    issuer_ready: Family<IssuerLabels, Gauge>,
    /// The issuers that have a readiness series, so it can be removed with them.
    known_issuers: Mutex<std::collections::HashSet<IssuerLabels>>,
    backend_requests: Family<BackendLabels, Counter>,
    backend_seconds: Family<BackendLabels, Histogram>,
    bundles: BundleSeries,
    rotations: RotationSeries,
    policy_denials: Family<PolicyDenialLabels, Counter>,
    pod_certificate_requests: Family<PodCertificateLabels, Counter>,
    revocation: RevocationSeries,
    known_crls: Mutex<std::collections::HashSet<IssuerLabels>>,
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
        let policy_denials = Family::<PolicyDenialLabels, Counter>::default();
        registry.register(
            "policy_denials",
            "Certificates an issuer's policy refused, by issuer, issuer kind and field",
            policy_denials.clone(),
        );
        let pod_certificate_requests = Family::<PodCertificateLabels, Counter>::default();
        registry.register(
            "pod_certificate_requests",
            "PodCertificateRequests answered, by ClusterIssuer, condition (Issued, Denied, Failed) and reason",
            pod_certificate_requests.clone(),
        );
        let certificates = CertificateGauges {
            expiration: Family::default(),
            not_before: Family::default(),
            renewal: Family::default(),
            ready: Family::default(),
            known: Mutex::new(HashMap::new()),
        };
        registry.register(
            "certificate_expiration_timestamp_seconds",
            "notAfter of the certificate in the Secret",
            certificates.expiration.clone(),
        );
        registry.register(
            "certificate_not_before_timestamp_seconds",
            "notBefore of the certificate in the Secret",
            certificates.not_before.clone(),
        );
        registry.register(
            "certificate_renewal_timestamp_seconds",
            "When the operator will renew the certificate (jitter included)",
            certificates.renewal.clone(),
        );
        registry.register(
            "certificate_ready_status",
            "1 when the Certificate is Ready, else 0",
            certificates.ready.clone(),
        );
        let bundles = BundleSeries {
            certificates: Family::default(),
            expiration: Family::default(),
            sync_errors: Family::default(),
            known: Mutex::new(HashMap::new()),
        };
        registry.register(
            "trust_bundle_certificates",
            "Certificates in the TrustBundle last built",
            bundles.certificates.clone(),
        );
        registry.register(
            "trust_bundle_expiration_timestamp_seconds",
            "notAfter of the TrustBundle's first certificate to expire",
            bundles.expiration.clone(),
        );
        registry.register(
            "trust_bundle_sync_errors",
            "TrustBundle syncs that failed, by reason (a source, or a target)",
            bundles.sync_errors.clone(),
        );
        let revocation = RevocationSeries {
            revocations: Family::default(),
            crl_this_update: Family::default(),
            crl_next_update: Family::default(),
            crl_entries: Family::default(),
            crl_age: Family::default(),
            rotation: Family::default(),
        };
        registry.register(
            "revocations",
            "Revocations asked of issuers, by backend and result (success, failure, not_supported)",
            revocation.revocations.clone(),
        );
        registry.register(
            "crl_this_update_timestamp_seconds",
            "thisUpdate of the CA issuer's published CRL",
            revocation.crl_this_update.clone(),
        );
        registry.register(
            "crl_next_update_timestamp_seconds",
            "nextUpdate of the CA issuer's published CRL: it must be signed again before",
            revocation.crl_next_update.clone(),
        );
        registry.register(
            "crl_age_seconds",
            "Time since the CA issuer's CRL was signed (thisUpdate)",
            revocation.crl_age.clone(),
        );
        registry.register(
            "crl_revoked_certificates",
            "Serials listed in the CA issuer's CRL",
            revocation.crl_entries.clone(),
        );
        registry.register(
            "emergency_rotation_certificates",
            "The issuer's emergency rotation: Certificates in it by state (total, triggered, done, failed)",
            revocation.rotation.clone(),
        );
        let rotations = RotationSeries {
            leaves: Family::default(),
            phase: Family::default(),
            known: Mutex::new(HashMap::new()),
        };
        registry.register(
            "issuer_ca_leaves",
            "Ready Certificates of a CA issuer by the fingerprint of the CA that signed them (the active and the previous CA)",
            rotations.leaves.clone(),
        );
        registry.register(
            "issuer_ca_rotation_phase",
            "1 for a CA issuer's rotation phase (Stable, Publishing, MovingLeaves, Retired), 0 for the others",
            rotations.phase.clone(),
        );
        Metrics {
            revocation,
            known_crls: Mutex::default(),
            bundles,
            rotations,
            certificates,
            backend_requests,
            backend_seconds,
            registry: Mutex::new(registry),
            issuances,
            issuance_seconds,
            reconcile_errors,
            issuer_ready,
            known_issuers: Mutex::default(),
            policy_denials,
            pod_certificate_requests,
        }
    }
}

impl Metrics {
    /// The issuers with a CRL series.
    fn known_crls(&self) -> Vec<IssuerLabels> {
        self.known_crls
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default()
    }

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

    pub fn issuer_ready(&self, issuer_kind: &str, name: &str, namespace: &str, ready: bool) {
        let labels = IssuerLabels {
            issuer_kind: issuer_kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.issuer_ready
            .get_or_create(&labels)
            .set(i64::from(ready));
        if let Ok(mut known) = self.known_issuers.lock() {
            known.insert(labels);
        }
    }

    /// A CA issuer's rotation: its phase, and the leaves on its active and previous CA.
    pub fn ca_rotation(
        &self,
        issuer_kind: &str,
        namespace: &str,
        name: &str,
        status: &crate::api::CaRotationStatus,
    ) {
        let issuer = IssuerLabels {
            issuer_kind: issuer_kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let r = &self.rotations;
        for phase in crate::controller::ca_rotation::plan::PHASES {
            let labels = IssuerPhaseLabels {
                issuer_kind: issuer_kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                phase: phase.into(),
            };
            r.phase
                .get_or_create(&labels)
                .set(i64::from(status.phase == phase));
        }
        let mut counted = std::collections::HashSet::new();
        let series = [
            (status.active.as_ref(), status.leaves_on_active),
            (status.previous.as_ref(), status.leaves_on_previous),
        ];
        for (ca, leaves) in series {
            let Some(ca) = ca else { continue };
            let labels = IssuerCaLabels {
                issuer_kind: issuer_kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                ca_fingerprint: ca.fingerprint.clone(),
            };
            r.leaves.get_or_create(&labels).set(i64::from(leaves));
            counted.insert(ca.fingerprint.clone());
        }
        if let Ok(mut known) = r.known.lock() {
            let before = known.insert(issuer.clone(), counted.clone());
            if let Some(before) = before {
                r.remove(&issuer, &before.difference(&counted).cloned().collect());
            }
        }
    }

    /// Drop the readiness series of issuers that no longer exist (`kind`, `namespace`, `name`).
    pub fn retain_issuers(&self, exists: impl Fn(&str, &str, &str) -> bool) {
        if let Ok(mut known) = self.rotations.known.lock() {
            known.retain(|labels, fingerprints| {
                let keep = exists(&labels.issuer_kind, &labels.namespace, &labels.name);
                if !keep {
                    self.rotations.remove(labels, fingerprints);
                    for phase in crate::controller::ca_rotation::plan::PHASES {
                        self.rotations.phase.remove(&IssuerPhaseLabels {
                            issuer_kind: labels.issuer_kind.clone(),
                            namespace: labels.namespace.clone(),
                            name: labels.name.clone(),
                            phase: phase.into(),
                        });
                    }
                }
                keep
            });
        }
        if let Ok(mut known) = self.known_issuers.lock() {
            known.retain(|labels| {
                let keep = exists(&labels.issuer_kind, &labels.namespace, &labels.name);
                if !keep {
                    self.issuer_ready.remove(labels);
                }
                keep
            });
        }
        if let Ok(mut known) = self.known_crls.lock() {
            known.retain(|labels| {
                let keep = exists(&labels.issuer_kind, &labels.namespace, &labels.name);
                if !keep {
                    let r = &self.revocation;
                    for family in [
                        &r.crl_this_update,
                        &r.crl_next_update,
                        &r.crl_entries,
                        &r.crl_age,
                    ] {
                        family.remove(labels);
                    }
                }
                keep
            });
        }
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

    /// An issuer's policy refused a Certificate. `issuer` is the issuer's name (for a
    /// namespaced Issuer `namespace/name`), `field` a [`crate::policy::Field`] label: the
    /// label values come from object names and a fixed set, never from the message.
    pub fn policy_denial(&self, issuer: &str, issuer_kind: &str, field: crate::policy::Field) {
        self.policy_denials
            .get_or_create(&PolicyDenialLabels {
                issuer: issuer.into(),
                issuer_kind: issuer_kind.into(),
                field: field.as_str().into(),
            })
            .inc();
    }

    /// A PodCertificateRequest was answered. `condition` is Issued, Denied or Failed.
    pub fn pod_certificate_request(&self, issuer: &str, condition: &str, reason: Reason) {
        self.pod_certificate_requests
            .get_or_create(&PodCertificateLabels {
                issuer: issuer.into(),
                condition: condition.into(),
                reason: reason.as_str().into(),
            })
            .inc();
    }

    /// How many requests of one operation a backend has seen (all results).
    pub fn backend_request_count(&self, backend: &str, operation: &str) -> u64 {
        [
            "success",
            "error",
            "unreachable",
            "throttled",
            "in_progress",
        ]
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

    /// Set one Certificate's gauges (replacing its series if its issuer changed).
    pub fn certificate(&self, facts: &CertificateFacts<'_>) {
        let gauges = &self.certificates;
        let Some(labels) = gauges.known.lock().ok().map(|mut known| {
            let same = known
                .get(facts.namespace)
                .and_then(|names| names.get(facts.name))
                .filter(|l| {
                    *l.issuer_kind == *facts.issuer_kind && *l.issuer_name == *facts.issuer_name
                });
            if let Some(labels) = same {
                return labels.clone();
            }
            let namespace = known
                .get_key_value(facts.namespace)
                .map_or_else(|| Arc::from(facts.namespace), |(ns, _)| ns.clone());
            let labels = CertificateLabels {
                namespace: namespace.clone(),
                name: facts.name.into(),
                issuer_kind: facts.issuer_kind.into(),
                issuer_name: facts.issuer_name.into(),
            };
            let names = known.entry(namespace).or_default();
            // Its issuer changed: the old series go.
            if let Some(old) = names.insert(labels.name.clone(), labels.clone()) {
                gauges.remove(&old);
            }
            labels
        }) else {
            return;
        };
        for (family, value) in [
            (&gauges.expiration, facts.not_after),
            (&gauges.not_before, facts.not_before),
            (&gauges.renewal, facts.renewal),
        ] {
            match value {
                Some(v) => {
                    family.get_or_create(&labels).set(v);
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
        gauges
            .ready
            .get_or_create(&labels)
            .set(i64::from(facts.ready));
    }

    /// Drop the series of Certificates that no longer exist.
    pub fn retain_certificates(&self, exists: impl Fn(&str, &str) -> bool) {
        let gauges = &self.certificates;
        if let Ok(mut known) = gauges.known.lock() {
            known.retain(|namespace, names| {
                names.retain(|name, labels| {
                    let keep = exists(namespace, name);
                    if !keep {
                        gauges.remove(labels);
                    }
                    keep
                });
                !names.is_empty()
            });
        }
    }

    /// A TrustBundle was built with `certificates`, the first expiring at `earliest_expiry`.
    pub fn trust_bundle(&self, bundle: &str, certificates: usize, earliest_expiry: Option<i64>) {
        let labels = BundleLabels {
            bundle: bundle.into(),
        };
        let b = &self.bundles;
        b.certificates
            .get_or_create(&labels)
            .set(i64::try_from(certificates).unwrap_or(i64::MAX));
        match earliest_expiry {
            Some(at) => {
                b.expiration.get_or_create(&labels).set(at);
            }
            None => {
                b.expiration.remove(&labels);
            }
        }
        if let Ok(mut known) = b.known.lock() {
            known.entry(bundle.into()).or_default();
        }
    }

    /// A TrustBundle sync failed for `reason`.
    pub fn trust_bundle_sync_error(&self, bundle: &str, reason: Reason) {
        let labels = BundleErrorLabels {
            bundle: bundle.into(),
            reason: reason.as_str().into(),
        };
        self.bundles.sync_errors.get_or_create(&labels).inc();
        if let Ok(mut known) = self.bundles.known.lock() {
            known
                .entry(bundle.into())
                .or_default()
                .insert(reason.as_str().into());
        }
    }

    /// Drop the series of TrustBundles that no longer exist.
    pub fn retain_trust_bundles(&self, exists: impl Fn(&str) -> bool) {
        let b = &self.bundles;
        if let Ok(mut known) = b.known.lock() {
            known.retain(|bundle, reasons| {
                let keep = exists(bundle);
                if !keep {
                    let labels = BundleLabels {
                        bundle: bundle.clone(),
                    };
                    b.certificates.remove(&labels);
                    b.expiration.remove(&labels);
                    for reason in reasons.iter() {
                        b.sync_errors.remove(&BundleErrorLabels {
                            bundle: bundle.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                keep
            });
        }
    }

    /// One revocation asked of a backend; `result`: success, failure or not_supported.
    pub fn revocation(&self, backend: &str, result: &str) {
        self.revocation
            .revocations
            .get_or_create(&RevocationLabels {
                backend: backend.into(),
                result: result.into(),
            })
            .inc();
    }

    /// A CA issuer's CRL as published (Unix seconds).
    pub fn crl(
        &self,
        issuer_kind: &str,
        namespace: &str,
        name: &str,
        this_update: i64,
        next_update: i64,
        entries: usize,
    ) {
        let labels = IssuerLabels {
            issuer_kind: issuer_kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        if let Ok(mut known) = self.known_crls.lock() {
            known.insert(labels.clone());
        }
        let r = &self.revocation;
        r.crl_this_update.get_or_create(&labels).set(this_update);
        r.crl_next_update.get_or_create(&labels).set(next_update);
        r.crl_entries
            .get_or_create(&labels)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        r.crl_age
            .get_or_create(&labels)
            .set(crate::time::now().saturating_sub(this_update));
    }

    /// An issuer's emergency rotation progress, by state.
    pub fn emergency_rotation(
        &self,
        issuer_kind: &str,
        namespace: &str,
        name: &str,
        counts: &[(&str, i64)],
    ) {
        for (state, n) in counts {
            self.revocation
                .rotation
                .get_or_create(&RotationLabels {
                    issuer_kind: issuer_kind.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    state: (*state).into(),
                })
                .set(*n);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        // CRL ages move with the clock: computed at each scrape.
        let now = crate::time::now();
        let ages: Vec<(IssuerLabels, i64)> = self
            .known_crls()
            .into_iter()
            .map(|l| {
                let at = self.revocation.crl_this_update.get_or_create(&l).get();
                (l, now.saturating_sub(at))
            })
            .collect();
        for (labels, age) in ages {
            self.revocation.crl_age.get_or_create(&labels).set(age);
        }
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Encoding into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_rotation_series_follow_the_cas_and_the_phase() {
        use crate::api::{CaRotationStatus, CaSummary};
        let ca = |fp: &str| CaSummary {
            fingerprint: fp.into(),
            ..CaSummary::default()
        };
        let m = Metrics::default();
        let moving = CaRotationStatus {
            phase: "MovingLeaves".into(),
            active: Some(ca("new")),
            previous: Some(ca("old")),
            leaves_on_active: 7,
            leaves_on_previous: 3,
            ..CaRotationStatus::default()
        };
        m.ca_rotation("ClusterIssuer", "", "root", &moving);
        let text = m.render();
        assert!(text.contains(r#"certsmith_issuer_ca_leaves{issuer_kind="ClusterIssuer",namespace="",name="root",ca_fingerprint="old"} 3"#), "{text}");
        assert!(text.contains(r#"ca_fingerprint="new"} 7"#));
        assert!(text.contains(r#"certsmith_issuer_ca_rotation_phase{issuer_kind="ClusterIssuer",namespace="",name="root",phase="MovingLeaves"} 1"#));
        assert!(text.contains(r#"phase="Retired"} 0"#));
        // Once the old CA is no longer part of the rotation, its series goes.
        let stable = CaRotationStatus {
            phase: "Stable".into(),
            active: Some(ca("new")),
            leaves_on_active: 10,
            ..CaRotationStatus::default()
        };
        m.ca_rotation("ClusterIssuer", "", "root", &stable);
        let text = m.render();
        assert!(!text.contains(r#"ca_fingerprint="old""#), "{text}");
        m.retain_issuers(|_, _, _| false);
        assert!(
            !m.render().contains("certsmith_issuer_ca_"),
            "gone with the issuer"
        );
    }

    fn facts<'a>(issuer: &'a str) -> CertificateFacts<'a> {
        CertificateFacts {
            namespace: "ns",
            name: "web",
            issuer_kind: "Issuer",
            issuer_name: issuer,
            not_before: Some(100),
            not_after: Some(200),
            renewal: Some(166),
            ready: true,
        }
    }

    #[test]
    fn trust_bundle_series_disappear_with_the_bundle() {
        let metrics = Metrics::default();
        metrics.trust_bundle("agents", 3, Some(1_800_000_000));
        metrics.trust_bundle_sync_error("agents", Reason::SourceInvalid);
        let text = metrics.render();
        for series in [
            r#"certsmith_trust_bundle_certificates{bundle="agents"} 3"#,
            r#"certsmith_trust_bundle_expiration_timestamp_seconds{bundle="agents"} 1800000000"#,
            r#"certsmith_trust_bundle_sync_errors_total{bundle="agents",reason="SourceInvalid"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        metrics.retain_trust_bundles(|_| true);
        assert!(metrics.render().contains(r#"bundle="agents""#));
        metrics.retain_trust_bundles(|_| false);
        assert!(!metrics.render().contains(r#"bundle="agents""#));
    }

    #[test]
    fn certificate_series_follow_the_issuer_and_disappear_with_the_certificate() {
        let metrics = Metrics::default();
        metrics.certificate(&facts("ca"));
        let text = metrics.render();
        assert!(text.contains(r#"certsmith_certificate_expiration_timestamp_seconds{namespace="ns",name="web",issuer_kind="Issuer",issuer_name="ca"} 200"#), "{text}");
        metrics.certificate(&facts("vault"));
        let text = metrics.render();
        assert!(
            !text.contains(r#"issuer_name="ca""#) && text.contains(r#"issuer_name="vault""#),
            "{text}"
        );
        metrics.certificate(&CertificateFacts {
            name: "api",
            ..facts("ca")
        });
        metrics.retain_certificates(|_, name| name == "api");
        let text = metrics.render();
        assert!(!text.contains(r#"name="web""#), "{text}");
        assert_eq!(text.matches(r#"name="api""#).count(), 4, "{text}");
        metrics.retain_certificates(|_, _| false);
        assert!(!metrics.render().contains(r#"name="api""#));
    }

    #[test]
    fn policy_denials_are_counted_by_issuer_kind_and_field() {
        let metrics = Metrics::default();
        metrics.policy_denial("agents-ca", "ClusterIssuer", crate::policy::Field::Uris);
        metrics.policy_denial("agents-ca", "ClusterIssuer", crate::policy::Field::Uris);
        let text = metrics.render();
        assert!(
            text.contains(r#"certsmith_policy_denials_total{issuer="agents-ca",issuer_kind="ClusterIssuer",field="uris"} 2"#),
            "{text}"
        );
    }
}
