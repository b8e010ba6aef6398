//! The `certsmith` binary: the controller and its companion commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
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
    Crds {
        /// Print the Helm chart's template instead (charts/certsmith/templates/crds.yaml):
        /// the same CRDs behind `crds.enabled`, with the `crds.keep` resource policy.
        #[arg(long)]
        helm: bool,
    },
    #[command(flatten)]
    Companion(Companion),
    /// Convert cert-manager Certificates, Issuers and ClusterIssuers (and aws-privateca-issuer
    /// issuers) to certsmith manifests on stdout; what cannot be carried over goes to stderr.
    Convert {
        /// A manifest file, a directory (searched recursively for .yaml, .yml and .json), or -
        /// for standard input. Repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Exit with status 1 when anything was reported.
        #[arg(long)]
        strict: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Identity policies: would the cluster's issuers sign these Certificates?
    Policy {
        #[command(subcommand)]
        what: PolicyCommand,
    },
}

/// The companion commands that print a text for the user (the controller, `crds` and
/// `policy` have their own output and exit status).
#[derive(Subcommand)]
enum Companion {
    /// Certificates at a glance (-n NS, -A for all namespaces), or one in depth (NAME).
    Status {
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Re-issue a Certificate (NAME) or many (--all, with -n/-A and -l) with a new key.
    Renew {
        name: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Re-issue a Certificate with a new key now and revoke the certificate it replaced at the
    /// issuer; exits 0 once the issuer recorded the revocation.
    Revoke {
        name: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// keyCompromise, caCompromise, affiliationChanged, superseded, cessationOfOperation,
        /// privilegeWithdrawn or unspecified.
        #[arg(long, default_value = "unspecified", value_parser = parse_reason)]
        reason: certsmith::api::RevocationReason,
        /// Give up waiting after this long (the operator keeps trying).
        #[arg(long, default_value = "5m", value_parser = certsmith::api::duration::parse)]
        timeout: std::time::Duration,
    },
    /// Emergency rotation: re-issue every Certificate of an issuer with new keys at a bounded
    /// rate (optionally revoking what they replace), with a live progress bar; exits 0 once
    /// every one is done, non-zero when the rest are failing.
    Rotate {
        /// The Issuer (with -n) or ClusterIssuer (with --kind ClusterIssuer).
        #[arg(long)]
        issuer: String,
        #[arg(short = 'n', long, conflicts_with = "kind")]
        namespace: Option<String>,
        /// Issuer (default) or ClusterIssuer.
        #[arg(long)]
        kind: Option<String>,
        /// Revoke every certificate the rotation supersedes.
        #[arg(long)]
        revoke: bool,
        /// Certificates per second, e.g. 10 or 10/s (1 to 1000; default 10).
        #[arg(long, default_value = "10", value_parser = parse_rate)]
        rate: u32,
        /// The revocation reason with --revoke.
        #[arg(long, default_value = "superseded", value_parser = parse_reason)]
        reason: certsmith::api::RevocationReason,
        /// Give up waiting after this long (the rotation goes on).
        #[arg(long, default_value = "1h", value_parser = certsmith::api::duration::parse)]
        timeout: std::time::Duration,
    },
    /// Look inside a TLS Secret: names, validity, key, chain, and whether they hold together.
    Inspect {
        #[command(subcommand)]
        what: InspectCommand,
    },
    /// Checks for scripts, CI and GitOps waits.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Exit 0 once the certsmith API is served and the operator answers; otherwise exit 1
    /// with the reason after --wait.
    Api(certsmith::cli::check::ApiArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Evaluate Certificate manifests against the policies of the issuers they name, in the
    /// cluster (read-only). Exit status: 0 all allowed, 1 a Certificate is denied, 2 one could
    /// not be checked (issuer or namespace missing, invalid manifest).
    Check {
        /// A manifest file, a directory of them, or - for stdin (repeat for more).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<std::path::PathBuf>,
        /// Read directories recursively.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Namespace of manifests that name none (default: the kubeconfig's).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// The operator's cluster-resource namespace: a ClusterIssuer without a policy signs
        /// CA certificates only there.
        #[arg(
            long,
            env = "CERTSMITH_CLUSTER_RESOURCE_NAMESPACE",
            default_value = "certsmith"
        )]
        cluster_resource_namespace: String,
    },
}

#[derive(Subcommand)]
enum InspectCommand {
    /// A kubernetes.io/tls Secret.
    Secret {
        name: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
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
    /// Run the TrustBundle controller (`--trust-bundles=false` to leave TrustBundles alone).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    trust_bundles: bool,
    /// Serve only TrustBundles matching this label selector (default: all).
    #[arg(long)]
    trust_bundle_selector: Option<String>,
    /// Sign PodCertificateRequests for the signers `clusterissuers.certsmith.dev/<name>` and
    /// publish their ClusterTrustBundles, where the API server serves them
    /// (`--pod-certificates=false` to leave them alone).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pod_certificates: bool,
    /// AWS Private CA IssueCertificate requests per second per CA (GetCertificate and
    /// DescribeCertificateAuthority: three times that). Below AWS's default quota, so a
    /// fleet's renewals queue here instead of being throttled.
    #[arg(long, default_value = "20")]
    aws_pca_issue_rate: std::num::NonZeroU32,
    /// Let namespaced Issuers use the operator's own AWS identity (IRSA, Pod Identity,
    /// environment) when they name no credentials. Off: any namespace's Issuer could
    /// otherwise sign with whatever CA and role the operator can reach. ClusterIssuers always may.
    #[arg(long)]
    issuer_ambient_credentials: bool,
    /// Vault servers namespaced Issuers may use: URL prefixes (scheme, host, port, optional
    /// path; repeat the flag or separate with commas). Default: any, so any namespace's Issuer
    /// can make the operator send requests to whatever address it can reach.
    /// ClusterIssuers may use any server.
    #[arg(long, value_delimiter = ',')]
    issuer_vault_servers: Vec<certsmith::issuer::vault::ServerPrefix>,
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
    /// Serve the CA issuers' CRLs read-only on this address (`/crl/clusterissuer/<name>.crl`,
    /// `/crl/issuer/<namespace>/<name>.crl`, and `.pem`), e.g. 0.0.0.0:9403. Default: off.
    #[arg(long)]
    crl_addr: Option<SocketAddr>,
    /// Run the controllers only while holding a Lease, so several replicas can run.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the Lease (default: the cluster-resource namespace).
    #[arg(long)]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "certsmith-controller")]
    leader_election_lease_name: String,
    /// A leader that has not renewed for this long is replaced (renewals every third of it).
    #[arg(long, default_value = "15s", value_parser = certsmith::api::duration::parse)]
    leader_election_lease_duration: std::time::Duration,
    /// A leader that has not renewed for this long (a stalled connection, a frozen process,
    /// another holder) stops writing and exits, before any standby may take over. Longer than
    /// a third of the lease duration, shorter than the lease duration. Default: two thirds of it.
    #[arg(long, value_parser = certsmith::api::duration::parse)]
    leader_election_renew_deadline: Option<std::time::Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { helm } => {
            let rendered = if helm {
                certsmith::crds::render_helm_template()
            } else {
                certsmith::crds::render()
            };
            print!("{}", rendered.context("rendering CRDs")?);
            Ok(())
        }
        Command::Controller(args) => controller(args).await,
        Command::Convert { files, strict } => std::process::exit(convert(&files, strict)),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "certsmith",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Policy { what } => policy(what).await,
        Command::Companion(command) => match cli(command).await {
            Ok(text) => {
                print!("{text}");
                Ok(())
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
    }
}

/// `certsmith policy ...`: its exit status says allowed, denied or not checked.
async fn policy(what: PolicyCommand) -> anyhow::Result<()> {
    use certsmith::cli::policy::{CheckArgs, EXIT_UNCHECKED, check};
    let PolicyCommand::Check {
        files,
        recursive,
        namespace,
        cluster_resource_namespace,
    } = what;
    let outcome = async {
        let client = certsmith::cli::client().await?;
        let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
        let args = CheckArgs {
            files,
            recursive,
            namespace,
            cluster_resource_namespace,
        };
        check(client, args).await
    };
    match outcome.await {
        Ok(report) => {
            print!("{}", report.text);
            std::process::exit(report.exit_code);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(EXIT_UNCHECKED);
        }
    }
}

/// The companion commands; every failure is one sentence for the user.
async fn cli(command: Companion) -> Result<String, certsmith::cli::CliError> {
    use certsmith::cli::{CliError, client, inspect, renew, status};
    let client = client().await?;
    let default_ns = client.default_namespace().to_string();
    match command {
        Companion::Status {
            name: Some(name),
            namespace,
            ..
        } => status::one(client, namespace.as_deref().unwrap_or(&default_ns), &name).await,
        Companion::Status {
            name: None,
            namespace,
            all_namespaces,
        } => {
            let scope = if all_namespaces {
                None
            } else {
                Some(namespace.unwrap_or(default_ns))
            };
            status::fleet(client, scope.as_deref()).await
        }
        Companion::Renew {
            name,
            all,
            namespace,
            all_namespaces,
            selector,
        } => {
            let target = match (name, all) {
                (Some(name), false) => renew::Target::One {
                    namespace: namespace.unwrap_or(default_ns),
                    name,
                },
                (None, true) => renew::Target::All {
                    namespace: if all_namespaces {
                        None
                    } else {
                        Some(namespace.unwrap_or(default_ns))
                    },
                    selector,
                },
                _ => return Err(CliError("name one Certificate or pass --all".into())),
            };
            renew::renew(client, target).await
        }
        Companion::Revoke {
            name,
            namespace,
            reason,
            timeout,
        } => {
            let namespace = namespace.unwrap_or(default_ns);
            certsmith::cli::revoke::revoke(client, &namespace, &name, reason, timeout).await
        }
        Companion::Rotate {
            issuer,
            namespace,
            kind,
            revoke,
            rate,
            reason,
            timeout,
        } => {
            let namespace = match kind.as_deref() {
                None | Some("Issuer") => Some(namespace.unwrap_or(default_ns)),
                Some("ClusterIssuer") => None,
                Some(other) => {
                    return Err(CliError(format!(
                        "--kind {other:?}: Issuer or ClusterIssuer"
                    )));
                }
            };
            let rotation = certsmith::cli::rotate::Rotation {
                issuer,
                namespace,
                revoke,
                rate,
                reason,
                timeout,
            };
            certsmith::cli::rotate::rotate(client, rotation).await
        }
        Companion::Inspect {
            what: InspectCommand::Secret { name, namespace },
        } => inspect::secret(client, namespace.as_deref().unwrap_or(&default_ns), &name).await,
        Companion::Check {
            what: CheckCommand::Api(args),
        } => certsmith::cli::check::api(client, args).await,
    }
}

/// `certsmith convert`: objects to stdout, findings and a summary to stderr. Exit status 0,
/// 1 with --strict when anything was reported, 2 when the input cannot be read.
fn convert(files: &[String], strict: bool) -> i32 {
    use certsmith::cli::convert;
    let documents = match convert::read_inputs(files) {
        Ok(documents) => documents,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let conversion = convert::convert(documents);
    match convert::render(&conversion) {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    }
    eprint!("{}", convert::report(&conversion));
    i32::from(strict && !conversion.findings.is_empty())
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
        trust_bundles: args.trust_bundles,
        trust_bundle_selector: args.trust_bundle_selector,
        pod_certificates: args.pod_certificates,
        backends: certsmith::issuer::BackendSettings {
            aws_pca_issue_rate: args.aws_pca_issue_rate,
            issuer_ambient_credentials: args.issuer_ambient_credentials,
            issuer_vault_servers: args.issuer_vault_servers,
        },
    };
    let config = kube::Config::infer()
        .await
        .context("loading Kubernetes client configuration (kubeconfig or in-cluster)")?;
    // Leader election has a client of its own: the renewals never queue behind the
    // controllers' requests (nor behind --api-qps).
    let lease_client =
        kube::Client::try_from(config.clone()).context("building the Kubernetes client")?;
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
    // Every replica serves CRLs (read-only), the leader and standbys alike.
    let crl_client = client.clone();
    let crl_namespace = settings.cluster_resource_namespace.clone();
    let crls = async move {
        match args.crl_addr {
            Some(addr) => certsmith::crl_http::serve(addr, crl_client, crl_namespace)
                .await
                .with_context(|| format!("serving CRLs on {addr}")),
            None => std::future::pending().await,
        }
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        run::shutdown_signal().await;
        tracing::info!("termination signal received, finishing in-flight work");
        on_signal.cancel();
    });
    let election = args.leader_elect.then(|| certsmith::leader::Config {
        namespace: args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| settings.cluster_resource_namespace.clone()),
        name: args.leader_election_lease_name.clone(),
        identity: identity(),
        lease_duration: args.leader_election_lease_duration,
        renew_deadline: args.leader_election_renew_deadline.unwrap_or_else(|| {
            certsmith::leader::default_renew_deadline(args.leader_election_lease_duration)
        }),
        renew_every: args.leader_election_lease_duration / 3,
    });
    if let Some(election) = &election {
        election.validate().context(
            "invalid --leader-election-lease-duration or --leader-election-renew-deadline",
        )?;
    }
    let work = async {
        let Some(election) = election else {
            let always = certsmith::leader::Guard::unelected();
            run::run(client, settings, metrics, ready, shutdown, always).await;
            return Ok(());
        };
        // A standby is healthy and ready; a leader is ready once its caches are synced.
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        let Some(leadership) =
            certsmith::leader::acquire(lease_client, election, shutdown.clone()).await
        else {
            return Ok(());
        };
        ready.store(false, std::sync::atomic::Ordering::SeqCst);
        // A lost lease ends the process at once, not with a graceful drain that would keep
        // writing after a standby may have taken over.
        leadership.exit_when_lost();
        let guard = leadership.guard();
        run::run(
            client,
            settings,
            metrics,
            ready,
            leadership.token.clone(),
            guard,
        )
        .await;
        leadership.release().await;
        if shutdown.is_cancelled() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "the controllers stopped without a termination signal"
            ))
        }
    };
    tokio::select! {
        res = health => res.with_context(|| format!("serving health and metrics on {}", args.metrics_addr))?,
        res = work => res?,
        res = crls => res?,
    }
    Ok(())
}

/// `--rate`: 10 or 10/s.
fn parse_rate(text: &str) -> Result<u32, String> {
    certsmith::controller::emergency_rotation::plan::parse_rate(text)
        .ok_or_else(|| "a number of certificates per second from 1 to 1000, e.g. 10/s".into())
}

/// A revocation reason as `--reason` spells it.
fn parse_reason(text: &str) -> Result<certsmith::api::RevocationReason, String> {
    certsmith::api::RevocationReason::parse(text).ok_or_else(|| {
        let all: Vec<&str> = certsmith::api::RevocationReason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        format!("one of {}", all.join(", "))
    })
}

/// This replica's name in the Lease: the pod name, else host and process id.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}
