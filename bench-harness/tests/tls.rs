//! `--tls` / `--tls-ca` end to end: the real `ringmq-bench` binary against the real ringmq
//! binary with a plain and an `mqtts` listener, on loopback, with a CA and server certificate
//! generated for this run (rcgen). Every child runs under a deadline and is killed (by its own
//! handle) when the test ends. Skipped, with a message, when no ringmq binary is built.
//!
//! ringmq is a different package of the workspace, so Cargo does not build it for this test:
//! `cargo build --release -p ringmq` (or `RINGMQ=/path/to/ringmq`).

mod common;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A CA and a server certificate for 127.0.0.1 signed by it; PEM files in `dir`.
fn write_certs(dir: &Path) -> PathBuf {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ringmq-bench test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut srv = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    srv.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), srv_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), srv_key.serialize_pem()).unwrap();
    dir.join("ca.pem")
}

/// A ringmq we started; killed when dropped, even if the test panics.
struct Broker {
    _run: Started,
    plain: u16,
    tls: u16,
}

fn start_ringmq(bin: &Path, dir: PathBuf) -> Broker {
    let (plain, tls) = (free_port(), free_port());
    let conf = dir.join("ringmq.toml");
    std::fs::write(
        &conf,
        format!(
            "shards = 1\npin = false\nlog_level = \"warn\"\ndata_dir = \"{}\"\n\
             [[listener]]\nbind = \"127.0.0.1:{plain}\"\n\
             [[listener]]\nbind = \"127.0.0.1:{tls}\"\nprotocol = \"mqtts\"\n\
             certfile = \"{}\"\nkeyfile = \"{}\"\n",
            // In the test's directory: the default (./ringmq-data) would land in the source tree.
            dir.join("data").display(),
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(&conf)
        // No admin HTTP API: its fixed default port would collide with other brokers.
        .args(["--http-enabled", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ringmq");
    let b = Broker {
        _run: Started { child, dir },
        plain,
        tls,
    };
    let up = bench(
        &["probe", "--port", &plain.to_string(), "--wait", "10s"],
        15,
    );
    assert!(
        up.status.success(),
        "ringmq did not come up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    b
}

fn json_line(out: &Output, args: &[&str]) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ringmq-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"))
}

#[test]
fn tls_option_drives_pairs_and_conns_through_ringmqs_mqtts_listener() {
    let Some(bin) = find_ringmq() else {
        eprintln!("SKIPPED: no ringmq binary (cargo build --release -p ringmq, or RINGMQ=path)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ringmq-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = write_certs(&dir);
    let ca = ca.to_str().unwrap();
    let b = start_ringmq(&bin, dir.clone());
    let tls = b.tls.to_string();

    // The probe completes a handshake and names what was negotiated.
    let p = bench(
        &["probe", "--port", &tls, "--tls-ca", ca, "--wait", "5s"],
        10,
    );
    let said = String::from_utf8_lossy(&p.stdout);
    assert!(p.status.success(), "TLS probe failed: {said}");
    assert!(said.contains("over TLSv1_3"), "{said}");

    // QoS 1 pairs over TLS: everything forwarded, nothing lost, reported as TLS.
    let args = [
        "pairs",
        "--port",
        &tls,
        "--tls-ca",
        ca,
        "--pairs",
        "2",
        "--qos",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--drain",
        "2s",
        "--quiet",
    ];
    let r = json_line(&bench(&args, 30), &args);
    assert_eq!(r["transport"], "tls", "{r}");
    assert!(r["forwarded_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["received"], r["expected"], "{r}");
    assert_eq!(r["lost_acked"], 0, "{r}");
    assert!(r["errors"].as_object().unwrap().is_empty(), "{r}");

    // conns over TLS: every connection makes its handshake and gets CONNACK.
    let args = [
        "conns",
        "--port",
        &tls,
        "--tls-ca",
        ca,
        "--connections",
        "50",
        "--hold",
        "300ms",
        "--quiet",
    ];
    let r = json_line(&bench(&args, 30), &args);
    assert_eq!(r["conns"]["succeeded"], 50, "{r}");

    // A CA that did not sign the broker's certificate: the handshake fails, and says why.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let wrong = write_certs(&other);
    let p = bench(
        &["probe", "--port", &tls, "--tls-ca", wrong.to_str().unwrap()],
        10,
    );
    assert!(!p.status.success());
    let err = String::from_utf8_lossy(&p.stderr);
    assert!(err.contains("certificate"), "{err}");

    // --tls without a CA is refused before connecting; the plain port is untouched by all this.
    let p = bench(&["probe", "--port", &tls, "--tls"], 10);
    assert!(!p.status.success());
    assert!(String::from_utf8_lossy(&p.stderr).contains("--tls-ca"));
    let p = bench(&["probe", "--port", &b.plain.to_string()], 10);
    assert!(p.status.success());
    drop(b);
}
