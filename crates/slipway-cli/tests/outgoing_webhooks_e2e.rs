//! Outgoing webhooks against real HTTP receivers this test starts: one that fails its
//! first answers, one that is slow, one that is down while the daemon restarts. Runs
//! push real images to the real registry; the events must parse with ACR's field names,
//! be signed, carry the webhook's headers, and never leak a secret.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::{dir_with, run, testbed};

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Seen {
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// A real HTTP receiver on loopback: answers 500 to its first `fail_first` requests and
/// waits `slow_first` before answering its first one; records everything.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn start(fail_first: usize, slow_first: Duration) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), fail_first, slow_first)
    }

    fn on(listener: TcpListener, fail_first: usize, slow_first: Duration) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(Mutex::new(0usize));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (seen, count) = (shared.clone(), count.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut stream) else { return };
                    let n = {
                        let mut c = count.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    if n == 1 && !slow_first.is_zero() {
                        std::thread::sleep(slow_first);
                    }
                    seen.lock().unwrap().push(req);
                    let (code, text) = if n <= fail_first { (500, "not yet") } else { (200, "thanks") };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                });
            }
        });
        Receiver { port, seen }
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a request's JSON body passes `want`; returns it.
    fn wait_for(&self, what: &str, limit: Duration, want: impl Fn(&serde_json::Value) -> bool) -> Seen {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.seen().into_iter().find(|s| want(&s.json())) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; got: {:#?}",
                self.seen().iter().map(|s| s.body.clone()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Seen> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        headers,
        body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
    })
}

