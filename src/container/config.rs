//! The resolved container configuration: the image's config merged with the flags of
//! `berth run`/`create`, with docker's rules.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `PATH` when neither the image nor `-e` sets one (docker's default).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; give one after the image name"
    )]
    NoCommand,
    #[error("the working directory {0:?} is invalid: it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error(
        "invalid environment variable {0:?}: use KEY=VALUE with a non-empty KEY and no NUL byte"
    )]
    InvalidEnv(String),
    #[error("invalid hostname {0:?}: use at most 64 letters, digits, `-` and `.`")]
    InvalidHostname(String),
    #[error("invalid user {0:?}: use uid[:gid] or name[:group], e.g. 1000:1000 or nobody")]
    InvalidUser(String),
    #[error("invalid {what} {value:?}: it contains a NUL byte")]
    Nul { what: &'static str, value: String },
    #[error("invalid signal {0:?}: use a name like TERM or SIGTERM, or a number like 15")]
    InvalidSignal(String),
    #[error("cannot parse the image config: {0}; the image is corrupt, pull or load it again")]
    ImageConfig(serde_json::Error),
    /// A bad security option, ulimit or mount (the message names it).
    #[error("{0}")]
    Security(String),
    #[error("invalid --{flag} {value:?}: use {allowed}")]
    NsMode {
        flag: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("invalid label {0:?}: use KEY=VALUE (or KEY) with a non-empty KEY and no NUL byte")]
    InvalidLabel(String),
    #[error("env file line {line}: {why}")]
    EnvFile { line: usize, why: String },
    /// A bad resource flag (`--memory`, `--cpus`, …; the message names it).
    #[error(transparent)]
    Limit(#[from] crate::cgroup::LimitError),
    /// A bad network flag (the message names it).
    #[error("{0}")]
    Network(String),
}

/// Which network namespace the container gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own network namespace with only a loopback interface (the default when berthd
    /// does not run).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// Its own network namespace, attached by berthd to these networks at start (the first
    /// gets eth0 and the default route, the next eth1, ...).
    Bridge { networks: Vec<NetworkRequest> },
}

/// One network a container asks for (`--network`, `--ip`, `--ip6`, `--network-alias`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRequest {
    /// The network's name (berthd's default network's, when none was given).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::IpAddr>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl NetworkMode {
    /// docker's HostConfig.NetworkMode: `none`, `host`, or the first network's name.
    pub fn as_str(&self) -> &str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Bridge { networks } => networks.first().map_or("none", |n| &n.name),
        }
    }
}

/// Whether the container gets its own PID or IPC namespace, or shares one (`--pid`, `--ipc`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsMode {
    #[default]
    Private,
    /// The host's.
    Host,
    /// Another container's, by full id once created (by the name the user gave before).
    Container(String),
}

impl NsMode {
    /// Parses `--pid` (`host`, `container:NAME`) or `--ipc` (also `private`, `shareable`:
    /// both the default, as every berth IPC namespace can be joined).
    pub fn parse(flag: &'static str, value: &str) -> Result<NsMode, ConfigError> {
        let allowed = if flag == "ipc" {
            "private, shareable, host or container:NAME"
        } else {
            "host or container:NAME"
        };
        let bad = || ConfigError::NsMode {
            flag,
            value: value.to_string(),
            allowed,
        };
        match value {
            "host" => Ok(NsMode::Host),
            "" | "private" | "shareable" if flag == "ipc" => Ok(NsMode::Private),
            "" if flag == "pid" => Ok(NsMode::Private),
            v => match v.strip_prefix("container:") {
                Some(name) if !name.is_empty() && !name.contains('\0') => {
                    Ok(NsMode::Container(name.to_string()))
                }
                _ => Err(bad()),
            },
        }
    }

    /// docker's spelling in `inspect`: `private` (or ""), `host`, `container:<id>`.
    pub fn to_docker(&self, private: &str) -> String {
        match self {
            NsMode::Private => private.to_string(),
            NsMode::Host => "host".to_string(),
            NsMode::Container(id) => format!("container:{id}"),
        }
    }
}

