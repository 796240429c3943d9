//! `berth image …`, `images`, `rmi`, `tag`, `load`, `import`: argument parsing and output.

use anyhow::{bail, Context, Result};
use berth::image::import;
use berth::image::load::{self, LoadOptions};
use berth::image::manifest::Platform;
use berth::image::reference::Reference;
use berth::image::store::{display_tag, ImageSummary, Removal, Store};
use berth::options::GlobalOptions;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

#[derive(Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Load images from an OCI layout (directory or tar) or a `docker save` archive.
    Load(LoadArgs),
    /// Create a one-layer image from a filesystem tarball.
    Import(ImportArgs),
    /// Show images in detail, as JSON.
    Inspect(InspectArgs),
    /// Remove images.
    Rm(RemoveArgs),
    /// Remove unused images and the layers only they used.
    Prune(PruneArgs),
    /// Give an image another name.
    Tag(TagArgs),
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Show full image ids.
    #[arg(long)]
    no_trunc: bool,
    /// Only images of this repository (`busybox`, `busybox:1.36`).
    reference: Option<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// The OCI layout directory, OCI layout tar or `docker save` tar to load.
    #[arg(short, long, value_name = "FILE|DIR")]
    input: PathBuf,
    /// Repository (and optionally tag) for images whose layout carries only a bare tag.
    #[arg(long)]
    name: Option<String>,
    /// Platform to take from multi-platform images (default: this host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Print only the loaded image ids.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Filesystem tarball (plain, gzip or zstd); `-` reads standard input.
    file: String,
    /// Name for the new image.
    reference: Option<String>,
    /// Dockerfile instruction for the image config: CMD, ENTRYPOINT, ENV, WORKDIR or USER.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct RemoveArgs {
    /// Remove even when several tags point at the image, or untag it while containers use it.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only untagged ones.
    #[arg(short, long)]
    all: bool,
    /// Accepted for docker compatibility: berth never prompts.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

fn open_store(g: &GlobalOptions) -> Result<Store> {
    Store::open(&g.root)
        .with_context(|| format!("cannot open the image store under {}", g.root.display()))
}

pub fn run(g: &GlobalOptions, cmd: &ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Ls(a) => list(g, a),
        ImageCommand::Load(a) => load(g, a),
        ImageCommand::Import(a) => import(g, a),
        ImageCommand::Inspect(a) => inspect(g, a),
        ImageCommand::Rm(a) => remove(g, a),
        ImageCommand::Prune(a) => prune(g, a),
        ImageCommand::Tag(a) => tag(g, a),
    }
}

pub fn list(g: &GlobalOptions, a: &ListArgs) -> Result<i32> {
    let store = open_store(g)?;
    let mut images = store.images()?;
    if let Some(filter) = &a.reference {
        let wanted = Reference::parse(filter)?;
        let explicit_tag = filter
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        images.retain(|i| {
            i.tags.iter().any(|t| {
                Reference::parse(t).is_ok_and(|r| {
                    r.name() == wanted.name() && (!explicit_tag || r.tag == wanted.tag)
                })
            })
        });
    }
    let mut out = io::stdout().lock();
    if let Format::Json = a.format {
        let rows: Vec<Value> = images.iter().map(summary_json).collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(0);
    }
    // One row per tag (an untagged image gets one `<none>` row), as docker lists them.
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for i in &images {
        let id = if a.no_trunc {
            i.record.id.to_string()
        } else {
            i.record.id.short().to_string()
        };
        let created = i
            .record
            .created
            .as_deref()
            .map(human_age)
            .unwrap_or_else(|| "N/A".into());
        let size = human_size(i.size);
        let names: Vec<(String, String)> = if i.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.tags.iter().map(|t| split_tag(t)).collect()
        };
        for (repo, tag) in names {
            rows.push([repo, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    if a.quiet {
        for row in &rows[1..] {
            writeln!(out, "{}", row[2])?;
        }
    } else {
        print_table(&mut out, &rows)?;
    }
    Ok(0)
}

fn split_tag(full: &str) -> (String, String) {
    match Reference::parse(full) {
        Ok(r) => (r.familiar_name(), r.tag.unwrap_or_default()),
        Err(_) => (full.to_string(), String::new()),
    }
}

fn summary_json(i: &ImageSummary) -> Value {
    json!({
        "Id": i.record.id.to_string(),
        "RepoTags": i.tags.iter().map(|t| display_tag(t)).collect::<Vec<_>>(),
        "RepoDigests": i.record.repo_digests,
        "Created": i.record.created,
        "Size": i.size,
        "Layers": i.record.layers.len(),
    })
}

pub fn print_table(out: &mut impl Write, rows: &[[String; 5]]) -> io::Result<()> {
    let mut widths = [0usize; 5];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// docker's decimal sizes: `4.26MB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

/// `3 days ago`, like docker's CREATED column.
fn human_age(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (n, unit) = match secs {
        s if s < 60 => return "Less than a minute ago".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 14 => (s / 86400, "day"),
        s if s < 86400 * 60 => (s / (86400 * 7), "week"),
        s if s < 86400 * 365 * 2 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    if n == 1 {
        format!("{} {unit} ago", if unit == "hour" { "An" } else { "1" })
    } else {
        format!("{n} {unit}s ago")
    }
}

pub fn load(g: &GlobalOptions, a: &LoadArgs) -> Result<i32> {
    let store = open_store(g)?;
    let platform = a
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let Some(n) = &a.name {
        Reference::parse(n)?;
    }
    let opts = LoadOptions {
        name: a.name.clone(),
        platform,
    };
    let loaded = load::load(&store, &a.input, &opts)?;
    for image in loaded {
        if a.quiet {
            println!("{}", image.id);
        } else if image.tags.is_empty() {
            println!("Loaded image ID: {}", image.id);
        } else {
            for t in image.tags {
                println!("Loaded image: {}", display_tag(&t.to_string()));
            }
        }
    }
    Ok(0)
}

pub fn import(g: &GlobalOptions, a: &ImportArgs) -> Result<i32> {
    let store = open_store(g)?;
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let config = parse_changes(&a.changes)?;
    let record = if a.file == "-" {
        import::import(&store, io::stdin().lock(), reference.as_ref(), config)?
    } else {
        let f = File::open(&a.file).with_context(|| format!("cannot open {}", a.file))?;
        import::import(
            &store,
            io::BufReader::with_capacity(1 << 20, f),
            reference.as_ref(),
            config,
        )?
    };
    println!("{}", record.id);
    Ok(0)
}

/// The subset of Dockerfile instructions that `docker import --change` takes for a config.
fn parse_changes(changes: &[String]) -> Result<Value> {
    let mut config = serde_json::Map::new();
    for change in changes {
        let (instr, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change.trim(), ""));
        let rest = rest.trim();
        let exec_form = || -> Result<Value> {
            if rest.starts_with('[') {
                let v: Vec<String> = serde_json::from_str(rest)
                    .with_context(|| format!("--change {change:?}: bad JSON array"))?;
                Ok(json!(v))
            } else {
                Ok(json!(["/bin/sh", "-c", rest]))
            }
        };
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), exec_form()?);
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), exec_form()?);
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(rest));
            }
            "USER" => {
                config.insert("User".into(), json!(rest));
            }
            "ENV" => {
                let (k, v) = rest
                    .split_once('=')
                    .or_else(|| rest.split_once(char::is_whitespace))
                    .with_context(|| format!("--change {change:?}: use ENV KEY=VALUE"))?;
                let env = config.entry("Env").or_insert_with(|| json!([]));
                if let Some(list) = env.as_array_mut() {
                    list.push(json!(format!("{}={}", k.trim(), v.trim())));
                }
            }
            other => bail!(
                "--change {other:?} is not supported: use CMD, ENTRYPOINT, ENV, WORKDIR or USER"
            ),
        }
    }
    Ok(Value::Object(config))
}

