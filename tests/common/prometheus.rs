//! A real Prometheus server (Debian's `prometheus` package) for one test, on 127.0.0.1, using
//! the files in `deploy/` with only ports and intervals adjusted (the rules are loaded from
//! `deploy/prometheus/alerts.yml` itself), plus the pieces every end-to-end test of `deploy/`
//! needs: YAML read through python3-yaml, the queries of every dashboard panel, and a client
//! for the HTTP API.
//!
//! Used by `tests/deploy.rs` against a static exposition; the berthd end-to-end test (issue 6)
//! uses the same calls against a live berthd:
//!
//! ```ignore
//! let prom = Prometheus::start(&PromOptions::berthd(&[&format!("127.0.0.1:{metrics_port}")]))?;
//! prom.wait_for_up("berthd", 1, Duration::from_secs(15));
//! prom.wait_for_alert("BerthContainerOOMKilled", &[("name", "oomer")], AlertState::Firing, t);
//! for q in dashboard_queries() { prom.assert_has_data(&q.substituted(&vars)); }
//! ```
//!
//! Drop stops the server by its pid and removes its temporary directory.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The first of `names` found on PATH (or in /usr/bin, /usr/sbin).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A YAML file as JSON, through python3-yaml (no YAML crate in the workspace; the same parser
/// `deploy/kubernetes/gen-prometheusrule.sh` uses). Multi-document files give an array.
pub fn yaml_docs(path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,yaml\n\
             docs=[d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
             json.dump(docs, sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("python3 (python3-yaml, scripts/install-deps.sh): {e}"));
    assert!(
        out.status.success(),
        "{} is not valid YAML (or python3-yaml is missing: scripts/install-deps.sh):\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python3 printed JSON")
}

/// A single-document YAML file as JSON.
pub fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(
        docs.len(),
        1,
        "{}: expected one YAML document",
        path.display()
    );
    docs.remove(0)
}

/// A free TCP port on 127.0.0.1 (bound and released; nothing listens on it afterwards).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

pub struct PromOptions {
    /// Targets of the `berthd` job (host:port on loopback).
    pub targets: Vec<String>,
    /// scrape_interval and evaluation_interval (deploy/: 15s).
    pub interval: String,
}

impl PromOptions {
    pub fn berthd(targets: &[&str]) -> PromOptions {
        PromOptions {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            interval: "1s".into(),
        }
    }
}

/// `deploy/prometheus/prometheus.yml` with the test's adjustments: intervals, the berthd job's
/// targets, absolute paths for rule_files (the unchanged `alerts.yml`) and the fleet job's
/// file_sd files, no Alertmanager. Written as JSON, which Prometheus reads as YAML.
pub fn derived_config(opts: &PromOptions) -> Value {
    let dir = deploy_dir().join("prometheus");
    let mut cfg = yaml(&dir.join("prometheus.yml"));
    cfg["global"]["scrape_interval"] = json!(opts.interval);
    cfg["global"]["evaluation_interval"] = json!(opts.interval);
    let rules = cfg["rule_files"]
        .as_array()
        .expect("prometheus.yml: rule_files")
        .clone();
    cfg["rule_files"] = rules
        .iter()
        .map(|r| json!(dir.join(r.as_str().expect("rule file path"))))
        .collect();
    if let Some(o) = cfg.as_object_mut() {
        o.remove("alerting");
    }
    let jobs = cfg["scrape_configs"]
        .as_array_mut()
        .expect("prometheus.yml: scrape_configs");
    let mut seen_berthd = false;
    for job in jobs.iter_mut() {
        job["scrape_interval"] = json!(opts.interval);
        job["scrape_timeout"] = json!(opts.interval);
        if job["job_name"] == "berthd" {
            seen_berthd = true;
            job["static_configs"] = json!([{ "targets": opts.targets }]);
        }
        if let Some(sds) = job.get_mut("file_sd_configs").and_then(Value::as_array_mut) {
            for sd in sds {
                let files: Vec<Value> = sd["files"]
                    .as_array()
                    .expect("file_sd files")
                    .iter()
                    .map(|f| json!(dir.join(f.as_str().expect("file_sd path"))))
                    .collect();
                sd["files"] = json!(files);
            }
        }
    }
    assert!(seen_berthd, "prometheus.yml has no job_name: berthd");
    cfg
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Pending,
    Firing,
}

pub struct Prometheus {
    pub port: u16,
    pub base: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts prometheus on a free loopback port and waits for `/-/ready` (it is ready in
    /// about 0.2 s on this machine; a few retries cover a port taken in between).
    pub fn start(opts: &PromOptions) -> Result<Prometheus, String> {
        let bin =
            which("prometheus").ok_or("prometheus is not installed (scripts/install-deps.sh)")?;
        let cfg = serde_json::to_vec_pretty(&derived_config(opts)).unwrap();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("berth-prom-")
                .tempdir()
                .map_err(|e| format!("temp dir: {e}"))?;
            let cfg_path = dir.path().join("prometheus.yml");
            std::fs::write(&cfg_path, &cfg).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("prometheus.log"))
                .map_err(|e| format!("log: {e}"))?;
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", cfg_path.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            let mut p = Prometheus {
                port,
                base: format!("http://127.0.0.1:{port}"),
                dir,
                child: Some(child),
            };
            let t0 = Instant::now();
            last.clear();
            while t0.elapsed() < Duration::from_secs(15) {
                if p.get_status("/-/ready") == Some(200) {
                    return Ok(p);
                }
                if let Some(c) = p.child.as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        last = format!("prometheus exited ({st}): {}", p.log());
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last.is_empty() {
                last = format!("prometheus not ready after 15 s: {}", p.log());
            }
            // Drop stops it; try again on another port.
        }
        Err(last)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn get_status(&self, path: &str) -> Option<u16> {
        match ureq::get(&format!("{}{path}", self.base))
            .timeout(Duration::from_secs(2))
            .call()
        {
            Ok(r) => Some(r.status()),
            Err(ureq::Error::Status(s, _)) => Some(s),
            Err(_) => None,
        }
    }

