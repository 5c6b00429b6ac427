//! Request routing and the handlers of the admin API (`/api/v1/...`, described by
//! [`super::openapi`]), `/metrics`, and dashboard assets for every other GET.
//!
//! Owns: the status codes and JSON shapes of the contract (`{"error": "..."}` for errors),
//! paging, and the order of checks (closed API, then token). Never: trusts a path, query or body
//! (bounded, decoded and checked; nothing here unwraps peer input), or blocks this thread on
//! slow work (argon2 runs on tokio's blocking pool).

use super::shards::{self, Unavailable};
use super::State;
use crate::control::query::{
    page_of, Answer, ClientInfo, Query, RetainedInfo, SessionInfo, SubscriptionInfo, Window,
    PAGE_LIMIT_MAX, WINDOW_MAX,
};
use crate::limits;
use crate::shard::{home_shard, Stats};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub type Reply = Response<Full<Bytes>>;

/// The message every `/api/v1` call gets while no admin user exists.
pub const CLOSED: &str = "admin API closed: no admin user; run `ringmq admin add-user NAME`";

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    // API answers are per user and change every second: never cached by a browser or proxy.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

pub(super) fn json_reply(status: StatusCode, v: &Value) -> Reply {
    respond(status, "application/json", v.to_string())
}

pub(super) fn error(status: StatusCode, why: impl std::fmt::Display) -> Reply {
    json_reply(status, &json!({ "error": why.to_string() }))
}

pub(super) fn no_content() -> Reply {
    respond(StatusCode::NO_CONTENT, "application/json", Bytes::new())
}

pub(super) fn unavailable(u: Unavailable) -> Reply {
    error(StatusCode::SERVICE_UNAVAILABLE, u.0)
}

/// Every request of the HTTP listener.
pub async fn handle(
    state: Arc<State>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let reply = if path == "/metrics" {
        match method {
            Method::GET | Method::HEAD => metrics(&state),
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics"),
        }
    } else if path == "/api" || path.starts_with("/api/") {
        api(&state, peer, req).await
    } else if method == Method::GET || method == Method::HEAD {
        // A path without a dot that is no asset is a route of the dashboard's own (client-side
        // routing): its index.html answers it.
        let asset = crate::web::dashboard_asset(&path).or_else(|| {
            (!path.contains('.'))
                .then(|| crate::web::dashboard_asset("/index.html"))
                .flatten()
        });
        match asset {
            Some((ct, body)) => respond(StatusCode::OK, ct, Bytes::from_static(body)),
            None => error(StatusCode::NOT_FOUND, "not found"),
        }
    } else {
        error(StatusCode::METHOD_NOT_ALLOWED, "only GET outside /api")
    };
    Ok(reply)
}

fn metrics(state: &State) -> Reply {
    let stats = snapshot(state);
    let mut extra = state
        .control
        .extra
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    extra.uptime_s = state.control.started.elapsed().as_secs();
    let text = crate::control::metrics::render(&stats, &extra);
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    )
}

/// Forwarding statistics per first topic level, merged over shards by the control thread.
fn topics(state: &State) -> Reply {
    let rows = state
        .control
        .extra
        .lock()
        .map(|e| e.topics.clone())
        .unwrap_or_default();
    let data: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "prefix": r.prefix,
                "messages_in": r.messages_in,
                "bytes_in": r.bytes_in,
                "deliveries": r.deliveries,
            })
        })
        .collect();
    json_reply(StatusCode::OK, &json!({ "data": data }))
}

fn snapshot(state: &State) -> Vec<Stats> {
    state
        .control
        .stats
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default()
}

