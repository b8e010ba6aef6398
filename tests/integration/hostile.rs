//! A hostile HTTP(S) server on 127.0.0.1: it stands for a "Vault" that a tenant controls
//! (any namespace can point an Issuer at any URL). It records every request it receives and
//! answers with whatever the test decides: absurd TTLs, redirects elsewhere, endless bodies.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use serde_json::Value;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// Everything the client sent (request line, headers, body) as one text, to look for a
    /// credential in.
    pub fn everything(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} {}\n{}\n{}",
            self.method,
            self.path,
            headers.join("\n"),
            self.body
        )
    }
}

/// How the test answers a request.
pub type Answer = Arc<dyn Fn(&Recorded) -> Response<Body> + Send + Sync>;

pub struct Hostile {
    /// `http://127.0.0.1:<port>` (or https).
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// A plain HTTP server.
    pub async fn start(
        answer: impl Fn(&Recorded) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hostile server");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        Self::serve(listener, url, Arc::new(answer))
    }

    /// An HTTPS server presenting `chain` (PEM, leaf first) with `key` (PEM).
    pub async fn start_tls(
        chain: &str,
        key: &str,
        answer: impl Fn(&Recorded) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hostile server");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let tls = TlsListener {
            tcp: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server_config(chain, key))),
        };
        Self::serve(tls, url, Arc::new(answer))
    }

    fn serve<L>(listener: L, url: String, answer: Answer) -> Self
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback({
            let requests = requests.clone();
            move |request: Request<Body>| {
                record_and_answer(request, requests.clone(), answer.clone())
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hostile {
            url,
            requests,
            task,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// Whether a request for a path ending with `suffix` has arrived.
    pub fn received(&self, suffix: &str) -> bool {
        self.requests().iter().any(|r| {
            r.path
                .split('?')
                .next()
                .unwrap_or_default()
                .ends_with(suffix)
        })
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_and_answer(
    request: Request<Body>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    answer: Answer,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: String::from_utf8_lossy(&body).into(),
    };
    requests.lock().expect("lock").push(recorded.clone());
    answer(&recorded)
}

/// A JSON answer.
pub fn json(status: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

/// A redirect to `location`.
pub fn redirect(status: u16, location: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("location", location)
        .body(Body::empty())
        .expect("response")
}

/// A body of `total` bytes streamed in 64 KiB chunks, with no Content-Length; `sent` counts
/// the bytes the client made the server produce (how far it read, plus socket buffers).
pub fn endless(total: usize, sent: Arc<std::sync::atomic::AtomicUsize>) -> Response<Body> {
    const CHUNK: usize = 64 << 10;
    let chunks = futures::stream::iter((0..total / CHUNK).map(move |_| {
        sent.fetch_add(CHUNK, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; CHUNK]))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(chunks))
        .expect("response")
}

fn server_config(chain: &str, key: &str) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate")
}

/// TLS on top of a TCP listener, for axum. A failed handshake (a client that does not trust
/// the certificate) is not a connection: wait for the next one.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
