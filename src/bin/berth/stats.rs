//! `berth stats` (docker stats' columns, read from the cgroups; no berthd needed) and
//! `berth events` (the run root's event log, then followed).

use anyhow::{bail, Context, Result};
use berth::container::events::{self, Event};
use berth::container::Runtime;
use berth::options::GlobalOptions;
use berth_metrics::stats::{self, binary_size, decimal_size, Sample};
use berth_metrics::{host, CgroupPaths, CgroupStats, FileReader, MachineInfo};
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Print one reading and exit (also when stdout is not a terminal).
    #[arg(long)]
    no_stream: bool,
    /// `table` (docker's columns) or `json` (one object a line, docker's keys).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Containers (name or id); default every running one.
    containers: Vec<String>,
}

struct Target {
    id: String,
    name: String,
    paths: CgroupPaths,
    pid: Option<i32>,
}

fn targets(rt: &Runtime, queries: &[String]) -> Result<Vec<Target>> {
    let infos = if queries.is_empty() {
        rt.list(false)?
    } else {
        let mut v = Vec::new();
        for q in queries {
            let rec = rt.resolve(q)?;
            v.push(rt.info(rec)?);
        }
        v
    };
    let mut out = Vec::new();
    for i in infos {
        let Some(st) = i
            .state
            .filter(|_| i.status == berth::container::Status::Running)
        else {
            if !queries.is_empty() {
                bail!("container {} is not running", i.record.name);
            }
            continue;
        };
        let parent = st
            .cgroup_parent
            .clone()
            .unwrap_or_else(|| berth::options::DEFAULT_CGROUP_PARENT.to_string());
        let rel = format!("/{}/{}", parent.trim_matches('/'), i.record.id).replace("//", "/");
        let paths = CgroupPaths::detect(&rel)
            .with_context(|| format!("finding the cgroup of {}", i.record.name))?;
        out.push(Target {
            id: i.record.id.clone(),
            name: i.record.name.clone(),
            paths,
            pid: (st.pid > 0).then_some(st.pid),
        });
    }
    Ok(out)
}

struct Reader {
    r: FileReader,
    proc_root: &'static Path,
    clk: u64,
    machine: MachineInfo,
    scratch: CgroupStats,
    ifaces: Vec<berth_metrics::Interface>,
}

impl Reader {
    fn new() -> Reader {
        let mut r = FileReader::new();
        let machine = MachineInfo::read(&mut r, Path::new("/sys"), Path::new("/proc"));
        Reader {
            r,
            proc_root: Path::new("/proc"),
            clk: host::clk_tck(),
            machine,
            scratch: CgroupStats::default(),
            ifaces: Vec::new(),
        }
    }
    fn sample(&mut self, t: &Target) -> Option<Sample> {
        stats::sample(
            &mut self.r,
            &t.paths,
            t.pid,
            self.proc_root,
            self.clk,
            self.machine.cpu_cores,
            self.machine.memory_bytes,
            &mut self.scratch,
            &mut self.ifaces,
        )
    }
}

fn line(t: &Target, row: &stats::Row, had_prev: bool, format: Format) -> String {
    let cpu = match row.cpu_percent {
        Some(c) => format!("{c:.2}%"),
        None if had_prev => "0.00%".to_string(),
        None => "--".to_string(),
    };
    let mem = format!(
        "{} / {}",
        binary_size(row.mem_used),
        binary_size(row.mem_limit)
    );
    let net = format!(
        "{} / {}",
        decimal_size(row.net_rx),
        decimal_size(row.net_tx)
    );
    let blk = format!(
        "{} / {}",
        decimal_size(row.blk_read),
        decimal_size(row.blk_write)
    );
    let memp = format!("{:.2}%", row.mem_percent);
    match format {
        Format::Json => serde_json::json!({
            "BlockIO": blk,
            "CPUPerc": cpu,
            "Container": t.name,
            "ID": &t.id[..12],
            "MemPerc": memp,
            "MemUsage": mem,
            "Name": t.name,
            "NetIO": net,
            "PIDs": row.pids.to_string(),
        })
        .to_string(),
        Format::Table => format!(
            "{:<15} {:<20} {:<9} {:<22} {:<9} {:<20} {:<20} {}",
            &t.id[..12],
            t.name,
            cpu,
            mem,
            memp,
            net,
            blk,
            row.pids
        ),
    }
}

