//! Header fields: numbers (octal and base-256), checksums, NUL-terminated names, PAX records.

use super::{Time, BLOCK};
use std::ops::Range;

/// The values PAX records set for the next entry (ranges into `Header::pax`).
#[derive(Default)]
pub(super) struct Pax {
    pub path: Option<Range<usize>>,
    pub link: Option<Range<usize>>,
    pub size: Option<u64>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<Time>,
    pub atime: Option<Time>,
}

/// The bytes before the first NUL.
pub(super) fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&c| c == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

pub(super) fn trim_nul(v: &mut Vec<u8>) {
    if let Some(n) = v.iter().position(|&c| c == 0) {
        v.truncate(n);
    }
}

pub(super) fn check_checksum(b: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_u64(&b[148..156]).map_err(|w| format!("checksum field: {w}"))?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += u64::from(c);
        signed += i64::from(c as i8);
    }
    // Some old tars summed signed chars; accept both like GNU tar and Go do.
    if stored == unsigned || i64::try_from(stored) == Ok(signed) {
        Ok(())
    } else {
        Err(format!(
            "header checksum mismatch (stored {stored}, computed {unsigned}); not a tar stream?"
        ))
    }
}

/// Parses a numeric header field: octal text (leading spaces, ending at NUL or space) or GNU
/// base-256 (high bit of the first byte set).
pub(super) fn parse_u64(field: &[u8]) -> Result<u64, String> {
    let v = parse_i128(field)?;
    u64::try_from(v).map_err(|_| format!("value {v} out of range"))
}

pub(super) fn parse_i64(field: &[u8]) -> Result<i64, String> {
    let v = parse_i128(field)?;
    i64::try_from(v).map_err(|_| format!("value {v} out of range"))
}

pub(super) fn parse_i128(field: &[u8]) -> Result<i128, String> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            // Base-256, two's complement; 0xff starts a negative number.
            let negative = first == 0xff;
            let mut v: i128 = if negative {
                -1
            } else {
                i128::from(first & 0x7f)
            };
            for &c in &field[1..] {
                v = v
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(i128::from(c)))
                    .ok_or("base-256 value overflows")?;
                if v > i128::from(u64::MAX) || v < i128::from(i64::MIN) {
                    return Err("base-256 value out of range".into());
                }
            }
            return Ok(v);
        }
    }
    let s = field
        .iter()
        .position(|&c| c != b' ')
        .map_or(&field[..0], |n| &field[n..]);
    let end = s
        .iter()
        .position(|&c| c == 0 || c == b' ')
        .unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    if rest.iter().any(|&c| c != 0 && c != b' ') {
        return Err(format!(
            "invalid octal number {:?}",
            String::from_utf8_lossy(field)
        ));
    }
    let mut v: i128 = 0;
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            return Err(format!(
                "invalid octal number {:?}",
                String::from_utf8_lossy(field)
            ));
        }
        v = v * 8 + i128::from(c - b'0');
        if v > i128::from(u64::MAX) {
            return Err("octal value out of range".into());
        }
    }
    Ok(v)
}

