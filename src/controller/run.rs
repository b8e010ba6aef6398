//! Wire the reconcilers to watches and run them until shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{Certificate, ClusterIssuer, Issuer};
use crate::metrics::Metrics;
use crate::secret;

use super::{Context, Settings, certificate, issuer};

/// Set once the Certificate cache is primed; `/readyz` reports it.
pub type Readiness = Arc<AtomicBool>;

fn api_for(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Run the Certificate and issuer controllers until `shutdown` is cancelled. In-flight
/// reconciles finish first, so no Secret is left half-written.
///
/// Each watched namespace (or the whole cluster) gets its own Certificate and Issuer
/// controllers; ClusterIssuers are reconciled once.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: CancellationToken,
) {
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers: Vec<BoxFuture<'static, ()>> = Vec::new();
    let mut stores = Vec::new();
    // One client per issuer for the whole process, so all controllers share tokens and limits.
    let backends = super::context::Backends::new(&settings);
    for scope in scopes {
        let (store, running) = scope_controllers(
            &client,
            &settings,
            metrics.clone(),
            scope,
            &shutdown,
            backends.clone(),
        );
        stores.push(store);
        controllers.extend(running);
    }
    if let Some(store) = stores.first().cloned() {
        let ctx = Arc::new(Context::new(
            client.clone(),
            settings.clone(),
            metrics,
            store,
            backends,
        ));
        controllers.push(cluster_issuer_controller(
            &client, &settings, ctx, &shutdown,
        ));
    }
    controllers.push(Box::pin(async move {
        for store in &stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        let count: usize = stores.iter().map(|s| s.state().len()).sum();
        info!(certificates = count, "caches primed");
        ready.store(true, Ordering::SeqCst);
    }));
    futures::future::join_all(controllers).await;
    info!("controllers stopped");
}

/// The Certificate and Issuer controllers for one namespace (None: all namespaces).
fn scope_controllers(
    client: &Client,
    settings: &Settings,
    metrics: Arc<Metrics>,
    scope: Option<String>,
    shutdown: &CancellationToken,
    backends: super::context::Backends,
) -> (Store<DynamicObject>, Vec<BoxFuture<'static, ()>>) {
    let cert_ar = ApiResource::erase::<Certificate>(&());
    let issuer_ar = ApiResource::erase::<Issuer>(&());
    let cluster_issuer_ar = ApiResource::erase::<ClusterIssuer>(&());
    let ns = scope.as_deref();
    let config = controller::Config::default().concurrency(settings.concurrency);

    let certificates = Controller::new_with(
        api_for(client, &cert_ar, ns),
        watcher::Config::default(),
        cert_ar.clone(),
    );
    let store = certificates.store();
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.clone(),
        metrics,
        store.clone(),
        backends,
    ));

    let secret_api: Api<Secret> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Only Secrets certsmith wrote: memory does not grow with unrelated Secrets.
    let managed = watcher::Config::default().labels(&format!("{}=true", secret::MANAGED_LABEL));
    let secret_ar = cert_ar.clone();
    let by_issuer = |kind: &'static str| {
        let (store, ar) = (store.clone(), cert_ar.clone());
        move |issuer: DynamicObject| certificates_using(&store, &ar, kind, &issuer)
    };
    let cert_controller = certificates
        .with_config(config.clone())
        .watches_with(secret_api, (), managed, move |s: Secret| {
            let owner = secret::owner(&s).map(str::to_string);
            owner.map(|name| {
                ObjectRef::new_with(&name, secret_ar.clone())
                    .within(&s.namespace().unwrap_or_default())
            })
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
            certificate::reconcile,
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
        issuer_ar,
    )
    .with_config(config)
    .graceful_shutdown_on(shutdown.clone().cancelled_owned())
    .run(issuer::reconcile, issuer_error_policy, ctx.clone())
    .for_each(|_| async {});
    let (ctx_for_sweep, sweep_ar) = (ctx, cert_ar.clone());
    // Deleted Certificates are never reconciled again: sweep their metric series.
    let (sweep_store, sweep_ctx, stop) = (store.clone(), ctx_for_sweep, shutdown.clone());
    let sweep = async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            }
            sweep_ctx.metrics.retain_certificates(|ns, name| {
                sweep_store
                    .get(&ObjectRef::new_with(name, sweep_ar.clone()).within(ns))
                    .is_some()
            });
        }
    };
    (
        store,
        vec![
            Box::pin(cert_controller),
            Box::pin(issuers),
            Box::pin(sweep),
        ],
    )
}

/// The ClusterIssuer controller (optionally limited by a label selector).
fn cluster_issuer_controller(
    client: &Client,
    settings: &Settings,
    ctx: Arc<Context>,
    shutdown: &CancellationToken,
) -> BoxFuture<'static, ()> {
    let ar = ApiResource::erase::<ClusterIssuer>(&());
    let watch = match &settings.cluster_issuer_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    Box::pin(
        Controller::new_with(Api::all_with(client.clone(), &ar), watch, ar)
            .with_config(controller::Config::default().concurrency(settings.concurrency))
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(issuer::reconcile, issuer_error_policy, ctx)
            .for_each(|_| async {}),
    )
}

/// Certificates whose issuerRef names this issuer.
fn certificates_using(
    store: &Store<DynamicObject>,
    ar: &ApiResource,
    kind: &str,
    issuer: &DynamicObject,
) -> Vec<ObjectRef<DynamicObject>> {
    let name = issuer.name_any();
    store
        .state()
        .iter()
        .filter(|c| {
            let r = c.data.pointer("/spec/issuerRef");
            let ref_kind = r
                .and_then(|r| r.get("kind"))
                .and_then(|k| k.as_str())
                .unwrap_or("Issuer");
            let ref_name = r.and_then(|r| r.get("name")).and_then(|k| k.as_str());
            ref_kind == kind
                && ref_name == Some(name.as_str())
                && (kind == "ClusterIssuer" || c.namespace() == issuer.namespace())
        })
        .map(|c| {
            ObjectRef::new_with(&c.name_any(), ar.clone())
                .within(&c.namespace().unwrap_or_default())
        })
        .collect()
}

fn certificate_error_policy(
    _: Arc<DynamicObject>,
    error: &certificate::Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_error(crate::reason::Reason::ApiError);
    warn!("certificate reconcile failed, retrying: {error}");
    Action::requeue(std::time::Duration::from_secs(5))
}

fn issuer_error_policy(_: Arc<DynamicObject>, error: &kube::Error, _: Arc<Context>) -> Action {
    warn!("issuer reconcile failed, retrying: {error}");
    Action::requeue(std::time::Duration::from_secs(5))
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
