//! The API server: HTTP/1.1 (hyper) over a Unix socket, JSON in and out, bounded bodies.

use super::error::AgentError;
use super::Agent;
use crate::api::{AttachRequest, ErrorBody, Health, NetworkCreate, Target};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;

pub(crate) type Body = Full<Bytes>;

/// Counts requests being served, for a clean shutdown.
#[derive(Default)]
pub struct InFlight(AtomicUsize);

struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    fn enter(&self) -> InFlightGuard<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self)
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Binds the socket: a stale socket file is replaced, a live one (another daemon) is an
/// error; mode 0660, owner root (the daemon's user).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running berthd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serves until `shutdown` resolves, then waits (up to 30 s) for requests in progress.
pub async fn serve(agent: Arc<Agent>, listener: UnixListener, shutdown: impl Future<Output = ()>) {
    let inflight = Arc::new(InFlight::default());
    let counted = inflight.clone();
    serve_connections(
        listener,
        move |req| {
            let agent = agent.clone();
            let inflight = counted.clone();
            async move {
                let _g = inflight.enter();
                handle(agent, req).await
            }
        },
        shutdown,
        "",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while inflight.count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener [`serve_connections`] can accept connections from.
pub(crate) trait Listener {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Accepts connections on `listener` until `shutdown` resolves, serving each over HTTP/1.1
/// with `handler` on its own task. `log_prefix` starts the log messages ("metrics ", or "").
pub(crate) async fn serve_connections<L, H, F>(
    listener: L,
    handler: H,
    shutdown: impl Future<Output = ()>,
    log_prefix: &'static str,
) where
    L: Listener,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept_stream() => {
                let stream = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "{log_prefix}accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let response = handler(req);
                        async move { Ok::<_, std::convert::Infallible>(response.await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                    {
                        tracing::debug!(error = %e, "{log_prefix}connection ended with an error");
                    }
                });
            }
        }
    }
}

fn json_response(status: u16, body: &impl Serialize) -> Response<Body> {
    let data = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(data)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &AgentError) -> Response<Body> {
    json_response(
        e.status(),
        &ErrorBody {
            message: e.to_string(),
            code: e.code().to_string(),
        },
    )
}

async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, AgentError> {
    let body = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                AgentError::TooLarge { limit }
            } else {
                AgentError::BadRequest(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| AgentError::BadJson(e.to_string()))
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn target_of(q: &HashMap<String, String>) -> Result<Option<Target>, AgentError> {
    let pid = match q.get("pid") {
        Some(p) => Some(
            p.parse::<i32>()
                .map_err(|_| AgentError::BadRequest(format!("invalid pid {p:?}")))?,
        ),
        None => None,
    };
    let t = Target {
        container: q.get("container").cloned(),
        netns: q.get("netns").cloned(),
        pid,
    };
    Ok((!t.is_empty()).then_some(t))
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let r = route(agent, req).await;
    let resp = match r {
        Ok(resp) => resp,
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!(%method, %path, code = e.code(), error = %e, "request failed");
            } else {
                tracing::debug!(%method, %path, code = e.code(), error = %e, "request refused");
            }
            error_response(&e)
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_secs_f64() * 1e3, "request");
    resp
}

async fn route(agent: Arc<Agent>, req: Request<Incoming>) -> Result<Response<Body>, AgentError> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let q = query(&req);
    let limit = agent.config().max_body_bytes;
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let no_route = || AgentError::NoRoute {
        method: method.to_string(),
        path: path.clone(),
    };
    if segs.first() != Some(&"v1") {
        return Err(no_route());
    }
    match (&method, &segs[1..]) {
        (&Method::GET, ["health"]) => {
            let h = Health {
                status: "ok".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
                networks: agent.all_nets().len(),
                endpoints: agent.index().eps.len(),
                firewall: agent.fw.enabled(),
                dns: agent.config().dns.enabled,
            };
            Ok(json_response(200, &h))
        }
        (&Method::GET, ["networks"]) => Ok(json_response(200, &agent.list_networks())),
        (&Method::POST, ["networks"]) => {
            let body: NetworkCreate = read_json(req, limit).await?;
            Ok(json_response(
                201,
                &detached(&agent, move |a| async move { a.create_network(body).await }).await?,
            ))
        }
        (&Method::GET, ["networks", name]) => {
            let name = decode(name);
            Ok(json_response(200, &agent.inspect_network(&name)?))
        }
        (&Method::DELETE, ["networks", name]) => {
            let name = decode(name);
            Ok(json_response(
                200,
                &detached(&agent, move |a| async move {
                    a.delete_network(&name, truthy(&q, "force")).await
                })
                .await?,
            ))
        }
        (&Method::GET, ["endpoints"]) => {
            let t = target_of(&q)?;
            Ok(json_response(
                200,
                &agent.list_endpoints(t.as_ref(), q.get("network").map(String::as_str))?,
            ))
        }
        (&Method::POST, ["endpoints"]) => {
            let body: AttachRequest = read_json(req, limit).await?;
            Ok(json_response(
                201,
                &detached(&agent, move |a| async move { a.attach(body).await }).await?,
            ))
        }
        (&Method::DELETE, ["endpoints"]) => {
            let t = target_of(&q)?.ok_or_else(|| {
                AgentError::BadRequest(
                    "name the namespace to detach: container=, netns= or pid=".into(),
                )
            })?;
            Ok(json_response(
                200,
                &detached(&agent, move |a| async move {
                    a.detach(&t, q.get("network").map(String::as_str)).await
                })
                .await?,
            ))
        }
        (&Method::POST, ["reconcile"]) => Ok(json_response(
            200,
            &detached(&agent, |a| async move { a.reconcile().await }).await?,
        )),
        (_, ["health"] | ["networks"] | ["networks", _] | ["endpoints"] | ["reconcile"]) => {
            Err(AgentError::MethodNotAllowed {
                method: method.to_string(),
                path: path.clone(),
            })
        }
        _ => Err(no_route()),
    }
}

/// Runs a state-changing call as its own task, so that a client that goes away mid-request
/// cannot cancel it halfway (an attach cut at an await point would leave a lease and a veth
/// for reconcile to clean up).
async fn detached<T, F, Fut>(agent: &Arc<Agent>, f: F) -> Result<T, AgentError>
where
    T: Send + 'static,
    F: FnOnce(Arc<Agent>) -> Fut,
    Fut: std::future::Future<Output = Result<T, AgentError>> + Send + 'static,
{
    tokio::spawn(f(agent.clone()))
        .await
        .map_err(|e| AgentError::Internal(format!("request task failed: {e}")))?
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
