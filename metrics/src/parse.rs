//! Hand-written parsers over the bytes of cgroupfs and procfs files.
//!
//! Nothing here allocates: every function borrows the caller's buffer and returns numbers or
//! sub-slices of it. The formats are the kernel's (`Documentation/admin-guide/cgroup-v2.rst`
//! "Interface Files" conventions, `cgroup-v1/*.rst`, `accounting/psi.rst`, `proc_net_dev`).

/// A value that can also be "unlimited" (`max` on v2, a huge number on v1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Max,
    Value(u64),
}

impl Limit {
    /// cAdvisor's `specMemoryValue`: anything above 2^62 means "unlimited" and reads 0.
    pub fn memory_bytes(self) -> u64 {
        match self {
            Limit::Max => 0,
            Limit::Value(v) if v > 1 << 62 => 0,
            Limit::Value(v) => v,
        }
    }
}

/// Parses an unsigned decimal, surrounding ASCII whitespace allowed.
#[inline]
pub fn u64_of(b: &[u8]) -> Option<u64> {
    let b = b.trim_ascii();
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parses a signed decimal (v1 `cpu.cfs_quota_us` is `-1` when unlimited).
#[inline]
pub fn i64_of(b: &[u8]) -> Option<i64> {
    let b = b.trim_ascii();
    match b.split_first() {
        Some((b'-', rest)) => u64_of(rest).and_then(|v| i64::try_from(v).ok()).map(|v| -v),
        _ => u64_of(b).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A single-value limit file: `max` or a number.
#[inline]
pub fn limit_of(b: &[u8]) -> Option<Limit> {
    let b = b.trim_ascii();
    if b == b"max" {
        Some(Limit::Max)
    } else {
        u64_of(b).map(Limit::Value)
    }
}

/// The lines of a file, without the newline; a trailing empty line is not yielded.
#[inline]
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|&c| c == b'\n').filter(|l| !l.is_empty())
}

/// Splits `key value` at the first space.
#[inline]
pub fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = line.iter().position(|&c| c == b' ')?;
    Some((&line[..sp], &line[sp + 1..]))
}

/// Calls `f(key, value)` for every `key value` line of a flat-keyed file
/// (`memory.stat`, `cpu.stat`, `cpuacct.stat`, `memory.events`, `memory.oom_control`).
/// Lines whose value is not a number are skipped.
#[inline]
pub fn flat_keyed(buf: &[u8], mut f: impl FnMut(&[u8], u64)) {
    for line in lines(buf) {
        if let Some((k, v)) = key_value(line) {
            if let Some(v) = u64_of(v) {
                f(k, v);
            }
        }
    }
}

/// Number of non-empty lines (`cgroup.procs`, `cgroup.threads`, `tasks`).
#[inline]
pub fn count_lines(buf: &[u8]) -> u64 {
    lines(buf).count() as u64
}

/// Parses `MAJ:MIN`.
#[inline]
pub fn dev_of(b: &[u8]) -> Option<(u32, u32)> {
    let c = b.iter().position(|&c| c == b':')?;
    let major = u32::try_from(u64_of(&b[..c])?).ok()?;
    let minor = u32::try_from(u64_of(&b[c + 1..])?).ok()?;
    Some((major, minor))
}

/// The `total=` fields of a PSI file (`some …` and `full …` lines), in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub some_us: Option<u64>,
    pub full_us: Option<u64>,
}

pub fn pressure(buf: &[u8]) -> Pressure {
    let mut p = Pressure::default();
    for line in lines(buf) {
        let Some((kind, rest)) = key_value(line) else {
            continue;
        };
        let total = rest
            .split(|&c| c == b' ')
            .find_map(|f| f.strip_prefix(b"total="))
            .and_then(u64_of);
        match kind {
            b"some" => p.some_us = total,
            b"full" => p.full_us = total,
            _ => {}
        }
    }
    p
}

/// Block IO counters of one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoDevice {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

