//! The WebSocket opening handshake (RFC 6455 §4.2), sans-IO: a small bounded parser of the
//! client's HTTP/1.1 Upgrade request, the listener's checks (path, Origin allow-list, version,
//! subprotocol `mqtt` or the legacy `mqttv3.1`), and the bytes of the answer: `101 Switching
//! Protocols` with `Sec-WebSocket-Accept`, or a short error response.
//!
//! Owns: the request's bound ([`crate::limits::WS_HANDSHAKE_BYTES_MAX`]) and the mapping of each
//! refusal to a status: bad path 404, Origin not allowed 403, a version other than 13 426 (with
//! `Sec-WebSocket-Version: 13`, as §4.4 asks), too long 431, anything else malformed 400.
//! Besides the upgrade it recognises one other request, like Mosquitto's `http_dir` on its
//! websockets listeners: a plain `GET` (no `Upgrade` header) for `/chat` or `/chat/...` is the
//! browser chat demo ([`crate::web::chat_asset`]), answered with the embedded file and a close,
//! under the same size bound and deadline as an upgrade; `/chat/config.json` tells the page
//! the listener's MQTT path.
//! Never: does I/O, allocates per header, or panics on request bytes. It serves no other HTTP.

use crate::limits::WS_HANDSHAKE_BYTES_MAX;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// What a listener accepts (from its `[[listener]]` table).
#[derive(Debug, Clone)]
pub struct Policy {
    /// The request path served, e.g. `/mqtt` (a query string is ignored).
    pub path: String,
    /// Allowed `Origin` values, compared case-insensitively; empty: any. A request without an
    /// `Origin` header is not from a browser and is admitted (it could send any value anyway).
    pub origins: Vec<String>,
}

/// A request the handshake accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// `Sec-WebSocket-Accept` for the client's key.
    pub accept: String,
    /// The subprotocol chosen among the client's, if it offered any.
    pub protocol: Option<&'static str>,
}

/// What a complete, valid request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Upgrade(Upgrade),
    /// A page of the chat demo; answered with [`page_head`] and the body, then closed.
    Page(Page),
}

/// A chat demo response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// An embedded file: (content type, `Cache-Control`, body).
    Asset(&'static str, &'static str, &'static [u8]),
    /// `/chat/config.json`: `{"mqtt_path": ...}`, the path this listener upgrades.
    Config,
}

impl Page {
    /// The head and body of the response (the head names the length; the connection closes).
    pub fn response(self, policy: &Policy) -> (Vec<u8>, std::borrow::Cow<'static, [u8]>) {
        let (ctype, cache, body) = match self {
            Page::Asset(ctype, cache, body) => (ctype, cache, std::borrow::Cow::Borrowed(body)),
            Page::Config => {
                let json = serde_json::json!({ "mqtt_path": policy.path }).to_string();
                (
                    "application/json",
                    "no-store",
                    std::borrow::Cow::Owned(json.into_bytes()),
                )
            }
        };
        (page_head(ctype, cache, body.len()), body)
    }
}

