//! Wire the reconcilers to watches and run them until shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::pod_certificate::PodCertificateRequest;
use crate::api::{ClusterIssuer, Issuer, TrustBundle};
use crate::issuer::IssuerId;
use crate::metrics::Metrics;
use crate::reason::Reason;
use crate::secret;

use super::certificate_cache::{CachedCertificate, Certificates};
use super::context::Shared;
use super::secret_feed::SecretFeed;
use super::{Context, Error, Settings, certificate, issuer, pod_certificate, trust_bundle};
use crate::leader::Guard;

/// Set once the Certificate cache is primed; `/readyz` reports it.
pub type Readiness = Arc<AtomicBool>;

/// How often series, clients and memories of deleted objects are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

fn api_for(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// What one scope (a namespace, or the whole cluster) runs, and the caches the process-wide
/// sweep looks at.
struct Scope {
    certificates: Certificates,
    issuers: Store<DynamicObject>,
    running: Vec<BoxFuture<'static, ()>>,
}

/// Run the Certificate and issuer controllers until `shutdown` is cancelled. In-flight
/// reconciles finish first, so no Secret is left half-written. `leading` is asked before every
/// write (leader election).
///
/// Each watched namespace (or the whole cluster) gets its own Certificate and Issuer
/// controllers; ClusterIssuers are reconciled once.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: CancellationToken,
    leading: Guard,
) {
    let scopes = scopes_of(&settings);
    // One client per issuer for the whole process, so all controllers share tokens and limits.
    let shared = Arc::new(Shared::new(&settings));
    let mut controllers: Vec<BoxFuture<'static, ()>> = Vec::new();
    let (mut certificate_stores, mut issuer_stores) = (Vec::new(), Vec::new());
    // One Secret watch per scope for every controller (started after all have subscribed), and
    // one for the cluster-resource namespace when no served scope covers it.
    let mut feeds: Vec<(Option<String>, Arc<SecretFeed>)> = scopes
        .iter()
        .map(|scope| (scope.clone(), Arc::default()))
        .collect();
    for (namespace, feed) in feeds.clone() {
        let ctx = |certificates: Certificates| {
            Arc::new(Context::new(
                client.clone(),
                settings.clone(),
                metrics.clone(),
                certificates,
                shared.clone(),
                leading.clone(),
            ))
        };
        let scope = scope_controllers(&client, &settings, namespace, &feed, &shutdown, ctx);
        certificate_stores.push(scope.certificates);
        issuer_stores.push(scope.issuers);
        controllers.extend(scope.running);
    }
    shared.rotations.set_stores(certificate_stores.clone());
    let Some(first) = certificate_stores.first().cloned() else {
        return;
    };
    let pod_certificates = settings.pod_certificates && pod_certificates_served(&client).await;
    shared
        .pod_certificates
        .store(pod_certificates, Ordering::Relaxed);
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.clone(),
        metrics,
        first,
        shared,
        leading,
    ));
    let resource_namespace = &settings.cluster_resource_namespace;
    let resource_secrets = match feed_covering(&feeds, resource_namespace) {
        Some(feed) => feed,
        None => {
            let feed = Arc::new(SecretFeed::default());
            feeds.push((Some(resource_namespace.clone()), feed.clone()));
            feed
        }
    };
    let (cluster_issuers, running) = cluster_issuer_controller(
        &client,
        &settings,
        ctx.clone(),
        &resource_secrets,
        &shutdown,
    );
    controllers.push(running);
    if pod_certificates {
        let signer = Arc::new(pod_certificate::Signer { ctx: ctx.clone() });
        for namespace in scopes_of(&settings) {
            controllers.push(pod_certificate_controller(
                &client,
                &settings,
                namespace,
                signer.clone(),
                &shutdown,
            ));
        }
    }
    let trust_bundles = settings.trust_bundles.then(|| {
        let (store, running) =
            trust_bundle_controller(&client, &settings, ctx.clone(), &feeds, &shutdown);
        controllers.push(running);
        store
    });
    for (namespace, feed) in feeds {
        controllers.push(feed.run(&client, namespace, &ctx.shared.watched, &shutdown));
    }
    controllers.push(sweep(
        ctx,
        certificate_stores.clone(),
        issuer_stores,
        cluster_issuers,
        trust_bundles,
        shutdown.clone(),
    ));
    controllers.push(Box::pin(async move {
        for certificates in &certificate_stores {
            if certificates.store().wait_until_ready().await.is_err() {
                return;
            }
        }
        let count: usize = certificate_stores
            .iter()
            .map(|c| c.store().state().len())
            .sum();
        info!(certificates = count, "caches primed");
        ready.store(true, Ordering::SeqCst);
    }));
    futures::future::join_all(controllers).await;
    info!("controllers stopped");
}