fn device_slot(devs: &mut Vec<IoDevice>, major: u32, minor: u32) -> &mut IoDevice {
    let i = match devs
        .iter()
        .position(|d| d.major == major && d.minor == minor)
    {
        Some(i) => i,
        None => {
            devs.push(IoDevice {
                major,
                minor,
                ..IoDevice::default()
            });
            devs.len() - 1
        }
    };
    &mut devs[i]
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`, one line a device.
pub fn io_stat(buf: &[u8], devs: &mut Vec<IoDevice>) {
    for line in lines(buf) {
        let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
        let Some((major, minor)) = fields.next().and_then(dev_of) else {
            continue;
        };
        let d = device_slot(devs, major, minor);
        for f in fields {
            let Some(eq) = f.iter().position(|&c| c == b'=') else {
                continue;
            };
            let Some(v) = u64_of(&f[eq + 1..]) else {
                continue;
            };
            match &f[..eq] {
                b"rbytes" => d.read_bytes = v,
                b"wbytes" => d.write_bytes = v,
                b"rios" => d.reads = v,
                b"wios" => d.writes = v,
                _ => {}
            }
        }
    }
}

/// Which v1 blkio file a buffer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkioKind {
    /// `blkio.throttle.io_service_bytes[_recursive]`
    Bytes,
    /// `blkio.throttle.io_serviced[_recursive]`
    Ops,
}

/// v1 `blkio.throttle.io_service_bytes` / `io_serviced`: `8:0 Read 123` lines, then `Total N`.
pub fn blkio_v1(buf: &[u8], kind: BlkioKind, devs: &mut Vec<IoDevice>) {
    for line in lines(buf) {
        let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
        let (Some(dev), Some(op), Some(v)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let (Some((major, minor)), Some(v)) = (dev_of(dev), u64_of(v)) else {
            continue;
        };
        let d = device_slot(devs, major, minor);
        match (kind, op) {
            (BlkioKind::Bytes, b"Read") => d.read_bytes = v,
            (BlkioKind::Bytes, b"Write") => d.write_bytes = v,
            (BlkioKind::Ops, b"Read") => d.reads = v,
            (BlkioKind::Ops, b"Write") => d.writes = v,
            _ => {}
        }
    }
}

/// Counters of one network interface from `/proc/<pid>/net/dev`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    name: [u8; 16],
    name_len: u8,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

impl Interface {
    /// The interface name (IFNAMSIZ bounds it to 15 bytes; non-UTF-8 names read as "").
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.name[..usize::from(self.name_len)]).unwrap_or("")
    }
}

/// Parses `/proc/<pid>/net/dev` into `out` (cleared first), skipping `lo`.
pub fn net_dev(buf: &[u8], out: &mut Vec<Interface>) {
    out.clear();
    for line in lines(buf) {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        }; // headers
        let name = line[..colon].trim_ascii();
        // Non-UTF-8 names cannot be label values (and would collide as "").
        if name == b"lo" || name.is_empty() || name.len() > 15 || std::str::from_utf8(name).is_err()
        {
            continue;
        }
        let mut nums = [0u64; 16];
        let mut n = 0;
        for f in line[colon + 1..]
            .split(|&c| c == b' ')
            .filter(|f| !f.is_empty())
        {
            if n == 16 {
                break;
            }
            nums[n] = u64_of(f).unwrap_or(0);
            n += 1;
        }
        if n < 12 {
            continue;
        }
        let mut ifc = Interface {
            name_len: name.len() as u8,
            rx_bytes: nums[0],
            rx_packets: nums[1],
            rx_errors: nums[2],
            rx_dropped: nums[3],
            tx_bytes: nums[8],
            tx_packets: nums[9],
            tx_errors: nums[10],
            tx_dropped: nums[11],
            ..Interface::default()
        };
        ifc.name[..name.len()].copy_from_slice(name);
        out.push(ifc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(u64_of(b" 42\n"), Some(42));
        assert_eq!(u64_of(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(u64_of(b"18446744073709551616"), None);
        assert_eq!(u64_of(b""), None);
        assert_eq!(u64_of(b"4x"), None);
        assert_eq!(i64_of(b"-1\n"), Some(-1));
        assert_eq!(i64_of(b"100000\n"), Some(100_000));
        assert_eq!(limit_of(b"max\n"), Some(Limit::Max));
        assert_eq!(limit_of(b"1024\n"), Some(Limit::Value(1024)));
        assert_eq!(Limit::Value(9_223_372_036_854_771_712).memory_bytes(), 0);
        assert_eq!(Limit::Value(1 << 30).memory_bytes(), 1 << 30);
    }

    #[test]
    fn pressure_totals() {
        let p = pressure(
            b"some avg10=0.00 avg60=0.00 avg300=0.00 total=1234567\n\
              full avg10=0.00 avg60=0.00 avg300=0.00 total=89\n",
        );
        assert_eq!(
            p,
            Pressure {
                some_us: Some(1_234_567),
                full_us: Some(89)
            }
        );
        assert_eq!(
            pressure(b"some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n").full_us,
            None
        );
    }

    #[test]
    fn io_both_versions() {
        let mut d = Vec::new();
        io_stat(
            b"8:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n253:1 rbytes=5\n",
            &mut d,
        );
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].read_bytes, d[0].write_bytes, d[0].reads, d[0].writes),
            (100, 200, 3, 4)
        );
        assert_eq!((d[1].major, d[1].minor, d[1].read_bytes), (253, 1, 5));
        let mut d = Vec::new();
        blkio_v1(
            b"8:0 Read 10\n8:0 Write 20\n8:0 Sync 30\n8:0 Total 30\nTotal 30\n",
            BlkioKind::Bytes,
            &mut d,
        );
        blkio_v1(
            b"8:0 Read 1\n8:0 Write 2\nTotal 3\n",
            BlkioKind::Ops,
            &mut d,
        );
        assert_eq!(
            d,
            vec![IoDevice {
                major: 8,
                minor: 0,
                read_bytes: 10,
                write_bytes: 20,
                reads: 1,
                writes: 2
            }]
        );
    }

    #[test]
    fn net_dev_skips_lo() {
        let text = b"Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
eth0: 1000      10    1    2    0     0          0         0     2000      20    3    4    0     0       0          0\n";
        let mut out = Vec::new();
        net_dev(text, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name(), "eth0");
        assert_eq!(
            (
                out[0].rx_bytes,
                out[0].rx_packets,
                out[0].rx_errors,
                out[0].rx_dropped
            ),
            (1000, 10, 1, 2)
        );
        assert_eq!(
            (
                out[0].tx_bytes,
                out[0].tx_packets,
                out[0].tx_errors,
                out[0].tx_dropped
            ),
            (2000, 20, 3, 4)
        );
    }
}