const HEADER: &str = "CONTAINER ID    NAME                 CPU %     MEM USAGE / LIMIT      MEM %     NET I/O              BLOCK I/O            PIDS";

pub fn stats(g: &GlobalOptions, a: &StatsArgs) -> Result<i32> {
    let rt = Runtime::from_options(g)?;
    let stream = !a.no_stream && io::stdout().is_terminal();
    let mut reader = Reader::new();
    let mut prev: HashMap<String, Sample> = HashMap::new();
    // A first reading, so that the first CPU % has a delta (docker waits for one too).
    for t in targets(&rt, &a.containers)? {
        if let Some(s) = reader.sample(&t) {
            prev.insert(t.id.clone(), s);
        }
    }
    let mut out = io::stdout().lock();
    loop {
        std::thread::sleep(Duration::from_millis(if stream { 1000 } else { 500 }));
        let list = targets(&rt, &a.containers)?;
        let mut lines = Vec::new();
        let mut next = HashMap::new();
        for t in &list {
            let Some(s) = reader.sample(t) else { continue };
            let row = stats::row(prev.get(&t.id), &s);
            lines.push(line(t, &row, prev.contains_key(&t.id), a.format));
            next.insert(t.id.clone(), s);
        }
        prev = next;
        if stream {
            // docker's redraw: clear the screen, home the cursor
            write!(out, "\x1b[2J\x1b[H")?;
        }
        if a.format == Format::Table {
            writeln!(out, "{HEADER}")?;
        }
        for l in lines {
            writeln!(out, "{l}")?;
        }
        out.flush()?;
        if !stream {
            return Ok(0);
        }
    }
}

#[derive(Args)]
pub struct EventsArgs {
    /// `table` (docker's plain lines) or `json` (one object a line).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Only events at or after this time: RFC 3339, Unix seconds, or a duration ago (10m, 1h).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Stop at this time (same forms) instead of following.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

/// A time in ns since the epoch.
fn parse_time(s: &str) -> Result<i64> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let (num, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid time {s:?}: use RFC 3339, Unix seconds or 10m/2h"))?;
    let mult = match unit {
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => bail!("invalid time {s:?}: use RFC 3339, Unix seconds or 10m/2h"),
    };
    Ok(now - (n * mult) as i64)
}

pub fn events(g: &GlobalOptions, a: &EventsArgs) -> Result<i32> {
    let since = a.since.as_deref().map(parse_time).transpose()?;
    let until = a.until.as_deref().map(parse_time).transpose()?;
    let paths = berth::container::state::Paths::new(&g.root, &g.run_root);
    // As docker: past events only when a time bounds them, else what happens from now on.
    let mut follower = if since.is_none() && until.is_none() {
        events::Follower::from_now(&paths)
    } else {
        events::Follower::new(&paths)
    };
    let mut out = io::stdout().lock();
    loop {
        let mut written = Ok(());
        follower.poll(|line| {
            let Ok(ev) = serde_json::from_str::<Event>(line) else {
                return;
            };
            let shown =
                since.is_none_or(|s| ev.time_nano >= s) && until.is_none_or(|u| ev.time_nano <= u);
            if shown && written.is_ok() {
                written = match a.format {
                    Format::Json => writeln!(out, "{line}"),
                    Format::Table => writeln!(out, "{}", ev.plain()),
                };
            }
        })?;
        written?;
        out.flush()?;
        if until.is_some() {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
