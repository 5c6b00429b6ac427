//! Area 18: the admin HTTP API, `/metrics` and `ringmq ctl`, against the real broker on a leased
//! loopback port for HTTP. Clients are rumqttc (v3.1.1 and v5); the HTTP client is hyper's;
//! admin users are added with the real `ringmq admin add-user`, and `ringmq ctl` runs as a
//! process.

use crate::broker_process::{fresh_data_dir, PortLease};
use crate::common::*;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

shard_tests!(
    the_api_is_closed_until_an_admin_user_exists_then_needs_a_token,
    clients_are_listed_filtered_and_kicked_with_0x98,
    retained_messages_are_listed_and_a_delete_is_journaled,
    sessions_and_subscriptions_are_listed,
    mqtt_users_added_through_the_api_can_connect,
    the_acl_is_shown_and_reloaded_and_a_bad_file_is_refused,
    ringmq_ctl_logs_in_and_manages_the_broker,
    every_route_of_the_openapi_document_is_served,
    failed_logins_are_rate_limited_per_address,
);

const ADMIN: &str = "root";
const ADMIN_PW: &str = "correct horse battery staple";

/// A broker with the admin API on a port of its own, and its scratch directory.
struct Api {
    b: Broker,
    http: u16,
    dir: tempfile::TempDir,
    _lease: PortLease,
}

impl Api {
    async fn start(shards: usize, extra: &[&str]) -> Api {
        let lease = PortLease::acquire();
        let dir = tempfile::tempdir().expect("scratch dir");
        let users = dir.path().join("admin-users");
        let bind = format!("127.0.0.1:{}", lease.port);
        let users = users.to_string_lossy().into_owned();
        let mut args = vec!["--http-bind", &bind, "--admin-users-file", &users];
        args.extend_from_slice(extra);
        let b = Broker::with(shards, &args).await;
        let api = Api {
            b,
            http: lease.port,
            dir,
            _lease: lease,
        };
        api.wait_http().await;
        api
    }

    async fn wait_http(&self) {
        wait_http(self.http).await
    }

    fn users_file(&self) -> PathBuf {
        self.dir.path().join("admin-users")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    async fn add_admin(&self) {
        add_user(&self.users_file(), ADMIN, ADMIN_PW);
    }

    async fn login(&self) -> String {
        login(self.http).await
    }

    /// An admin user exists and we are logged in.
    async fn ready(shards: usize, extra: &[&str]) -> (Api, String) {
        let a = Api::start(shards, extra).await;
        a.add_admin().await;
        let t = a.login().await;
        (a, t)
    }

    async fn get(&self, token: &str, path: &str) -> Got {
        call(self.http, "GET", path, Some(token), None).await
    }
}

/// The HTTP thread starts beside the shards: wait until it answers.
async fn wait_http(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the admin API never listened on {port}");
}

async fn login(port: u16) -> String {
    let r = call(
        port,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({ "username": ADMIN, "password": ADMIN_PW })),
    )
    .await;
    assert_eq!(r.status, 200, "login: {:?}", r.body);
    assert_eq!(r.body["expires_in"], 3600);
    r.body["token"].as_str().expect("token").to_owned()
}