/// The feed whose watch covers `namespace`, if any.
fn feed_covering(
    feeds: &[(Option<String>, Arc<SecretFeed>)],
    namespace: &str,
) -> Option<Arc<SecretFeed>> {
    feeds
        .iter()
        .find(|(covers, _)| covers.as_deref().is_none_or(|ns| ns == namespace))
        .map(|(_, feed)| feed.clone())
}

/// The namespaces served, each on its own, or None for all of them.
fn scopes_of(settings: &Settings) -> Vec<Option<String>> {
    if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    }
}

/// The Certificate and Issuer controllers for one namespace (None: all namespaces).
fn scope_controllers(
    client: &Client,
    settings: &Settings,
    namespace: Option<String>,
    secrets: &SecretFeed,
    shutdown: &CancellationToken,
    context: impl Fn(Certificates) -> Arc<Context>,
) -> Scope {
    let issuer_ar = ApiResource::erase::<Issuer>(&());
    let cluster_issuer_ar = ApiResource::erase::<ClusterIssuer>(&());
    let ns = namespace.as_deref();
    let config = controller::Config::default().concurrency(settings.concurrency);

    // Typed once per watch event, and indexed by claimed Secret and by issuer as the events
    // arrive: the store is primed (and the index complete) before the first reconcile.
    let (store, triggers) =
        Certificates::watch(certificate_api(client, ns), watcher::Config::default());
    let ctx = context(store.clone());
    let certificates =
        Controller::for_stream(not_own_status(triggers, &ctx.shared), store.store().clone());

    let watched = ctx.shared.watched.clone();
    let by_issuer = |kind: &'static str| {
        let store = store.clone();
        let seen = IssuerDigests::default();
        move |issuer: DynamicObject| match seen.changed(&issuer) {
            true => certificates_using(&store, kind, &issuer),
            false => Vec::new(),
        }
    };
    let cert_controller = certificates
        .with_config(config.clone())
        // A Secret changed: the Certificate that owns it (a managed Secret, unless the change is
        // the operator's own write: the reconcile that made it knows what it wrote), and the
        // Certificates naming it as a keystore password, which re-encode their stores (looked
        // up in an index the reconciles keep, not by scanning the cache).
        .watches_stream(secrets.subscribe(), {
            let shared = ctx.shared.clone();
            move |s: PartialObjectMeta<Secret>| {
                let (namespace, name) = (s.namespace().unwrap_or_default(), s.name_any());
                let mut refs: Vec<ObjectRef<CachedCertificate>> = shared
                    .secret_refs
                    .certificates(&namespace, &name)
                    .into_iter()
                    .map(|c| ObjectRef::new(&c).within(&namespace))
                    .collect();
                let own = watched.own_secret(&namespace, &name, s.resource_version().as_deref());
                if let Some(owner) = secret::owner_of(&s.metadata).filter(|_| !own) {
                    refs.push(ObjectRef::new(owner).within(&namespace));
                }
                refs
            }
        })
        .watches_with(
            api_for(client, &issuer_ar, ns),
            issuer_ar.clone(),
            watcher::Config::default(),
            by_issuer("Issuer"),
        )
        .watches_with(
            Api::all_with(client.clone(), &cluster_issuer_ar),
            cluster_issuer_ar.clone(),
            watcher::Config::default(),
            by_issuer("ClusterIssuer"),
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            |obj, ctx| guarded("Certificate", obj, ctx, certificate::reconcile),
            certificate_error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!("certificate reconcile: {e}");
            }
        });

    let issuers = Controller::new_with(
        api_for(client, &issuer_ar, ns),
        watcher::Config::default(),
        issuer_ar.clone(),
    );
    let issuer_store = issuers.store();
    ctx.shared.watched.add_issuers(issuer_store.clone());
    // An issuer follows the Secrets it reads (a CA key pair replaced, a token rotated).
    let (reading, reading_ar) = (issuer_store.clone(), issuer_ar.clone());
    let rechecks = ctx.shared.rechecks.subscribe(namespace.clone(), false);
    let issuers = issuers
        .with_config(config)
        .watches_stream(secrets.subscribe(), move |s: PartialObjectMeta<Secret>| {
            issuer::issuers_reading(
                &reading,
                &reading_ar,
                &s.namespace().unwrap_or_default(),
                &s.name_any(),
                None,
            )
        })
        .reconcile_on(rechecks)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            |obj, ctx| guarded("Issuer", obj, ctx, issuer::reconcile),
            issuer_error_policy,
            ctx,
        )
        .for_each(|_| async {});
    Scope {
        certificates: store,
        issuers: issuer_store,
        running: vec![Box::pin(cert_controller), Box::pin(issuers)],
    }
}