/// `/api/v1/...`: the OpenAPI document is open; everything else needs an admin user to exist,
/// then a login or a token.
async fn api(state: &Arc<State>, peer: IpAddr, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix("/api/v1") else {
        return error(StatusCode::NOT_FOUND, "the API is under /api/v1");
    };
    let segments: Vec<String> = match rest
        .split('/')
        .skip(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
        })
        .collect()
    {
        Ok(s) => s,
        Err(_) => return error(StatusCode::BAD_REQUEST, "path is not UTF-8"),
    };
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    if method == Method::GET && seg == ["openapi.json"] {
        return json_reply(StatusCode::OK, &super::openapi::document());
    }
    match state.admins.count() {
        Ok(0) => return error(StatusCode::UNAUTHORIZED, CLOSED),
        Ok(_) => {}
        Err(e) => return error(StatusCode::UNAUTHORIZED, format!("admin API closed: {e}")),
    }
    if seg == ["login"] {
        if method != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "POST /api/v1/login");
        }
        return login(state, peer, req).await;
    }
    if let Err(r) = authorized(state, &req) {
        return r;
    }
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    match (&method, seg.as_slice()) {
        (&Method::GET, ["stats"]) => stats(state),
        (&Method::GET, ["stats", "topics"]) => topics(state),
        (&Method::GET, ["listeners"]) => listeners(state),
        (&Method::GET, ["clients"]) => clients(state, &query).await,
        (&Method::GET, ["clients", id]) => client(state, id).await,
        (&Method::DELETE, ["clients", id]) => kick(state, id).await,
        (&Method::GET, ["sessions"]) => sessions(state, &query).await,
        (&Method::GET, ["subscriptions"]) => subscriptions(state, &query).await,
        (&Method::GET, ["retained"]) => retained(state, &query).await,
        // A topic's own slashes arrive as %2F; unencoded ones split it into segments.
        (&Method::DELETE, ["retained", topic @ ..]) if !topic.is_empty() => {
            retained_delete(state, &topic.join("/")).await
        }
        (&Method::GET, ["users"]) => super::users::list(state),
        (&Method::POST, ["users"]) => super::users::add(state, req).await,
        (&Method::PUT, ["users", name]) => super::users::change(state, name, req).await,
        (&Method::DELETE, ["users", name]) => super::users::delete(state, name).await,
        (&Method::GET, ["acl"]) => super::users::acl(state),
        (&Method::POST, ["acl", "reload"]) => super::users::acl_reload(state).await,
        (_, s) if known_path(s) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such API route"),
    }
}

/// A path the API serves under some method (for 405 rather than 404).
fn known_path(seg: &[&str]) -> bool {
    matches!(
        seg,
        ["stats"]
            | ["stats", "topics"]
            | ["listeners"]
            | ["clients"]
            | ["clients", _]
            | ["sessions"]
            | ["subscriptions"]
            | ["retained"]
            | ["retained", ..]
            | ["users"]
            | ["users", _]
            | ["acl"]
            | ["acl", "reload"]
    )
}

#[allow(clippy::result_large_err)]
fn authorized(state: &State, req: &Request<Incoming>) -> Result<String, Reply> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/v1/login), then send Authorization: Bearer TOKEN",
        ));
    };
    let known = match state.sessions.lock() {
        Ok(mut t) => t.check(token),
        Err(_) => None,
    };
    match known {
        // A user deleted with `ringmq admin delete-user` loses its tokens at once.
        Some(t) if state.admins.current().is_ok_and(|f| f.contains(&t.user)) => Ok(t.user),
        Some(t) => {
            if let Ok(mut s) = state.sessions.lock() {
                s.forget_user(&t.user);
            }
            Err(error(
                StatusCode::UNAUTHORIZED,
                "admin user no longer exists",
            ))
        }
        None => Err(error(StatusCode::UNAUTHORIZED, "unknown or expired token")),
    }
}

/// The request's JSON body (at most [`limits::HTTP_BODY_BYTES_MAX`]).
#[allow(clippy::result_large_err)]
pub(super) async fn body_json(req: Request<Incoming>) -> Result<Value, Reply> {
    let body = Limited::new(req.into_body(), limits::HTTP_BODY_BYTES_MAX);
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {} bytes", limits::HTTP_BODY_BYTES_MAX),
            ))
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))
}

/// A string field of a JSON body, or 400.
#[allow(clippy::result_large_err)]
pub(super) fn field(v: &Value, name: &str) -> Result<String, Reply> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                format!("missing string \"{name}\""),
            )
        })
}

