//! `ringmq ctl`: a command line over a running broker's admin HTTP API, in the manner of
//! `emqx ctl`: it logs in (`POST /api/v1/login`), then makes one call and prints its answer,
//! one line per entry (or the JSON itself with `--json`).
//!
//! Owns: the subcommands and their mapping to API calls, and a small HTTP/1.1 client (hyper's,
//! which the server already uses: no second HTTP stack). Never: stores the token or the
//! password anywhere.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::time::Duration;

/// Talk to a running broker's admin API.
#[derive(Debug, Clone, clap::Args)]
pub struct CtlArgs {
    /// The admin API's address.
    #[arg(long, default_value = "http://127.0.0.1:18083")]
    pub url: String,
    /// Admin user to log in as (see `ringmq admin add-user`).
    #[arg(long, short = 'u', default_value = "admin")]
    pub user: String,
    /// Read the admin password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the API's JSON answer as it is.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum CtlCommand {
    /// Connected clients.
    #[command(subcommand)]
    Clients(ClientsCmd),
    /// Counters in total and per shard.
    Stats,
    /// Sessions, connected or not.
    Sessions {
        #[arg(long)]
        like: Option<String>,
    },
    /// Subscriptions (of one client with --clientid).
    Subscriptions {
        #[arg(long)]
        clientid: Option<String>,
    },
    /// MQTT users of the broker's password_file.
    #[command(subcommand)]
    Users(UsersCmd),
    /// The ACL.
    #[command(subcommand)]
    Acl(AclCmd),
    /// Retained messages.
    #[command(subcommand)]
    Retained(RetainedCmd),
    /// The MQTT listeners.
    Listeners,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientsCmd {
    /// List connected clients (client ids containing --like).
    List {
        #[arg(long)]
        like: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one client.
    Show { clientid: String },
    /// Disconnect a client (v5: DISCONNECT 0x98 Administrative action).
    Kick { clientid: String },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersCmd {
    List,
    /// Add a user; the password is prompted for unless given with --password (which other
    /// local users can see in the process list, like `mosquitto_passwd -b`).
    Add {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Change a user's password.
    Passwd {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AclCmd {
    /// Print the ACL file and its rule count.
    Show,
    /// Reload the ACL (and the other files SIGHUP reloads).
    Reload,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RetainedCmd {
    List {
        #[arg(long)]
        like: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Clear a retained topic.
    Delete { topic: String },
}

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

struct Api {
    host: String,
    port: u16,
    token: Option<String>,
}

/// An answer: status and JSON (`null` for an empty body).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Api {
    fn new(url: &str) -> Result<Api, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(['[', ']']).to_owned(),
                p.parse::<u16>()
                    .map_err(|_| format!("{url}: bad port {p:?}"))?,
            ),
            _ => (hostport.trim_matches(['[', ']']).to_owned(), 80),
        };
        Ok(Api {
            host,
            port,
            token: None,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let work = async {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("connecting to {}:{}: {e}", self.host, self.port))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let host = if self.host.contains(':') {
                format!("[{}]:{}", self.host, self.port)
            } else {
                format!("{}:{}", self.host, self.port)
            };
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, host);
            if let Some(t) = &self.token {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let body = match body {
                Some(v) => {
                    req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                    Full::new(Bytes::from(v.to_string()))
                }
                None => Full::new(Bytes::new()),
            };
            let req = req.body(body).map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            Ok(Answer { status, body })
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .map_err(|_| {
                format!(
                    "no answer from {}:{} within {CALL_TIMEOUT:?}",
                    self.host, self.port
                )
            })?
    }
}

fn fail(a: &Answer) -> String {
    match a.body.get("error").and_then(Value::as_str) {
        Some(e) => format!("{}: {e}", a.status),
        None => format!("{}: {}", a.status, a.body),
    }
}

/// One line per entry: `key=value` pairs in the API's order.
fn line(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => v.to_string(),
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn new_password(given: &Option<String>) -> Result<String, String> {
    match given {
        Some(p) => Ok(p.clone()),
        None => crate::auth::passwd_cmd::prompt_twice(),
    }
}

/// Run `ringmq ctl`; what to print.
pub fn run(args: &CtlArgs) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &CtlArgs) -> Result<String, String> {
    let mut api = Api::new(&args.url)?;
    let password = if args.password_stdin {
        super::password_from_stdin()?
    } else {
        rpassword::prompt_password(format!("Password for {}: ", args.user))
            .map_err(|e| e.to_string())?
    };
    let login = api
        .call(
            Method::POST,
            "/api/v1/login",
            Some(json!({ "username": args.user, "password": password })),
        )
        .await?;
    if login.status != StatusCode::OK {
        return Err(format!("login: {}", fail(&login)));
    }
    api.token = login
        .body
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if api.token.is_none() {
        return Err("login: no token in the answer".into());
    }
    use CtlCommand as C;
    let (method, path, body, list) = match &args.command {
        C::Clients(ClientsCmd::List { like, page, limit }) => (
            Method::GET,
            format!(
                "/api/v1/clients{}",
                query(&[
                    ("like", like.clone()),
                    ("page", Some(page.to_string())),
                    ("limit", Some(limit.to_string())),
                ])
            ),
            None,
            true,
        ),
        C::Clients(ClientsCmd::Show { clientid }) => (
            Method::GET,
            format!("/api/v1/clients/{}", enc(clientid)),
            None,
            false,
        ),
        C::Clients(ClientsCmd::Kick { clientid }) => (
            Method::DELETE,
            format!("/api/v1/clients/{}", enc(clientid)),
            None,
            false,
        ),
        C::Stats => (Method::GET, "/api/v1/stats".into(), None, false),
        C::Sessions { like } => (
            Method::GET,
            format!("/api/v1/sessions{}", query(&[("like", like.clone())])),
            None,
            true,
        ),
        C::Subscriptions { clientid } => (
            Method::GET,
            format!(
                "/api/v1/subscriptions{}",
                query(&[("clientid", clientid.clone())])
            ),
            None,
            true,
        ),
        C::Users(UsersCmd::List) => (Method::GET, "/api/v1/users".into(), None, true),
        C::Users(UsersCmd::Add { name, password }) => (
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({ "username": name, "password": new_password(password)? })),
            false,
        ),
        C::Users(UsersCmd::Passwd { name, password }) => (
            Method::PUT,
            format!("/api/v1/users/{}", enc(name)),
            Some(json!({ "password": new_password(password)? })),
            false,
        ),
        C::Users(UsersCmd::Delete { name }) => (
            Method::DELETE,
            format!("/api/v1/users/{}", enc(name)),
            None,
            false,
        ),
        C::Acl(AclCmd::Show) => (Method::GET, "/api/v1/acl".into(), None, false),
        C::Acl(AclCmd::Reload) => (Method::POST, "/api/v1/acl/reload".into(), None, false),
        C::Retained(RetainedCmd::List { like, page, limit }) => (
            Method::GET,
            format!(
                "/api/v1/retained{}",
                query(&[
                    ("like", like.clone()),
                    ("page", Some(page.to_string())),
                    ("limit", Some(limit.to_string())),
                ])
            ),
            None,
            true,
        ),
        C::Retained(RetainedCmd::Delete { topic }) => (
            Method::DELETE,
            format!("/api/v1/retained/{}", enc(topic)),
            None,
            false,
        ),
        C::Listeners => (Method::GET, "/api/v1/listeners".into(), None, true),
    };
    let a = api.call(method, &path, body).await?;
    if !a.status.is_success() {
        return Err(fail(&a));
    }
    if args.json {
        return Ok(a.body.to_string());
    }
    if list {
        let items = a.body.get("data").and_then(Value::as_array);
        let mut out: Vec<String> = items.into_iter().flatten().map(line).collect();
        if let Some(meta) = a.body.get("meta") {
            out.push(format!(
                "({} in total)",
                meta.get("count").unwrap_or(&Value::Null)
            ));
        }
        return Ok(out.join("\n"));
    }
    Ok(match (&args.command, &a.body) {
        (C::Acl(AclCmd::Show), b) => format!(
            "file={} rules={}\n{}",
            b.get("file").and_then(Value::as_str).unwrap_or("(none)"),
            b.get("rules").unwrap_or(&Value::Null),
            b.get("text").and_then(Value::as_str).unwrap_or("")
        ),
        (C::Stats, b) => serde_json::to_string_pretty(b).unwrap_or_default(),
        (_, Value::Null) => "ok".into(),
        (_, b) => line(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let a = Api::new("http://127.0.0.1:18083").expect("url");
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 18083));
        let a = Api::new("http://[::1]:9/").expect("url");
        assert_eq!((a.host.as_str(), a.port), ("::1", 9));
        let a = Api::new("http://localhost").expect("url");
        assert_eq!((a.host.as_str(), a.port), ("localhost", 80));
        assert!(Api::new("https://x").is_err());
        assert!(Api::new("http://x:notaport").is_err());
    }

    #[test]
    fn clis_parse() {
        use crate::config::{Cli, Command};
        use clap::Parser;
        let cli = Cli::parse_from([
            "ringmq",
            "ctl",
            "--url",
            "http://127.0.0.1:1",
            "--user",
            "root",
            "--password-stdin",
            "clients",
            "list",
            "--like",
            "x",
        ]);
        let Some(Command::Ctl(c)) = cli.command else {
            panic!("ctl")
        };
        assert!(c.password_stdin && c.user == "root");
        assert!(matches!(
            c.command,
            CtlCommand::Clients(ClientsCmd::List { like: Some(_), .. })
        ));
        assert_eq!(
            query(&[("like", Some("a b".into())), ("x", None)]),
            "?like=a+b"
        );
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }
}
