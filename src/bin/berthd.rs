//! berthd: the node agent (networks, IPAM, firewall, names) behind an HTTP/1.1 + JSON API on
//! a Unix socket. See docs/api.md.

use anyhow::{Context, Result};
use berth::agent::config::{Config, DEFAULT_CONFIG};
use berth::agent::metrics::{self, Metrics};
use berth::agent::{server, Agent, AgentOptions};
use berth::container::state::Paths;
use berth::options::GlobalOptions;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::{reload, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

/// The berth node agent: bridge networks, IP addresses, published ports and container names.
#[derive(Debug, Parser)]
#[command(name = "berthd", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,

    /// Configuration file (TOML); a missing file at the default path means all defaults.
    #[arg(long, env = "BERTHD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// API socket [default: the config's `socket`, else <run-root>/berthd.sock].
    #[arg(long, env = "BERTH_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Address of the Prometheus endpoint (`/metrics`, `/healthz`) [default: the config's
    /// `metrics_addr`, else 127.0.0.1:9480]; `0.0.0.0:PORT` serves every interface; empty: off.
    #[arg(long, env = "BERTHD_METRICS_ADDR", value_name = "ADDR:PORT")]
    metrics_addr: Option<String>,

    /// Log format [default: the config's `log_format`, else plain].
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

type SetLevel = Arc<dyn Fn(&str) + Send + Sync>;

fn init_logging(level: &str, json: bool) -> SetLevel {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let reg = tracing_subscriber::registry().with(layer);
    if json {
        let _ = reg
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init();
    } else {
        let _ = reg
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init();
    }
    Arc::new(move |lvl: &str| match EnvFilter::try_new(lvl) {
        Ok(f) => {
            if let Err(e) = handle.reload(f) {
                tracing::warn!(error = %e, "cannot change the log level");
            }
        }
        Err(e) => tracing::warn!(level = lvl, error = %e, "invalid log level; keeping the old one"),
    })
}

fn main() {
    let matches = Cli::command().get_matches();
    let level_from_flags = matches.value_source("log_level") != Some(ValueSource::DefaultValue);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let (config_path, required) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let config = match Config::load(&config_path, required) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e}");
            std::process::exit(2);
        }
    };
    let json = match cli.log_format {
        Some(f) => f == LogFormat::Json,
        None => config.log_format == "json",
    };
    let level = if level_from_flags {
        cli.global.log_level.clone()
    } else {
        config.log_level.clone()
    };
    let set_level = init_logging(&level, json);
    let set_level: SetLevel = if level_from_flags {
        // the flag or BERTH_LOG_LEVEL wins over the file, on reload too
        Arc::new(|_: &str| {})
    } else {
        set_level
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berthd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli, config_path, config, set_level)) {
        tracing::error!("{e:#}");
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli, config_path: PathBuf, config: Config, set_level: SetLevel) -> Result<()> {
    let socket = cli
        .socket
        .clone()
        .or_else(|| config.socket.clone())
        .unwrap_or_else(|| berth::api::default_socket(&cli.global.run_root));
    let interval = config.reconcile_interval_secs;
    let metrics_addr = cli
        .metrics_addr
        .clone()
        .unwrap_or_else(|| config.metrics_addr.clone());
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let agent = Agent::start(AgentOptions {
        root: cli.global.root.clone(),
        run_root: cli.global.run_root.clone(),
        config_path,
        config,
    })
    .await
    .context("starting berthd")?;
    let listener =
        server::bind(&socket).with_context(|| format!("cannot listen on {}", socket.display()))?;
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "listening");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(agent.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    let metrics = Arc::new(Metrics::new(Paths::new(
        &cli.global.root,
        &cli.global.run_root,
    )));
    let (mstop_tx, mstop_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics_serving = if metrics_addr.is_empty() {
        None
    } else {
        let addr: std::net::SocketAddr = metrics_addr
            .parse()
            .with_context(|| format!("--metrics-addr {metrics_addr:?}: use ADDRESS:PORT"))?;
        // The default address taken by something else is not worth refusing to start for
        // (several berthds on one host, e.g. tests); an address asked for is.
        let asked = cli.metrics_addr.is_some() || metrics_addr != metrics::DEFAULT_ADDR;
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "serving /metrics and /healthz");
                Some(tokio::spawn(metrics::serve(
                    agent.clone(),
                    metrics.clone(),
                    l,
                    async move {
                        let _ = mstop_rx.await;
                    },
                )))
            }
            Err(e) if !asked => {
                tracing::error!(%addr, error = %e, "cannot serve /metrics; set metrics_addr or --metrics-addr");
                None
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot listen on {addr} for /metrics"))
            }
        }
    };
    let (wa, wm) = (agent.clone(), metrics.clone());
    let watching = tokio::spawn(async move {
        loop {
            let (secs, enforce) = wa.watch_settings();
            if secs == 0 {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            let m = wm.clone();
            let _ = tokio::task::spawn_blocking(move || m.watch(enforce)).await;
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
        }
    });
    let bg = agent.clone();
    let periodic = tokio::spawn(async move {
        let mut secs = interval;
        loop {
            let wait = if secs == 0 { 3600 } else { secs };
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            secs = bg.reconcile_interval();
            if secs == 0 {
                continue;
            }
            if let Err(e) = bg.reconcile().await {
                tracing::warn!(error = %e, "periodic reconcile failed");
            }
        }
    });
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                if let Err(e) = agent.reload(set_level.as_ref()).await {
                    tracing::error!(error = %e, "reload failed; keeping the old configuration");
                }
            }
        }
    }
    periodic.abort();
    watching.abort();
    let _ = mstop_tx.send(());
    if let Some(m) = metrics_serving {
        let _ = m.await;
    }
    let _ = stop_tx.send(());
    let _ = serving.await;
    agent.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped; endpoints stay in place");
    Ok(())
}
