//! Parsers for the units of docker's resource flags: sizes (`32m`, `1.5g`), CPU counts
//! (`0.5`), CPU and memory-node lists (`0-3,5`), and the v1 → v2 value conversions runc uses.

use std::collections::BTreeSet;

/// A size as docker's `RAMInBytes` (go-units) reads it: a decimal number, an optional space,
/// an optional binary prefix `k m g t p` (any case), an optional `i`, an optional `b`:
/// `32m`, `32MB`, `32MiB`, `1.5g`, `4096`. Returns `None` for anything else (negative included).
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return None;
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut rest = unit.as_str();
    let mut mult: u128 = 1;
    if let Some(c) = rest.chars().next() {
        let m = match c {
            'k' => Some(1u128 << 10),
            'm' => Some(1 << 20),
            'g' => Some(1 << 30),
            't' => Some(1 << 40),
            'p' => Some(1 << 50),
            _ => None,
        };
        if let Some(m) = m {
            mult = m;
            rest = &rest[1..];
        }
    }
    if mult > 1 {
        rest = rest.strip_prefix('i').unwrap_or(rest);
    }
    rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return None;
    }
    // Exact decimal arithmetic: integer part and up to 18 fractional digits.
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u128 = int.parse().ok()?;
    let frac_digits = frac.len().min(18);
    let frac_val: u128 = if frac_digits == 0 {
        0
    } else {
        frac[..frac_digits].parse().ok()?
    };
    let scale = 10u128.pow(frac_digits as u32);
    let bytes = int.checked_mul(mult)? + frac_val.checked_mul(mult)? / scale;
    i64::try_from(bytes).ok()
}

/// A human-readable size for messages: `6MiB`, `1.5GiB`, `512B`.
pub fn show_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}{}", v.round() as i64, UNITS[i])
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}

/// `--cpus`: a decimal number of CPUs, as nano-CPUs (`0.5` → 500 000 000). At most nine
/// fractional digits (docker's precision). `None` for anything else (negative included).
pub fn parse_cpus(s: &str) -> Option<u64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || frac.len() > 9
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_val: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        frac_val *= 10;
    }
    int.checked_mul(1_000_000_000)?.checked_add(frac_val)
}

/// A CPU or memory-node list (`0-3,5`, as `cpuset.cpus` takes it): the set of numbers, or
/// `None` when the syntax is wrong (empty items, `3-1`, signs, spaces).
pub fn parse_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    if s.is_empty() {
        return None;
    }
    for item in s.split(',') {
        let num = |t: &str| -> Option<u32> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || t.len() > 6 {
                return None;
            }
            t.parse().ok()
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(num(item)?);
            }
        }
    }
    Some(out)
}

/// cpu shares (v1, 2–262144, default 1024) → `cpu.weight` (v2, 1–10000, default 100), with the
/// quadratic-in-log2 mapping of opencontainers/cgroups ≥ 0.0.3 / runc ≥ 1.3.2 (runc PR #4785):
/// 2 → 1, 1024 → 100, 262144 → 10000. Not the old linear `1 + ((shares-2)*9999)/262142`
/// (cgroups-rs, runc < 1.3.2), which maps docker's default 1024 to 39 and so puts every
/// container below systemd's default-weighted services.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// docker's `--blkio-weight` (10–1000) → v2 `io.weight` (1–10000), runc's
/// `ConvertBlkIOToIOWeightValue`: `1 + (weight-10)*9999/990`.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker() {
        assert_eq!(parse_size("32m"), Some(32 << 20));
        assert_eq!(parse_size("32MB"), Some(32 << 20));
        assert_eq!(parse_size("32MiB"), Some(32 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("10 k"), Some(10240));
        assert_eq!(parse_size("7b"), Some(7));
        for bad in [
            "",
            "-1",
            "m",
            "1x",
            "1.2.3",
            ".5m",
            "1mm",
            "5ib",
            "99999999999p",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(show_size(6 << 20), "6MiB");
    }

    #[test]
    fn cpus_as_nano() {
        assert_eq!(parse_cpus("0.5"), Some(500_000_000));
        assert_eq!(parse_cpus("2"), Some(2_000_000_000));
        assert_eq!(parse_cpus(".25"), Some(250_000_000));
        assert_eq!(parse_cpus("1.000000001"), Some(1_000_000_001));
        for bad in ["", ".", "-1", "1e3", "0.1234567891", "a"] {
            assert_eq!(parse_cpus(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("0-2,5").map(|s| s.into_iter().collect::<Vec<_>>()),
            Some(vec![0, 1, 2, 5])
        );
        for bad in ["", "1,", "3-1", "-1", "a", "1 ,2", "1--2"] {
            assert_eq!(parse_list(bad), None, "{bad}");
        }
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(4096), 303);
        assert_eq!(shares_to_weight(256), 35);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }
}