pub fn inspect(g: &GlobalOptions, a: &InspectArgs) -> Result<i32> {
    let store = open_store(g)?;
    let all = store.images()?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &a.images {
        let record = match store.resolve(name) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("berth: {e}");
                missing.push(name.clone());
                continue;
            }
        };
        let summary = all.iter().find(|s| s.record.id == record.id);
        let config: Value = serde_json::from_slice(&store.read_blob(&record.id)?)?;
        let lowers: Vec<String> = store
            .layer_dirs(&record)
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        out.push(json!({
            "Id": record.id.to_string(),
            "RepoTags": summary.map(|s| s.tags.iter().map(|t| display_tag(t)).collect::<Vec<_>>()).unwrap_or_default(),
            "RepoDigests": record.repo_digests,
            "Created": record.created,
            "Added": record.added,
            "Architecture": record.architecture,
            "Os": record.os,
            "Size": summary.map(|s| s.size).unwrap_or(0),
            "Config": config.get("config").cloned().unwrap_or(Value::Null),
            "RootFS": {
                "Type": "layers",
                "Layers": record.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
            "Manifest": record.manifest.as_ref().map(|m| m.to_string()),
            "GraphDriver": { "Name": "overlay", "Data": { "LowerDir": lowers.join(":") } },
        }));
    }
    serde_json::to_writer_pretty(io::stdout().lock(), &out)?;
    println!();
    Ok(if missing.is_empty() { 0 } else { 1 })
}

fn print_removals(removals: &[Removal]) {
    for r in removals {
        match r {
            Removal::Untagged(t) => println!("Untagged: {t}"),
            Removal::Deleted(d) => println!("Deleted: {d}"),
        }
    }
}

pub fn remove(g: &GlobalOptions, a: &RemoveArgs) -> Result<i32> {
    let store = open_store(g)?;
    let mut failed = false;
    for name in &a.images {
        match store.remove_image(name, a.force) {
            Ok(removals) => print_removals(&removals),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn prune(g: &GlobalOptions, a: &PruneArgs) -> Result<i32> {
    let _ = a.force;
    let store = open_store(g)?;
    let removals = store.prune(a.all)?;
    print_removals(&removals);
    Ok(0)
}

pub fn tag(g: &GlobalOptions, a: &TagArgs) -> Result<i32> {
    let store = open_store(g)?;
    store.tag(&a.source, &a.target)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_changes_read_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(1_000_000), "1MB");
        let c = parse_changes(&[
            "CMD [\"/bin/sh\"]".into(),
            "ENV A=b".into(),
            "WORKDIR /srv".into(),
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh"]));
        assert_eq!(c["Env"], json!(["A=b"]));
        assert_eq!(c["WorkingDir"], json!("/srv"));
        assert!(parse_changes(&["RUN x".into()]).is_err());
    }
}
