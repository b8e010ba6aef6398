//! A small mutual-TLS server and client that reload their key and certificate whenever the
//! files change, the way a workload with a mounted Secret would. `make demo` runs both on the
//! Secrets certsmith issues and keeps them talking through certificate rotations.
//!
//!   mtls server --dir DIR --listen 127.0.0.1:PORT
//!   mtls client --dir DIR --connect 127.0.0.1:PORT --server-name NAME [--rotations N]
//!
//! DIR holds `tls.crt`, `tls.key` and `ca.crt` (the demo swaps a symlinked directory
//! atomically, as the kubelet does; `ca.crt` is the TrustBundle's). A new key and certificate
//! are used only once they load and match each other, so a half-written update can never
//! break a handshake; a new `ca.crt` (a CA rotation publishing its next CA) is trusted at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use certsmith::pki::inspect;
use certsmith::pki::keys::PrivateKey;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Accept mTLS connections and greet each client by its SPIFFE ID.
    Server {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        listen: String,
    },
    /// Connect repeatedly; report rotations and failed handshakes.
    Client {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        connect: String,
        #[arg(long)]
        server_name: String,
        /// Exit after both certificates rotated this many times (0: run until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        rotations: u32,
        #[arg(long, default_value_t = 250)]
        interval_ms: u64,
        /// Give up (exit 1) when the rotations have not happened by then.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// With --rotations: also wait until this file exists (the demo's CA rotation done).
        #[arg(long)]
        until_file: Option<PathBuf>,
    },
}

/// The key and certificate in use, with what the demo prints about them.
struct Loaded {
    key: Arc<CertifiedKey>,
    serial: String,
    roots: Vec<CertificateDer<'static>>,
    /// `tls.crt` and `ca.crt` as read: a change to either reloads.
    fingerprint: Vec<u8>,
}

/// What the files hold now, to compare with [`Loaded::fingerprint`].
fn files_fingerprint(dir: &Path) -> Option<Vec<u8>> {
    let crt = std::fs::read(dir.join("tls.crt")).ok()?;
    let ca = std::fs::read(dir.join("ca.crt")).ok()?;
    Some([crt, ca].concat())
}

/// Files -> rustls key material, only when the key matches the certificate.
fn load(dir: &Path) -> Result<Loaded> {
    let crt = std::fs::read(dir.join("tls.crt")).context("reading tls.crt")?;
    let key_pem = std::fs::read_to_string(dir.join("tls.key")).context("reading tls.key")?;
    let ca = std::fs::read(dir.join("ca.crt")).context("reading ca.crt")?;
    let leaf = inspect::parse_chain(&crt)
        .map_err(|e| anyhow!("tls.crt: {e}"))?
        .remove(0);
    let ours = PrivateKey::from_pem(&key_pem).map_err(|e| anyhow!("tls.key: {e}"))?;
    if ours.public_key_info() != leaf.public_key_info {
        bail!("tls.key does not match tls.crt (update in progress?)");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&crt).collect::<Result<_, _>>()?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)?;
    let roots = CertificateDer::pem_slice_iter(&ca).collect::<Result<_, _>>()?;
    Ok(Loaded {
        key: Arc::new(CertifiedKey::new(chain, signing)),
        serial: leaf.serial,
        roots,
        fingerprint: [crt, ca].concat(),
    })
}

/// The current identity, refreshed from disk in the background.
#[derive(Clone)]
struct Identity(Arc<RwLock<Arc<Loaded>>>);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity")
    }
}

impl Identity {
    async fn watch(dir: PathBuf, who: &'static str) -> Result<Self> {
        let first = loop {
            match load(&dir) {
                Ok(l) => break l,
                Err(e) => {
                    eprintln!("waiting for {}: {e}", dir.display());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let identity = Identity(Arc::new(RwLock::new(Arc::new(first))));
        let shared = identity.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let changed =
                    files_fingerprint(&dir).is_some_and(|f| f != shared.current().fingerprint);
                if changed
                    && let Ok(fresh) = load(&dir)
                    && let Ok(mut slot) = shared.0.write()
                {
                    let (before, after) = (slot.roots.len(), fresh.roots.len());
                    if slot.roots != fresh.roots {
                        println!("trust: {who} now trusts {after} CA(s) (was {before})");
                    }
                    *slot = Arc::new(fresh);
                }
            }
        });
        Ok(identity)
    }