/// Parses a docker env file (`--env-file`): one `KEY=VALUE` a line, taken literally (no
/// quotes, no expansion); blank lines and lines starting with `#` are skipped; leading
/// whitespace is dropped; a bare `KEY` is returned as is and takes the caller's value (and is
/// left out when the caller has none), as `-e KEY` does.
pub fn parse_env_file(text: &str) -> Result<Vec<String>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| ConfigError::EnvFile { line: i + 1, why };
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        if key.is_empty() {
            return Err(bad(format!("no variable name in {line:?}")));
        }
        if key.chars().any(char::is_whitespace) {
            return Err(bad(format!("variable {key:?} contains whitespace")));
        }
        if line.contains('\0') {
            return Err(bad(format!("variable {key:?} contains a NUL byte")));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// Parses `--label KEY=VALUE` (or `KEY`, an empty value).
pub fn parse_labels(specs: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut labels = BTreeMap::new();
    for spec in specs {
        let (k, v) = spec.split_once('=').unwrap_or((spec.as_str(), ""));
        if k.is_empty() || spec.contains('\0') {
            return Err(ConfigError::InvalidLabel(spec.clone()));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

/// The parts of a docker/OCI image config the runtime uses (`config` in the config blob).
/// Every field may be missing or null in real images.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
}

impl ImageConfig {
    /// Parses the `config` object out of an image config blob.
    pub fn from_blob(blob: &[u8]) -> Result<ImageConfig, ConfigError> {
        #[derive(Deserialize)]
        struct Blob {
            #[serde(default)]
            config: Option<ImageConfig>,
        }
        let blob: Blob = serde_json::from_slice(blob).map_err(ConfigError::ImageConfig)?;
        Ok(blob.config.unwrap_or_default())
    }
}

/// The flags of `berth run` / `berth create` that shape the container.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    /// The image as the user named it.
    pub image: String,
    /// Arguments after the image name (replace the image's Cmd).
    pub args: Vec<String>,
    pub name: Option<String>,
    /// `-e KEY=VALUE` (or `-e KEY`: the host's value, if it has one).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    /// `--entrypoint`: replaces the image's Entrypoint and clears its Cmd; `""` clears both.
    pub entrypoint: Option<String>,
    /// `None` (no network flag): berthd's default network when berthd runs, else `none`
    /// (see [`super::network`]).
    pub network: Option<NetworkMode>,
    /// `-p/--publish`, on the first network.
    pub ports: Vec<crate::api::PortMapping>,
    /// `--dns`.
    pub dns: Vec<std::net::IpAddr>,
    /// `--add-host NAME:IP`.
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
    pub user: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`, `--cap-drop` (names with or without `CAP_`, or `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--ulimit name=soft[:hard]`.
    pub ulimits: Vec<String>,
    /// `-v HOST:CTR[:ro|rw]`.
    pub volumes: Vec<String>,
    /// `--tmpfs CTR[:opts]`.
    pub tmpfs: Vec<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--init`: a minimal reaper as PID 1.
    pub init: bool,
    /// `--stop-signal` (replaces the image's StopSignal).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<u32>,
    /// `--pid` (`host`, `container:NAME`); `None` is a private PID namespace.
    pub pid: Option<String>,
    /// `--ipc` (`private`, `shareable`, `host`, `container:NAME`).
    pub ipc: Option<String>,
    /// `--label KEY=VALUE`.
    pub labels: Vec<String>,
    /// `-t`: the container's stdio is a pseudo-terminal.
    pub tty: bool,
    /// `--cpus`, `--memory`, `--pids-limit`, `--priority`, … as given.
    pub resources: crate::cgroup::ResourceFlags,
}

/// The container's configuration as stored in its record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerConfig {
    pub hostname: String,
    /// `uid[:gid]` or `name[:group]`, resolved inside the container when it starts ("" = root).
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    /// The image as the user named it.
    pub image: String,
    pub network: NetworkMode,
    /// Published ports (on the first network).
    #[serde(default)]
    pub ports: Vec<crate::api::PortMapping>,
    /// `--dns` servers (replace the default resolver).
    #[serde(default)]
    pub dns: Vec<std::net::IpAddr>,
    /// `--add-host` entries of /etc/hosts.
    #[serde(default)]
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
    pub stop_signal: Option<String>,
    pub auto_remove: bool,
    /// Capabilities, seccomp, no_new_privs, ulimits, mounts, `--privileged`, `--read-only`.
    #[serde(default)]
    pub security: super::security::SecurityConfig,
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub stop_timeout: Option<u32>,
    #[serde(default)]
    pub pid_mode: NsMode,
    #[serde(default)]
    pub ipc_mode: NsMode,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `-t`: a pseudo-terminal for stdio (kept for `start`, as docker's Config.Tty).
    #[serde(default)]
    pub tty: bool,
    /// Resource limits and priority, applied to the cgroup before the first process runs
    /// (changed by `berth update`).
    #[serde(default)]
    pub resources: crate::cgroup::Resources,
}

impl ContainerConfig {
    /// Merges `image` with `opts` for the container `id`. `host_env` looks up `-e KEY` values.
    pub fn resolve(
        image: &ImageConfig,
        opts: &CreateOptions,
        id: &str,
        host_env: impl Fn(&str) -> Option<String>,
    ) -> Result<ContainerConfig, ConfigError> {
        let (entrypoint, cmd) = match &opts.entrypoint {
            Some(e) if e.is_empty() => (Vec::new(), opts.args.clone()),
            Some(e) => (vec![e.clone()], opts.args.clone()),
            None => {
                let cmd = if opts.args.is_empty() {
                    image.cmd.clone().unwrap_or_default()
                } else {
                    opts.args.clone()
                };
                (image.entrypoint.clone().unwrap_or_default(), cmd)
            }
        };
        if entrypoint.is_empty() && cmd.is_empty() {
            return Err(ConfigError::NoCommand);
        }
        for arg in entrypoint.iter().chain(&cmd) {
            no_nul("argument", arg)?;
        }

        if let Some(sig) = &opts.stop_signal {
            super::control::parse_signal(sig)
                .map_err(|_| ConfigError::InvalidSignal(sig.clone()))?;
        }

        let security = super::security::SecurityConfig::from_options(opts)?;
        let resources = if opts.resources.is_empty() {
            crate::cgroup::Resources::default()
        } else {
            opts.resources.parse(&crate::cgroup::Host::detect())?
        };
        resources.validate()?;

        let working_dir = match (&opts.workdir, &image.working_dir) {
            (Some(w), _) => w.clone(),
            (None, Some(w)) if !w.is_empty() => w.clone(),
            _ => "/".to_string(),
        };
        if !working_dir.starts_with('/') {
            return Err(ConfigError::RelativeWorkdir(working_dir));
        }
        no_nul("working directory", &working_dir)?;

        let hostname = match &opts.hostname {
            Some(h) => h.clone(),
            None => super::id::short(id).to_string(),
        };
        validate_hostname(&hostname)?;

        let user = opts
            .user
            .clone()
            .or_else(|| image.user.clone())
            .unwrap_or_default();
        if !user.is_empty() {
            UserSpec::parse(&user)?;
        }

        let mut env: Vec<String> = Vec::new();
        set_env(&mut env, format!("HOSTNAME={hostname}"))?;
        for e in image.env.iter().flatten() {
            set_env(&mut env, e.clone())?;
        }
        merge_env(&mut env, &opts.env, host_env)?;
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
        }

        Ok(ContainerConfig {
            hostname,
            user,
            env,
            entrypoint,
            cmd,
            working_dir,
            image: opts.image.clone(),
            network: opts.network.clone().unwrap_or_default(),
            ports: opts.ports.clone(),
            dns: opts.dns.clone(),
            add_hosts: opts.add_hosts.clone(),
            stop_signal: opts
                .stop_signal
                .clone()
                .or_else(|| image.stop_signal.clone()),
            auto_remove: opts.auto_remove,
            security,
            init: opts.init,
            stop_timeout: opts.stop_timeout,
            pid_mode: opts
                .pid
                .as_deref()
                .map_or(Ok(NsMode::Private), |v| NsMode::parse("pid", v))?,
            ipc_mode: opts
                .ipc
                .as_deref()
                .map_or(Ok(NsMode::Private), |v| NsMode::parse("ipc", v))?,
            labels: parse_labels(&opts.labels)?,
            tty: opts.tty,
            resources,
        })
    }

    /// The process's argv: Entrypoint followed by Cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

fn no_nul(what: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.contains('\0') {
        return Err(ConfigError::Nul {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// Applies `-e` entries to `env`: `KEY=VALUE` sets (replacing an earlier KEY), a bare `KEY`
/// takes `host_env(KEY)` and is skipped when that is `None`.
pub fn merge_env(
    env: &mut Vec<String>,
    entries: &[String],
    host_env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for e in entries {
        if e.contains('=') {
            set_env(env, e.clone())?;
        } else if e.is_empty() || e.contains('\0') {
            return Err(ConfigError::InvalidEnv(e.clone()));
        } else if let Some(v) = host_env(e) {
            set_env(env, format!("{e}={v}"))?;
        }
    }
    Ok(())
}

/// Validates a working directory: absolute, no NUL.
pub fn check_workdir(dir: &str) -> Result<(), ConfigError> {
    if !dir.starts_with('/') {
        return Err(ConfigError::RelativeWorkdir(dir.to_string()));
    }
    no_nul("working directory", dir)
}

/// Sets `KEY=VALUE` in `env`, replacing an earlier value of KEY.
fn set_env(env: &mut Vec<String>, entry: String) -> Result<(), ConfigError> {
    let key = match entry.split_once('=') {
        Some((k, _)) if !k.is_empty() && !entry.contains('\0') => k.to_string(),
        _ => return Err(ConfigError::InvalidEnv(entry)),
    };
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix));
    env.push(entry);
    Ok(())
}

fn validate_hostname(h: &str) -> Result<(), ConfigError> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !h.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidHostname(h.to_string()))
    }
}

/// One half of a user spec: a number or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOrName {
    Id(u32),
    Name(String),
}