/// `ringmq --admin-users-file FILE admin add-user NAME --password-stdin`.
fn add_user(file: &Path, name: &str, password: &str) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("--admin-users-file")
        .arg(file)
        .args(["admin", "add-user", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ringmq admin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("ringmq admin ends");
    assert!(out.status.success(), "ringmq admin add-user failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("added"));
}

/// An HTTP answer.
#[derive(Debug)]
struct Got {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

async fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Got {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the admin API");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = Full::new(bytes::Bytes::from(
        body.map(|v| v.to_string()).unwrap_or_default(),
    ));
    let resp = tx
        .send_request(req.body(body).expect("request"))
        .await
        .expect("an answer");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Got {
        status,
        content_type,
        body,
        text,
    }
}

fn ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|c| c["clientid"].as_str().expect("clientid").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn the_api_is_closed_until_an_admin_user_exists_then_needs_a_token(shards: usize) {
    let a = Api::start(shards, &[]).await;
    // Closed: every /api/v1 call, login included, says how to open it.
    for (m, p) in [
        ("GET", "/api/v1/stats"),
        ("POST", "/api/v1/login"),
        ("GET", "/api/v1/clients"),
    ] {
        let r = call(
            a.http,
            m,
            p,
            None,
            Some(json!({"username": "x", "password": "y"})),
        )
        .await;
        assert_eq!(r.status, 401, "{m} {p}");
        let e = r.body["error"].as_str().expect("error text");
        assert!(e.contains("ringmq admin add-user"), "{e}");
    }
    // The document and the metrics are served without a token.
    let doc = call(a.http, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.0.3");
    let m = call(a.http, "GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("text/plain"),
        "{}",
        m.content_type
    );
    assert!(m.text.contains("ringmq_uptime_seconds"), "{}", m.text);
    assert!(
        m.text.contains("shard=\"0\""),
        "per-shard series: {}",
        m.text
    );

    a.add_admin().await;
    // Open now (the running broker noticed the file), but a call still needs a token.
    let r = call(a.http, "GET", "/api/v1/stats", None, None).await;
    assert_eq!(r.status, 401);
    assert!(!r.text.contains("add-user"), "no longer closed: {}", r.text);
    let r = call(a.http, "GET", "/api/v1/stats", Some("not-a-token"), None).await;
    assert_eq!(r.status, 401);
    let bad = call(
        a.http,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({ "username": ADMIN, "password": "wrong" })),
    )
    .await;
    assert_eq!(bad.status, 401);
    let token = a.login().await;
    let mut c = Client::connect(&a.b, Version::V3, "stats-pub").await;
    c.publish("s/t", 0, "x", false).await;
    c.settle().await;
    // Snapshots arrive about once a second.
    let mut seen = 0;
    for _ in 0..40 {
        let s = a.get(&token, "/api/v1/stats").await;
        assert_eq!(s.status, 200, "{:?}", s.body);
        assert_eq!(s.body["shards"].as_array().map(Vec::len), Some(shards));
        assert_eq!(s.body["shards"][0]["shard"], 0);
        assert!(s.body["total"].get("shard").is_none());
        seen = s.body["total"]["messages_in"]
            .as_u64()
            .expect("messages_in");
        if seen >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen >= 1, "the publish shows in the statistics");
    let l = a.get(&token, "/api/v1/listeners").await;
    assert_eq!(l.status, 200);
    assert_eq!(l.body["data"][0]["bind"], a.b.addr());
    assert_eq!(l.body["data"][0]["protocol"], "mqtt");
    assert_eq!(l.body["data"][0]["tls"], false);
    // Not an API route, not a dashboard asset.
    let r = a.get(&token, "/api/v1/nothing").await;
    assert_eq!(r.status, 404);
}

async fn clients_are_listed_filtered_and_kicked_with_0x98(shards: usize) {
    let (a, t) = Api::ready(shards, &[]).await;
    let v5_id = a.b.id("kick-v5", 1);
    let v3_id = a.b.id("kick-v3", 0);
    let mut v5 = Client::connect(&a.b, Version::V5, &v5_id).await;
    let mut v3 = Client::connect(&a.b, Version::V3, &v3_id).await;
    v5.subscribe("k/#", 1).await;
    let all = a.get(&t, "/api/v1/clients").await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(ids(&all.body), vec![v3_id.clone(), v5_id.clone()]);
    assert_eq!(all.body["meta"]["count"], 2);
    assert_eq!(all.body["meta"]["page"], 1);
    let one = a.get(&t, &format!("/api/v1/clients/{v5_id}")).await;
    assert_eq!(one.status, 200);
    let c = &one.body;
    assert_eq!(c["proto_ver"], 5);
    assert_eq!(c["ip"], "127.0.0.1");
    assert!(c["port"].as_u64().is_some_and(|p| p > 0));
    assert_eq!(c["clean_start"], true);
    assert_eq!(c["subscriptions"], 1);
    assert_eq!(c["shard"].as_u64(), Some((1 % shards) as u64));
    assert_eq!(c["listener"], format!("mqtt://{}", a.b.addr()));
    assert!(c["username"].is_null());
    assert!(c["connected_at"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000_000));
    let v3_info = a.get(&t, &format!("/api/v1/clients/{v3_id}")).await;
    assert_eq!(v3_info.body["proto_ver"], 4);
    // Filtering and paging.
    let like = a.get(&t, "/api/v1/clients?like=kick-v5").await;
    assert_eq!(ids(&like.body), vec![v5_id.clone()]);
    assert_eq!(like.body["meta"]["count"], 1);
    let p2 = a.get(&t, "/api/v1/clients?page=2&limit=1").await;
    assert_eq!(ids(&p2.body), vec![v5_id.clone()]);
    assert_eq!(p2.body["meta"]["count"], 2);
    assert_eq!(a.get(&t, "/api/v1/clients?limit=0").await.status, 400);
    assert_eq!(a.get(&t, "/api/v1/clients?page=x").await.status, 400);
    // Kick: 204 once the client is gone; the v5 client was told 0x98.
    let kick = call(
        a.http,
        "DELETE",
        &format!("/api/v1/clients/{v5_id}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(kick.status, 204, "{:?}", kick.body);
    let closed = v5
        .closed(WAIT)
        .await
        .expect("the kicked client is disconnected");
    assert_eq!(closed.reason, Some(0x98), "{closed:?}");
    assert_eq!(
        a.get(&t, &format!("/api/v1/clients/{v5_id}")).await.status,
        404
    );
    let again = call(
        a.http,
        "DELETE",
        &format!("/api/v1/clients/{v5_id}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(again.status, 404);
    let kick = call(
        a.http,
        "DELETE",
        &format!("/api/v1/clients/{v3_id}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(kick.status, 204);
    assert!(v3.closed(WAIT).await.is_some(), "the v3 client is closed");
    assert_eq!(
        ids(&a.get(&t, "/api/v1/clients").await.body),
        Vec::<String>::new()
    );
}

async fn retained_messages_are_listed_and_a_delete_is_journaled(shards: usize) {
    let data = fresh_data_dir();
    let data_s = data.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().expect("dir");
    let users = dir.path().join("admin-users");
    add_user(&users, ADMIN, ADMIN_PW);
    let users_s = users.to_string_lossy().into_owned();
    let lease = PortLease::acquire();
    let http = lease.port;
    let bind = format!("127.0.0.1:{http}");
    let args = [
        "--data-dir",
        &data_s,
        "--http-bind",
        &bind,
        "--admin-users-file",
        &users_s,
    ];
    let mut b = Broker::with(shards, &args).await;
    wait_http(http).await;
    let t = login(http).await;
    let get = |t: String, path: &'static str| async move {
        call(http, "GET", path, Some(&t), None).await
    };
    let mut p = Client::connect(&b, Version::V5, &b.id("ret-pub", 0)).await;
    p.publish("plant/a/temp", 1, "21.5", true).await;
    p.publish("plant/b/temp", 1, vec![0xff, 0xfe], true).await;
    p.publish("other", 1, "o", true).await;
    p.settle().await;
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = get(t.clone(), "/api/v1/retained").await.body;
        if listed["meta"]["count"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed["meta"]["count"], 3, "{listed}");
    assert_eq!(listed["data"][0]["topic"], "other");
    assert_eq!(listed["data"][1]["topic"], "plant/a/temp");
    assert_eq!(listed["data"][1]["payload"], "21.5");
    assert_eq!(listed["data"][1]["payload_size"], 4);
    assert_eq!(listed["data"][1]["qos"], 1);
    assert_eq!(listed["data"][2]["payload_base64"], "//4=");
    let like = get(t.clone(), "/api/v1/retained?like=plant").await.body;
    assert_eq!(like["meta"]["count"], 2);
    // Delete: the topic's slashes percent-encoded.
    let d = call(
        http,
        "DELETE",
        "/api/v1/retained/plant%2Fa%2Ftemp",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(d.status, 204, "{:?}", d.body);
    let d = call(
        http,
        "DELETE",
        "/api/v1/retained/plant%2Fa%2Ftemp",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(d.status, 404);
    let mut s = Client::connect(&b, Version::V5, &b.id("ret-sub", 1)).await;
    s.subscribe("plant/#", 1).await;
    let got = texts(&s.drain(Duration::from_millis(500)).await);
    assert_eq!(got.len(), 1, "only plant/b/temp is still retained: {got:?}");
    drop((p, s));
    // The clear went to the store: after a restart the topic stays cleared.
    assert!(
        b.terminate(Duration::from_secs(10)).await.is_some(),
        "stops"
    );
    drop(b);
    let b = Broker::with(shards, &args).await;
    wait_http(http).await;
    let t = login(http).await;
    let after = get(t, "/api/v1/retained").await.body;
    let topics: Vec<&str> = after["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["topic"].as_str())
        .collect();
    assert_eq!(topics, vec!["other", "plant/b/temp"], "after restart");
    drop(b);
    let _ = std::fs::remove_dir_all(&data);
}

async fn sessions_and_subscriptions_are_listed(shards: usize) {
    let (a, t) = Api::ready(shards, &[]).await;
    let id = a.b.id("sess-a", 1);
    let other = a.b.id("sess-b", 0);
    let mut c = Client::connect_with(&a.b, Version::V5, &id, Opts::persistent()).await;
    c.subscribe("x/+", 1).await;
    c.subscribe("y/#", 0).await;
    let mut o = Client::connect(&a.b, Version::V3, &other).await;
    o.subscribe("z", 2).await;
    let subs = a
        .get(&t, &format!("/api/v1/subscriptions?clientid={id}"))
        .await;
    assert_eq!(subs.status, 200, "{:?}", subs.body);
    assert_eq!(subs.body["meta"]["count"], 2);
    assert_eq!(subs.body["data"][0]["topic"], "x/+");
    assert_eq!(subs.body["data"][0]["qos"], 1);
    assert_eq!(subs.body["data"][1]["topic"], "y/#");
    let all = a.get(&t, "/api/v1/subscriptions").await;
    assert_eq!(all.body["meta"]["count"], 3);
    c.disconnect().await;
    let mut sessions = Value::Null;
    for _ in 0..50 {
        sessions = a.get(&t, &format!("/api/v1/sessions?like={id}")).await.body;
        if sessions["data"][0]["connected"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sessions["meta"]["count"], 1, "{sessions}");
    let s = &sessions["data"][0];
    assert_eq!(s["clientid"], id.as_str());
    assert_eq!(s["connected"], false);
    assert_eq!(s["expiry_s"], 300);
    assert_eq!(s["subscriptions"], 2);
    assert_eq!(s["shard"].as_u64(), Some((1 % shards) as u64));
    let both = a.get(&t, "/api/v1/sessions").await.body;
    assert_eq!(ids(&both), {
        let mut v = vec![id.clone(), other.clone()];
        v.sort();
        v
    });
    // An offline session is not a connected client.
    assert_eq!(ids(&a.get(&t, "/api/v1/clients").await.body), vec![other]);
}

async fn mqtt_users_added_through_the_api_can_connect(shards: usize) {
    // Without a password file there is nothing to edit.
    let (plain, t) = Api::ready(shards, &[]).await;
    let r = plain.get(&t, "/api/v1/users").await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"], "no password_file configured");
    drop(plain);

    let dir = tempfile::tempdir().expect("dir");
    let pw = dir.path().join("passwd");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("passwd")
        .args(["-c", "-b"])
        .arg(&pw)
        .args(["alice", "alice-pw"])
        .status()
        .expect("ringmq passwd");
    assert!(st.success());
    let pw_s = pw.to_string_lossy().into_owned();
    let (a, t) = Api::ready(
        shards,
        &["--password-file", &pw_s, "--allow-anonymous", "false"],
    )
    .await;
    let list = a.get(&t, "/api/v1/users").await;
    assert_eq!(list.body["data"], json!([{ "username": "alice" }]));
    let refused = Client::try_connect(
        &a.b,
        Version::V5,
        "carol-1",
        Opts::clean().credentials("carol", "c1"),
    )
    .await;
    assert!(refused.is_err(), "no carol yet");
    let add = call(
        a.http,
        "POST",
        "/api/v1/users",
        Some(&t),
        Some(json!({ "username": "carol", "password": "c1" })),
    )
    .await;
    assert_eq!(add.status, 201, "{:?}", add.body);
    let dup = call(
        a.http,
        "POST",
        "/api/v1/users",
        Some(&t),
        Some(json!({ "username": "carol", "password": "c1" })),
    )
    .await;
    assert_eq!(dup.status, 409);
    // The shards reloaded the file: carol connects now.
    let c = Client::connect_with(
        &a.b,
        Version::V5,
        "carol-1",
        Opts::clean().credentials("carol", "c1"),
    )
    .await;
    c.disconnect().await;
    let text = std::fs::read_to_string(&pw).expect("read the password file");
    assert!(
        text.contains("alice:") && text.contains("carol:$argon2id$"),
        "{text}"
    );
    let put = call(
        a.http,
        "PUT",
        "/api/v1/users/carol",
        Some(&t),
        Some(json!({ "password": "c2" })),
    )
    .await;
    assert_eq!(put.status, 204, "{:?}", put.body);
    assert!(
        Client::try_connect(
            &a.b,
            Version::V3,
            "carol-2",
            Opts::clean().credentials("carol", "c1")
        )
        .await
        .is_err(),
        "the old password is refused"
    );
    let c = Client::connect_with(
        &a.b,
        Version::V3,
        "carol-3",
        Opts::clean().credentials("carol", "c2"),
    )
    .await;
    c.disconnect().await;
    let del = call(a.http, "DELETE", "/api/v1/users/carol", Some(&t), None).await;
    assert_eq!(del.status, 204);
    let del = call(a.http, "DELETE", "/api/v1/users/carol", Some(&t), None).await;
    assert_eq!(del.status, 404);
    let put = call(
        a.http,
        "PUT",
        "/api/v1/users/nobody",
        Some(&t),
        Some(json!({"password": "x"})),
    )
    .await;
    assert_eq!(put.status, 404);
    assert!(
        Client::try_connect(
            &a.b,
            Version::V5,
            "carol-4",
            Opts::clean().credentials("carol", "c2")
        )
        .await
        .is_err(),
        "a deleted user is refused"
    );
    let bad = call(
        a.http,
        "POST",
        "/api/v1/users",
        Some(&t),
        Some(json!({ "username": "a:b", "password": "x" })),
    )
    .await;
    assert_eq!(bad.status, 400);
}

async fn the_acl_is_shown_and_reloaded_and_a_bad_file_is_refused(shards: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite open/#\n").expect("write acl");
    let acl_s = acl.to_string_lossy().into_owned();
    let (a, t) = Api::ready(shards, &["--acl-file", &acl_s]).await;
    let r = a.get(&t, "/api/v1/acl").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["file"], acl_s.as_str());
    assert_eq!(r.body["rules"], 1);
    assert_eq!(r.body["text"], "topic readwrite open/#\n");
    // v3: a refused filter is SUBACK 0x80 and the connection stays.
    let mut c = Client::connect(&a.b, Version::V3, &a.b.id("acl-c", 1)).await;
    assert_eq!(c.subscribe("closed/x", 1).await, 0x80, "not in the ACL yet");
    std::fs::write(&acl, "topic readwrite open/#\ntopic read closed/#\n").expect("write acl");
    let re = call(a.http, "POST", "/api/v1/acl/reload", Some(&t), None).await;
    assert_eq!(re.status, 204, "{:?}", re.body);
    assert_eq!(a.get(&t, "/api/v1/acl").await.body["rules"], 2);
    assert_eq!(
        c.subscribe("closed/x", 1).await,
        1,
        "the reloaded ACL allows it"
    );
    std::fs::write(&acl, "topic sometimes x\n").expect("write a bad acl");
    let re = call(a.http, "POST", "/api/v1/acl/reload", Some(&t), None).await;
    assert_eq!(re.status, 400, "{:?}", re.body);
    assert!(re.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("acl_file")));
    assert_eq!(
        a.get(&t, "/api/v1/acl").await.body["rules"],
        2,
        "the old ACL stays"
    );
}

/// `ringmq ctl --url URL --user root --password-stdin ARGS...`: (success, stdout, stderr).
async fn ctl(a: &Api, args: &[&str]) -> (bool, String, String) {
    let url = a.url();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args(["ctl", "--url", &url, "--user", ADMIN, "--password-stdin"])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ringmq ctl");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{ADMIN_PW}\n").as_bytes());
        let out = child.wait_with_output().expect("ringmq ctl ends");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("ctl task")
}

async fn ringmq_ctl_logs_in_and_manages_the_broker(shards: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite #\n").expect("write acl");
    let acl_s = acl.to_string_lossy().into_owned();
    let (a, _t) = Api::ready(shards, &["--acl-file", &acl_s]).await;
    let id = a.b.id("ctl-target", 1);
    let mut v5 = Client::connect(&a.b, Version::V5, &id).await;
    v5.publish("ctl/r", 1, "kept", true).await;
    v5.settle().await;
    let (ok, out, err) = ctl(&a, &["clients", "list"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("clientid={id}")), "{out}");
    assert!(out.contains("(1 in total)"), "{out}");
    let (ok, out, _) = ctl(&a, &["clients", "list", "--like", "nobody"]).await;
    assert!(ok && out.contains("(0 in total)"), "{out}");
    let (ok, out, err) = ctl(&a, &["stats"]).await;
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("stats as JSON");
    assert!(stats["uptime_s"].is_u64());
    let (ok, out, err) = ctl(&a, &["retained", "list"]).await;
    assert!(ok && out.contains("topic=ctl/r"), "{out} {err}");
    let (ok, _, err) = ctl(&a, &["retained", "delete", "ctl/r"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = ctl(&a, &["retained", "delete", "ctl/r"]).await;
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = ctl(&a, &["acl", "reload"]).await;
    assert!(ok, "{err}");
    let (ok, out, _) = ctl(&a, &["acl", "show"]).await;
    assert!(ok && out.contains("rules=1"), "{out}");
    let (ok, _, err) = ctl(&a, &["users", "list"]).await;
    assert!(!ok && err.contains("no password_file configured"), "{err}");
    let (ok, _, err) = ctl(&a, &["clients", "kick", &id]).await;
    assert!(ok, "{err}");
    assert_eq!(v5.closed(WAIT).await.and_then(|c| c.reason), Some(0x98));
    let (ok, _, err) = ctl(&a, &["clients", "kick", &id]).await;
    assert!(!ok && err.contains("not connected"), "{err}");
    // A wrong password stops at the login.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args([
            "ctl",
            "--url",
            &a.url(),
            "--user",
            ADMIN,
            "--password-stdin",
            "stats",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ctl");
    assert!(!out.status.success());
}

async fn every_route_of_the_openapi_document_is_served(shards: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, "").expect("empty password file");
    let pw_s = pw.to_string_lossy().into_owned();
    let (a, t) = Api::ready(shards, &["--password-file", &pw_s]).await;
    let doc = call(a.http, "GET", "/api/v1/openapi.json", None, None)
        .await
        .body;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 14, "{}", paths.len());
    let mut walked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("operations") {
            let concrete = path
                .replace("{clientid}", "nobody")
                .replace("{topic}", "no%2Fsuch")
                .replace("{name}", "nobody");
            let body = match method.as_str() {
                "post" if path.ends_with("/login") => {
                    Some(json!({ "username": ADMIN, "password": ADMIN_PW }))
                }
                "post" | "put" => Some(json!({ "username": "walker", "password": "w" })),
                _ => None,
            };
            let r = call(a.http, &method.to_uppercase(), &concrete, Some(&t), body).await;
            assert_ne!(r.status, 405, "{method} {path}: {:?}", r.body);
            // A 404 may only be about the resource (no such client, topic or user), never the
            // route, and only where the document lists a 404.
            if r.status == 404 {
                assert!(op["responses"].get("404").is_some(), "{method} {path}: 404");
                let e = r.body["error"].as_str().unwrap_or("");
                assert!(
                    !e.contains("no such API route") && e != "not found",
                    "{method} {path}: {e}"
                );
            }
            assert!(
                op["responses"].get(r.status.to_string()).is_some(),
                "{method} {path}: status {} is not documented: {:?}",
                r.status,
                r.body
            );
            walked += 1;
        }
    }
    assert!(walked >= 19, "{walked} operations");
}

async fn failed_logins_are_rate_limited_per_address(shards: usize) {
    let a = Api::start(shards, &[]).await;
    a.add_admin().await;
    let wrong = json!({ "username": ADMIN, "password": "guess" });
    for i in 0..5 {
        let r = call(a.http, "POST", "/api/v1/login", None, Some(wrong.clone())).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = call(a.http, "POST", "/api/v1/login", None, Some(wrong)).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    // Even the right password waits for the window: a guesser cannot tell.
    let right = json!({ "username": ADMIN, "password": ADMIN_PW });
    let r = call(a.http, "POST", "/api/v1/login", None, Some(right)).await;
    assert_eq!(r.status, 429);
}