async fn login(state: &Arc<State>, peer: IpAddr, req: Request<Incoming>) -> Reply {
    let wait = state.failures.lock().ok().and_then(|mut f| f.blocked(peer));
    if let Some(wait) = wait {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins from this address; wait",
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let body = match body_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (user, password) = match (field(&body, "username"), field(&body, "password")) {
        (Ok(u), Ok(p)) => (u, p),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let file = match state.admins.current() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::UNAUTHORIZED, format!("admin API closed: {e}")),
    };
    let u = user.clone();
    let ok = tokio::task::spawn_blocking(move || file.verify(&u, password.as_bytes()))
        .await
        .unwrap_or(false);
    if !ok {
        if let Ok(mut f) = state.failures.lock() {
            f.failed(peer);
        }
        log::info!("admin API: failed login for {user:?} from {peer}");
        return error(StatusCode::UNAUTHORIZED, "bad user name or password");
    }
    if let Ok(mut f) = state.failures.lock() {
        f.succeeded(peer);
    }
    let ttl = Duration::from_secs(limits::HTTP_TOKEN_TTL_S);
    let token = match state.sessions.lock() {
        Ok(mut t) => t.issue(&user, ttl),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "token store poisoned"),
    };
    log::info!("admin API: {user:?} logged in from {peer}");
    json_reply(
        StatusCode::OK,
        &json!({ "token": token, "expires_in": limits::HTTP_TOKEN_TTL_S }),
    )
}

/// One shard's counters as the API shows them. Counters are totals since start.
pub fn stats_json(s: &Stats, shard: Option<usize>) -> Value {
    let d = &s.drops;
    let mut v = json!({
        "connections_accepted": s.connections,
        "connections": s.connections_current,
        "connections_asleep": s.connections_asleep,
        "sessions": s.sessions,
        "sessions_connected": s.sessions_connected,
        "subscriptions": s.subscriptions,
        "retained": s.retained,
        "messages_in": s.publishes_in,
        "messages_out": s.deliveries,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "inflight": s.inflight,
        "queued": s.queued,
        "mesh_in": s.mesh_in,
        "mesh_out": s.mesh_out,
        "mesh_batches": s.mesh_batches_out,
        "store_commits": s.store_commits,
        "store_messages": s.store_messages,
        "store_bytes": s.store_bytes,
        "auth_failures": s.auth_failures,
        "dropped": d.total() + s.shared_dropped,
        "drops": {
            "qos0": d.qos0,
            "qos12": d.qos12,
            "offline_full": d.offline_full,
            "offline_qos0": d.offline_qos0,
            "too_large": d.too_large,
            "expired": d.expired,
            "shared_no_member": s.shared_dropped,
        },
        "congestions": s.congestions,
        "holds": s.holds,
        "slow_disconnects": s.slow_disconnects,
        "sessions_refused": s.sessions_refused,
        "retained_refused": s.retained_refused,
        "rate_disconnects": s.rate_disconnects,
        "acl_denied": s.acl_denied,
        "store_refused": s.store_refused,
        "shared_given_back": s.shared_again[0],
        "shared_member_gone": s.shared_again[1],
    });
    if let (Some(i), Some(o)) = (shard, v.as_object_mut()) {
        o.insert("shard".into(), json!(i));
    }
    v
}

fn stats(state: &State) -> Reply {
    let per_shard = snapshot(state);
    let total = Stats::total(&per_shard);
    let shards: Vec<Value> = per_shard
        .iter()
        .enumerate()
        .map(|(i, s)| stats_json(s, Some(i)))
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({
            "uptime_s": state.control.started.elapsed().as_secs(),
            "shards": shards,
            "total": stats_json(&total, None),
        }),
    )
}

fn listeners(state: &State) -> Reply {
    let data: Vec<Value> = state
        .listeners
        .iter()
        .map(|l| {
            let mut v = json!({
                "bind": l.bind,
                "protocol": l.protocol.name(),
                "allow_anonymous": l.anonymous_allowed(state.cfg.allow_anonymous),
                "tls": l.protocol.is_tls(),
            });
            if l.protocol.is_websocket() {
                if let Some(o) = v.as_object_mut() {
                    o.insert("path".into(), json!(l.ws_path()));
                }
            }
            v
        })
        .collect();
    json_reply(StatusCode::OK, &json!({ "data": data }))
}

/// `page`, `limit` and `like` of a listing, checked.
struct Paging {
    page: usize,
    limit: usize,
    like: String,
}

