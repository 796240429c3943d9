//! Hidden helper for `bench/attach-vs-cni.sh`: times berthd's attach and detach through the
//! API client (`berth::api::Client`), without the netctl process around each call.
//!
//! ```text
//! attach_bench SOCKET api   NSPREFIX FIRST LAST       attach /run/netns/NSPREFIX<i> one by one,
//!                                                     then detach them; one line per call:
//!                                                     `attach <us>` / `detach <us>`
//! attach_bench SOCKET scale NSPREFIX N PID PROBES     attach NSPREFIX1..N one by one; per-decile
//!                                                     p50/p99, berthd's (PID) VmRSS at 10, 100,
//!                                                     1000..., and at each of those sizes PROBES
//!                                                     attach+detach cycles of NSPREFIXprobe
//! attach_bench SOCKET par   NSPREFIX N THREADS        detach 1..N (attached by `scale`) from
//!                                                     THREADS clients at once, then attach
//!                                                     them again the same way
//! ```
//! Everything is left attached; the script's cleanup removes it.

use berth::api::{AttachRequest, Client, Target};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ns(prefix: &str, i: &str) -> String {
    format!("/run/netns/{prefix}{i}")
}

fn attach(c: &Client, path: &str) -> Result<Duration, String> {
    let t = Instant::now();
    c.attach(&AttachRequest {
        netns: Some(path.into()),
        ..Default::default()
    })
    .map_err(|e| format!("attach {path}: {e}"))?;
    Ok(t.elapsed())
}

fn detach(c: &Client, path: &str) -> Result<Duration, String> {
    let t = Instant::now();
    c.detach(
        &Target {
            netns: Some(path.into()),
            ..Default::default()
        },
        None,
    )
    .map_err(|e| format!("detach {path}: {e}"))?;
    Ok(t.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(v: &[Duration]) -> String {
    let mut s = v.to_vec();
    s.sort();
    format!(
        "n={:<4} p50={:7.2} ms  p99={:7.2} ms  max={:7.2} ms",
        s.len(),
        ms(pct(&s, 50.0)),
        ms(pct(&s, 99.0)),
        ms(*s.last().unwrap_or(&Duration::ZERO))
    )
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn arg<T: std::str::FromStr>(a: &[String], i: usize, what: &str) -> Result<T, String> {
    a.get(i)
        .ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}: {:?}", a[i]))
}

fn run(a: &[String]) -> Result<(), String> {
    let c = Client::new(arg::<String>(a, 0, "SOCKET")?).with_timeout(Duration::from_secs(120));
    let mode: String = arg(a, 1, "mode")?;
    let prefix: String = arg(a, 2, "NSPREFIX")?;
    match mode.as_str() {
        "api" => {
            let (first, last): (usize, usize) = (arg(a, 3, "FIRST")?, arg(a, 4, "LAST")?);
            for i in first..=last {
                println!(
                    "attach {}",
                    attach(&c, &ns(&prefix, &i.to_string()))?.as_micros()
                );
            }
            for i in first..=last {
                println!(
                    "detach {}",
                    detach(&c, &ns(&prefix, &i.to_string()))?.as_micros()
                );
            }
        }
        "scale" => {
            let n: usize = arg(a, 3, "N")?;
            let pid: String = arg(a, 4, "PID")?;
            let probes: usize = arg(a, 5, "PROBES")?;
            let probe = ns(&prefix, "probe");
            let mut all = Vec::with_capacity(n);
            let start = Instant::now();
            let mut mark = 10;
            for i in 1..=n {
                all.push(attach(&c, &ns(&prefix, &i.to_string()))?);
                if i == mark || i == n {
                    // the window of the last decile: attaches (i - i/10, i]
                    let lo = if i <= 10 { 0 } else { i - i / 10 };
                    let mut p = Vec::with_capacity(probes);
                    for _ in 0..probes {
                        p.push(attach(&c, &probe)?);
                        detach(&c, &probe)?;
                        // a deleted veth keeps the kernel busy for a while (RCU, netns
                        // cleanup): let that finish so that the next attach is timed alone
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    println!(
                        "at {i:>5} endpoints: attaches {:>4}..{i:<5} {}  | probe {}  | berthd VmRSS {} KiB",
                        lo + 1,
                        summary(&all[lo..i]),
                        summary(&p),
                        rss_kib(&pid)
                    );
                    mark *= 10;
                }
            }
            println!(
                "scale: {n} sequential attaches in {:.2} s ({})",
                start.elapsed().as_secs_f64(),
                summary(&all)
            );
        }
        "par" => {
            let n: usize = arg(a, 3, "N")?;
            let threads: usize = arg(a, 4, "THREADS")?;
            for (what, op) in [
                (
                    "detach",
                    detach as fn(&Client, &str) -> Result<Duration, String>,
                ),
                ("attach", attach),
            ] {
                let next = Arc::new(AtomicUsize::new(1));
                let t = Instant::now();
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        let (c, next, prefix) = (c.clone(), next.clone(), prefix.clone());
                        std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                            let mut v = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                if i > n {
                                    return Ok(v);
                                }
                                v.push(op(&c, &ns(&prefix, &i.to_string()))?);
                            }
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for h in hs {
                    all.extend(
                        h.join()
                            .map_err(|_| "a client thread panicked".to_string())??,
                    );
                }
                let wall = t.elapsed();
                println!(
                    "par {what}: {n} from {threads} clients in {:.2} s = {:.0}/s ({})",
                    wall.as_secs_f64(),
                    n as f64 / wall.as_secs_f64(),
                    summary(&all)
                );
            }
        }
        m => return Err(format!("unknown mode {m:?} (api, scale or par)")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attach_bench: {e}");
            ExitCode::from(1)
        }
    }
}