fn hmac_hex(secret: &str, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn webhook(d: &Daemon, args: &[&str]) {
    let r = run(d.client().args(["webhook"]).args(args));
    assert!(r.ok, "slipway webhook {args:?}: {}", r.all());
}

fn events(d: &Daemon, name: &str) -> Vec<serde_json::Value> {
    let (code, body) = d.get(&format!("/v1/outgoing-webhooks/{name}/events?top=100"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["value"]
        .as_array()
        .unwrap()
        .clone()
}

fn daemon() -> Daemon {
    Daemon::start(&[
        "--allowed-webhook-host",
        "127.0.0.1",
        "--webhook-retry-seconds",
        "1",
        "--webhook-timeout-seconds",
        "2",
        "--public-url",
        "https://builds.example.test",
    ])
}

/// A build pushes: the push event has ACR's fields, with the digest the run reports;
/// run events follow the run; a receiver that fails at first gets everything in the
/// end, signed and with its headers; a slow one is tried again; scopes filter pushes;
/// `ping` and `list-events` show what happened; no secret reaches the database, the
/// daemon's log or an answer.
#[test]
fn pushes_and_runs_notify_real_receivers() {
    let Some(tb) = testbed() else { return };
    let d = daemon();
    let flaky = Receiver::start(2, Duration::ZERO);
    let slow = Receiver::start(0, Duration::from_secs(4));
    let elsewhere = Receiver::start(0, Duration::ZERO);
    let (header_secret, signing_secret) = (
        format!("hdr-{}", uuid::Uuid::new_v4().simple()),
        format!("sig-{}", uuid::Uuid::new_v4().simple()),
    );
    webhook(
        &d,
        &[
            "create",
            "-n",
            "deploy1",
            "--uri",
            &flaky.uri(),
            "--actions",
            "push",
            "run_queued",
            "run_started",
            "run_finished",
            "--scope",
            "hooktest:*",
            "--header",
            &format!("Authorization=Bearer {header_secret}"),
            "--secret",
            &signing_secret,
        ],
    );
    webhook(&d, &["create", "-n", "slowone", "--uri", &slow.uri(), "--actions", "run_finished"]);
    webhook(
        &d,
        &["create", "-n", "otherrepo", "--uri", &elsewhere.uri(), "--scope", "nothere:*"],
    );
    // A private address the operator did not list is refused, naming the setting.
    let r = run(d
        .client()
        .args(["webhook", "create", "-n", "internal1", "--uri", "http://10.1.2.3/x"]));
    assert!(!r.ok && r.all().contains("allowed_webhook_hosts"), "{}", r.all());

    let ctx = dir_with(&[("Dockerfile", &format!("FROM {}\nRUN echo hi > /hi\n", tb.base_image))]);
    let image = format!("{}/hooktest:v1", tb.registry);
    let r = run(d.client().args(["build", "-t", &image]).arg(ctx.path()));
    assert!(r.ok, "{}", r.all());
    let run_id = r
        .all()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Run ID: ")
                .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        })
        .expect("the build prints its run id");
    let ran = d.wait_status(&run_id, &["Succeeded"], Duration::from_secs(60));
    let pushed = ran["outputImages"][0].clone();

    // The push event: ACR's fields exactly, the run's digest, the registry's host.
    let push = flaky.wait_for("push event", Duration::from_secs(30), |v| v["action"] == "push");
    let e = push.json();
    assert_eq!(keys(&e), ["action", "id", "request", "target", "timestamp"]);
    assert_eq!(keys(&e["target"]), ["digest", "length", "mediaType", "repository", "size", "tag"]);
    assert_eq!(keys(&e["request"]), ["host", "id", "method", "useragent"]);
    assert_eq!(e["target"]["repository"], "hooktest");
    assert_eq!(e["target"]["tag"], "v1");
    assert_eq!(e["target"]["digest"], pushed["digest"]);
    assert!(
        e["target"]["size"].as_u64().unwrap() > 0 && e["target"]["size"] == e["target"]["length"],
        "{e}"
    );
    assert!(e["target"]["mediaType"].as_str().unwrap().starts_with("application/vnd."), "{e}");
    assert_eq!(e["request"]["host"], tb.registry.as_str());
    assert_eq!(e["request"]["method"], "PUT");
    chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).expect("an RFC 3339 timestamp");
    // Keel's and Flux's fields, read the way they read them.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct AcrEvent {
        action: String,
        target: AcrTarget,
        request: AcrRequest,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct AcrTarget {
        repository: String,
        tag: String,
        digest: String,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct AcrRequest {
        host: String,
    }
    let typed: AcrEvent = serde_json::from_str(&push.body).expect("the payload reads as an ACR event");
    assert_eq!((typed.action.as_str(), typed.target.tag.as_str()), ("push", "v1"));

    // Run events, in the run's order, with the run's state.
    for action in ["run_queued", "run_started", "run_finished"] {
        flaky.wait_for(action, Duration::from_secs(30), |v| {
            v["action"] == action && v["run"]["runId"] == run_id.as_str()
        });
    }
    let finished = flaky
        .wait_for("run_finished", Duration::from_secs(5), |v| v["action"] == "run_finished")
        .json();
    assert_eq!(finished["run"]["status"], "Succeeded");
    assert_eq!(finished["run"]["outputImages"][0]["digest"], pushed["digest"]);
    assert_eq!(finished["run"]["url"], format!("https://builds.example.test/runs/{run_id}"));
    assert!(finished["run"]["durationSeconds"].as_f64().unwrap() > 0.0);

    // Every request signed and with the webhook's header; the event id stays the same
    // across a delivery's attempts.
    for s in flaky.seen() {
        assert_eq!(s.headers.get("x-slipway-signature-256"), Some(&hmac_hex(&signing_secret, &s.body)));
        assert_eq!(s.headers.get("authorization"), Some(&format!("Bearer {header_secret}")));
        assert_eq!(s.headers.get("content-type").map(String::as_str), Some("application/json"));
        assert_eq!(
            s.headers.get("x-slipway-delivery"),
            s.json()["id"].as_str().map(str::to_string).as_ref()
        );
    }
    // The first two answers were 500s: those deliveries were tried again and arrived.
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = loop {
        let l = events(&d, "deploy1");
        if l.len() >= 4 && l.iter().all(|x| x["status"] == "Delivered") {
            break l;
        }
        assert!(Instant::now() < deadline, "not all delivered: {l:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let retried: Vec<&serde_json::Value> = list.iter().filter(|x| x["attempts"].as_array().unwrap().len() > 1).collect();
    assert!(!retried.is_empty(), "{list:#?}");
    for x in &retried {
        let attempts = x["attempts"].as_array().unwrap();
        assert_eq!(attempts[0]["statusCode"], 500);
        assert!(attempts[0]["error"].as_str().unwrap().contains("500"));
        assert_eq!(attempts[0]["response"], "not yet");
        assert_eq!(attempts.last().unwrap()["statusCode"], 200);
    }
    assert!(list.iter().all(|x| x["status"] == "Delivered"), "{list:#?}");

    // The slow receiver: the first attempt timed out, the next one arrived.
    slow.wait_for("run_finished (slow)", Duration::from_secs(30), |v| v["action"] == "run_finished");
    let deadline = Instant::now() + Duration::from_secs(20);
    let slow_list = loop {
        let l = events(&d, "slowone");
        if l.iter().any(|x| x["status"] == "Delivered") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = &slow_list[0]["attempts"][0];
    assert!(
        first["statusCode"].is_null() && first["error"].as_str().unwrap().contains("no answer within 2 s"),
        "{slow_list:#?}"
    );
    assert_eq!(slow_list[0]["status"], "Delivered", "{slow_list:#?}");

    // The scope kept this push from the webhook of another repository.
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());

    // ping and list-events, as people use them.
    let r = run(d.client().args(["webhook", "ping", "-n", "deploy1"]));
    assert!(r.ok && r.stdout.contains("ping") && r.stdout.contains("Delivered"), "{}", r.all());
    flaky.wait_for("ping", Duration::from_secs(5), |v| v["action"] == "ping");
    let r = run(d.client().args(["webhook", "list-events", "-n", "deploy1"]));
    assert!(r.ok && r.stdout.contains("push") && r.stdout.contains("500"), "{}", r.all());
    let r = run(d.client().args(["webhook", "show", "-n", "deploy1", "-o", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(shown["customHeaderNames"], serde_json::json!(["Authorization"]));
    assert_eq!(shown["signed"], true);
    // A list is a list for scripts, however many it holds.
    let r = run(d
        .client()
        .args(["webhook", "list-events", "-n", "deploy1", "--top", "1", "-o", "json"]));
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // Moving it to another receiver without giving its secrets again is refused.
    let r = run(d.client().args(["webhook", "update", "-n", "deploy1", "--uri", &elsewhere.uri()]));
    assert!(!r.ok && r.all().contains("given again"), "{}", r.all());

    // No secret anywhere it could leak.
    let mut places = vec![d.server_log(), r.stdout.clone(), d.get("/v1/outgoing-webhooks").1];
    places.push(serde_json::to_string(&events(&d, "deploy1")).unwrap());
    for f in support::walk(d.dir.path()) {
        if f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("webhook-")) {
            continue; // the 0600 file that holds them
        }
        places.push(String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).to_string());
    }
    for p in &places {
        assert!(
            !p.contains(&header_secret) && !p.contains(&signing_secret),
            "a webhook secret leaked"
        );
    }
}

/// A receiver down while the daemon restarts: the event recorded before the restart
/// is delivered after it, with the same event id.
#[test]
fn deliveries_survive_a_restart_while_the_receiver_is_down() {
    let Some(tb) = testbed() else { return };
    let mut d = daemon();
    // A port with nothing listening yet.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    webhook(
        &d,
        &[
            "create",
            "-n",
            "downhook",
            "--uri",
            &format!("http://127.0.0.1:{port}/hook"),
            "--actions",
            "run_finished",
        ],
    );
    let run_id = d.queue_task(&format!("version: v1.1.0\nsteps:\n  - cmd: {} echo hello\n", tb.base_image));
    d.wait_status(&run_id, &["Succeeded"], Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let l = events(&d, "downhook");
        if l.first().is_some_and(|x| !x["attempts"].as_array().unwrap().is_empty()) {
            break l;
        }
        assert!(Instant::now() < deadline, "no attempt was made: {l:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pending[0]["status"], "Pending");
    assert!(
        pending[0]["attempts"][0]["error"].as_str().unwrap().contains("cannot connect"),
        "{pending:#?}"
    );
    let event_id = pending[0]["id"].as_str().unwrap().to_string();

    d.terminate();
    let receiver = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), 0, Duration::ZERO);
    d.spawn();
    let got = receiver.wait_for("the event after the restart", Duration::from_secs(30), |v| {
        v["action"] == "run_finished"
    });
    assert_eq!(got.json()["id"], event_id.as_str());
    assert_eq!(got.json()["run"]["runId"], run_id.as_str());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = events(&d, "downhook");
        if l[0]["status"] == "Delivered" {
            assert!(l[0]["attempts"].as_array().unwrap().len() >= 2);
            break;
        }
        assert!(Instant::now() < deadline, "{l:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 19: a store error while draining is not "the webhook was deleted": with the
/// webhooks' table gone from under the daemon for a while, the delivery stays due and
/// is delivered once the table is back.
#[test]
fn a_store_error_while_delivering_leaves_the_delivery_due() {
    let Some(tb) = testbed() else { return };
    let d = daemon();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    webhook(
        &d,
        &[
            "create",
            "-n",
            "storehook",
            "--uri",
            &format!("http://127.0.0.1:{port}/hook"),
            "--actions",
            "run_finished",
        ],
    );
    let run_id = d.queue_task(&format!("version: v1.1.0\nsteps:\n  - cmd: {} echo hello\n", tb.base_image));
    d.wait_status(&run_id, &["Succeeded"], Duration::from_secs(60));
    // The receiver is down: the first attempt fails and the delivery waits to be retried.
    let deadline = Instant::now() + Duration::from_secs(20);
    while events(&d, "storehook")
        .first()
        .is_none_or(|e| e["attempts"].as_array().unwrap().is_empty())
    {
        assert!(Instant::now() < deadline, "no attempt was made");
        std::thread::sleep(Duration::from_millis(100));
    }
    let db = format!("sqlite://{}", d.db().display());
    let sql = |statement: &str| {
        support::rt().block_on(async {
            let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        })
    };
    // The store fails every read of webhooks while the drain retries (every second).
    sql("ALTER TABLE webhooks RENAME TO webhooks_away");
    std::thread::sleep(Duration::from_secs(4));
    sql("ALTER TABLE webhooks_away RENAME TO webhooks");
    let receiver = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), 0, Duration::ZERO);
    // Deliveries claimed while the store failed are claimed again when their lease (the
    // webhook timeout and a minute) lapses.
    receiver.wait_for("the delivery after the store came back", Duration::from_secs(100), |v| {
        v["action"] == "run_finished"
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = events(&d, "storehook");
        let errors: Vec<String> = l[0]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["error"].to_string())
            .collect();
        assert!(
            errors.iter().all(|e| !e.contains("deleted")),
            "a store error was taken for a deleted webhook: {errors:?}"
        );
        if l[0]["status"] == "Delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "{l:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
