//! `berth pull`, `berth login` and `berth logout`.

use anyhow::{anyhow, bail, Context};
use berth::image::manifest::Platform;
use berth::image::reference::Reference;
use berth::image::registry::{
    self, ClientOptions, Credential, CredentialStore, InsecureRegistries, ProgressMode, PullOptions,
};
use berth::image::store::Store;
use berth::options::GlobalOptions;
use clap::Args;
use std::io::{self, BufRead, IsTerminal, Read, Write};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG|@DIGEST] (docker hub when NAME has no registry host).
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
    /// Platform to pull from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Registry that may be used over plain HTTP (repeatable; also $BERTH_INSECURE_REGISTRIES,
    /// comma-separated). localhost and 127.0.0.0/8 always may.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Print only the image name when done, no progress.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port] (default: docker hub).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// User name (asked for on a terminal when omitted).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry that may be used over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port] (default: docker hub).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
}

pub fn run_pull(g: &GlobalOptions, a: &PullArgs) -> anyhow::Result<i32> {
    let reference = Reference::parse(&a.name)?;
    let platform = a
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let insecure = InsecureRegistries::from_args_and_env(&a.insecure_registry)?;
    let store = Store::open(&g.root)?;
    let credentials = CredentialStore::new(&g.root);
    let opts = PullOptions {
        platform,
        client: ClientOptions {
            insecure,
            ..ClientOptions::default()
        },
        ..PullOptions::default()
    };
    let mode = if a.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    let observer = mode.observer();
    let pulled = registry::pull(&store, &credentials, &reference, &opts, &*observer)?;
    let shown = match (&reference.digest, &reference.tag) {
        (Some(d), _) => format!("{}@{d}", reference.familiar_name()),
        (None, Some(t)) => format!("{}:{t}", reference.familiar_name()),
        (None, None) => reference.familiar_name(),
    };
    if a.quiet {
        println!("{reference}");
    } else {
        println!("Digest: {}", pulled.digest);
        if pulled.up_to_date {
            println!("Status: Image is up to date for {shown}");
        } else {
            println!("Status: Downloaded newer image for {shown}");
        }
        println!("{reference}");
    }
    Ok(0)
}

pub fn run_login(g: &GlobalOptions, a: &LoginArgs) -> anyhow::Result<i32> {
    let registry = registry::normalize_registry(a.registry.as_deref().unwrap_or("docker.io"))?;
    let interactive = io::stdin().is_terminal();
    let username = match &a.username {
        Some(u) => u.clone(),
        None if interactive && !a.password_stdin => prompt("Username: ")?,
        None => bail!("no user name given: pass -u USER"),
    };
    if username.is_empty() {
        bail!("the user name is empty: pass -u USER");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if interactive {
        read_password("Password: ")?
    } else {
        bail!("no password given: pass --password-stdin (or -p PASSWORD)");
    };
    if password.is_empty() {
        bail!("the password is empty: pass it with --password-stdin");
    }
    let insecure = InsecureRegistries::from_args_and_env(&a.insecure_registry)?;
    let opts = ClientOptions {
        insecure,
        ..ClientOptions::default()
    };
    let store = CredentialStore::new(&g.root);
    registry::login(&store, &registry, Credential { username, password }, &opts)?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn run_logout(g: &GlobalOptions, a: &LogoutArgs) -> anyhow::Result<i32> {
    let registry = registry::normalize_registry(a.registry.as_deref().unwrap_or("docker.io"))?;
    let store = CredentialStore::new(&g.root);
    if registry::logout(&store, &registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}

fn prompt(text: &str) -> anyhow::Result<String> {
    eprint!("{text}");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a line from the terminal with echo off, restoring the terminal whatever happens.
fn read_password(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning off the terminal echo")?;
    let result = prompt(text);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    result
}