/// Whether the API server serves PodCertificateRequests (`certificates.k8s.io/v1beta1`, beta
/// and off by default in Kubernetes 1.35). Without them the operator runs as before and says so.
async fn pod_certificates_served(client: &Client) -> bool {
    match client
        .list_api_group_resources("certificates.k8s.io/v1beta1")
        .await
    {
        Ok(list)
            if list
                .resources
                .iter()
                .any(|r| r.name == "podcertificaterequests") =>
        {
            info!("signing PodCertificateRequests for clusterissuers.certsmith.dev/<name>");
            true
        }
        Ok(_) | Err(kube::Error::Api(_)) => {
            info!(
                "the API server does not serve certificates.k8s.io/v1beta1 PodCertificateRequests (Kubernetes 1.35+ with the PodCertificateRequest feature gate and runtime-config): pod certificates are off"
            );
            false
        }
        Err(e) => {
            warn!(
                "cannot tell whether the API server serves PodCertificateRequests ({e}): pod certificates are off until a restart"
            );
            false
        }
    }
}

/// The PodCertificateRequest controller for one namespace (None: all). Every request is
/// watched, since a field selector cannot match a signer prefix; requests for other signers
/// are dropped at once.
fn pod_certificate_controller(
    client: &Client,
    settings: &Settings,
    namespace: Option<String>,
    signer: Arc<pod_certificate::Signer>,
    shutdown: &CancellationToken,
) -> BoxFuture<'static, ()> {
    let ar = ApiResource::erase::<PodCertificateRequest>(&());
    let running = Controller::new_with(
        api_for(client, &ar, namespace.as_deref()),
        watcher::Config::default(),
        ar,
    )
    .with_config(controller::Config::default().concurrency(settings.concurrency))
    .graceful_shutdown_on(shutdown.clone().cancelled_owned())
    .run(
        |obj, signer: Arc<pod_certificate::Signer>| {
            let ctx = signer.ctx.clone();
            guarded("PodCertificateRequest", obj, ctx, move |obj, _| {
                pod_certificate::reconcile(obj, signer)
            })
        },
        |_, error, signer: Arc<pod_certificate::Signer>| {
            signer.ctx.metrics.reconcile_error(Reason::ApiError);
            warn!("pod certificate request reconcile failed, retrying: {error}");
            Action::requeue(Duration::from_secs(5))
        },
        signer,
    )
    .for_each(|result| async move {
        match result {
            Ok(_)
            | Err(controller::Error::ObjectNotFound(_) | controller::Error::ReconcilerFailed(..)) =>
                {}
            Err(e) => warn!("pod certificate controller: {e}"),
        }
    });
    Box::pin(running)
}

