//! A small synchronous client of berthd's API: one HTTP/1.1 request per connection over a
//! `std` Unix stream. No async runtime, so the container path (`berth run --network`) can use
//! it without pulling tokio in.

use super::{
    AttachRequest, Detached, Endpoint, ErrorBody, Health, Network, NetworkCreate, ReconcileReport,
    Target,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("berthd is not running (nothing listens on {}): start it with `berthd &` or `systemctl start berthd`, or point BERTH_SOCKET at its socket", .socket.display())]
    NotRunning { socket: PathBuf },
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("talking to berthd on {}: {source}", .socket.display())]
    Io {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unexpected answer from berthd: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The stable error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A raw answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// berthd's API over its Unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

fn find_subslice(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: Duration::from_secs(120),
        }
    }

    pub fn with_timeout(mut self, t: Duration) -> Client {
        self.timeout = t;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One request; `body` is sent as JSON.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let io_err = |source| ClientError::Io {
            socket: self.socket.clone(),
            source,
        };
        let mut s = UnixStream::connect(&self.socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                socket: self.socket.clone(),
            },
            _ => io_err(e),
        })?;
        s.set_read_timeout(Some(self.timeout)).map_err(io_err)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io_err)?;
        let body = body.unwrap_or(b"");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: berthd\r\nUser-Agent: berth/{}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        let wrote = s.write_all(&out);
        let mut buf = Vec::new();
        let read = s.read_to_end(&mut buf);
        // berthd may answer early (413 for a body too large) and close before reading it all:
        // a complete answer wins over the write error
        match (wrote, read, parse_response(&buf)) {
            (_, _, Ok(r)) => Ok(r),
            (Err(e), _, _) | (_, Err(e), _) => Err(io_err(e)),
            (_, _, Err(e)) => Err(e),
        }
    }

    /// A request whose success body is JSON of type `T`.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let data = match body {
            Some(b) => {
                Some(serde_json::to_vec(b).map_err(|e| ClientError::Protocol(e.to_string()))?)
            }
            None => None,
        };
        let r = self.raw(method, path, data.as_deref())?;
        if !(200..300).contains(&r.status) {
            return Err(match serde_json::from_slice::<ErrorBody>(&r.body) {
                Ok(e) => ClientError::Api {
                    status: r.status,
                    code: e.code,
                    message: e.message,
                },
                Err(_) => ClientError::Api {
                    status: r.status,
                    code: "http_error".into(),
                    message: format!(
                        "berthd answered {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body).trim()
                    ),
                },
            });
        }
        serde_json::from_slice(&r.body).map_err(|e| {
            ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&r.body)))
        })
    }

    pub fn health(&self) -> Result<Health, ClientError> {
        self.call("GET", "/v1/health", None::<&()>)
    }

    pub fn networks(&self) -> Result<Vec<Network>, ClientError> {
        self.call("GET", "/v1/networks", None::<&()>)
    }

    pub fn network(&self, name: &str) -> Result<Network, ClientError> {
        self.call(
            "GET",
            &format!("/v1/networks/{}", encode(name)),
            None::<&()>,
        )
    }

    pub fn create_network(&self, req: &NetworkCreate) -> Result<Network, ClientError> {
        self.call("POST", "/v1/networks", Some(req))
    }

    pub fn delete_network(&self, name: &str, force: bool) -> Result<Network, ClientError> {
        let q = if force { "?force=true" } else { "" };
        self.call(
            "DELETE",
            &format!("/v1/networks/{}{q}", encode(name)),
            None::<&()>,
        )
    }

    pub fn attach(&self, req: &AttachRequest) -> Result<Endpoint, ClientError> {
        self.call("POST", "/v1/endpoints", Some(req))
    }

    /// Detach `target` from `network`, or from every network when `None`.
    pub fn detach(&self, target: &Target, network: Option<&str>) -> Result<Detached, ClientError> {
        let mut q = target.to_query();
        if let Some(n) = network {
            q.push_str(&format!("&network={}", encode(n)));
        }
        self.call("DELETE", &format!("/v1/endpoints?{q}"), None::<&()>)
    }

    /// Endpoints, of one target or all; optionally of one network.
    pub fn endpoints(
        &self,
        target: Option<&Target>,
        network: Option<&str>,
    ) -> Result<Vec<Endpoint>, ClientError> {
        let mut q = target.map(Target::to_query).unwrap_or_default();
        if let Some(n) = network {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&format!("network={}", encode(n)));
        }
        let path = if q.is_empty() {
            "/v1/endpoints".to_string()
        } else {
            format!("/v1/endpoints?{q}")
        };
        self.call("GET", &path, None::<&()>)
    }

    pub fn reconcile(&self) -> Result<ReconcileReport, ClientError> {
        self.call("POST", "/v1/reconcile", None::<&()>)
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn parse_response(buf: &[u8]) -> Result<Response, ClientError> {
    let end = find_subslice(buf, b"\r\n\r\n")
        .ok_or_else(|| ClientError::Protocol("no complete HTTP header".into()))?;
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| ClientError::Protocol("header is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("bad status line {status_line:?}")))?;
    let mut len = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let rest = &buf[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        match len {
            Some(n) if n <= rest.len() => rest[..n].to_vec(),
            Some(_) => return Err(ClientError::Protocol("truncated body".into())),
            None => rest.to_vec(),
        }
    };
    Ok(Response { status, body })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, ClientError> {
    let bad = || ClientError::Protocol("bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let e = find_subslice(b, b"\r\n").ok_or_else(bad)?;
        let size_s = std::str::from_utf8(&b[..e]).map_err(|_| bad())?;
        let size_s = size_s.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size_s, 16).map_err(|_| bad())?;
        b = &b[e + 2..];
        if n == 0 {
            return Ok(out);
        }
        if b.len() < n + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn missing_socket_says_how_to_start_berthd() {
        let e = Client::new("/nonexistent/berthd.sock")
            .health()
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("berthd &") && m.contains("systemctl"), "{m}");
    }
}
