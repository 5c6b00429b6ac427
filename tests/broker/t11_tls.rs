//! Area 11: TLS listeners (`protocol = "mqtts"`), against a real third-party TLS stack: the
//! Mosquitto command-line clients, which use OpenSSL. Certificates are made per test with
//! rcgen: a CA, a server certificate for 127.0.0.1, and a client certificate with CN
//! `device-7`.

use crate::broker_process::PortLease;
use crate::common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

shard_tests!(
    openssl_clients_publish_and_subscribe_over_tls_1_3_and_1_2,
    plain_mqtt_on_the_tls_port_is_refused_and_nobody_else_notices,
    a_tls_handshake_that_never_starts_is_closed_at_the_connect_timeout,
    require_certificate_admits_only_clients_with_a_certificate_of_the_ca,
    use_identity_as_username_refuses_a_client_without_a_certificate,
    sighup_reloads_the_certificate_for_new_connections,
    a_ktls_listener_serves_tls_clients_and_without_the_kernel_module_warns_once,
);

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed when dropped.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new() -> Dir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ringmq-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Dir(p)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("CA key");
    let cert = p.self_signed(&key).expect("CA certificate");
    Ca { cert, key }
}

/// (certificate PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, cn: &str, server: bool) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    if server {
        p.subject_alt_names = vec![
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::DnsName("localhost".try_into().expect("dns name")),
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// Files of one TLS setup.
pub(crate) struct Pki {
    pub(crate) dir: Dir,
    pub(crate) ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

pub(crate) fn pki() -> Pki {
    let dir = Dir::new();
    let ca = self::ca("ringmq test CA");
    let (server_cert, server_key) = leaf(&ca, "ringmq test server", true);
    let (client_cert, client_key) = leaf(&ca, "device-7", false);
    dir.write("server.pem", &server_cert);
    dir.write("server.key", &server_key);
    Pki {
        ca: dir.write("ca.pem", &ca.cert.pem()),
        client_cert: dir.write("client.pem", &client_cert),
        client_key: dir.write("client.key", &client_key),
        dir,
    }
}

/// A broker with a plain listener (the harness's `--bind`) and an mqtts listener on `tls`.
async fn tls_broker(shards: usize, pki: &Pki, extra: &str, flags: &[&str]) -> (Broker, PortLease) {
    tls_broker_logging(shards, pki, extra, flags, None).await
}

/// As [`tls_broker`], with the broker's log at `(level, file)`.
async fn tls_broker_logging(
    shards: usize,
    pki: &Pki,
    extra: &str,
    flags: &[&str],
    log: Option<(&str, &Path)>,
) -> (Broker, PortLease) {
    let tls = PortLease::acquire();
    let d = &pki.dir.0;
    let cfg = format!(
        "[[listener]]\nbind = \"127.0.0.1:{}\"\nprotocol = \"mqtts\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\n{extra}\n",
        tls.port,
        d.join("server.pem").display(),
        d.join("server.key").display(),
    );
    let file = pki.dir.write("ringmq.toml", &cfg);
    let mut args = vec!["--config", file.to_str().expect("utf-8 path")];
    args.extend_from_slice(flags);
    let b = Broker::launch_logging(shards, &args, log).await;
    (b, tls)
}

/// `mosquitto_pub` over TLS; true if it exited successfully.
async fn tls_pub(port: u16, ca: &Path, extra: &[&str], id: &str, topic: &str, msg: &str) -> bool {
    tls_pub_conf(port, ca, extra, None, id, topic, msg).await
}

/// As [`tls_pub`], with an OpenSSL configuration file (`OPENSSL_CONF`): Mosquitto 2.0's clients
/// have no option for TLS 1.3 cipher suites, OpenSSL's `Ciphersuites` setting does it.
async fn tls_pub_conf(
    port: u16,
    ca: &Path,
    extra: &[&str],
    openssl_conf: Option<&Path>,
    id: &str,
    topic: &str,
    msg: &str,
) -> bool {
    let mut cmd = Command::new("mosquitto_pub");
    if let Some(conf) = openssl_conf {
        cmd.env("OPENSSL_CONF", conf);
    }
    let out = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
        .arg(ca)
        .args(["-i", id, "-t", topic, "-m", msg])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(10), out).await,
        Ok(Ok(s)) if s.success()
    )
}