/// The ClusterIssuer controller (optionally limited by a label selector), and its cache.
fn cluster_issuer_controller(
    client: &Client,
    settings: &Settings,
    ctx: Arc<Context>,
    secrets: &SecretFeed,
    shutdown: &CancellationToken,
) -> (Store<DynamicObject>, BoxFuture<'static, ()>) {
    let ar = ApiResource::erase::<ClusterIssuer>(&());
    let watch = match &settings.cluster_issuer_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let controller = Controller::new_with(Api::all_with(client.clone(), &ar), watch, ar.clone());
    let store = controller.store();
    ctx.shared.watched.add_cluster_issuers(store.clone());
    let (reading, reading_ar) = (store.clone(), ar);
    let resource_namespace = settings.cluster_resource_namespace.clone();
    let rechecks = ctx.shared.rechecks.subscribe(None, true);
    // The cluster-resource namespace's Secrets (issuers read only there).
    let changes = secrets.subscribe();
    let running = controller
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .watches_stream(changes, move |s: PartialObjectMeta<Secret>| {
            issuer::issuers_reading(
                &reading,
                &reading_ar,
                &s.namespace().unwrap_or_default(),
                &s.name_any(),
                Some(&resource_namespace),
            )
        })
        .reconcile_on(rechecks)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            |obj, ctx| guarded("ClusterIssuer", obj, ctx, issuer::reconcile),
            issuer_error_policy,
            ctx,
        )
        .for_each(|_| async {});
    (store, Box::pin(running))
}

