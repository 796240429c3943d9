//! deploy/: Prometheus configuration, alert rules and their unit tests, Grafana dashboards and
//! provisioning, compose, systemd and Kubernetes files. No root needed.
//!
//! - `promtool check config`, `check rules` and `test rules` (skipped, with a message, only
//!   when promtool is not installed; scripts/install-deps.sh installs it);
//! - every alert has severity, summary, description, a runbook section in docs/alerts.md, and
//!   unit tests that show it firing and staying quiet;
//! - every dashboard is valid JSON, selects its datasource through `${datasource}` only, has
//!   units, and queries only families berthd exports (issue 5, the metrics crate, and the
//!   berthd-side families named in `BERTHD_FAMILIES`);
//! - the generated Kubernetes files are what the generator makes from today's sources, and the
//!   manifests hold together (selectors, ports, mounts, ConfigMaps, rule groups);
//! - a real Prometheus loads `alerts.yml` unchanged, scrapes a static exposition served by this
//!   test, and the OOM and reconcile alerts fire while the ones with a `for:` go pending; every
//!   query of every dashboard runs and returns data.
//!
//! The live end-to-end test (berthd's own /metrics with containers holding memory, OOM-killed
//! and throttled) belongs with berthd's metrics endpoint; it reuses `common/prometheus.rs`.

#[path = "common/cadvisor_families.rs"]
mod cadvisor_families;
#[path = "common/prometheus.rs"]
mod prometheus;

use prometheus::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Metric names

/// berth_* families that berthd itself (src/agent/metrics.rs, not the per-container collector
/// of the metrics crate) exports, as issue 5 describes them ("per-network endpoint and
/// free-address counts", "the agent's ... reconcile errors"). The alert rules and dashboards
/// use exactly these names; all are in berthd's source (and found there by
/// `exported_families` too).
const BERTHD_FAMILIES: &[&str] = &[
    // gauge {network}: endpoints attached to the network
    "berth_network_endpoints",
    // gauge {network}: addresses the network can hand out (all its subnets)
    "berth_network_addresses",
    // gauge {network}: addresses of the network not leased
    "berth_network_free_addresses",
    // counter: reconcile passes (start, periodic, on demand) that returned an error
    "berth_reconcile_errors_total",
    // gauge = 1 {network, name, interface, address}: which container interface is on which
    // network; the network dashboard joins container_network_* to networks through it.
    "berth_network_endpoint_info",
];

/// Series Prometheus makes for every target.
const PROMETHEUS_SERIES: &[&str] = &["up", "scrape_duration_seconds", "scrape_samples_scraped"];

/// Every family name the metrics crate and berthd's endpoint write (string literals in
/// metrics/src and src/agent/metrics.rs), so the dashboards follow the code: a family renamed
/// there fails here.
fn exported_families() -> BTreeSet<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    let dir = repo().join("metrics/src");
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        files.push(e.unwrap().path());
    }
    files.push(repo().join("src/agent/metrics.rs"));
    let mut out = BTreeSet::new();
    for p in files {
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for piece in text.split('"').skip(1).step_by(2) {
            let is_family = ["container_", "machine_", "berth_", "process_"]
                .iter()
                .any(|pre| piece.starts_with(pre))
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if is_family {
                out.insert(piece.to_string());
            }
        }
    }
    out
}

fn known_names() -> BTreeSet<String> {
    let mut k = exported_families();
    for n in cadvisor_families::ISSUE5_FAMILIES
        .iter()
        .chain(BERTHD_FAMILIES)
        .chain(PROMETHEUS_SERIES)
    {
        k.insert(n.to_string());
    }
    k
}

/// Checks that brackets, braces and parentheses balance outside string literals.
fn check_balanced(expr: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(format!("unterminated string in `{expr}`"));
                }
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = stack.pop();
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open != Some(want) {
                    return Err(format!("unbalanced `{c}` in `{expr}`"));
                }
            }
            _ => {}
        }
    }
    match stack.last() {
        Some(c) => Err(format!("unclosed `{c}` in `{expr}`")),
        None => Ok(()),
    }
}