/// `200 OK` for a chat page. The CSP keeps the page to its own files, and its connections to its
/// own origin (CSP 3's `'self'` covers `ws:`/`wss:` to the same host and port), so a crafted
/// link cannot point the served page at another broker.
pub fn page_head(content_type: &str, cache_control: &str, len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Cache-Control: {cache_control}\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'self'; img-src 'self' data:\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Why a request is refused; each has its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    BadRequest(&'static str),
    NotFound,
    Forbidden,
    Version,
    TooLarge,
}

impl Reject {
    pub fn response(self) -> &'static [u8] {
        match self {
            Reject::BadRequest(_) => {
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::NotFound => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::Forbidden => {
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::Version => {
                b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::TooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::BadRequest(why) => write!(f, "400: {why}"),
            Reject::NotFound => f.write_str("404: path not served"),
            Reject::Forbidden => f.write_str("403: Origin not allowed"),
            Reject::Version => f.write_str("426: Sec-WebSocket-Version must be 13"),
            Reject::TooLarge => f.write_str("431: request too long"),
        }
    }
}

/// The key's suffix (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Parse an upgrade request at the start of `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((u, n)))`: accepted, the request is `buf[..n]` (bytes after it are already
/// WebSocket frames). A chat page request is `NotFound` here; see [`parse_request`].
pub fn parse(buf: &[u8], policy: &Policy) -> Result<Option<(Upgrade, usize)>, Reject> {
    match parse_request(buf, policy)? {
        None => Ok(None),
        Some((Request::Upgrade(u), n)) => Ok(Some((u, n))),
        Some((Request::Page(_), _)) => Err(Reject::NotFound),
    }
}

/// As [`parse`], but a plain GET for the chat demo is a [`Request::Page`].
pub fn parse_request(buf: &[u8], policy: &Policy) -> Result<Option<(Request, usize)>, Reject> {
    let window = &buf[..buf.len().min(WS_HANDSHAKE_BYTES_MAX)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= WS_HANDSHAKE_BYTES_MAX {
            Err(Reject::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(|&b| b == b' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next())
    else {
        return Err(Reject::BadRequest("malformed request line"));
    };
    if method != b"GET" {
        return Err(Reject::BadRequest("method must be GET"));
    }
    if version != b"HTTP/1.1" {
        return Err(Reject::BadRequest("HTTP/1.1 required"));
    }
    let path = path_of(target);
    let mut h = Headers::default();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Reject::BadRequest("malformed header line"));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(Reject::BadRequest("malformed header name"));
        }
        h.add(name, value)?;
    }
    if path != policy.path.as_bytes() {
        return match page(path, &h) {
            Some(p) => Ok(Some((Request::Page(p), end + 4))),
            None => Err(Reject::NotFound),
        };
    }
    if !h.host {
        return Err(Reject::BadRequest("no Host"));
    }
    if !h.upgrade_websocket {
        return Err(Reject::BadRequest("Upgrade: websocket required"));
    }
    if !h.connection_upgrade {
        return Err(Reject::BadRequest("Connection: Upgrade required"));
    }
    let Some(key) = h.key else {
        return Err(Reject::BadRequest("no Sec-WebSocket-Key"));
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.map_or(true, |k| k.len() != 16) {
        return Err(Reject::BadRequest(
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ));
    }
    if let Some(origin) = h.origin {
        if !policy.origins.is_empty()
            && !policy
                .origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
        {
            return Err(Reject::Forbidden);
        }
    }
    if !h.version_13 {
        return Err(Reject::Version);
    }
    let protocol = match (h.offered_any, h.offered_mqtt, h.offered_legacy) {
        (_, true, _) => Some("mqtt"),
        (_, false, true) => Some("mqttv3.1"),
        (true, false, false) => {
            return Err(Reject::BadRequest("Sec-WebSocket-Protocol must offer mqtt"))
        }
        (false, _, _) => None,
    };
    let upgrade = Upgrade {
        accept: accept_key(key),
        protocol,
    };
    Ok(Some((Request::Upgrade(upgrade), end + 4)))
}

/// The chat page a request for `path` gets: only without an `Upgrade` header (a WebSocket
/// client that asks for the wrong path still gets 404), and only for a file that exists.
fn page(path: &[u8], h: &Headers<'_>) -> Option<Page> {
    if h.upgrade_any {
        return None;
    }
    let path = std::str::from_utf8(path).ok()?;
    if path == "/chat/config.json" {
        return Some(Page::Config);
    }
    let (ctype, body) = crate::web::chat_asset(path)?;
    Some(Page::Asset(ctype, crate::web::cache_control(path), body))
}

/// The `101 Switching Protocols` answer.
pub fn response(u: &Upgrade) -> Vec<u8> {
    let mut r = Vec::with_capacity(160);
    r.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    r.extend_from_slice(b"Sec-WebSocket-Accept: ");
    r.extend_from_slice(u.accept.as_bytes());
    if let Some(p) = u.protocol {
        r.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        r.extend_from_slice(p.as_bytes());
    }
    r.extend_from_slice(b"\r\n\r\n");
    r
}

/// What the checks need of the headers, gathered in one pass without allocating.
#[derive(Default)]
struct Headers<'a> {
    host: bool,
    /// Any `Upgrade` header at all (a page request has none).
    upgrade_any: bool,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    version_13: bool,
    key: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    offered_any: bool,
    offered_mqtt: bool,
    offered_legacy: bool,
}

impl<'a> Headers<'a> {
    fn add(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), Reject> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("host") {
            self.host = true;
        } else if is("upgrade") {
            self.upgrade_any = true;
            self.upgrade_websocket |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if is("connection") {
            self.connection_upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if is("sec-websocket-version") {
            self.version_13 = value == b"13";
        } else if is("sec-websocket-key") {
            if self.key.replace(value).is_some() {
                return Err(Reject::BadRequest("two Sec-WebSocket-Key headers"));
            }
        } else if is("origin") {
            if self.origin.replace(value).is_some() {
                return Err(Reject::BadRequest("two Origin headers"));
            }
        } else if is("sec-websocket-protocol") {
            for t in tokens(value) {
                self.offered_any = true;
                // Subprotocol names are case-sensitive (RFC 6455 §11.3.4).
                self.offered_mqtt |= t == b"mqtt";
                self.offered_legacy |= t == b"mqttv3.1";
            }
        }
        Ok(())
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The path of a request target: origin form `/p?q` or absolute form `http://host/p?q`.
fn path_of(target: &[u8]) -> &[u8] {
    let mut t = target;
    for scheme in [&b"http://"[..], b"https://", b"ws://", b"wss://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            t = rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |i| &rest[i..]);
            break;
        }
    }
    let end = t
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(t.len());
    &t[..end]
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
