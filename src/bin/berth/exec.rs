//! `berth exec` and `berth top`: argument parsing and output, and `--env-file` reading
//! (shared with `run`/`create`).
//!
//! `exec` returns the command's exit code (128+N when signal N killed it), 126 when it cannot
//! be executed, 127 when it is not found, and 125 when berth fails (the container is not
//! running, say).

use anyhow::Result;
use berth::container::config::parse_env_file;
use berth::container::exec::top_table;
use berth::container::{ContainerError, ExecOptions, Runtime};
use berth::options::GlobalOptions;
use clap::Args;
use std::io::{self, Write};
use std::path::Path;

#[derive(Args)]
pub struct ExecArgs {
    /// Keep stdin open: pipe berth's stdin to the command.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Start the command and return at once (its output is discarded).
    #[arg(short = 'd', long)]
    detach: bool,
    /// Allocate a pseudo-terminal for the command.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to pass berth's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read environment variables from a file (as `run --env-file`).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<String>,
    /// Working directory inside the container (absolute; must exist).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Run as uid[:gid] or name[:group] (default: the container's user).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// The container, then the command and its arguments.
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    command: Vec<String>,
}

#[derive(Args)]
pub struct TopArgs {
    /// The container (id, unique id prefix, or name).
    container: String,
    /// ps options (accepted for docker compatibility and ignored).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PS OPTIONS"
    )]
    ps_options: Vec<String>,
}

/// `--env-file` lines (in order), then the `-e` flags, which therefore win.
pub fn env_with_files(files: &[String], env: &[String]) -> berth::container::Result<Vec<String>> {
    let mut out = Vec::new();
    for file in files {
        let path = Path::new(file);
        let text = std::fs::read_to_string(path).map_err(|e| ContainerError::Io {
            action: "cannot read the env file",
            path: path.to_path_buf(),
            source: e,
        })?;
        out.extend(parse_env_file(&text)?);
    }
    out.extend_from_slice(env);
    Ok(out)
}

pub fn exec(g: &GlobalOptions, a: &ExecArgs) -> Result<i32> {
    let fail = crate::containers::fail;
    let runtime = match Runtime::from_options(g) {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
    let env = match env_with_files(&a.env_file, &a.env) {
        Ok(env) => env,
        Err(e) => return Ok(fail(e)),
    };
    let opts = ExecOptions {
        args: a.command.get(1..).unwrap_or(&[]).to_vec(),
        env,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        interactive: a.interactive,
        detach: a.detach,
        tty: a.tty,
    };
    let container = a.command.first().map(String::as_str).unwrap_or("");
    Ok(runtime.exec(container, &opts).unwrap_or_else(fail))
}

pub fn top(g: &GlobalOptions, a: &TopArgs) -> Result<i32> {
    let runtime = Runtime::from_options(g)?;
    let procs = match runtime.top(&a.container) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: {e}");
            return Ok(1);
        }
    };
    let rows = top_table(&procs);
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad + 4));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(0)
}