/// The metric names a PromQL expression selects (a small tokenizer: strings, label matchers
/// and range/offset brackets removed; function calls, keywords, numbers, durations and
/// grouping label lists skipped).
fn metric_names(expr: &str) -> Result<Vec<String>, String> {
    check_balanced(expr)?;
    // Drop strings and the insides of {...} and [...].
    let mut code = String::new();
    let (mut depth_brace, mut depth_bracket) = (0, 0);
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace == 0 && depth_bracket == 0 => code.push(c),
            _ => {}
        }
    }
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const WORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
        // aggregation operators, which may be followed by `by (...)` before their parentheses
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let b = code.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (c == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit()) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &code[start..i];
            let after = skip_ws(i);
            let is_var = start > 0 && b[start - 1] == b'$';
            if GROUPING.contains(&word) {
                if after < b.len() && b[after] == b'(' {
                    let mut depth = 0;
                    i = after;
                    while i < b.len() {
                        match b[i] {
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    i += 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
            } else if is_var || WORDS.contains(&word) || (after < b.len() && b[after] == b'(') {
                // a Grafana variable, an operator keyword, or a function call
            } else {
                names.push(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    if names.is_empty() {
        return Err(format!("no metric selected in `{expr}`"));
    }
    Ok(names)
}

#[test]
fn the_metric_name_scanner_finds_names_and_only_names() {
    let n = metric_names(
        r#"sum by (instance, name) (rate(a_total{x=~"$y", z="}"}[$__rate_interval])) / on (instance) group_left (network) b{c="d"} > 0.9 and c offset 5m or 2^62"#,
    )
    .unwrap();
    assert_eq!(n, ["a_total", "b", "c"]);
    assert!(metric_names("sum(rate(x[5m])").is_err());
    assert!(metric_names("x{a=\"b\"]").is_err());
    assert!(metric_names("time()").is_err());
}

// ---------------------------------------------------------------------------------------------
// Prometheus: promtool

fn promtool() -> Option<PathBuf> {
    let p = which("promtool");
    if p.is_none() {
        eprintln!(
            "SKIPPED: promtool is not installed (Debian package `prometheus`, installed by \
             scripts/install-deps.sh); the promtool checks of deploy/prometheus did not run"
        );
    }
    p
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn promtool_checks_config_rules_and_rule_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = deploy_dir().join("prometheus");
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml")),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(dir.join("alerts.yml")),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(dir.join("alerts_test.yml")),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Alert rules

fn alert_rules() -> Vec<Value> {
    let doc = yaml(&deploy_dir().join("prometheus/alerts.yml"));
    let mut out = Vec::new();
    for g in doc["groups"].as_array().expect("alerts.yml: groups") {
        for r in g["rules"].as_array().expect("group rules") {
            out.push(r.clone());
        }
    }
    out
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_has_severity_annotations_a_runbook_and_known_metrics() {
    let docs = std::fs::read_to_string(repo().join("docs/alerts.md")).expect("docs/alerts.md");
    let anchors = anchors(&docs);
    let known = known_names();
    let rules = alert_rules();
    assert!(
        rules.len() >= 9,
        "expected every alert of issue 6, found {}",
        rules.len()
    );
    let mut seen = BTreeSet::new();
    for r in &rules {
        let name = r["alert"]
            .as_str()
            .expect("only alerting rules in alerts.yml");
        assert!(seen.insert(name.to_string()), "{name} defined twice");
        let sev = r["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity {sev:?}"
        );
        for a in ["summary", "description", "runbook_url"] {
            let v = r["annotations"][a].as_str().unwrap_or("");
            assert!(!v.trim().is_empty(), "{name}: no {a}");
        }
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url
            .strip_prefix("docs/alerts.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not docs/alerts.md#..."));
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
        assert!(
            anchors.contains(anchor),
            "{name}: docs/alerts.md has no section #{anchor}"
        );
        let expr = r["expr"].as_str().expect("expr");
        for m in metric_names(expr).unwrap_or_else(|e| panic!("{name}: {e}")) {
            assert!(known.contains(&m), "{name}: unknown metric {m}");
        }
    }
    // Every alert is tested firing and quiet.
    let tests = yaml(&deploy_dir().join("prometheus/alerts_test.yml"));
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().expect("tests") {
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            let n = a["alertname"].as_str().unwrap().to_string();
            match a["exp_alerts"].as_array() {
                Some(v) if !v.is_empty() => fires.insert(n),
                _ => quiet.insert(n),
            };
        }
    }
    for n in &seen {
        assert!(fires.contains(n), "alerts_test.yml never shows {n} firing");
        assert!(quiet.contains(n), "alerts_test.yml never shows {n} quiet");
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboards

fn uids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "uid" {
                    out.push(x.as_str().unwrap_or("").to_string());
                }
                uids(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| uids(x, out)),
        _ => {}
    }
}

fn uses_datasource_variable(ds: &Value) -> bool {
    ds["uid"] == "${datasource}" && (ds["type"] == "prometheus" || ds["type"].is_null())
}

#[test]
fn dashboards_use_the_datasource_variable_units_and_known_metrics() {
    let known = known_names();
    let mut dash_uids = BTreeSet::new();
    for path in dashboard_files() {
        let f = path.file_name().unwrap().to_string_lossy().to_string();
        let d = load_dashboard(&path);
        let uid = d["uid"].as_str().unwrap_or_else(|| panic!("{f}: no uid"));
        assert!(
            dash_uids.insert(uid.to_string()),
            "{f}: uid {uid} used twice"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{f}: no title"
        );
        let sv = d["schemaVersion"].as_i64().unwrap_or(0);
        assert!((36..=41).contains(&sv), "{f}: schemaVersion {sv}");
        // No hard-coded datasource: the only uids are the dashboard's own, the variable and
        // Grafana's built-in annotation source.
        let mut all = Vec::new();
        uids(&d, &mut all);
        for u in all {
            assert!(
                u == uid || u == "${datasource}" || u == "-- Grafana --",
                "{f}: hard-coded uid {u:?}"
            );
        }
        let vars: BTreeMap<String, Value> = d["templating"]["list"]
            .as_array()
            .expect("templating.list")
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
            .collect();
        assert_eq!(vars["datasource"]["type"], "datasource", "{f}: $datasource");
        assert_eq!(
            vars["datasource"]["query"], "prometheus",
            "{f}: $datasource"
        );
        for v in ["instance", "network", "container"] {
            let var = vars
                .get(v)
                .unwrap_or_else(|| panic!("{f}: no ${v} variable"));
            assert!(
                uses_datasource_variable(&var["datasource"]),
                "{f}: ${v} datasource"
            );
        }
        let mut n_targets = 0;
        for p in panels(&d) {
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                uses_datasource_variable(&p["datasource"]),
                "{f}: {title}: datasource"
            );
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(!unit.is_empty(), "{f}: {title}: no unit");
            let gp = &p["gridPos"];
            assert!(gp["w"].as_i64().unwrap_or(0) > 0 && gp["h"].as_i64().unwrap_or(0) > 0);
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{f}: {title}: no targets"));
            assert!(!targets.is_empty(), "{f}: {title}: no targets");
            for t in targets {
                n_targets += 1;
                assert!(
                    uses_datasource_variable(&t["datasource"]),
                    "{f}: {title}: target datasource"
                );
                let expr = t["expr"].as_str().unwrap_or("");
                assert!(!expr.trim().is_empty(), "{f}: {title}: empty expr");
                for m in metric_names(expr).unwrap_or_else(|e| panic!("{f}: {title}: {e}")) {
                    assert!(
                        known.contains(&m),
                        "{f}: {title}: unknown metric {m} in `{expr}`"
                    );
                }
            }
        }
        assert!(n_targets >= 5, "{f}: only {n_targets} queries");
    }
    for q in dashboard_queries() {
        let e = q.substituted(
            &[("instance", ".*"), ("container", ".*"), ("network", ".*")],
            "1m",
            "1h",
        );
        for m in metric_names(&e).unwrap_or_else(|e| panic!("{} {}: {e}", q.dashboard, q.what)) {
            assert!(
                known.contains(&m),
                "{} {}: unknown metric {m}",
                q.dashboard,
                q.what
            );
        }
    }
    for want in [
        "berth-host",
        "berth-container",
        "berth-network",
        "berth-agent",
    ] {
        assert!(dash_uids.contains(want), "no dashboard {want}");
    }
}

#[test]
fn grafana_provisioning_and_compose_point_at_the_deploy_files() {
    let ds = yaml(&deploy_dir().join("grafana/provisioning/datasources/prometheus.yaml"));
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    let prov = yaml(&deploy_dir().join("grafana/provisioning/dashboards/berth.yaml"));
    let dash_path = prov["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");

    let compose_dir = deploy_dir().join("compose");
    let compose = yaml(&compose_dir.join("compose.yaml"));
    let mut mounts = BTreeMap::new();
    for svc in ["prometheus", "alertmanager", "grafana"] {
        let s = &compose["services"][svc];
        assert_eq!(s["network_mode"], "host", "{svc}: network_mode");
        for v in s["volumes"].as_array().expect("volumes") {
            let v = v.as_str().unwrap();
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            if src.starts_with('.') {
                let p = compose_dir.join(src);
                assert!(p.exists(), "{svc}: volume source {src} does not exist");
                mounts.insert(dst.to_string(), p.canonicalize().unwrap());
            }
        }
    }
    assert_eq!(
        mounts[dash_path],
        deploy_dir()
            .join("grafana/dashboards")
            .canonicalize()
            .unwrap(),
        "grafana's dashboard provider path is not the mounted dashboards directory"
    );
    assert!(mounts.contains_key("/etc/prometheus"));
    // Prometheus in compose reads the same prometheus.yml, which scrapes berthd's default port.
    let cfg = yaml(&deploy_dir().join("prometheus/prometheus.yml"));
    let berthd = cfg["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "berthd")
        .expect("job berthd");
    assert_eq!(berthd["static_configs"][0]["targets"][0], "127.0.0.1:9480");
    assert_eq!(berthd["scrape_interval"], "15s");
    yaml(&deploy_dir().join("alertmanager/alertmanager.yml"));
}

// ---------------------------------------------------------------------------------------------
// systemd, tmpfiles, sysctl

#[test]
fn systemd_unit_tmpfiles_and_sysctl() {
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/berthd.service")).unwrap();
    let keys: BTreeMap<&str, &str> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    for (k, v) in [
        ("Delegate", "yes"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("ProtectKernelTunables", "no"),
        ("ProtectControlGroups", "no"),
        ("KillMode", "process"),
    ] {
        assert_eq!(keys.get(k).copied(), Some(v), "berthd.service: {k}");
    }
    assert!(keys["ExecStart"].contains("--metrics-addr 127.0.0.1:9480"));
    let caps: BTreeSet<&str> = keys["CapabilityBoundingSet"].split_whitespace().collect();
    for c in ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE"] {
        assert!(caps.contains(c), "CapabilityBoundingSet lacks {c}");
    }
    for c in ["CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_TIME"] {
        assert!(!caps.contains(c), "CapabilityBoundingSet has {c}");
    }
    if let Some(analyze) = which("systemd-analyze") {
        // The unit as installed, with a binary that exists here.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("berthd.service");
        std::fs::write(&p, unit.replace("/usr/local/bin/berthd", "/bin/true")).unwrap();
        let out = Command::new(analyze)
            .arg("verify")
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "systemd-analyze verify: {err}"
        );
    }
    let tmpfiles = std::fs::read_to_string(deploy_dir().join("systemd/berth.conf")).unwrap();
    assert!(tmpfiles
        .lines()
        .any(|l| l.starts_with("d ") && l.contains("/run/berth ")));
    if let Some(t) = which("systemd-tmpfiles") {
        let root = tempfile::tempdir().unwrap();
        run_ok(
            Command::new(t)
                .arg(format!("--root={}", root.path().display()))
                .arg("--create")
                .arg(deploy_dir().join("systemd/berth.conf")),
        );
        assert!(root.path().join("run/berth").is_dir());
    }
    let sysctl = std::fs::read_to_string(deploy_dir().join("sysctl/99-berth.conf")).unwrap();
    assert!(sysctl
        .lines()
        .any(|l| l.replace(' ', "") == "net.ipv4.ip_forward=1"));
    for l in sysctl
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let key = l.split('=').next().unwrap().trim().trim_start_matches('-');
        assert!(
            key.split('.').all(|p| !p.is_empty()),
            "99-berth.conf: bad line {l:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

fn k8s_dir() -> PathBuf {
    deploy_dir().join("kubernetes")
}

#[test]
fn generated_kubernetes_files_match_the_generator() {
    let out = tempfile::tempdir().unwrap();
    run_ok(Command::new(k8s_dir().join("gen-prometheusrule.sh")).arg(out.path()));
    for f in ["prometheusrule.yaml", "dashboards.yaml"] {
        let want = std::fs::read_to_string(out.path().join(f)).unwrap();
        let have = std::fs::read_to_string(k8s_dir().join(f)).unwrap_or_default();
        assert!(
            want == have,
            "deploy/kubernetes/{f} is not what gen-prometheusrule.sh makes from today's \
             alerts.yml and dashboards: run deploy/kubernetes/gen-prometheusrule.sh and commit"
        );
    }
}

fn k8s_objects() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for p in files {
        let f = p.file_name().unwrap().to_string_lossy().to_string();
        for d in yaml_docs(&p) {
            out.push((f.clone(), d));
        }
    }
    out
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("selector labels");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels[k] == *v)
}

#[test]
fn kubernetes_manifests_hold_together() {
    let objs = k8s_objects();
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut files = BTreeSet::new();
    for (f, o) in &objs {
        let kind = o["kind"].as_str().unwrap_or_else(|| panic!("{f}: no kind"));
        assert!(
            o["apiVersion"].as_str().is_some_and(|s| !s.is_empty()),
            "{f}: no apiVersion"
        );
        if kind == "Kustomization" {
            for r in o["resources"].as_array().unwrap() {
                files.insert(r.as_str().unwrap().to_string());
            }
            continue;
        }
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        assert!(!name.is_empty(), "{f}: {kind} without metadata.name");
        if kind != "Namespace" {
            assert_eq!(
                o["metadata"]["namespace"], "berth-system",
                "{f}: {kind}/{name} namespace"
            );
        }
        by_kind.entry(kind.to_string()).or_default().push(o.clone());
    }
    // kustomization.yaml lists every manifest.
    let on_disk: BTreeSet<String> = objs
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(files, on_disk, "kustomization.yaml resources");

    let ds = &by_kind["DaemonSet"][0];
    let spec = &ds["spec"];
    let tmpl_labels = &spec["template"]["metadata"]["labels"];
    assert!(
        labels_match(&spec["selector"]["matchLabels"], tmpl_labels),
        "DaemonSet selector"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    let volumes: BTreeMap<String, String> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["hostPath"]["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut host_paths = BTreeSet::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let n = m["name"].as_str().unwrap();
        let hp = volumes
            .get(n)
            .unwrap_or_else(|| panic!("volumeMount {n} has no volume"));
        host_paths.insert(hp.clone());
    }
    for p in [
        "/sys/fs/cgroup",
        "/run/berth",
        "/var/lib/berth",
        "/run/netns",
    ] {
        assert!(
            host_paths.contains(p),
            "DaemonSet does not mount the host's {p}"
        );
    }
    let port_names: BTreeSet<&str> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = &c[probe]["httpGet"]["port"];
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz");
        assert!(
            port_names.contains(port.as_str().unwrap_or("")),
            "{probe} port {port}"
        );
    }
    assert!(c["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().starts_with("--metrics-addr=")));

    let svc = &by_kind["Service"][0];
    assert!(
        labels_match(&svc["spec"]["selector"], tmpl_labels),
        "Service selector"
    );
    let svc_port = svc["spec"]["ports"][0]["name"].as_str().unwrap();
    assert!(port_names.contains(svc["spec"]["ports"][0]["targetPort"].as_str().unwrap()));
    // The Service's name is the job label the rules select on.
    assert_eq!(svc["metadata"]["name"], "berthd");

    let sm = &by_kind["ServiceMonitor"][0];
    assert!(labels_match(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    assert_eq!(sm["spec"]["endpoints"][0]["port"], svc_port);

    let rule = &by_kind["PrometheusRule"][0];
    let alerts = yaml(&deploy_dir().join("prometheus/alerts.yml"));
    assert_eq!(
        rule["spec"]["groups"], alerts["groups"],
        "PrometheusRule groups != alerts.yml groups"
    );

    let mut keys = BTreeSet::new();
    for cm in &by_kind["ConfigMap"] {
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        for (k, v) in cm["data"].as_object().unwrap() {
            let file = deploy_dir().join("grafana/dashboards").join(k);
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|_| panic!("ConfigMap key {k} is no dashboard"));
            assert_eq!(
                v.as_str().unwrap(),
                text,
                "ConfigMap {k} differs from the dashboard"
            );
            keys.insert(k.clone());
        }
    }
    let files: BTreeSet<String> = dashboard_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(keys, files, "ConfigMap keys != dashboard files");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus against a static exposition

/// What a berthd with three containers would expose at `t` seconds after start, on its
/// `n`-th scrape: `hog` is in trouble everywhere (95% of its memory limit, an OOM kill on the
/// third scrape, 30% of periods throttled, 95% of its pids limit, IO stalls), `calm` has limits
/// and stays well inside them, `nolimit` has none (memory limit 0, no CFS counters, no pids
/// limit) and uses a lot. The host stalls on memory, network `web` is almost full, and the
/// reconcile error counter moves on the third scrape.
fn exposition(t: f64, n: usize, now: f64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let c = |name: &str| {
        let id = match name {
            "hog" => "a1",
            "calm" => "b2",
            _ => "c3",
        };
        format!(r#"id="/berth/{id}",image="busybox:latest",name="{name}""#)
    };
    let mut line = |m: &str, labels: &str, v: f64| {
        writeln!(s, "{m}{{{labels}}} {v}").unwrap();
    };
    let later = if n >= 3 { 1.0 } else { 0.0 };
    line("machine_cpu_cores", "", 2.0);
    line("machine_memory_bytes", "", 8e9);
    for (name, mem, limit) in [
        ("hog", 99_614_720.0, 104_857_600.0),
        ("calm", 10_485_760.0, 104_857_600.0),
        ("nolimit", 8e9, 0.0),
    ] {
        let l = c(name);
        let lx = |extra: &str| format!("{l},{extra}");
        line(
            "container_cpu_usage_seconds_total",
            &lx(r#"cpu="total""#),
            0.5 * t,
        );
        line("container_cpu_user_seconds_total", &l, 0.3 * t);
        line("container_cpu_system_seconds_total", &l, 0.2 * t);
        line("container_spec_cpu_shares", &l, 1024.0);
        line("berth_container_spec_cpu_weight", &l, 100.0);
        if name != "nolimit" {
            let thr = if name == "hog" { 0.3 } else { 0.02 };
            line("container_cpu_cfs_periods_total", &l, 10.0 * t);
            line(
                "container_cpu_cfs_throttled_periods_total",
                &l,
                10.0 * thr * t,
            );
            line("container_cpu_cfs_throttled_seconds_total", &l, thr * t);
            line("container_spec_cpu_quota", &l, 50000.0);
            line("container_spec_cpu_period", &l, 100000.0);
            line("berth_container_pids_limit", &l, 100.0);
            line(
                "container_spec_memory_reservation_limit_bytes",
                &l,
                limit / 2.0,
            );
            line("container_spec_memory_swap_limit_bytes", &l, limit * 2.0);
        }
        line("container_memory_working_set_bytes", &l, mem);
        line("container_memory_usage_bytes", &l, mem + 1e6);
        line("container_memory_max_usage_bytes", &l, mem + 2e6);
        line("container_memory_rss", &l, mem * 0.8);
        line("container_memory_cache", &l, 1e6);
        line("container_memory_swap", &l, 4096.0);
        line("container_memory_mapped_file", &l, 8192.0);
        line("container_memory_failcnt", &l, t);
        line("container_spec_memory_limit_bytes", &l, limit);
        let oom = if name == "hog" {
            later
        } else if name == "nolimit" {
            3.0
        } else {
            0.0
        };
        line("container_oom_events_total", &l, oom);
        line("berth_container_oom_kills_total", &l, oom);
        for ev in ["low", "high", "max", "oom", "oom_kill"] {
            line(
                "berth_container_memory_events_total",
                &lx(&format!(r#"event="{ev}""#)),
                oom,
            );
        }
        let threads = match name {
            "hog" => 95.0,
            "calm" => 5.0,
            _ => 5000.0,
        };
        line("container_threads", &l, threads);
        line("container_processes", &l, threads);
        line(
            "container_threads_max",
            &l,
            if name == "nolimit" { 0.0 } else { 100.0 },
        );
        for (m, k) in [
            ("container_fs_reads_bytes_total", 4096.0),
            ("container_fs_writes_bytes_total", 8192.0),
            ("container_fs_reads_total", 1.0),
            ("container_fs_writes_total", 2.0),
        ] {
            line(m, &lx(r#"device="sda""#), k * t);
        }
        for (m, k) in [
            ("container_network_receive_bytes_total", 1500.0),
            ("container_network_transmit_bytes_total", 900.0),
            ("container_network_receive_packets_total", 10.0),
            ("container_network_transmit_packets_total", 8.0),
            ("container_network_receive_errors_total", 0.1),
            ("container_network_transmit_errors_total", 0.1),
            ("container_network_receive_packets_dropped_total", 0.2),
            ("container_network_transmit_packets_dropped_total", 0.2),
        ] {
            line(m, &lx(r#"interface="eth0""#), k * t);
        }
        // PSI alerts take rate(...[5m]), which a series a few seconds old underestimates by
        // (5 minutes / its age): the troubled counters run on an accelerated clock (x100) so
        // that 0.2 s/s of stall shows within the test's seconds.
        for (res, some, full) in [("cpu", 0.5, 0.4), ("memory", 0.05, 0.01), ("io", 0.3, 0.2)] {
            let f = if name == "hog" { 100.0 } else { 0.01 };
            let r = format!(r#"resource="{res}""#);
            line(
                "berth_container_pressure_some_seconds_total",
                &lx(&r),
                f * some * t,
            );
            line(
                "berth_container_pressure_full_seconds_total",
                &lx(&r),
                f * full * t,
            );
        }
        line("container_start_time_seconds", &l, now - 3600.0);
        line("container_last_seen", &l, now);
        line(
            "berth_container_info",
            &lx(&format!(r#"container_id="{name}0000""#)),
            1.0,
        );
        line(
            "berth_container_priority_info",
            &lx(r#"priority="normal""#),
            1.0,
        );
    }
    // accelerated x100, as the containers' PSI above
    for (res, full) in [("cpu", 0.0), ("memory", 0.25), ("io", 0.0001)] {
        let r = format!(r#"resource="{res}""#);
        line(
            "berth_host_pressure_some_seconds_total",
            &r,
            100.0 * (full + 0.001) * t,
        );
        line(
            "berth_host_pressure_full_seconds_total",
            &r,
            100.0 * full * t,
        );
    }
    // As src/agent/metrics.rs: one series per network, all its subnets together.
    for (net, size, free, eps) in [("web", 253.0, 10.0, 1.0), ("berth", 65533.0, 65531.0, 2.0)] {
        let n = format!(r#"network="{net}""#);
        line("berth_network_endpoints", &n, eps);
        line("berth_network_addresses", &n, size);
        line("berth_network_free_addresses", &n, free);
    }
    for (net, name, addr) in [
        ("web", "hog", "10.210.1.2"),
        ("berth", "calm", "10.209.0.2"),
        ("berth", "nolimit", "10.209.0.3"),
    ] {
        let l = format!(r#"address="{addr}",interface="eth0",name="{name}",network="{net}""#);
        line("berth_network_endpoint_info", &l, 1.0);
    }
    line("berth_reconcile_errors_total", "", later);
    line("berth_reconcile_runs_total", "", n as f64);
    line("berth_limit_restores_total", "", 1.0);
    line("berth_oom_events_total", "", later);
    line("berth_agent_scrape_duration_seconds", "", 0.003);
    line("berth_metrics_last_scrape_duration_seconds", "", 0.002);
    line("berth_metrics_containers", "", 3.0);
    line("berth_metrics_read_errors_total", "", 0.0);
    line("process_cpu_seconds_total", "", 0.01 * t);
    line("process_resident_memory_bytes", "", 12e6);
    line("process_virtual_memory_bytes", "", 300e6);
    line("process_open_fds", "", 20.0);
    line("process_max_fds", "", 1048576.0);
    line("process_start_time_seconds", "", now - t);
    s
}

/// A /metrics endpoint on 127.0.0.1 serving `exposition`; stops on drop.
struct Exposition {
    port: u16,
    stop: Arc<AtomicBool>,
    scrapes: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exposition {
    fn start() -> Exposition {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicUsize::new(0));
        let (st, sc) = (stop.clone(), scrapes.clone());
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let mut conn = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                let (status, body) = if req.starts_with(b"GET /metrics ") {
                    let n = sc.fetch_add(1, Ordering::SeqCst) + 1;
                    ("200 OK", exposition(t0.elapsed().as_secs_f64(), n, now))
                } else {
                    ("404 Not Found", String::from("not found\n"))
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Exposition {
            port,
            stop,
            scrapes,
            thread: Some(thread),
        }
    }
}

impl Drop for Exposition {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn the_static_exposition_uses_known_families_only() {
    let known = known_names();
    for l in exposition(10.0, 5, 1.7e9).lines() {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(
            known.contains(name),
            "fixture family {name} is not a berthd family"
        );
    }
}

#[test]
fn prometheus_loads_our_rules_and_scrapes_a_static_target() {
    if which("prometheus").is_none() {
        eprintln!("SKIPPED: prometheus is not installed (scripts/install-deps.sh installs it)");
        return;
    }
    let t0 = Instant::now();
    let exp = Exposition::start();
    let target = format!("127.0.0.1:{}", exp.port);
    // A second berthd target nobody listens on: BerthdDown must go pending for it only.
    let dead = format!("127.0.0.1:{}", free_port());
    let prom = Prometheus::start(&PromOptions::berthd(&[&target, &dead]))
        .unwrap_or_else(|e| panic!("{e}"));

    // The rules are deploy/prometheus/alerts.yml as committed.
    let groups = prom.api("/api/v1/rules", &[])["groups"]
        .as_array()
        .cloned()
        .unwrap();
    let loaded: usize = groups
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(loaded, alert_rules().len(), "rules loaded by prometheus");
    assert!(groups.iter().all(|g| g["file"]
        .as_str()
        .unwrap()
        .ends_with("deploy/prometheus/alerts.yml")));

    prom.wait_for_up("berthd", 1, Duration::from_secs(20));
    let t = Duration::from_secs(25);
    // No `for:`: firing once the counters have moved.
    prom.wait_for_alert(
        "BerthContainerOOMKilled",
        &[("name", "hog")],
        AlertState::Firing,
        t,
    );
    prom.wait_for_alert(
        "BerthdReconcileErrors",
        &[("instance", &target)],
        AlertState::Firing,
        t,
    );
    // `for:` of minutes: pending is as far as a test of seconds gets.
    for (alert, labels) in [
        ("BerthContainerMemoryNearLimit", vec![("name", "hog")]),
        ("BerthContainerCPUThrottled", vec![("name", "hog")]),
        ("BerthContainerPidsNearLimit", vec![("name", "hog")]),
        (
            "BerthContainerPressureStall",
            vec![("name", "hog"), ("resource", "io")],
        ),
        ("BerthHostPressureStall", vec![("resource", "memory")]),
        ("BerthNetworkAddressesLow", vec![("network", "web")]),
        ("BerthdDown", vec![("instance", dead.as_str())]),
    ] {
        prom.wait_for_alert(alert, &labels, AlertState::Pending, t);
    }
    // Healthy series raise nothing: not calm, not the container without limits, not the roomy
    // network, not the live berthd, and no alert outside the expected set.
    let expected: BTreeSet<(&str, &str)> = [
        ("BerthContainerOOMKilled", "hog"),
        ("BerthdReconcileErrors", ""),
        ("BerthContainerMemoryNearLimit", "hog"),
        ("BerthContainerCPUThrottled", "hog"),
        ("BerthContainerPidsNearLimit", "hog"),
        ("BerthContainerPressureStall", "hog"),
        ("BerthHostPressureStall", ""),
        ("BerthNetworkAddressesLow", ""),
        ("BerthdDown", ""),
    ]
    .into();
    for a in prom.alerts() {
        let l = &a["labels"];
        let key = (
            l["alertname"].as_str().unwrap(),
            l["name"].as_str().unwrap_or(""),
        );
        assert!(expected.contains(&key), "unexpected alert: {a:#}");
        assert_ne!(l["network"], "berth", "{a:#}");
        if key.0 == "BerthdDown" {
            assert_eq!(l["instance"], dead.as_str(), "{a:#}");
        }
        if key.0 == "BerthContainerPressureStall" {
            assert_eq!(l["resource"], "io", "{a:#}");
        }
        if key.0 == "BerthHostPressureStall" {
            assert_eq!(l["resource"], "memory", "{a:#}");
        }
    }
    assert!(exp.scrapes.load(Ordering::SeqCst) >= 3);

    // Every query of every dashboard is valid PromQL for Prometheus' own parser and returns
    // data from berthd's families (variables set to the troubled container and network).
    let vars = [
        ("instance", target.as_str()),
        ("container", "hog"),
        ("network", "web"),
    ];
    let mut empty = Vec::new();
    for q in dashboard_queries() {
        let e = q.substituted(&vars, "10s", "5m");
        if prom.query(&e).is_empty() {
            empty.push(format!("{} {}: {e}", q.dashboard, q.what));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
    eprintln!("prometheus end-to-end: {:.1} s", t0.elapsed().as_secs_f64());
}
