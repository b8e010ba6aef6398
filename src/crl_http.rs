//! The CA issuers' CRLs, served read-only over HTTP (`--crl-addr`), for relying parties that
//! follow a leaf's CRL distribution point:
//!
//! - `/crl/clusterissuer/<name>.crl` (DER) and `.pem`;
//! - `/crl/issuer/<namespace>/<name>.crl` and `.pem`.
//!
//! Each answer comes from the issuer's CRL ConfigMap (only one certsmith wrote for that
//! issuer), kept for a few seconds so a crowd of relying parties costs the API server little.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::issuer::IssuerId;
use crate::issuer::crl;

/// How long a CRL read from the API server is served before it is read again.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// The PEM CRL of each issuer asked about (None: it has none), and when it was read.
type Cache = Arc<Mutex<HashMap<IssuerId, (Instant, Option<String>)>>>;

#[derive(Clone)]
struct Shared {
    client: kube::Client,
    cluster_resource_namespace: String,
    cache: Cache,
}

/// Serve until the process ends.
pub async fn serve(
    addr: SocketAddr,
    client: kube::Client,
    cluster_resource_namespace: String,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/crl/clusterissuer/{file}", get(cluster_issuer))
        .route("/crl/issuer/{namespace}/{file}", get(issuer))
        .with_state(Shared {
            client,
            cluster_resource_namespace,
            cache: Arc::default(),
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

async fn cluster_issuer(State(s): State<Shared>, Path(file): Path<String>) -> Response {
    let Some((name, format)) = split(&file) else {
        return not_found();
    };
    let namespace = s.cluster_resource_namespace.clone();
    answer(&s, IssuerId::cluster_issuer(name), &namespace, format).await
}

async fn issuer(
    State(s): State<Shared>,
    Path((namespace, file)): Path<(String, String)>,
) -> Response {
    let Some((name, format)) = split(&file) else {
        return not_found();
    };
    if !is_dns_name(&namespace) {
        return not_found();
    }
    answer(&s, IssuerId::issuer(&namespace, name), &namespace, format).await
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Der,
    Pem,
}

/// `<name>.crl` or `<name>.pem`, with a name an object may have.
fn split(file: &str) -> Option<(&str, Format)> {
    let (name, format) = match file.rsplit_once('.')? {
        (name, "crl") => (name, Format::Der),
        (name, "pem") => (name, Format::Pem),
        _ => return None,
    };
    is_dns_name(name).then_some((name, format))
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such CRL\n").into_response()
}

async fn answer(s: &Shared, id: IssuerId, namespace: &str, format: Format) -> Response {
    let pem = match cached(s, &id) {
        Some(hit) => hit,
        None => match read(s, &id, namespace).await {
            Ok(found) => {
                if let Ok(mut cache) = s.cache.lock() {
                    // Bounded: an entry per issuer asked about, dropped when stale.
                    cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
                    cache.insert(id.clone(), (Instant::now(), found.clone()));
                }
                found
            }
            Err(e) => {
                tracing::warn!(issuer = %id, "reading the CRL ConfigMap: {e}");
                return (StatusCode::SERVICE_UNAVAILABLE, "CRL unavailable\n").into_response();
            }
        },
    };
    let Some(pem) = pem else {
        return not_found();
    };
    match format {
        Format::Pem => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        Format::Der => match pem::parse(&pem) {
            Ok(block) => (
                [(header::CONTENT_TYPE, "application/pkix-crl")],
                block.into_contents(),
            )
                .into_response(),
            Err(_) => not_found(),
        },
    }
}

fn cached(s: &Shared, id: &IssuerId) -> Option<Option<String>> {
    let cache = s.cache.lock().ok()?;
    let (at, pem) = cache.get(id)?;
    (at.elapsed() < CACHE_TTL).then(|| pem.clone())
}

/// The PEM CRL of `id`, None when there is none (or the ConfigMap is not certsmith's).
async fn read(s: &Shared, id: &IssuerId, namespace: &str) -> Result<Option<String>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), namespace);
    let found = api.get_opt(&crl::object_name(id)).await?;
    Ok(found
        .filter(|cm| crl::is_crl_of(cm, id))
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove(crl::KEY)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crl_files_of_object_names_are_served() {
        assert_eq!(split("agents-ca.crl"), Some(("agents-ca", Format::Der)));
        assert_eq!(split("a.b.pem"), Some(("a.b", Format::Pem)));
        for bad in ["x.txt", ".crl", "UPPER.crl", "a/b.crl", "x", "..crl%2f"] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