    fn current(&self) -> Arc<Loaded> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl rustls::server::ResolvesServerCert for Identity {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}

impl rustls::client::ResolvesClientCert for Identity {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    Ok(store)
}

/// The server's TLS settings for the trust and identity in use now: built per connection, so
/// a CA published in `ca.crt` is trusted from the next handshake.
fn acceptor(identity: &Identity) -> Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = Arc::new(root_store(&identity.current().roots)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(identity.clone()));
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn server(dir: PathBuf, listen: String) -> Result<()> {
    let identity = Identity::watch(dir, "server").await?;
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!(
        "server: listening on {listen} with serial {}",
        identity.current().serial
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = match acceptor(&identity) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("server: cannot use ca.crt: {e}");
                continue;
            }
        };
        let identity = identity.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| inspect::parse_der(c).ok());
            let who = peer
                .and_then(|p| p.uris.into_iter().next())
                .unwrap_or_else(|| "unknown".into());
            let (read, mut write) = tokio::io::split(tls);
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_ok() {
                let reply = format!("hello {who} from serial {}\n", identity.current().serial);
                let _ = write.write_all(reply.as_bytes()).await;
                let _ = write.shutdown().await;
            }
        });
    }
}

/// One mTLS exchange; returns the server certificate's serial and the reply.
async fn exchange(
    identity: &Identity,
    connect: &str,
    server_name: &ServerName<'static>,
) -> Result<(String, String)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(&identity.current().roots)?)
        .with_client_cert_resolver(Arc::new(identity.clone()));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(connect).await?;
    let mut tls = connector.connect(server_name.clone(), tcp).await?;
    let serial = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| inspect::parse_der(c).ok())
        .map(|c| c.serial)
        .ok_or_else(|| anyhow!("server sent no certificate"))?;
    tls.write_all(b"ping\n").await?;
    let mut reply = String::new();
    BufReader::new(tls).read_line(&mut reply).await?;
    Ok((serial, reply.trim().to_string()))
}

async fn client(
    dir: PathBuf,
    connect: String,
    server_name: String,
    rotations: u32,
    interval: Duration,
    timeout: Duration,
    until_file: Option<PathBuf>,
) -> Result<()> {
    let started = Instant::now();
    let identity = Identity::watch(dir, "client").await?;
    let name = ServerName::try_from(server_name)?;
    let (mut ok, mut failed) = (0u64, 0u64);
    let (mut server_serial, mut client_serial) =
        (None::<String>, identity.current().serial.clone());
    let (mut server_rotations, mut client_rotations) = (0u32, 0u32);
    loop {
        match exchange(&identity, &connect, &name).await {
            Ok((serial, reply)) => {
                ok += 1;
                if ok == 1 {
                    println!(
                        "client: first handshake after {:.1}s: {reply}",
                        started.elapsed().as_secs_f64()
                    );
                }
                match &server_serial {
                    Some(old) if *old != serial => {
                        server_rotations += 1;
                        println!(
                            "rotation: server serial {old} -> {serial} (handshakes ok {ok}, failed {failed})"
                        );
                    }
                    _ => {}
                }
                server_serial = Some(serial);
            }
            // Until the first exchange, a refused connection means the server is not up yet.
            Err(e)
                if ok == 0
                    && e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused) => {}
            Err(e) => {
                failed += 1;
                println!("client: handshake failed: {e}");
            }
        }
        let mine = identity.current().serial.clone();
        if mine != client_serial {
            client_rotations += 1;
            println!(
                "rotation: client serial {client_serial} -> {mine} (handshakes ok {ok}, failed {failed})"
            );
            client_serial = mine;
        }
        let done_waiting = until_file.as_ref().is_none_or(|f| f.exists());
        if rotations > 0
            && server_rotations >= rotations
            && client_rotations >= rotations
            && done_waiting
        {
            println!(
                "client: {server_rotations} server and {client_rotations} client rotations; handshakes ok {ok}, failed {failed}"
            );
            return if failed == 0 {
                Ok(())
            } else {
                Err(anyhow!("{failed} handshakes failed"))
            };
        }
        if rotations > 0 && started.elapsed() > timeout {
            bail!(
                "rotations not seen within {timeout:?}: server {server_rotations}, client {client_rotations}; handshakes ok {ok}, failed {failed}"
            );
        }
        tokio::time::sleep(interval).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().role {
        Role::Server { dir, listen } => server(dir, listen).await,
        Role::Client {
            dir,
            connect,
            server_name,
            rotations,
            interval_ms,
            timeout_secs,
            until_file,
        } => {
            client(
                dir,
                connect,
                server_name,
                rotations,
                Duration::from_millis(interval_ms),
                Duration::from_secs(timeout_secs),
                until_file,
            )
            .await
        }
    }
}
