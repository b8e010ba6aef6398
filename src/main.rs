//! The `certsmith` binary: the controller and its companion commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use certsmith::controller::{Settings, run};
use certsmith::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "certsmith",
    version,
    about = "Keeps X.509 certificates alive in Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Controller(ControllerArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Namespace holding the Secrets of ClusterIssuers. Default: the operator's own namespace
    /// (POD_NAMESPACE), else "certsmith".
    #[arg(long, env = "CERTSMITH_CLUSTER_RESOURCE_NAMESPACE")]
    cluster_resource_namespace: Option<String>,
    /// Watch only these namespaces (repeat the flag or separate with commas; default: all).
    #[arg(long = "namespace", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Certificates reconciled in parallel.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Serve only ClusterIssuers matching this label selector (default: all).
    #[arg(long)]
    cluster_issuer_selector: Option<String>,
    /// Client-side limit on API requests per second. Off by default: the API server's
    /// priority and fairness already protects it, and a client throttle only adds latency.
    #[arg(long)]
    api_qps: Option<u64>,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9402")]
    metrics_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", certsmith::crds::render().context("rendering CRDs")?);
            Ok(())
        }
        Command::Controller(args) => controller(args).await,
    }
}

async fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let cluster_resource_namespace = args
        .cluster_resource_namespace
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "certsmith".into());
    let settings = Settings {
        cluster_resource_namespace,
        namespaces: args.namespaces,
        concurrency: args.concurrency,
        cluster_issuer_selector: args.cluster_issuer_selector,
    };
    let config = kube::Config::infer()
        .await
        .context("loading Kubernetes client configuration (kubeconfig or in-cluster)")?;
    let client = match args.api_qps {
        None => kube::Client::try_from(config).context("building the Kubernetes client")?,
        Some(qps) => kube::client::ClientBuilder::try_from(config)
            .context("building the Kubernetes client")?
            .with_layer(&tower::limit::RateLimitLayer::new(
                qps.max(1),
                std::time::Duration::from_secs(1),
            ))
            .build(),
    };
    let metrics = Arc::new(certsmith::metrics::Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    tracing::info!(?settings, "starting certsmith controller");
    let health = certsmith::health::serve(args.metrics_addr, ready.clone(), metrics.clone());
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        run::shutdown_signal().await;
        tracing::info!("termination signal received, finishing in-flight work");
        on_signal.cancel();
    });
    tokio::select! {
        res = health => res.with_context(|| format!("serving health and metrics on {}", args.metrics_addr))?,
        () = run::run(client, settings, metrics, ready, shutdown) => {}
    }
    Ok(())
}