/// The TrustBundle controller (cluster-scoped objects, optionally limited by a label
/// selector) and its cache. It writes only into the namespaces the operator serves, and looks
/// at a bundle again when: one of those namespaces changes its labels; a ConfigMap a bundle
/// wrote is edited or deleted; a Secret, ConfigMap or issuer a bundle sources changes; an
/// issuer controller looks at an issuer it sources (`Triggers`); a certificate of it expires;
/// and every 5 minutes. Every watch but the TrustBundles' is metadata only.
fn trust_bundle_controller(
    client: &Client,
    settings: &Settings,
    ctx: Arc<Context>,
    feeds: &[(Option<String>, Arc<SecretFeed>)],
    shutdown: &CancellationToken,
) -> (Store<DynamicObject>, BoxFuture<'static, ()>) {
    let ar = ApiResource::erase::<TrustBundle>(&());
    let watch = match &settings.trust_bundle_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let mut controller = Controller::new_with(Api::all_with(client.clone(), &ar), watch, ar)
        .with_config(controller::Config::default().concurrency(settings.concurrency));
    let store = controller.store();
    let scopes = scopes_of(settings);
    let (namespaces, namespace_writers): (Vec<_>, Vec<_>) =
        scopes.iter().map(|_| reflector::store()).unzip();
    let (written, written_writers): (Vec<_>, Vec<_>) =
        scopes.iter().map(|_| reflector::store()).unzip();
    let scoped = scopes.iter().zip(namespace_writers).zip(written_writers);
    for ((scope, namespace_writer), written_writer) in scoped {
        let ns = scope.as_deref();
        // The namespaces served: all, or each watched one by name (RBAC grants them by name).
        let selected = match ns {
            Some(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
            None => watcher::Config::default(),
        };
        let changes = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            selected,
        )
        .default_backoff()
        .reflect(namespace_writer)
        .touched_objects();
        let (bundles, caches) = (store.clone(), written.clone());
        controller = controller.watches_stream(changes, move |n: PartialObjectMeta<Namespace>| {
            trust_bundle::bundles_for_namespace(&bundles, &caches, &n)
        });
        let labelled = watcher::Config::default().labels(trust_bundle::BUNDLE_LABEL);
        let changes = watcher(namespaced::<ConfigMap>(client, ns), labelled)
            .default_backoff()
            .reflect(written_writer)
            .touched_objects();
        controller = controller.watches_stream(changes, |c: PartialObjectMeta<ConfigMap>| {
            trust_bundle::bundle_writing(&c)
        });
        let bundles = store.clone();
        let changes = watcher(
            namespaced::<ConfigMap>(client, ns),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects();
        controller = controller.watches_stream(changes, move |c: PartialObjectMeta<ConfigMap>| {
            let ns = c.namespace().unwrap_or_default();
            trust_bundle::bundles_reading(
                &bundles,
                trust_bundle::SourceKind::ConfigMap,
                &ns,
                &c.name_any(),
            )
        });
        let bundles = store.clone();
        let changes = watcher(namespaced::<Issuer>(client, ns), watcher::Config::default())
            .default_backoff()
            .touched_objects();
        controller = controller.watches_stream(changes, move |i: PartialObjectMeta<Issuer>| {
            let id = IssuerId::issuer(&i.namespace().unwrap_or_default(), &i.name_any());
            trust_bundle::bundles_sourcing(&bundles, &id)
        });
    }
    // Secrets: where the operator may read them (the served scopes' shared watches, and in a
    // namespaced install the cluster-resource namespace's).
    for (_, feed) in feeds {
        let bundles = store.clone();
        let changes = feed.subscribe();
        controller = controller.watches_stream(changes, move |s: PartialObjectMeta<Secret>| {
            let ns = s.namespace().unwrap_or_default();
            trust_bundle::bundles_reading(
                &bundles,
                trust_bundle::SourceKind::Secret,
                &ns,
                &s.name_any(),
            )
        });
    }
    let bundles = store.clone();
    let changes = watcher(
        Api::<PartialObjectMeta<ClusterIssuer>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    controller = controller.watches_stream(changes, move |i: PartialObjectMeta<ClusterIssuer>| {
        trust_bundle::bundles_sourcing(&bundles, &IssuerId::cluster_issuer(&i.name_any()))
    });
    let bundles = store.clone();
    let looked_at =
        ctx.shared.trust_bundles.subscribe().flat_map(move |id| {
            futures::stream::iter(trust_bundle::bundles_sourcing(&bundles, &id))
        });
    let context = Arc::new(trust_bundle::Bundles::new(ctx, namespaces, written));
    let running = controller
        .reconcile_on(looked_at)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            |obj, bundles: Arc<trust_bundle::Bundles>| {
                let ctx = bundles.ctx.clone();
                guarded("TrustBundle", obj, ctx, move |obj, _| {
                    trust_bundle::reconcile(obj, bundles)
                })
            },
            trust_bundle_error_policy,
            context,
        )
        .for_each(|result| async move {
            match result {
                // A trigger naming a bundle that is gone (a ConfigMap's label): nothing to
                // do; a failed reconcile: its error policy said so.
                Ok(_)
                | Err(
                    controller::Error::ObjectNotFound(_) | controller::Error::ReconcilerFailed(..),
                ) => {}
                // A watch refused (RBAC) or failing: say so, or the bundles silently stall.
                Err(e) => warn!("trust bundle controller: {e}"),
            }
        });
    (store, Box::pin(running))
}

/// The Certificate events to reconcile: all but the one carrying the status the operator itself
/// just wrote (the reconcile that wrote it knows what it wrote).
fn not_own_status(
    triggers: impl futures::Stream<Item = Result<CachedCertificate, watcher::Error>> + Send + 'static,
    shared: &Shared,
) -> impl futures::Stream<Item = Result<CachedCertificate, watcher::Error>> + Send + 'static {
    let watched = shared.watched.clone();
    triggers.try_filter(move |c| {
        let own = watched.own_status(
            &c.namespace().unwrap_or_default(),
            &c.name_any(),
            c.resource_version().as_deref(),
        );
        std::future::ready(!own)
    })
}

