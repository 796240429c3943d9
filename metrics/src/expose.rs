//! Writing the Prometheus text format (version 0.0.4) by hand into a reused `String`.

use std::fmt::Write as _;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A sample value in the unit the kernel gave; written as the base unit without floating point
/// rounding (nanoseconds and microseconds become exact decimal seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    U(u64),
    Nanos(u64),
    Micros(u64),
    F(f64),
}

/// Family types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Appends a label value with the text format's escapes (`\\`, `\"`, `\n`).
pub fn escape_label_value(out: &mut String, v: &str) {
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&v[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&v[start..]);
}

/// Appends HELP text with its escapes (`\\`, `\n`).
fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `key` sanitised as cAdvisor does (`[^a-zA-Z0-9_]` → `_`, one per character).
pub fn sanitize_label_name(out: &mut String, key: &str) {
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
}

pub fn write_u64(out: &mut String, v: u64) {
    let mut tmp = [0u8; 20];
    // The digits are ASCII.
    out.push_str(std::str::from_utf8(crate::reader::decimal_digits(&mut tmp, v)).unwrap_or("0"));
}

/// Writes `v / 10^digits` as an exact decimal without trailing zeros.
fn write_scaled(out: &mut String, v: u64, digits: u32) {
    let div = 10u64.pow(digits);
    write_u64(out, v / div);
    let mut frac = v % div;
    if frac == 0 {
        return;
    }
    let mut width = digits;
    while frac % 10 == 0 {
        frac /= 10;
        width -= 1;
    }
    out.push('.');
    let mut digits_buf = [b'0'; 9];
    let w = width as usize;
    let mut f = frac;
    for i in (0..w).rev() {
        digits_buf[i] = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.push_str(std::str::from_utf8(&digits_buf[..w]).unwrap_or("0"));
}

pub fn write_value(out: &mut String, v: Value) {
    match v {
        Value::U(v) => write_u64(out, v),
        Value::Nanos(v) => write_scaled(out, v, 9),
        Value::Micros(v) => write_scaled(out, v, 6),
        Value::F(f) if f.is_nan() => out.push_str("NaN"),
        Value::F(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        Value::F(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

/// One family being written: HELP and TYPE first, then samples. A family that ends without a
/// sample is removed again, so the output never holds empty families.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    start: usize,
    samples: usize,
}

impl<'a> Family<'a> {
    pub fn begin(out: &'a mut String, name: &'static str, kind: Kind, help: &str) -> Family<'a> {
        let start = out.len();
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_help(out, help);
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(kind.as_str());
        out.push('\n');
        Family {
            out,
            name,
            start,
            samples: 0,
        }
    }

    /// Writes `name{labels,k="v"…} value`. `labels` is an already escaped `k="v",…` list
    /// (may be empty); `extra` values are escaped here.
    pub fn sample(&mut self, labels: &str, extra: &[(&str, &str)], v: Value) {
        let out = &mut *self.out;
        out.push_str(self.name);
        if !labels.is_empty() || !extra.is_empty() {
            out.push('{');
            out.push_str(labels);
            let mut first = labels.is_empty();
            for (k, val) in extra {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(k);
                out.push_str("=\"");
                escape_label_value(out, val);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_value(out, v);
        out.push('\n');
        self.samples += 1;
    }

    pub fn end(self) {
        if self.samples == 0 {
            self.out.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: Value) -> String {
        let mut s = String::new();
        write_value(&mut s, x);
        s
    }

    #[test]
    fn values() {
        assert_eq!(v(Value::U(0)), "0");
        assert_eq!(v(Value::U(u64::MAX)), "18446744073709551615");
        assert_eq!(v(Value::Nanos(1_500_000_000)), "1.5");
        assert_eq!(v(Value::Nanos(1)), "0.000000001");
        assert_eq!(v(Value::Nanos(3_000_000_000)), "3");
        assert_eq!(v(Value::Micros(1_234_567)), "1.234567");
        assert_eq!(v(Value::Micros(10)), "0.00001");
        assert_eq!(v(Value::F(1.25)), "1.25");
        assert_eq!(v(Value::F(f64::INFINITY)), "+Inf");
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\"b\\c\nd");
        assert_eq!(s, r#"a\"b\\c\nd"#);
        let mut s = String::new();
        sanitize_label_name(&mut s, "com.example/é-x_1");
        assert_eq!(s, "com_example___x_1");
    }

    #[test]
    fn empty_family_vanishes() {
        let mut s = String::from("x\n");
        Family::begin(&mut s, "a_total", Kind::Counter, "help").end();
        assert_eq!(s, "x\n");
        let mut f = Family::begin(&mut s, "a_total", Kind::Counter, "two\nlines \\");
        f.sample("", &[], Value::U(1));
        f.sample("id=\"/\"", &[("cpu", "total")], Value::U(2));
        f.end();
        assert_eq!(
            s,
            "x\n# HELP a_total two\\nlines \\\\\n# TYPE a_total counter\na_total 1\na_total{id=\"/\",cpu=\"total\"} 2\n"
        );
    }
}