/// A parsed `-u` / image `User`: `uid`, `uid:gid`, `name`, `name:group` (mixes allowed).
///
/// Parsed strictly: crun's CVE-2026-30892 ran `exec -u` processes as the wrong user after a
/// lenient parse. Numbers are decimal without sign and below 2^32-1 (`(uid_t)-1` means "no
/// change" to setresuid, so it is refused); names use the characters shadow-utils allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: IdOrName,
    pub group: Option<IdOrName>,
}

impl UserSpec {
    pub fn parse(spec: &str) -> Result<UserSpec, ConfigError> {
        let bad = || ConfigError::InvalidUser(spec.to_string());
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let part = |s: &str| -> Result<IdOrName, ConfigError> {
            if s.is_empty() || s.len() > 32 {
                return Err(bad());
            }
            if s.bytes().all(|b| b.is_ascii_digit()) {
                let n: u32 = s.parse().map_err(|_| bad())?;
                if n == u32::MAX {
                    return Err(bad());
                }
                return Ok(IdOrName::Id(n));
            }
            let valid = s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric()
                    || b == b'_'
                    || (i > 0 && (b == b'-' || b == b'.'))
                    || (b == b'$' && i == s.len() - 1)
            });
            if !valid {
                return Err(bad());
            }
            Ok(IdOrName::Name(s.to_string()))
        };
        Ok(UserSpec {
            user: part(user)?,
            group: group.map(part).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn image() -> ImageConfig {
        ImageConfig::from_blob(
            br#"{"config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"Entrypoint":null,"WorkingDir":""}}"#,
        )
        .unwrap()
    }

    fn opts(args: &[&str]) -> CreateOptions {
        CreateOptions {
            image: "busybox".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn merges_like_docker() {
        let c = ContainerConfig::resolve(&image(), &opts(&[]), ID, |_| None).unwrap();
        assert_eq!(c.argv(), ["sh"]);
        assert_eq!(c.working_dir, "/");
        assert_eq!(c.hostname, "0123456789ab");
        assert_eq!(c.env, ["HOSTNAME=0123456789ab", "PATH=/bin", "A=1"]);

        let mut o = opts(&["echo", "hi"]);
        o.env = vec!["A=2".into(), "B".into(), "C".into()];
        o.workdir = Some("/tmp".into());
        o.hostname = Some("box".into());
        let c =
            ContainerConfig::resolve(&image(), &o, ID, |k| (k == "B").then(|| "h".into())).unwrap();
        assert_eq!(c.argv(), ["echo", "hi"]);
        assert_eq!(c.env, ["HOSTNAME=box", "PATH=/bin", "A=2", "B=h"]);
        assert_eq!(c.working_dir, "/tmp");

        let mut o = opts(&[]);
        o.entrypoint = Some("/bin/true".into());
        let c = ContainerConfig::resolve(&image(), &o, ID, |_| None).unwrap();
        assert_eq!(c.argv(), ["/bin/true"], "--entrypoint clears the image Cmd");
    }

    #[test]
    fn rejects_bad_input() {
        let empty = ImageConfig::default();
        assert!(matches!(
            ContainerConfig::resolve(&empty, &opts(&[]), ID, |_| None),
            Err(ConfigError::NoCommand)
        ));
        let mut o = opts(&["x"]);
        o.workdir = Some("rel".into());
        assert!(ContainerConfig::resolve(&empty, &o, ID, |_| None).is_err());
        let mut o = opts(&["x"]);
        o.env = vec!["=v".into()];
        assert!(ContainerConfig::resolve(&empty, &o, ID, |_| None).is_err());
        let mut o = opts(&["x"]);
        o.hostname = Some("a b".into());
        assert!(ContainerConfig::resolve(&empty, &o, ID, |_| None).is_err());
        assert!(ContainerConfig::resolve(&empty, &opts(&["a\0b"]), ID, |_| None).is_err());
    }

    #[test]
    fn env_files_parse_like_docker() {
        let text =
            "\u{feff}# a comment\n\n  A=1\nB= spaced value \nBARE\n  # indented\nC=x=y\nD=\n";
        let got = parse_env_file(text).unwrap();
        assert_eq!(got, ["A=1", "B= spaced value ", "BARE", "C=x=y", "D="]);
        let mut env = vec!["A=0".to_string()];
        merge_env(&mut env, &got, |k| (k == "BARE").then(|| "host".into())).unwrap();
        assert_eq!(env, ["A=1", "B= spaced value ", "BARE=host", "C=x=y", "D="]);
        let mut env = Vec::new();
        merge_env(&mut env, &["UNSET".to_string()], |_| None).unwrap();
        assert!(env.is_empty(), "a bare key the caller lacks is left out");
        for bad in ["=v\n", "MY VAR=1\n", "K V\n"] {
            assert!(parse_env_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ns_modes_and_labels() {
        assert_eq!(NsMode::parse("pid", "host").unwrap(), NsMode::Host);
        assert_eq!(
            NsMode::parse("ipc", "container:web").unwrap(),
            NsMode::Container("web".into())
        );
        assert_eq!(NsMode::parse("ipc", "shareable").unwrap(), NsMode::Private);
        assert_eq!(NsMode::parse("ipc", "private").unwrap(), NsMode::Private);
        for (flag, bad) in [("pid", "private"), ("pid", "container:"), ("ipc", "none")] {
            assert!(NsMode::parse(flag, bad).is_err(), "--{flag} {bad}");
        }
        let l = parse_labels(&["a=1".into(), "b".into(), "c=x=y".into()]).unwrap();
        assert_eq!(
            (l["a"].as_str(), l["b"].as_str(), l["c"].as_str()),
            ("1", "", "x=y")
        );
        assert!(parse_labels(&["=x".into()]).is_err());
    }

    #[test]
    fn user_specs_parse_strictly() {
        let ok = |s: &str| UserSpec::parse(s).unwrap();
        assert_eq!(ok("1000").user, IdOrName::Id(1000));
        assert_eq!(ok("1000:50").group, Some(IdOrName::Id(50)));
        assert_eq!(ok("nobody:nogroup").user, IdOrName::Name("nobody".into()));
        assert_eq!(ok("www-data").user, IdOrName::Name("www-data".into()));
        for bad in [
            "",
            ":",
            "1000:",
            ":1",
            "-1",
            "+5",
            "4294967295",
            "99999999999",
            "a b",
            "1:2:3",
            "../x",
            "-x",
        ] {
            assert!(UserSpec::parse(bad).is_err(), "{bad:?}");
        }
    }
}