/// Parses PAX records (`"<len> <key>=<value>\n"`), collecting xattr ranges into `xattrs`.
pub(super) fn parse_pax(
    data: &[u8],
    xattrs: &mut Vec<(Range<usize>, Range<usize>)>,
) -> Result<Pax, String> {
    let mut pax = Pax::default();
    let mut pos = 0;
    while pos < data.len() {
        let rec = &data[pos..];
        let sp = rec
            .iter()
            .position(|&c| c == b' ')
            .ok_or("pax record without a length")?;
        let len: usize = std::str::from_utf8(&rec[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("pax record with an invalid length")?;
        if len <= sp + 1 || len > rec.len() || rec[len - 1] != b'\n' {
            return Err("pax record with a wrong length".into());
        }
        let kv = &rec[sp + 1..len - 1];
        let eq = kv
            .iter()
            .position(|&c| c == b'=')
            .ok_or("pax record without '='")?;
        let (key, value) = (&kv[..eq], &kv[eq + 1..]);
        let vstart = pos + sp + 1 + eq + 1;
        let vrange = vstart..vstart + value.len();
        // An empty value cancels the keyword (POSIX); we keep the header's value then.
        match key {
            b"path" => pax.path = (!value.is_empty()).then_some(vrange),
            b"linkpath" => pax.link = (!value.is_empty()).then_some(vrange),
            b"size" => pax.size = pax_decimal(value, "size")?,
            b"uid" => pax.uid = pax_decimal(value, "uid")?,
            b"gid" => pax.gid = pax_decimal(value, "gid")?,
            b"mtime" => pax.mtime = pax_time(value)?,
            b"atime" => pax.atime = pax_time(value)?,
            _ if key.starts_with(b"SCHILY.xattr.") => {
                let nstart = pos + sp + 1 + b"SCHILY.xattr.".len();
                xattrs.push((nstart..pos + sp + 1 + eq, vrange));
            }
            _ if key.starts_with(b"GNU.sparse.") => {
                return Err("GNU sparse files are not supported".into())
            }
            _ => {}
        }
        pos += len;
    }
    Ok(pax)
}

pub(super) fn pax_decimal(v: &[u8], what: &str) -> Result<Option<u64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(v)
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "pax {what} {:?} is not a decimal number",
                String::from_utf8_lossy(v)
            )
        })
}

/// Parses a PAX time: `[-]seconds[.fraction]`.
pub(super) fn pax_time(v: &[u8]) -> Result<Option<Time>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        format!(
            "pax time {:?} is not a number of seconds",
            String::from_utf8_lossy(v)
        )
    };
    let (negative, body) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(n) => (&body[..n], &body[n + 1..]),
        None => (body, &body[..0]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let sec: i64 = std::str::from_utf8(int)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
    }
    Ok(Some(if !negative {
        Time { sec, nsec }
    } else if nsec == 0 {
        Time { sec: -sec, nsec: 0 }
    } else {
        Time {
            sec: -sec - 1,
            nsec: 1_000_000_000 - nsec,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_octal_and_base256() {
        assert_eq!(parse_u64(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_u64(b"   755 \0"), Ok(0o755));
        assert_eq!(parse_u64(b"\0\0\0\0"), Ok(0));
        assert_eq!(parse_u64(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]), Ok(256));
        assert!(parse_u64(b"0008").is_err());
        assert!(parse_u64(b"12x4").is_err());
        assert!(parse_u64(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(parse_i64(&[0xff, 0xff, 0xff, 0xfe]), Ok(-2));
        assert!(parse_u64(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn parses_pax_records_and_times() {
        let data =
            b"30 mtime=1700000000.123456789\n20 path=a/very/long\n25 SCHILY.xattr.user.k=v\n";
        let mut xattrs = Vec::new();
        let pax = parse_pax(data, &mut xattrs).unwrap();
        assert_eq!(
            pax.mtime,
            Some(Time {
                sec: 1_700_000_000,
                nsec: 123_456_789
            })
        );
        assert_eq!(&data[pax.path.unwrap()], b"a/very/long");
        assert_eq!(xattrs.len(), 1);
        assert_eq!(&data[xattrs[0].0.clone()], b"user.k");
        assert_eq!(&data[xattrs[0].1.clone()], b"v");
        assert!(parse_pax(b"99 path=x\n", &mut xattrs).is_err());
        assert!(parse_pax(b"9 pathx\n", &mut xattrs).is_err());
        assert_eq!(
            pax_time(b"-1.5"),
            Ok(Some(Time {
                sec: -2,
                nsec: 500_000_000
            }))
        );
        assert_eq!(pax_time(b"12"), Ok(Some(Time { sec: 12, nsec: 0 })));
        assert!(pax_time(b"1e9").is_err());
    }
}