#[allow(clippy::result_large_err)]
fn paging(q: &HashMap<String, String>) -> Result<Paging, Reply> {
    let num = |k: &str, default: usize| match q.get(k) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                format!("{k} must be a positive integer"),
            )
        }),
    };
    let page = num("page", 1)?;
    let limit = num("limit", 50)?;
    if limit > PAGE_LIMIT_MAX {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("limit is at most {PAGE_LIMIT_MAX}"),
        ));
    }
    if page.saturating_mul(limit) > WINDOW_MAX {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("page × limit is at most {WINDOW_MAX}; narrow the listing with like="),
        ));
    }
    Ok(Paging {
        page,
        limit,
        like: q.get("like").cloned().unwrap_or_default(),
    })
}

impl Paging {
    fn window(&self) -> Window {
        Window {
            like: self.like.clone(),
            window: self.page * self.limit,
        }
    }

    fn reply(&self, count: usize, data: Vec<Value>) -> Reply {
        json_reply(
            StatusCode::OK,
            &json!({
                "data": data,
                "meta": { "page": self.page, "limit": self.limit, "count": count },
            }),
        )
    }
}

fn listener_name(state: &State, local: Option<std::net::SocketAddr>) -> Option<String> {
    let local = local?;
    let l = state
        .listeners
        .iter()
        .find(|l| l.addr().is_some_and(|a| a.port() == local.port()))?;
    Some(format!("{}://{}", l.protocol.name(), l.bind))
}

fn client_json(state: &State, c: &ClientInfo) -> Value {
    json!({
        "clientid": c.clientid,
        "username": c.username,
        "ip": c.peer.map(|a| a.ip().to_string()),
        "port": c.peer.map(|a| a.port()),
        "proto_ver": c.proto_ver,
        "keepalive": c.keepalive,
        "clean_start": c.clean_start,
        "connected_at": c.connected_at,
        "shard": c.shard,
        "listener": listener_name(state, c.local),
        "inflight": c.inflight,
        "queued": c.queued,
        "subscriptions": c.subscriptions,
    })
}

/// Ask every shard for a listing and cut the page: `pick` takes one shard's answer apart.
async fn listing<T>(
    state: &State,
    q: &HashMap<String, String>,
    make: impl Fn(Window) -> Query,
    pick: impl Fn(Answer) -> Option<(usize, Vec<T>)>,
    key: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Value,
    targets: Vec<usize>,
) -> Reply {
    let p = match paging(q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let answers = match shards::ask(&state.control, make(p.window()), &targets).await {
        Ok(a) => a,
        Err(u) => return unavailable(u),
    };
    let mut count = 0;
    let mut per_shard = Vec::new();
    for a in answers {
        match pick(a) {
            Some((n, items)) => {
                count += n;
                per_shard.push(items);
            }
            None => return error(StatusCode::INTERNAL_SERVER_ERROR, "unexpected shard answer"),
        }
    }
    let page = page_of(per_shard, p.page, p.limit, key);
    p.reply(count, page.iter().map(to_json).collect())
}

async fn clients(state: &State, q: &HashMap<String, String>) -> Reply {
    listing(
        state,
        q,
        Query::Clients,
        |a| match a {
            Answer::Clients { count, items } => Some((count, items)),
            _ => None,
        },
        |c: &ClientInfo| c.clientid.as_str(),
        |c| client_json(state, c),
        shards::all(&state.control),
    )
    .await
}

fn home(state: &State, id: &str) -> usize {
    home_shard(id, state.control.shards.len())
}

async fn ask_client(state: &State, id: &str) -> Result<Option<ClientInfo>, Unavailable> {
    let a = shards::ask(
        &state.control,
        Query::Client(id.to_owned()),
        &[home(state, id)],
    )
    .await?;
    Ok(match a.into_iter().next() {
        Some(Answer::Client(c)) => c,
        _ => None,
    })
}

async fn client(state: &State, id: &str) -> Reply {
    match ask_client(state, id).await {
        Ok(Some(c)) => json_reply(StatusCode::OK, &client_json(state, &c)),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("client {id:?} is not connected"),
        ),
        Err(u) => unavailable(u),
    }
}

/// How long a kick waits for the connection to be gone before answering anyway.
const KICK_WAIT: Duration = Duration::from_secs(3);

