//! `berth`: the daemonless runtime CLI, with docker's grammar.
//!
//! This file only parses arguments and dispatches; the work happens in the `berth` library.
//! Exit codes: 0 success, 1 a command failed (as docker's image commands do), 2 bad usage.

mod containers;
mod exec;
mod images;
mod lifecycle;
mod pull;
mod resources;
mod stats;

use berth::options::GlobalOptions;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A Linux container runtime",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

// Deferred: a subcommand's arguments are built only when it is the one invoked. Building all
// of them is ~0.3 ms and ~40 heap page faults of every `berth` process.
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// List images (`berth image ls`).
    Images(images::ListArgs),
    /// Remove images (`berth image rm`).
    Rmi(images::RemoveArgs),
    /// Give an image another name (`berth image tag`).
    Tag(images::TagArgs),
    /// Load images from an OCI layout or a `docker save` archive (`berth image load`).
    Load(images::LoadArgs),
    /// Create an image from a filesystem tarball (`berth image import`).
    Import(images::ImportArgs),
    /// Pull an image from a registry.
    Pull(pull::PullArgs),
    /// Log in to a registry.
    Login(pull::LoginArgs),
    /// Log out from a registry.
    Logout(pull::LogoutArgs),
    /// Create and run a container (in the foreground, or with -d in the background).
    Run(containers::RunArgs),
    /// Create a container (prints its id).
    Create(containers::CreateArgs),
    /// Start a created or exited container (in the background, or with -a in the foreground).
    Start(containers::StartArgs),
    /// Stop containers: the stop signal, then SIGKILL after a timeout.
    Stop(lifecycle::StopArgs),
    /// Send a signal to containers (default SIGKILL).
    Kill(lifecycle::KillArgs),
    /// Wait for containers to stop; print their exit codes.
    Wait(lifecycle::WaitArgs),
    /// Show a container's output.
    Logs(lifecycle::LogsArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// Show containers in detail, as JSON.
    Inspect(containers::InspectArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Show the processes of a running container.
    Top(exec::TopArgs),
    /// Change the resource limits of running containers.
    Update(resources::UpdateArgs),
    /// Show containers' resource usage (CPU, memory, network, block IO, pids), live.
    Stats(stats::StatsArgs),
    /// Show container lifecycle and OOM events, then follow new ones.
    Events(stats::EventsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.global.init_logging();
    let result = match &cli.command {
        Command::Image(cmd) => images::run(&cli.global, cmd),
        Command::Images(a) => images::list(&cli.global, a),
        Command::Rmi(a) => images::remove(&cli.global, a),
        Command::Tag(a) => images::tag(&cli.global, a),
        Command::Load(a) => images::load(&cli.global, a),
        Command::Import(a) => images::import(&cli.global, a),
        Command::Pull(a) => pull::run_pull(&cli.global, a),
        Command::Login(a) => pull::run_login(&cli.global, a),
        Command::Logout(a) => pull::run_logout(&cli.global, a),
        Command::Run(a) => containers::run(&cli.global, a),
        Command::Create(a) => containers::create(&cli.global, a),
        Command::Start(a) => containers::start(&cli.global, a),
        Command::Stop(a) => lifecycle::stop(&cli.global, a),
        Command::Kill(a) => lifecycle::kill(&cli.global, a),
        Command::Wait(a) => lifecycle::wait(&cli.global, a),
        Command::Logs(a) => lifecycle::logs(&cli.global, a),
        Command::Rm(a) => containers::remove(&cli.global, a),
        Command::Ps(a) => containers::ps(&cli.global, a),
        Command::Inspect(a) => containers::inspect(&cli.global, a),
        Command::Exec(a) => exec::exec(&cli.global, a),
        Command::Top(a) => exec::top(&cli.global, a),
        Command::Update(a) => resources::update(&cli.global, a),
        Command::Stats(a) => stats::stats(&cli.global, a),
        Command::Events(a) => stats::events(&cli.global, a),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("berth: {}", render(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message above it
/// already quotes (library errors often embed their source in their own message).
fn render(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}
