//! HTTPS on the listen address (issue 20): with `tls_cert` and `tls_key` every route
//! is served over TLS, the client trusts a CA it is given, plain HTTP gets nothing, and
//! a half-given identity is refused at start naming what is missing.

mod support;

use std::time::Duration;
use support::daemon::Daemon;
use support::*;

#[test]
fn every_route_is_served_over_tls_and_the_client_trusts_a_given_ca() {
    let Some(tb) = testbed() else { return };
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = support::self_signed(certs.path());
    let d = Daemon::start_tls(&cert, &cert, &key, &[]);
    assert!(d.url().starts_with("https://"));
    let (code, _) = d.get("/healthz");
    assert_eq!(code, 200);
    // The client, trusting the CA it is given, queues a run and follows its log.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\nRUN echo over-tls\n", tb.base_image),
    )
    .unwrap();
    let r = run(d.client().args(["build", "--no-push", "-t", "tls-test:1"]).arg(ctx.path()));
    assert!(r.ok && r.all().contains("over-tls"), "{}", r.all());
    // Without the CA the client refuses the daemon's certificate.
    let untrusting = run(d.client().env("SSL_CERT_FILE", "/dev/null").args(["runs", "list"]));
    assert!(!untrusting.ok, "{}", untrusting.all());
    // Plain HTTP on the same address is answered with nothing a client could use.
    let plain = support::rt().block_on(async {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/healthz", d.port))
            .timeout(Duration::from_secs(5))
            .send()
            .await
    });
    assert!(plain.is_err() || plain.unwrap().status().as_u16() != 200);
    // A connection that never says hello is closed once a request head's time is up.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut idle, &mut buf);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "closed after {:?}", started.elapsed());
}

#[test]
fn a_certificate_without_its_key_is_refused_at_start() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, _key) = support::self_signed(certs.path());
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("tls_cert is set without tls_key"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("tls_key"), "{text}");
}