    /// GET an API path; panics unless Prometheus answers `status: success`.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut req = ureq::get(&format!("{}{path}", self.base)).timeout(Duration::from_secs(10));
        for (k, v) in params {
            req = req.query(k, v);
        }
        let body: Value = match req.call() {
            Ok(r) => r.into_json().expect("JSON from the Prometheus API"),
            Err(ureq::Error::Status(_, r)) => r.into_json().unwrap_or(Value::Null),
            Err(e) => panic!("GET {path}: {e}"),
        };
        assert_eq!(body["status"], "success", "GET {path} {params:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's result vector (or scalar as a one-element list).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", expr)]);
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                data["result"].as_array().cloned().unwrap_or_default()
            }
            _ => vec![data["result"].clone()],
        }
    }

    pub fn assert_has_data(&self, expr: &str) {
        let r = self.query(expr);
        assert!(!r.is_empty(), "no data for `{expr}`");
    }

    /// Active targets (`/api/v1/targets`).
    pub fn targets(&self) -> Vec<Value> {
        self.api("/api/v1/targets", &[("state", "active")])["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until at least `n` targets of `job` are up (the first scrape of a new target can
    /// take ~5 s: service discovery updates are throttled).
    pub fn wait_for_up(&self, job: &str, n: usize, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            let up = self.query(&format!("up{{job=\"{job}\"}} == 1")).len();
            if up >= n {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "{up} of {n} {job} targets up after {timeout:?}: {:#?}\n{}",
                self.targets(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `/api/v1/alerts`: every pending or firing alert.
    pub fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts", &[])["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Alerts named `name` whose labels include `labels`, with their state.
    pub fn alert_states(&self, name: &str, labels: &[(&str, &str)]) -> Vec<AlertState> {
        self.alerts()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .filter(|a| labels.iter().all(|(k, v)| a["labels"][*k] == *v))
            .filter_map(|a| match a["state"].as_str() {
                Some("pending") => Some(AlertState::Pending),
                Some("firing") => Some(AlertState::Firing),
                _ => None,
            })
            .collect()
    }

    /// Waits until the alert reaches `at_least` (Pending is satisfied by Firing too).
    pub fn wait_for_alert(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: AlertState,
        timeout: Duration,
    ) {
        let t0 = Instant::now();
        loop {
            let states = self.alert_states(name, labels);
            let ok = match at_least {
                AlertState::Pending => !states.is_empty(),
                AlertState::Firing => states.contains(&AlertState::Firing),
            };
            if ok {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "{name} {labels:?} did not reach {at_least:?} in {timeout:?}; alerts: {:#?}",
                self.alerts()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Is something accepting on this loopback port?
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Dashboards

/// One PromQL query of a dashboard: a panel target, an annotation or a template variable.
#[derive(Clone, Debug)]
pub struct DashQuery {
    pub dashboard: String,
    /// "panel <title>", "annotation <name>" or "variable <name>"
    pub what: String,
    pub expr: String,
}

impl DashQuery {
    /// The query with Grafana's variables replaced: `$__rate_interval`/`$__interval` by
    /// `rate`, `$__range` by `range`, `${x}`/`$x` by `vars[x]`. Template variable queries
    /// `label_values(SELECTOR, label)` become SELECTOR.
    pub fn substituted(&self, vars: &[(&str, &str)], rate: &str, range: &str) -> String {
        let mut e = self.expr.clone();
        if let Some(inner) = e
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
        {
            e = match inner.rfind(',') {
                Some(i) if !inner[i..].contains('}') => inner[..i].trim().to_string(),
                _ => inner.trim().to_string(),
            };
        }
        e = e
            .replace("$__rate_interval", rate)
            .replace("$__interval", rate)
            .replace("$__range", range);
        // Longest names first, so $container is not eaten by a shorter $c.
        let mut vars = vars.to_vec();
        vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for (k, v) in vars {
            e = e
                .replace(&format!("${{{k}}}"), v)
                .replace(&format!("${k}"), v);
        }
        e
    }
}

pub fn dashboard_files() -> Vec<PathBuf> {
    let dir = deploy_dir().join("grafana/dashboards");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no dashboards in {}", dir.display());
    v
}

pub fn load_dashboard(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// Every panel, rows' nested panels included.
pub fn panels(dash: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        for q in p["panels"].as_array().into_iter().flatten() {
            out.push(q.clone());
        }
    }
    out
}

/// Every PromQL query of every dashboard.
pub fn dashboard_queries() -> Vec<DashQuery> {
    let mut out = Vec::new();
    for path in dashboard_files() {
        let d = load_dashboard(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(DashQuery {
                    dashboard: name.clone(),
                    what: format!("panel {:?} {}", p["title"], t["refId"]),
                    expr: t["expr"].as_str().unwrap_or("").to_string(),
                });
            }
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(e) = a["expr"].as_str() {
                out.push(DashQuery {
                    dashboard: name.clone(),
                    what: format!("annotation {}", a["name"]),
                    expr: e.to_string(),
                });
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                let q = v["query"]["query"]
                    .as_str()
                    .or(v["query"].as_str())
                    .unwrap_or("");
                out.push(DashQuery {
                    dashboard: name.clone(),
                    what: format!("variable {}", v["name"]),
                    expr: q.to_string(),
                });
            }
        }
    }
    out
}
