//! Running the `nft` binary and reading berth's table back from `nft -j`.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{FirewallError, PortMapping, Proto, COMMENT_PREFIX};

const NFT: &str = "nft";

/// Applies `script` with `nft -f -`: the kernel commits the whole script as one transaction
/// or nothing of it. `action` names the operation in errors.
pub(crate) fn apply(script: &str, action: &str) -> Result<(), FirewallError> {
    tracing::trace!(action, script, "nft -f -");
    let mut child = Command::new(NFT)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    // The pipe is taken so that it is closed (EOF for nft) before we wait.
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(FirewallError::Io)?;
    }
    let out = child.wait_with_output().map_err(FirewallError::Io)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FirewallError::Nft {
            action: action.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `nft -j <args>` and parses its output.
pub(crate) fn json(args: &[&str], action: &str) -> Result<Value, FirewallError> {
    let out = Command::new(NFT)
        .arg("-j")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error)?;
    if !out.status.success() {
        return Err(FirewallError::Nft {
            action: action.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| FirewallError::Parse(format!("nft -j {}: {e}", args.join(" "))))
}

fn spawn_error(e: std::io::Error) -> FirewallError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FirewallError::NftMissing
    } else {
        FirewallError::Io(e)
    }
}

/// Whether `table inet <name>` exists.
pub(crate) fn table_exists(name: &str) -> Result<bool, FirewallError> {
    let v = json(&["list", "tables", "inet"], "list tables")?;
    let found = items(&v).any(|item| {
        item.get("table").is_some_and(|t| {
            t.get("family").and_then(Value::as_str) == Some("inet")
                && t.get("name").and_then(Value::as_str) == Some(name)
        })
    });
    Ok(found)
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// One element of one of our sets or maps, as read back from the kernel.
#[derive(Debug, Clone)]
pub(crate) struct Elem {
    /// The set or map it is in.
    pub set: String,
    /// Its key in nft syntax, ready for `delete element`.
    pub key: String,
    /// The network it belongs to (from its comment), if it carries one of ours.
    pub network: Option<String>,
    /// For the port maps: the mapping it encodes.
    pub port: Option<PortMapping>,
}

/// What `nft -j list table inet <t>` says about our table.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub elems: Vec<Elem>,
    pub rules: usize,
}

/// Lists our table; `Ok(None)` when it does not exist.
pub(crate) fn list_table(table: &str) -> Result<Option<Listing>, FirewallError> {
    if !table_exists(table)? {
        return Ok(None);
    }
    let v = json(&["list", "table", "inet", table], "list table")?;
    let mut listing = Listing::default();
    for item in items(&v) {
        if item.get("rule").is_some() {
            listing.rules += 1;
            continue;
        }
        let Some(set) = item.get("set").or_else(|| item.get("map")) else {
            continue;
        };
        let name = set
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let types: Vec<&str> = match set.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let is_map = item.get("map").is_some();
        for e in set
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // A map element is `[key, data]`; a set element is the key alone.
            let (k, data) = match (is_map, e.as_array()) {
                (true, Some(pair)) if pair.len() == 2 => (&pair[0], Some(&pair[1])),
                _ => (e, None),
            };
            // A key with a comment comes wrapped: {"elem": {"val": KEY, "comment": "..."}}.
            let (val, comment) = match k.get("elem") {
                Some(inner) => (
                    inner.get("val").unwrap_or(&Value::Null),
                    inner.get("comment").and_then(Value::as_str),
                ),
                None => (k, None),
            };
            let key = render(val, &types)
                .ok_or_else(|| FirewallError::Parse(format!("element of {name}: {val}")))?;
            let network = comment
                .and_then(|c| c.strip_prefix(COMMENT_PREFIX))
                .map(str::to_string);
            let port = match (data, &network) {
                (Some(d), Some(net)) => port_of(&name, val, d, net),
                _ => None,
            };
            listing.elems.push(Elem {
                set: name.clone(),
                key,
                network,
                port,
            });
        }
    }
    Ok(Some(listing))
}

/// Renders a JSON set key back into nft syntax; `types` gives each concatenated field's type
/// (names must be quoted, addresses and numbers must not).
fn render(v: &Value, types: &[&str]) -> Option<String> {
    if let Some(parts) = v.get("concat").and_then(Value::as_array) {
        let fields: Option<Vec<String>> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| render_one(p, types.get(i).copied().unwrap_or("")))
            .collect();
        return fields.map(|f| f.join(" . "));
    }
    render_one(v, types.first().copied().unwrap_or(""))
}

fn render_one(v: &Value, ty: &str) -> Option<String> {
    match v {
        Value::String(s) if ty == "ifname" => Some(format!("\"{s}\"")),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                let addr = p.get("addr")?.as_str()?;
                let len = p.get("len")?.as_u64()?;
                Some(format!("{addr}/{len}"))
            } else if let Some(r) = o.get("range").and_then(Value::as_array) {
                Some(format!(
                    "{}-{}",
                    render_one(r.first()?, ty)?,
                    render_one(r.get(1)?, ty)?
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Decodes an element of one of the dnat maps back into the mapping it encodes.
fn port_of(set: &str, key: &Value, data: &Value, network: &str) -> Option<PortMapping> {
    let k = key.get("concat")?.as_array()?;
    let d = data.get("concat")?.as_array()?;
    let proto = match k.first()?.as_str()? {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let (host_ip, host_port) = match (set, k.len()) {
        ("dnat4" | "dnat6", 3) => (Some(k[1].as_str()?.parse::<IpAddr>().ok()?), &k[2]),
        ("dnat4any" | "dnat6any", 2) => (None, &k[1]),
        _ => return None,
    };
    Some(PortMapping {
        proto,
        host_ip,
        host_port: u16::try_from(host_port.as_u64()?).ok()?,
        container_ip: d.first()?.as_str()?.parse().ok()?,
        container_port: u16::try_from(d.get(1)?.as_u64()?).ok()?,
        network: network.to_string(),
    })
}