/// `mosquitto_sub` over TLS waiting for `count` messages; returns the child to collect.
fn tls_sub(
    port: u16,
    ca: &Path,
    extra: &[&str],
    id: &str,
    topic: &str,
    count: usize,
) -> tokio::process::Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
        .arg(ca)
        .args([
            "-i",
            id,
            "-t",
            topic,
            "-q",
            "1",
            "-C",
            &count.to_string(),
            "-W",
            "10",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub (Debian package mosquitto-clients)")
}

async fn lines(child: tokio::process::Child) -> Vec<String> {
    let out = child
        .wait_with_output()
        .await
        .expect("mosquitto_sub output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Give a subscriber time to connect and subscribe before publishing.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

async fn openssl_clients_publish_and_subscribe_over_tls_1_3_and_1_2(shards: usize) {
    let pki = pki();
    let (b, tls) = tls_broker(shards, &pki, "", &[]).await;
    let sub = tls_sub(tls.port, &pki.ca, &[], &b.id("tls-sub", 0), "tls/#", 8);
    settle().await;
    // Publishers homed on either shard, accepted on whichever the kernel picks: with two
    // shards, some TLS connections move to their home shard after the CONNECT, TLS state and
    // all.
    let mut expected = Vec::new();
    for i in 0..8 {
        let p = b.id(&format!("tls-pub-{i}"), i % 2);
        let mut flags = vec![];
        if i % 4 == 1 {
            flags.extend(["--tls-version", "tlsv1.2"]);
        }
        let qos = (i % 3).to_string();
        flags.extend(["-q", qos.as_str()]);
        let msg = format!("m{i}");
        assert!(
            tls_pub(tls.port, &pki.ca, &flags, &p, "tls/a", &msg).await,
            "{msg}"
        );
        expected.push(msg);
    }
    assert_eq!(lines(sub).await, expected);
}

async fn plain_mqtt_on_the_tls_port_is_refused_and_nobody_else_notices(shards: usize) {
    let pki = pki();
    let (mut b, tls) = tls_broker(shards, &pki, "", &[]).await;
    let sub = tls_sub(tls.port, &pki.ca, &[], &b.id("bystander", 1), "by/t", 1);
    settle().await;
    // A plain MQTT CONNECT where a TLS ClientHello belongs.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tls.port))
        .await
        .expect("connect");
    let connect = [
        0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 4, b'p', b'l', b'a', b'n',
    ];
    s.write_all(&connect).await.expect("write");
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {} // a TLS alert
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "the broker kept a non-TLS client on its TLS port"
    );
    assert!(
        tls_pub(
            tls.port,
            &pki.ca,
            &[],
            &b.id("by-pub", 0),
            "by/t",
            "still here"
        )
        .await
    );
    assert_eq!(lines(sub).await, ["still here"]);
    b.assert_serving().await;
}

async fn a_tls_handshake_that_never_starts_is_closed_at_the_connect_timeout(shards: usize) {
    let pki = pki();
    let (_b, tls) = tls_broker(shards, &pki, "", &["--connect-timeout-ms", "500"]).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tls.port))
        .await
        .expect("connect");
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

async fn require_certificate_admits_only_clients_with_a_certificate_of_the_ca(shards: usize) {
    let pki = pki();
    let extra = format!(
        "cafile = \"{}\"\nrequire_certificate = true",
        pki.ca.display()
    );
    let (b, tls) = tls_broker(shards, &pki, &extra, &[]).await;
    let cert = pki.client_cert.to_str().expect("utf-8");
    let key = pki.client_key.to_str().expect("utf-8");
    let with_cert = ["--cert", cert, "--key", key];
    let sub = tls_sub(tls.port, &pki.ca, &with_cert, &b.id("rc-sub", 0), "rc/t", 1);
    settle().await;
    assert!(
        !tls_pub(
            tls.port,
            &pki.ca,
            &[],
            &b.id("rc-anon", 1),
            "rc/t",
            "no cert"
        )
        .await,
        "a client without a certificate was admitted"
    );
    // A certificate from another CA is refused too.
    let other = ca("some other CA");
    let (oc, ok) = leaf(&other, "intruder", false);
    let oc = pki.dir.write("other.pem", &oc);
    let ok = pki.dir.write("other.key", &ok);
    let wrong = [
        "--cert",
        oc.to_str().expect("utf-8"),
        "--key",
        ok.to_str().expect("utf-8"),
    ];
    assert!(
        !tls_pub(
            tls.port,
            &pki.ca,
            &wrong,
            &b.id("rc-other", 1),
            "rc/t",
            "wrong CA"
        )
        .await
    );
    assert!(
        tls_pub(
            tls.port,
            &pki.ca,
            &with_cert,
            &b.id("rc-pub", 1),
            "rc/t",
            "cert ok"
        )
        .await
    );
    assert_eq!(lines(sub).await, ["cert ok"]);
}

async fn use_identity_as_username_refuses_a_client_without_a_certificate(shards: usize) {
    let pki = pki();
    let extra = format!(
        "cafile = \"{}\"\nuse_identity_as_username = true",
        pki.ca.display()
    );
    let (b, tls) = tls_broker(shards, &pki, &extra, &[]).await;
    let cert = pki.client_cert.to_str().expect("utf-8");
    let key = pki.client_key.to_str().expect("utf-8");
    let with_cert = ["--cert", cert, "--key", key];
    assert!(
        !tls_pub(tls.port, &pki.ca, &[], &b.id("id-anon", 1), "id/t", "x").await,
        "admitted without the certificate its user name comes from"
    );
    assert!(
        tls_pub(
            tls.port,
            &pki.ca,
            &with_cert,
            &b.id("id-pub", 1),
            "id/t",
            "x"
        )
        .await
    );
}

async fn sighup_reloads_the_certificate_for_new_connections(shards: usize) {
    let pki = pki();
    let (b, tls) = tls_broker(shards, &pki, "", &[]).await;
    assert!(tls_pub(tls.port, &pki.ca, &[], &b.id("hup-1", 0), "hup/t", "before").await);
    // A new CA and server certificate in the same files, then SIGHUP.
    let ca2 = ca("ringmq test CA 2");
    let (cert2, key2) = leaf(&ca2, "ringmq test server 2", true);
    pki.dir.write("server.pem", &cert2);
    pki.dir.write("server.key", &key2);
    let ca2_file = pki.dir.write("ca2.pem", &ca2.cert.pem());
    // SAFETY: signalling the broker process this test started.
    assert_eq!(unsafe { libc::kill(b.pid() as i32, libc::SIGHUP) }, 0);
    let mut reloaded = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tls_pub(
            tls.port,
            &ca2_file,
            &[],
            &b.id("hup-2", 1),
            "hup/t",
            "after",
        )
        .await
        {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "new connections never got the new certificate");
    assert!(
        !tls_pub(tls.port, &pki.ca, &[], &b.id("hup-3", 0), "hup/t", "old CA").await,
        "the old certificate is still served"
    );
}

/// `ktls = true`: where the kernel has no `tls` module (TCP_ULP fails with ENOENT, as on hosts
/// without CONFIG_TLS, or for a non-root broker that may not load it), every connection falls
/// back to rustls, the clients notice nothing, and the broker says so once for the listener,
/// not once per connection or shard. Where the kernel has it, the same clients are served
/// over kTLS and nothing is warned. The kTLS path itself is proven in a VM whose kernel has the
/// module: `perf/ktls-vm.sh`.
async fn a_ktls_listener_serves_tls_clients_and_without_the_kernel_module_warns_once(
    shards: usize,
) {
    let pki = pki();
    let log = pki.dir.0.join("broker.log");
    let (b, tls) = tls_broker_logging(shards, &pki, "ktls = true", &[], Some(("warn", &log))).await;
    let sub = tls_sub(tls.port, &pki.ca, &[], &b.id("ktls-sub", 0), "ktls/#", 6);
    settle().await;
    let mut expected = Vec::new();
    for i in 0..6 {
        // Homed on either shard (hand-overs with 2 shards); TLS 1.3 (AES-256-GCM by OpenSSL's
        // order, then AES-128-GCM and ChaCha20-Poly1305) and TLS 1.2 (AES-GCM and ChaCha20).
        // The version and suite through OpenSSL's configuration: Mosquitto 2.0's
        // --tls-version tlsv1.2 is only a minimum, and TLS 1.3 suites have no option.
        let p = b.id(&format!("ktls-pub-{i}"), i % 2);
        let flags = ["-q", "1"];
        let conf = match i {
            1 => Some(openssl_suite(
                &pki,
                "TLSv1.2",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
            )),
            2 => Some(openssl_suite(&pki, "TLSv1.3", "TLS_AES_128_GCM_SHA256")),
            3 => Some(openssl_suite(
                &pki,
                "TLSv1.3",
                "TLS_CHACHA20_POLY1305_SHA256",
            )),
            4 => Some(openssl_suite(
                &pki,
                "TLSv1.2",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
            )),
            _ => None,
        };
        let msg = format!("k{i}");
        let sent = tls_pub_conf(
            tls.port,
            &pki.ca,
            &flags,
            conf.as_deref(),
            &p,
            "ktls/a",
            &msg,
        );
        assert!(sent.await, "{msg}");
        expected.push(msg);
    }
    assert_eq!(lines(sub).await, expected);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let warned = text
        .matches(&format!("kTLS on 127.0.0.1:{} is off", tls.port))
        .count();
    if std::path::Path::new("/proc/net/tls_stat").exists() {
        assert_eq!(
            warned, 0,
            "the kernel has kTLS, yet the broker fell back:\n{text}"
        );
    } else {
        assert_eq!(warned, 1, "one fallback warning for the listener:\n{text}");
        assert!(text.contains("no tls module"), "{text}");
    }
}

/// An OpenSSL configuration that offers only `version` (`TLSv1.2` or `TLSv1.3`) with the one
/// cipher suite `suite`.
fn openssl_suite(pki: &Pki, version: &str, suite: &str) -> PathBuf {
    let key = if version == "TLSv1.3" {
        "Ciphersuites"
    } else {
        "CipherString"
    };
    pki.dir.write(
        &format!("openssl-{suite}.cnf"),
        &format!(
            "openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n\
             [tls]\nMinProtocol = {version}\nMaxProtocol = {version}\n{key} = {suite}\n"
        ),
    )
}