/// A namespaced resource's metadata-only API in one namespace, or in all.
fn namespaced<K>(client: &Client, namespace: Option<&str>) -> Api<PartialObjectMeta<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Deleted objects are never reconciled again: every `SWEEP_EVERY`, drop their metric series,
/// backend clients, limits and memories. One sweep over every scope's caches, so a namespace's
/// sweep never removes another namespace's series.
fn sweep(
    ctx: Arc<Context>,
    certificates: Vec<Certificates>,
    issuers: Vec<Store<DynamicObject>>,
    cluster_issuers: Store<DynamicObject>,
    trust_bundles: Option<Store<DynamicObject>>,
    stop: CancellationToken,
) -> BoxFuture<'static, ()> {
    let bundle_ar = ApiResource::erase::<TrustBundle>(&());
    let issuer_ar = ApiResource::erase::<Issuer>(&());
    let cluster_ar = ApiResource::erase::<ClusterIssuer>(&());
    Box::pin(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            let certificate_exists =
                |ns: &str, name: &str| certificates.iter().any(|c| c.get(ns, name).is_some());
            ctx.metrics.retain_certificates(certificate_exists);
            let live_uids: std::collections::HashSet<String> = certificates
                .iter()
                .flat_map(|c| c.store().state())
                .filter_map(|c| c.uid())
                .collect();
            if let Ok(mut unwritten) = ctx.shared.unwritten.lock() {
                unwritten.retain(|uid, _| live_uids.contains(uid));
            }
            let issuer_exists = |kind: &str, ns: &str, name: &str| match kind {
                "ClusterIssuer" => cluster_issuers
                    .get(&ObjectRef::new_with(name, cluster_ar.clone()))
                    .is_some(),
                _ => {
                    let r = ObjectRef::new_with(name, issuer_ar.clone()).within(ns);
                    issuers.iter().any(|s| s.get(&r).is_some())
                }
            };
            ctx.metrics.retain_issuers(issuer_exists);
            let bundle_exists = |name: &str| {
                let r = ObjectRef::new_with(name, bundle_ar.clone());
                trust_bundles.as_ref().is_some_and(|s| s.get(&r).is_some())
            };
            ctx.metrics.retain_trust_bundles(bundle_exists);
            let id_exists = |id: &IssuerId| {
                issuer_exists(
                    id.kind.as_str(),
                    id.namespace.as_deref().unwrap_or(""),
                    &id.name,
                )
            };
            ctx.caches.retain(id_exists);
            ctx.shared.watched.sweep(id_exists);
            ctx.gates.retain(id_exists);
            if let Ok(mut panics) = ctx.shared.panics.lock() {
                panics.retain(|key, _| {
                    let mut parts = key.splitn(3, '/');
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some("Certificate"), Some(ns), Some(name)) => certificate_exists(ns, name),
                        (Some("TrustBundle"), Some(_), Some(name)) => bundle_exists(name),
                        (Some(kind), Some(ns), Some(name)) => issuer_exists(kind, ns, name),
                        _ => false,
                    }
                });
            }
        }
    })
}

/// The last digest of each issuer seen by a Certificate controller's issuer watch: a CA
/// rotation's leaf counts change with every leaf moved, and must not have every Certificate
/// of the issuer looked at again each time.
#[derive(Default)]
struct IssuerDigests(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl IssuerDigests {
    /// Whether what Certificates act on changed: the spec's generation, the conditions, the
    /// CA rotation but its counts.
    fn changed(&self, issuer: &DynamicObject) -> bool {
        use std::hash::{Hash, Hasher};
        let mut status = issuer.data.get("status").cloned().unwrap_or_default();
        if let Some(rotation) = status.get_mut("caRotation").and_then(|r| r.as_object_mut()) {
            for counter in [
                "leavesOnActive",
                "leavesOnPrevious",
                "leavesUnknown",
                "leavesMovedAt",
            ] {
                rotation.remove(counter);
            }
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (issuer.metadata.generation, status.to_string()).hash(&mut hasher);
        let digest = hasher.finish();
        let key = format!(
            "{}/{}",
            issuer.namespace().unwrap_or_default(),
            issuer.name_any()
        );
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        seen.insert(key, digest) != Some(digest)
    }
}

/// Certificates whose issuerRef names this issuer (from the index, not a scan).
fn certificates_using(
    certificates: &Certificates,
    kind: &str,
    issuer: &DynamicObject,
) -> Vec<ObjectRef<CachedCertificate>> {
    let name = issuer.name_any();
    let id = match kind {
        "ClusterIssuer" => IssuerId::cluster_issuer(&name),
        _ => IssuerId::issuer(&issuer.namespace().unwrap_or_default(), &name),
    };
    certificates
        .names_using(&id)
        .into_iter()
        .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
        .collect()
}

/// The Certificates' API in one namespace, or in all, read leniently (`CachedCertificate`).
fn certificate_api(client: &Client, namespace: Option<&str>) -> Api<CachedCertificate> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run one reconcile; should it panic, the panic stops here: the object gets `InternalError`
/// (status and a Warning Event) and is looked at again after a growing backoff, and the
/// process and every other object carry on.
async fn guarded<K, F, Fut>(
    kind: &'static str,
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: ReportPanic,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    let run = reconcile(obj.clone(), ctx.clone());
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let key = format!(
                "{kind}/{}/{}",
                obj.namespace().unwrap_or_default(),
                obj.name_any()
            );
            let count = ctx.shared.panics.lock().map_or(1, |mut panics| {
                let count = panics.entry(key.clone()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            });
            error!(object = %key, panics = count, "reconcile panicked: {}", panic_text(payload.as_ref()));
            ctx.metrics.reconcile_error(Reason::InternalError);
            K::report_panic(kind, &ctx, &obj).await;
            let delay = crate::pki::renewal::backoff_secs(count, 0, None);
            Ok(Action::requeue(Duration::from_secs(
                u64::try_from(delay).unwrap_or(1),
            )))
        }
    }
}

/// How a panic in a reconcile is reported on the object (status and a Warning Event).
trait ReportPanic: kube::Resource + Send + Sync + 'static {
    fn report_panic<'a>(kind: &'static str, ctx: &'a Context, obj: &'a Self) -> BoxFuture<'a, ()>;
}

