//! `--ulimit`: resource limits by docker's names, applied by init before exec.

use serde::{Deserialize, Serialize};

/// docker's ulimit names and their resources.
pub const NAMES: &[(&str, libc::__rlimit_resource_t)] = &[
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// One `--ulimit name=soft[:hard]` (`-1` = unlimited).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

fn resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn show(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

impl Ulimit {
    /// Parses `name=soft[:hard]`; hard defaults to soft.
    pub fn parse(spec: &str) -> Result<Ulimit, String> {
        let names = || NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let (name, values) = spec.split_once('=').ok_or_else(|| {
            format!("invalid ulimit {spec:?}: use name=soft[:hard], e.g. nofile=1024:2048")
        })?;
        if resource(name).is_none() {
            return Err(format!(
                "invalid ulimit {spec:?}: unknown limit {name:?} (known: {})",
                names()
            ));
        }
        let num = |s: &str| -> Result<u64, String> {
            if s == "-1" || s == "unlimited" {
                return Ok(libc::RLIM_INFINITY);
            }
            s.parse::<u64>().map_err(|_| {
                format!("invalid ulimit {spec:?}: {s:?} is not a number (use a non-negative integer or -1 for unlimited)")
            })
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (num(s)?, num(h)?),
            None => (num(values)?, num(values)?),
        };
        if soft > hard {
            return Err(format!(
                "invalid ulimit {spec:?}: the soft limit {} is above the hard limit {}",
                show(soft),
                show(hard)
            ));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }

    /// Checks that this process can set the limit: raising a hard limit needs
    /// CAP_SYS_RESOURCE, which berth may not have.
    pub fn check(&self) -> Result<(), String> {
        let Some(res) = resource(&self.name) else {
            return Err(format!("unknown ulimit {:?}", self.name));
        };
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into our local.
        if unsafe { libc::getrlimit(res, &mut cur) } != 0 {
            return Ok(());
        }
        if self.hard > cur.rlim_max && !has_sys_resource() {
            return Err(self.too_high(cur.rlim_max));
        }
        Ok(())
    }

    fn too_high(&self, host_hard: u64) -> String {
        format!(
            "cannot set ulimit {}={}:{}: the hard limit is above berth's own hard limit for \
             {} ({}), and raising it needs CAP_SYS_RESOURCE; ask for at most {}",
            self.name,
            show(self.soft),
            show(self.hard),
            self.name,
            show(host_hard),
            show(host_hard)
        )
    }

    /// Sets the limit on this process (init, before exec).
    pub fn apply(&self) -> Result<(), String> {
        let res = resource(&self.name).ok_or_else(|| format!("unknown ulimit {:?}", self.name))?;
        let lim = libc::rlimit {
            rlim_cur: self.soft,
            rlim_max: self.hard,
        };
        // SAFETY: setrlimit reads our local.
        if unsafe { libc::setrlimit(res, &lim) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into our local.
            unsafe { libc::getrlimit(res, &mut cur) };
            return Err(self.too_high(cur.rlim_max));
        }
        Err(format!("cannot set ulimit {}: {e}", self.name))
    }
}

fn has_sys_resource() -> bool {
    rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilityFlags::SYS_RESOURCE)
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_ulimits() {
        let u = Ulimit::parse("nofile=100:200").unwrap();
        assert_eq!((u.soft, u.hard), (100, 200));
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!(u.hard, libc::RLIM_INFINITY);
        for bad in ["nofile=abc", "nofile", "nope=1", "nofile=3:2", "nofile=1:x"] {
            assert!(Ulimit::parse(bad).is_err(), "{bad}");
        }
    }
}
