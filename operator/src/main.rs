//! `kamera-operator`: `run` the controllers, print the `crd`s, or `render` a Camera offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use kamera_operator::context::{Settings, WorkerDefaults};
use kamera_operator::controller;
use kamera_operator::crd::{crd_file_name, crd_yaml, crds, Camera, FrameProcessor};
use kamera_operator::leader::{Candidate, Leadership, Timings};
use kamera_operator::metrics::{self, Metrics};
use kamera_operator::render;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Kamera's Kubernetes operator.
#[derive(Debug, Parser)]
#[command(name = "kamera-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD into --dir).
    Crd {
        /// Write `<crd-name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the objects the operator would apply for a Camera manifest, without a cluster.
    Render {
        /// The Camera manifest.
        #[arg(long)]
        camera: PathBuf,
        /// FrameProcessor manifests to resolve against the Camera; repeatable.
        #[arg(long = "processors")]
        processors: Vec<PathBuf>,
        /// Worker image for a Camera that names none.
        #[arg(long, env = "KAMERA_WORKER_IMAGE", default_value = DEFAULT_WORKER_IMAGE)]
        worker_image: String,
    },
    /// Run the controllers.
    Run(Box<RunArgs>),
}

const DEFAULT_WORKER_IMAGE: &str = concat!(
    "ghcr.io/kamera-dev/kamera-worker:",
    env!("CARGO_PKG_VERSION")
);

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "KAMERA_NAMESPACE")]
    namespace: Option<String>,
    /// Worker image for Cameras that name none.
    #[arg(long, env = "KAMERA_WORKER_IMAGE", default_value = DEFAULT_WORKER_IMAGE)]
    worker_image: String,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "KAMERA_METRICS_LISTEN", default_value = "0.0.0.0:8081")]
    metrics_listen: SocketAddr,
    /// Run without leader election (a single replica only).
    #[arg(long, env = "KAMERA_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "KAMERA_LEASE_NAME", default_value = "kamera-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace from POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the election and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// At most this many camera pods restart at once when the operator, its default worker
    /// image or a FrameProcessor changes (a change to a Camera's own spec is not throttled).
    #[arg(long, env = "KAMERA_MAX_CONCURRENT_RESTARTS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_restarts: u16,
    /// Worker pod defaults as one JSON object: `resources`, `imagePullSecrets`,
    /// `priorityClassName` (the chart sets it from `worker.*`).
    #[arg(long, env = "KAMERA_WORKER_DEFAULTS", default_value = "{}", value_parser = parse_worker_defaults)]
    worker_defaults: WorkerDefaults,
    /// How long followers wait, after the Lease last changed, before taking it over.
    #[arg(long, env = "KAMERA_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// The leader stops (and exits) when it could not renew the Lease for this long; shorter
    /// than --lease-duration.
    #[arg(long, env = "KAMERA_RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    renew_deadline: Duration,
    /// How often the Lease is renewed or campaigned for, and the timeout of each call; shorter
    /// than --renew-deadline.
    #[arg(long, env = "KAMERA_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    retry_period: Duration,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "KAMERA_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { dir } => print_crds(dir),
        Command::Render {
            camera,
            processors,
            worker_image,
        } => render_camera(&camera, &processors, &worker_image),
        Command::Run(args) => run(*args).await,
    }
}

fn print_crds(dir: Option<PathBuf>) -> anyhow::Result<()> {
    match dir {
        None => print!("{}", kamera_operator::crd::all_crds_yaml()?),
        Some(dir) => {
            for crd in crds() {
                let path = dir.join(crd_file_name(&crd));
                std::fs::write(&path, crd_yaml(&crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn render_camera(
    camera: &PathBuf,
    processors: &[PathBuf],
    worker_image: &str,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(camera).with_context(|| format!("reading {}", camera.display()))?;
    let cameras: Vec<Camera> = render::parse_manifests(&camera.display().to_string(), &text)?;
    let [camera] = cameras.as_slice() else {
        bail!("{} must hold exactly one Camera", camera.display());
    };
    let mut all = Vec::new();
    for path in processors {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        all.extend(render::parse_manifests::<FrameProcessor>(
            &path.display().to_string(),
            &text,
        )?);
    }
    print!("{}", render::render(camera, &all, worker_image)?);
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .init();
    let timings = Timings::new(args.lease_duration, args.renew_deadline, args.retry_period)
        .context("leader election timings")?;
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("kamera-operator-{}", std::process::id()));
    let shutdown = CancellationToken::new();
    let metrics = Metrics::new().context("registering metrics")?;

    let server = tokio::spawn(metrics::serve(
        args.metrics_listen,
        metrics.clone(),
        shutdown.clone(),
    ));
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));

    let leadership = if args.no_leader_election {
        None
    } else {
        match elect(&client, &args, timings, &identity, &shutdown).await {
            Some(leadership) => Some(leadership),
            None => return Ok(()),
        }
    };
    let settings = Settings {
        worker_image: args.worker_image,
        worker_defaults: args.worker_defaults,
        max_concurrent_restarts: usize::from(args.max_concurrent_restarts),
    };
    let controllers = controller::run(
        client,
        args.namespace,
        settings,
        kamera_operator::observe::WorkerProbe::standard()
            .context("setting up the status reads of workers")?,
        metrics,
        &identity,
        shutdown.clone(),
    );
    reconcile_while_leading(controllers, leadership).await?;
    shutdown.cancel();
    signals.abort();
    server
        .await
        .context("metrics server task")?
        .context("metrics server")?;
    Ok(())
}

fn parse_worker_defaults(text: &str) -> Result<WorkerDefaults, String> {
    serde_json::from_str(text).map_err(|e| format!("not a worker defaults JSON object: {e}"))
}

/// Campaigns for the Lease until this replica leads; `None` when shut down first.
async fn elect(
    client: &Client,
    args: &RunArgs,
    timings: Timings,
    identity: &str,
    shutdown: &CancellationToken,
) -> Option<Leadership> {
    let namespace = args.lease_namespace.as_deref().unwrap_or("default");
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    info!(lease = %args.lease_name, %namespace, %identity, "waiting for leadership");
    let candidate = Candidate::new(leases, &args.lease_name, identity, timings);
    candidate.acquire(shutdown).await
}

/// Runs the controllers to their graceful end, then hands the lease back. Should leadership be
/// lost first, the controllers are dropped on the spot, cancelling every reconcile in flight (a
/// graceful drain could write more while another replica leads), and the process fails.
async fn reconcile_while_leading(
    controllers: impl std::future::Future<Output = ()>,
    leadership: Option<Leadership>,
) -> anyhow::Result<()> {
    let Some(mut leadership) = leadership else {
        controllers.await;
        return Ok(());
    };
    let lost = tokio::select! {
        () = controllers => None,
        lost = leadership.lost() => Some(lost),
    };
    match lost {
        None => {
            leadership.release().await;
            Ok(())
        }
        Some(lost) => {
            error!(reason = %lost, "lost leadership; exiting at once so that only one replica reconciles");
            bail!("lost leadership: {lost}")
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutting down");
    shutdown.cancel();
}