impl ReportPanic for DynamicObject {
    fn report_panic<'a>(kind: &'static str, ctx: &'a Context, obj: &'a Self) -> BoxFuture<'a, ()> {
        match kind {
            "TrustBundle" => trust_bundle::report_internal_error(ctx, obj).boxed(),
            "PodCertificateRequest" => pod_certificate::report_internal_error(ctx, obj).boxed(),
            _ => issuer::report_internal_error(ctx, obj).boxed(),
        }
    }
}

impl ReportPanic for CachedCertificate {
    fn report_panic<'a>(_: &'static str, ctx: &'a Context, obj: &'a Self) -> BoxFuture<'a, ()> {
        certificate::report_internal_error(ctx, obj).boxed()
    }
}

/// A panic's message, when it is text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not text)")
}

fn certificate_error_policy(_: Arc<CachedCertificate>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(Reason::ApiError);
    warn!("certificate reconcile failed, retrying: {error}");
    Action::requeue(Duration::from_secs(5))
}

fn trust_bundle_error_policy(
    _: Arc<DynamicObject>,
    error: &Error,
    _: Arc<trust_bundle::Bundles>,
) -> Action {
    warn!("trust bundle reconcile failed, retrying: {error}");
    Action::requeue(Duration::from_secs(5))
}

fn issuer_error_policy(_: Arc<DynamicObject>, error: &Error, _: Arc<Context>) -> Action {
    warn!("issuer reconcile failed, retrying: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_whose_rotation_counts_alone_changed_wakes_no_certificate() {
        let issuer = |phase: &str, leaves: u32| {
            let mut o = DynamicObject::new("ca", &ApiResource::erase::<Issuer>(&())).within("ns");
            o.metadata.generation = Some(1);
            o.data = serde_json::json!({"status": {"caRotation": {"phase": phase,
                "leavesOnActive": leaves, "leavesOnPrevious": 10 - leaves}}});
            o
        };
        let seen = IssuerDigests::default();
        assert!(seen.changed(&issuer("MovingLeaves", 1)), "first sight");
        assert!(!seen.changed(&issuer("MovingLeaves", 2)), "counts only");
        assert!(seen.changed(&issuer("Retired", 10)), "the phase");
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let text: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_text(text.as_ref()), "boom");
        let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_text(owned.as_ref()), "bang");
        let other: Box<dyn std::any::Any + Send> = Box::new(7u8);
        assert_eq!(panic_text(other.as_ref()), "(not text)");
    }
}