async fn kick(state: &State, id: &str) -> Reply {
    let a = shards::ask(
        &state.control,
        Query::Kick(id.to_owned()),
        &[home(state, id)],
    )
    .await;
    match a.map(|a| a.into_iter().next()) {
        Ok(Some(Answer::Done(true))) => {}
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("client {id:?} is not connected"),
            )
        }
        Err(u) => return unavailable(u),
    }
    // 204 once the client is disconnected: its connection closes on its own task.
    let deadline = tokio::time::Instant::now() + KICK_WAIT;
    while tokio::time::Instant::now() < deadline {
        match ask_client(state, id).await {
            Ok(None) => return no_content(),
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(u) => return unavailable(u),
        }
    }
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("client {id:?} was told to disconnect but is still connected"),
    )
}

async fn sessions(state: &State, q: &HashMap<String, String>) -> Reply {
    listing(
        state,
        q,
        Query::Sessions,
        |a| match a {
            Answer::Sessions { count, items } => Some((count, items)),
            _ => None,
        },
        |s: &SessionInfo| s.clientid.as_str(),
        |s| {
            json!({
                "clientid": s.clientid,
                "connected": s.connected,
                "expiry_s": s.expiry_s,
                "subscriptions": s.subscriptions,
                "queued": s.queued,
                "inflight": s.inflight,
                "shard": s.shard,
            })
        },
        shards::all(&state.control),
    )
    .await
}

async fn subscriptions(state: &State, q: &HashMap<String, String>) -> Reply {
    // One client's subscriptions live on its home shard only.
    let exact = q.get("clientid").cloned();
    let mut q = q.clone();
    let targets = match &exact {
        Some(id) => {
            q.insert("like".into(), id.clone());
            vec![home(state, id)]
        }
        None => shards::all(&state.control),
    };
    let is_exact = exact.is_some();
    // Sorted by client id, then topic, across shards as within one.
    let keyed = |s: &SubscriptionInfo| format!("{}\u{0}{}", s.clientid, s.topic);
    listing(
        state,
        &q,
        |window| Query::Subscriptions {
            window,
            exact: is_exact,
        },
        |a| match a {
            Answer::Subscriptions { count, items } => Some((
                count,
                items.into_iter().map(|i| (keyed(&i), i)).collect::<Vec<_>>(),
            )),
            _ => None,
        },
        |(k, _): &(String, SubscriptionInfo)| k.as_str(),
        |(_, s)| json!({ "clientid": s.clientid, "topic": s.topic, "qos": s.qos, "shard": s.shard }),
        targets,
    )
    .await
}

fn retained_json(r: &RetainedInfo) -> Value {
    let mut v = json!({ "topic": r.topic, "qos": r.qos, "payload_size": r.payload_size });
    if let Some(o) = v.as_object_mut() {
        match std::str::from_utf8(&r.payload) {
            Ok(text) => o.insert("payload".into(), json!(text)),
            Err(_) => {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD.encode(&r.payload);
                o.insert("payload_base64".into(), json!(b))
            }
        };
        if r.payload.len() < r.payload_size {
            o.insert("payload_truncated".into(), json!(true));
        }
    }
    v
}

async fn retained(state: &State, q: &HashMap<String, String>) -> Reply {
    // Every shard keeps the whole retained index: shard 0's copy is the answer.
    listing(
        state,
        q,
        Query::Retained,
        |a| match a {
            Answer::Retained { count, items } => Some((count, items)),
            _ => None,
        },
        |r: &RetainedInfo| r.topic.as_str(),
        retained_json,
        vec![0],
    )
    .await
}

async fn retained_delete(state: &State, topic: &str) -> Reply {
    if !crate::codec::topic::is_valid_topic_name(topic) {
        return error(StatusCode::BAD_REQUEST, "not a valid topic name");
    }
    match shards::ask(
        &state.control,
        Query::RetainedDelete(topic.to_owned()),
        &[0],
    )
    .await
    {
        Ok(a) => match a.into_iter().next() {
            Some(Answer::Done(true)) => no_content(),
            _ => error(
                StatusCode::NOT_FOUND,
                format!("nothing retained on {topic:?}"),
            ),
        },
        Err(u) => unavailable(u),
    }
}
