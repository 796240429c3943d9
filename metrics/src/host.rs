//! Host-wide figures: machine size, host PSI, block device names, the agent's own process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::parse;
use crate::reader::{push_decimal, FileReader};

/// `machine_cpu_cores` and `machine_memory_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineInfo {
    /// Online logical CPUs (`/sys/devices/system/cpu/online`), what cAdvisor's NumCores counts.
    pub cpu_cores: u64,
    /// `MemTotal` of `/proc/meminfo`, in bytes.
    pub memory_bytes: u64,
}

impl MachineInfo {
    pub fn read(r: &mut FileReader, sys_root: &Path, proc_root: &Path) -> MachineInfo {
        let cpu_cores = r
            .read(&sys_root.join("devices/system/cpu"), "online")
            .map(cpu_list_len)
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64));
        let memory_bytes = r
            .read(proc_root, "meminfo")
            .and_then(meminfo_total)
            .unwrap_or(0);
        MachineInfo {
            cpu_cores,
            memory_bytes,
        }
    }
}

/// Counts the CPUs of a kernel cpu list such as `0-3,8,10-11`.
pub fn cpu_list_len(b: &[u8]) -> u64 {
    b.trim_ascii()
        .split(|&c| c == b',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.iter().position(|&c| c == b'-') {
            Some(d) => match (parse::u64_of(&r[..d]), parse::u64_of(&r[d + 1..])) {
                (Some(a), Some(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => u64::from(parse::u64_of(r).is_some()),
        })
        .sum()
}

fn meminfo_total(b: &[u8]) -> Option<u64> {
    parse::lines(b).find_map(|l| {
        let rest = l.strip_prefix(b"MemTotal:")?;
        let rest = rest.trim_ascii();
        let kb = rest.strip_suffix(b"kB").unwrap_or(rest);
        parse::u64_of(kb).map(|v| v * 1024)
    })
}

/// Host-wide PSI from `<proc>/pressure/{cpu,memory,io}`; `None` per resource when absent
/// (kernel without PSI, or `psi=0`).
pub fn host_pressure(r: &mut FileReader, proc_root: &Path, out: &mut [Option<parse::Pressure>; 3]) {
    let dir = proc_root.join("pressure");
    for (i, file) in ["cpu", "memory", "io"].into_iter().enumerate() {
        out[i] = r.read(&dir, file).map(parse::pressure);
    }
}

/// Resolves `major:minor` to `/dev/<DEVNAME>` through `/sys/dev/block/M:m/uevent`, once per
/// device (negative answers are cached too: the label is then `major:minor`).
#[derive(Debug)]
pub struct DeviceNames {
    sys_root: PathBuf,
    cache: HashMap<(u32, u32), String>,
}

impl DeviceNames {
    pub fn new(sys_root: &Path) -> DeviceNames {
        DeviceNames {
            sys_root: sys_root.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    pub fn name(&mut self, r: &mut FileReader, major: u32, minor: u32) -> &str {
        if !self.cache.contains_key(&(major, minor)) {
            let name = self.resolve(r, major, minor);
            self.cache.insert((major, minor), name);
        }
        self.cache.get(&(major, minor)).map_or("", String::as_str)
    }

    /// A name resolved before by [`DeviceNames::name`].
    pub fn cached(&self, major: u32, minor: u32) -> Option<&str> {
        self.cache.get(&(major, minor)).map(String::as_str)
    }

    /// Forgets every resolved name (after a device was removed and its number reused).
    pub fn clear(&mut self) {
        self.cache.clear();
    }

    fn resolve(&self, r: &mut FileReader, major: u32, minor: u32) -> String {
        let mut dev = Vec::with_capacity(24);
        push_decimal(&mut dev, u64::from(major));
        dev.push(b':');
        push_decimal(&mut dev, u64::from(minor));
        let dev = String::from_utf8(dev).unwrap_or_default();
        let dir = self.sys_root.join("dev/block").join(&dev);
        let name = r.read(&dir, "uevent").and_then(|b| {
            parse::lines(b)
                .find_map(|l| l.strip_prefix(b"DEVNAME="))
                .map(|n| format!("/dev/{}", String::from_utf8_lossy(n.trim_ascii())))
        });
        name.unwrap_or(dev)
    }
}

/// The agent's own process, for the standard `process_*` families.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

/// Reads `/proc/self/stat`, `/proc/self/fd` and `RLIMIT_NOFILE`. `boot_time` is `btime` of
/// `/proc/stat`.
pub fn process_stats(
    r: &mut FileReader,
    proc_root: &Path,
    clk_tck: u64,
    boot_time: u64,
) -> ProcessStats {
    let mut p = ProcessStats::default();
    let clk = clk_tck.max(1) as f64;
    if let Some(b) = r.read(proc_root, "self/stat") {
        // Fields after the last ')' start at field 3 (state).
        if let Some(close) = b.iter().rposition(|&c| c == b')') {
            let f: Vec<u64> = b[close + 1..]
                .split(|&c| c == b' ')
                .filter(|x| !x.is_empty())
                .map(|x| parse::u64_of(x).unwrap_or(0))
                .take(22)
                .collect();
            if f.len() == 22 {
                p.cpu_seconds = (f[11] + f[12]) as f64 / clk;
                p.start_time_seconds = boot_time as f64 + f[19] as f64 / clk;
                p.virtual_bytes = f[20];
                p.resident_bytes = f[21] * page_size();
            }
        }
    }
    p.open_fds = std::fs::read_dir(proc_root.join("self/fd")).map_or(0, |d| d.count() as u64);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        p.max_fds = lim.rlim_cur;
    }
    p
}

/// `btime` of `/proc/stat` (seconds since the epoch at boot).
pub fn boot_time(r: &mut FileReader, proc_root: &Path) -> u64 {
    r.read(proc_root, "stat")
        .and_then(|b| {
            parse::lines(b)
                .find_map(|l| l.strip_prefix(b"btime "))
                .and_then(parse::u64_of)
        })
        .unwrap_or(0)
}

/// `sysconf(_SC_CLK_TCK)`: the USER_HZ unit of `cpuacct.stat` and `/proc/*/stat`.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list_len(b"0-1\n"), 2);
        assert_eq!(cpu_list_len(b"0-3,8,10-11\n"), 7);
        assert_eq!(cpu_list_len(b"0\n"), 1);
        assert_eq!(cpu_list_len(b"\n"), 0);
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            meminfo_total(b"MemTotal:        8048236 kB\nMemFree: 1 kB\n"),
            Some(8_048_236 * 1024)
        );
    }

    #[test]
    fn device_names_resolve_and_fall_back() {
        let sys = tempfile::tempdir().unwrap();
        let d = sys.path().join("dev/block/8:0");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("uevent"),
            "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
        )
        .unwrap();
        let mut r = FileReader::new();
        let mut names = DeviceNames::new(sys.path());
        assert_eq!(names.name(&mut r, 8, 0), "/dev/sda");
        assert_eq!(names.name(&mut r, 9, 1), "9:1");
        std::fs::remove_file(d.join("uevent")).unwrap();
        assert_eq!(names.name(&mut r, 8, 0), "/dev/sda", "cached");
    }
}
