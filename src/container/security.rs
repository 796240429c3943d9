//! The security options and mounts of `berth run`/`create`: `--privileged`, `--cap-add`,
//! `--cap-drop`, `--security-opt`, `--ulimit`, `-v`, `--tmpfs`, `--read-only`. Parsed and
//! checked at create (a bad spec creates nothing), stored in the container's record, and
//! turned into an [`isolate::Security`] at start.

use super::config::{ConfigError, CreateOptions};
use crate::isolate::mounts::UserMount;
use crate::isolate::rlimits::Ulimit;
use crate::isolate::seccomp::{self, Profile};
use crate::isolate::{self, caps, DOCKER_DEFAULT_CAPS};
use serde::{Deserialize, Serialize};

/// Which seccomp profile the container gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// docker's default profile (none with `--privileged`).
    #[default]
    Default,
    /// `--security-opt seccomp=unconfined`.
    Unconfined,
    /// `--security-opt seccomp=FILE`, parsed at create.
    Profile(Profile),
}

/// The security options as stored in the container record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    pub privileged: bool,
    /// Normalized capability names (no `CAP_`) or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp: SeccompMode,
    pub ulimits: Vec<Ulimit>,
    pub mounts: Vec<UserMount>,
    pub read_only: bool,
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        SecurityConfig {
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            no_new_privileges: true,
            seccomp: SeccompMode::Default,
            ulimits: Vec::new(),
            mounts: Vec::new(),
            read_only: false,
        }
    }
}

fn bad(msg: String) -> ConfigError {
    ConfigError::Security(msg)
}

fn parse_bool(opt: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!(
            "invalid --security-opt {opt:?}: use true or false"
        ))),
    }
}

impl SecurityConfig {
    /// Parses and checks the flags (reads a seccomp profile file; checks that host paths of
    /// volumes exist and that ulimits can be set).
    pub fn from_options(opts: &CreateOptions) -> Result<SecurityConfig, ConfigError> {
        let mut c = SecurityConfig {
            privileged: opts.privileged,
            read_only: opts.read_only,
            ..SecurityConfig::default()
        };
        for name in &opts.cap_add {
            c.cap_add.push(caps::normalize(name).map_err(bad)?);
        }
        let own = caps::own();
        for name in c.cap_add.iter().filter(|n| *n != "ALL") {
            let n = caps::number(name).unwrap_or(0);
            if own & (1 << n) == 0 {
                return Err(bad(format!(
                    "cannot add capability {name}: berth itself does not have CAP_{name}"
                )));
            }
        }
        for name in &opts.cap_drop {
            c.cap_drop.push(caps::normalize(name).map_err(bad)?);
        }
        for opt in &opts.security_opt {
            // docker accepts both `key=value` and the older `key:value`.
            let (key, value) = match opt.split_once(['=', ':']) {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            };
            match (key, value) {
                ("no-new-privileges", None) => c.no_new_privileges = true,
                ("no-new-privileges", Some(v)) => c.no_new_privileges = parse_bool(opt, v)?,
                ("seccomp", Some("unconfined")) => c.seccomp = SeccompMode::Unconfined,
                ("seccomp", Some(path)) if !path.is_empty() => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| bad(format!("cannot read the seccomp profile {path}: {e}")))?;
                    let profile = seccomp::parse_docker_json(&text)
                        .map_err(|e| bad(format!("seccomp profile {path}: {e}")))?;
                    c.seccomp = SeccompMode::Profile(profile);
                }
                // Nothing to turn off: berth applies no AppArmor or SELinux policy.
                ("apparmor", Some("unconfined")) | ("label", Some("disable")) => {}
                _ => {
                    return Err(bad(format!(
                        "unsupported --security-opt {opt:?} (supported: \
                         no-new-privileges[=true|false], seccomp=unconfined, seccomp=FILE)"
                    )))
                }
            }
        }
        for spec in &opts.ulimits {
            let u = Ulimit::parse(spec).map_err(bad)?;
            u.check().map_err(bad)?;
            c.ulimits.retain(|o| o.name != u.name);
            c.ulimits.push(u);
        }
        for spec in &opts.volumes {
            c.mounts.push(UserMount::parse_volume(spec).map_err(bad)?);
        }
        for spec in &opts.tmpfs {
            c.mounts.push(UserMount::parse_tmpfs(spec).map_err(bad)?);
        }
        Ok(c)
    }

    /// The container's capabilities: all with `--privileged`, else docker's default set with
    /// `--cap-add`/`--cap-drop` applied; never more than berth itself has.
    pub fn capabilities(&self) -> u64 {
        let wanted = if self.privileged {
            caps::all()
        } else {
            caps::resolve(DOCKER_DEFAULT_CAPS, &self.cap_add, &self.cap_drop)
        };
        wanted & caps::own()
    }

    /// What init needs: the seccomp profile compiled for the final capabilities, and the rest.
    pub fn isolate(&self) -> Result<isolate::Security, ConfigError> {
        let profile = match &self.seccomp {
            SeccompMode::Unconfined => None,
            SeccompMode::Default if self.privileged => None,
            SeccompMode::Default => Some(seccomp::default_profile()),
            SeccompMode::Profile(p) => Some(p.clone()),
        };
        let programs = match profile {
            Some(p) => seccomp::compile(&p, self.capabilities()).map_err(bad)?,
            None => Vec::new(),
        };
        for u in &self.ulimits {
            u.check().map_err(bad)?;
        }
        Ok(isolate::Security {
            no_new_privs: self.no_new_privileges,
            seccomp: programs,
            rlimits: self.ulimits.clone(),
            privileged: self.privileged,
            mounts: self.mounts.clone(),
            read_only_root: self.read_only,
        })
    }
}
