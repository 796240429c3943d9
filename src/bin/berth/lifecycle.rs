//! `berth logs`, `stop`, `kill`, `wait`: argument parsing and output.
//!
//! Exit codes follow docker: 0 when every container was handled, 1 when one failed (the
//! error is printed and the others are still handled).

use anyhow::Result;
use berth::container::control::parse_signal;
use berth::container::logs::{LogEntry, LogReader};
use berth::container::{Runtime, Status};
use berth::options::GlobalOptions;
use clap::Args;
use std::io::{self, Write};
use std::time::Duration;

#[derive(Args)]
pub struct LogsArgs {
    /// Follow the output until the container exits.
    #[arg(short, long)]
    follow: bool,
    /// Show only the last N lines ("all" for every line).
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    tail: String,
    /// Prefix every line with its timestamp (RFC 3339, nanoseconds).
    #[arg(short, long)]
    timestamps: bool,
    /// The container (id, unique id prefix, or name).
    container: String,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait for the stop signal to work before killing the container.
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    time: Option<u32>,
    /// Containers (ids, unique id prefixes, or names).
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send (name like TERM/SIGTERM, or number).
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers (ids, unique id prefixes, or names).
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct WaitArgs {
    /// Containers (ids, unique id prefixes, or names).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn logs(g: &GlobalOptions, a: &LogsArgs) -> Result<i32> {
    let tail: Option<usize> = match a.tail.as_str() {
        "all" => None,
        n => match n.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!("berth: invalid --tail {n:?}: give a number of lines or \"all\"");
                return Ok(1);
            }
        },
    };
    let runtime = Runtime::from_options(g)?;
    let record = match runtime.resolve(&a.container) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: {e}");
            return Ok(1);
        }
    };
    let mut reader = LogReader::open(&runtime.paths().log(&record.id))?;
    let mut entries = reader.read_new()?;
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    print_entries(&entries, a.timestamps)?;
    if !a.follow {
        return Ok(0);
    }
    loop {
        let running = runtime
            .info(record.clone())
            .map(|i| i.status == Status::Running)
            .unwrap_or(false);
        // Read after checking: what the container wrote before it stopped is not lost.
        print_entries(&reader.read_new()?, a.timestamps)?;
        if !running {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_entries(entries: &[LogEntry], timestamps: bool) -> Result<()> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    for e in entries {
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut err
        } else {
            &mut out
        };
        if timestamps {
            write!(w, "{} ", e.time)?;
        }
        w.write_all(e.log.as_bytes())?;
    }
    out.flush()?;
    err.flush()?;
    Ok(())
}

pub fn stop(g: &GlobalOptions, a: &StopArgs) -> Result<i32> {
    let runtime = Runtime::from_options(g)?;
    each(&a.containers, |c| runtime.stop(c, a.time).map(|_| ()))
}

pub fn kill(g: &GlobalOptions, a: &KillArgs) -> Result<i32> {
    let signal = match parse_signal(&a.signal) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: {e}");
            return Ok(1);
        }
    };
    let runtime = Runtime::from_options(g)?;
    each(&a.containers, |c| runtime.kill(c, signal).map(|_| ()))
}

pub fn wait(g: &GlobalOptions, a: &WaitArgs) -> Result<i32> {
    let runtime = Runtime::from_options(g)?;
    let mut code = 0;
    for c in &a.containers {
        match runtime.wait(c) {
            Ok(exit) => writeln!(io::stdout(), "{exit}")?,
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Runs `f` for every container, printing each name on success and each error on failure.
fn each(containers: &[String], f: impl Fn(&str) -> berth::container::Result<()>) -> Result<i32> {
    let mut code = 0;
    for c in containers {
        match f(c) {
            Ok(()) => writeln!(io::stdout(), "{c}")?,
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
