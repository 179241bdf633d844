//! Hostile inputs through the real daemon: task files and templates, uploads, sources,
//! webhooks and API bodies, each table a list of `(name, input, expected)` cases run
//! against one real `slipway serve` process. Every case asserts the exact answer (the
//! status, the error code and a stable part of the message, or how the run it queued
//! ended), that nothing leaks (host files, secrets, raw control bytes, panics, 500s),
//! and that `/healthz` still answers 200 within 2 s afterwards. Each table ends by
//! checking that the daemon is alive and its resident memory stayed under 300 MiB.
//!
//! Cases marked `// BUG:` are inputs the daemon got wrong when this table was written
//! (the comment says how); each asserts the correct behaviour. `HOSTILE_TRACE=1`
//! prints each case's time and the daemon's RSS after it, `HOSTILE_SHOW=1` each answer.

mod support;

use base64::Engine as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::daemon::{Daemon, TOKEN};
use support::*;

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

/// What a case sends.
enum Input {
    Http {
        method: &'static str,
        path: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        token: Option<String>,
    },
    /// Bytes written as they are to a new connection (for requests no client would send).
    Raw(Vec<u8>),
    /// Bytes written to a new connection that is then left as it is: the answer is
    /// whatever the server sends within the time (status 0: it closed without one).
    Partial(Vec<u8>, Duration),
}

type Checker = Box<dyn Fn(&Daemon, u16, &str) -> Result<(), String>>;

/// What a case must get back.
enum Expect {
    /// An error answer: the status, `error.code` and words `error.message` must contain.
    Error(u16, &'static str, Vec<String>),
    /// A success: the status and words the body must contain.
    Answer(u16, Vec<String>),
    /// A status hyper answers itself, before any handler (no JSON body).
    Bare(u16),
    /// The request queues a run (201) that ends with this status, its error message or
    /// log containing every word.
    Run(&'static str, Vec<String>),
    /// Anything else, checked by a closure given the status and body.
    Check(Checker),
    /// As the inner expectation, answered within this time.
    Within(Duration, Box<Expect>),
}

type Case = (String, Input, Expect);

fn http(method: &'static str, path: &str, body: Vec<u8>) -> Input {
    Input::Http {
        method,
        path: path.to_string(),
        headers: vec![("Content-Type".into(), b"application/json".to_vec())],
        body,
        token: Some(TOKEN.into()),
    }
}

fn get(path: &str) -> Input {
    http("GET", path, Vec::new())
}

fn post(path: &str, body: impl Into<Vec<u8>>) -> Input {
    http("POST", path, body.into())
}

fn post_json(path: &str, v: serde_json::Value) -> Input {
    post(path, serde_json::to_vec(&v).unwrap())
}

/// The same request with other headers and no token.
fn unauthenticated(input: Input, headers: &[(&str, &[u8])]) -> Input {
    match input {
        Input::Http { method, path, body, .. } => Input::Http {
            method,
            path,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
            body,
            token: None,
        },
        raw => raw,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A task whose first step plants something in `/workspace` (after writing a
/// Dockerfile) and whose second step, `then`, reads it.
fn planted(plant: &str, then: &str) -> String {
    format!("steps:\n  - cmd: slipway-busybox sh -c 'echo FROM slipway-busybox > Dockerfile && {plant}'\n  - {then}\n")
}

/// `POST /v1/runs` with an inline task.
fn task(yaml: &str) -> Input {
    task_bytes(yaml.as_bytes())
}

fn task_bytes(bytes: &[u8]) -> Input {
    post_json(
        "/v1/runs",
        serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(bytes)}),
    )
}

/// An inline task with a source.
fn task_from(yaml: &str, source: &str) -> Input {
    post_json(
        "/v1/runs",
        serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(yaml.as_bytes()), "sourceLocation": source}),
    )
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

fn bad(w: &[&str]) -> Expect {
    Expect::Error(400, "BadRequest", words(w))
}

fn ends(status: &'static str, w: &[&str]) -> Expect {
    Expect::Run(status, words(w))
}

fn case(name: impl Into<String>, input: Input, expected: Expect) -> Case {
    (name.into(), input, expected)
}

// ---------------------------------------------------------------------------------
// Sending and checking
// ---------------------------------------------------------------------------------

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sends the input; `Err` when the connection ended without an answer.
fn send(d: &Daemon, input: &Input) -> Result<(u16, Vec<u8>), String> {
    match input {
        Input::Http {
            method,
            path,
            headers,
            body,
            token,
        } => {
            let url = format!("{}{path}", d.url());
            let mut r = client().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            for (k, v) in headers {
                r = r.header(k.as_str(), reqwest::header::HeaderValue::from_bytes(v).map_err(|e| e.to_string())?);
            }
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let resp = r.body(body.clone()).send().map_err(|e| format!("no answer: {e:?}"))?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().map_err(|e| format!("the answer broke off: {e:?}"))?;
            Ok((status, bytes.to_vec()))
        }
        Input::Raw(bytes) => raw_request(d.port, bytes),
        Input::Partial(bytes, wait) => {
            let mut s = TcpStream::connect(("127.0.0.1", d.port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(*wait)).unwrap();
            s.write_all(bytes).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            match s.read_to_end(&mut out) {
                Ok(_) if out.is_empty() => Ok((0, Vec::new())),
                Ok(_) => {
                    let text = String::from_utf8_lossy(&out).to_string();
                    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
                    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
                        Some(i) => out[i + 4..].to_vec(),
                        None => Vec::new(),
                    };
                    Ok((status, body))
                }
                Err(_) => Err(format!("the connection is still open, unanswered, after {wait:?}")),
            }
        }
    }
}

fn raw_request(port: u16, bytes: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A server may answer and close before it has read everything.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((status, body))
}

/// Lines of this machine's own files that must never reach an answer or a log (the
/// test image's /etc/passwd has only the root line, ending in /bin/sh).
const HOST_SECRETS: &[&str] = &["daemon:x:1:1", "root:x:0:0:root:/root:/bin/bash", "root:*:", "root:$"];

fn leaks(text: &str) -> Option<String> {
    for s in HOST_SECRETS {
        if text.contains(s) {
            return Some(format!("host file content {s:?}"));
        }
    }
    for s in ["panicked", "RUST_BACKTRACE", "hunter2-secret"] {
        if text.contains(s) {
            return Some(format!("{s:?}"));
        }
    }
    None
}

fn control_chars(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn error_of(body: &str) -> Result<(String, String), String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| format!("the error is not JSON: {:?}", short(body)))?;
    let code = v["error"]["code"]
        .as_str()
        .ok_or_else(|| format!("no error.code in {}", short(body)))?;
    let message = v["error"]["message"]
        .as_str()
        .ok_or_else(|| format!("no error.message in {}", short(body)))?;
    Ok((code.to_string(), message.to_string()))
}

fn short(s: &str) -> String {
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    } else {
        s.to_string()
    }
}

const FINISHED: &[&str] = &["Succeeded", "Failed", "Canceled", "Error", "Timeout"];

fn run_json(d: &Daemon, id: &str) -> Result<serde_json::Value, String> {
    let (code, body) = d.get_raw(&format!("/v1/runs/{id}"), Some(TOKEN))?;
    if code != 200 {
        return Err(format!("GET /v1/runs/{id}: {code} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

/// Waits for the run to finish; returns it and its log.
fn finished(d: &Daemon, id: &str, limit: Duration) -> Result<(serde_json::Value, String), String> {
    let deadline = Instant::now() + limit;
    loop {
        let r = run_json(d, id)?;
        if FINISHED.iter().any(|s| r["status"] == *s) {
            let (_, log) = d.get_raw(&format!("/v1/runs/{id}/log"), Some(TOKEN))?;
            return Ok((r, log));
        }
        if Instant::now() > deadline {
            return Err(format!("run {id} is still {} after {limit:?}", r["status"]));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_id(status: u16, body: &str) -> Result<String, String> {
    if status != 201 {
        return Err(format!("expected 201 and a run, got {status} {}", short(body)));
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    v["runId"].as_str().map(str::to_string).ok_or_else(|| format!("no runId in {body}"))
}

/// Checks that the run queued by this answer ends with `status`, and its message or
/// log says `want`.
fn check_run(d: &Daemon, status: u16, body: &str, want_status: &str, want: &[String]) -> Result<(), String> {
    let id = run_id(status, body)?;
    let (run, log) = finished(d, &id, Duration::from_secs(90))?;
    let message = run["runErrorMessage"].as_str().unwrap_or("").to_string();
    let all = format!("{message}\n{log}");
    if let Some(l) = leaks(&all) {
        return Err(format!("run {id} leaks {l}:\n{}", short(&all)));
    }
    if run["status"] != want_status {
        return Err(format!(
            "run {id} ended {} (want {want_status}); message {message:?}; log:\n{}",
            run["status"],
            short(&log)
        ));
    }
    for w in want {
        if !all.contains(w.as_str()) {
            return Err(format!(
                "run {id} ({want_status}): neither its message nor its log says {w:?}; message {message:?}; log:\n{}",
                short(&log)
            ));
        }
    }
    Ok(())
}

fn check(d: &Daemon, answer: Result<(u16, Vec<u8>), String>, expected: &Expect) -> Result<(), String> {
    let (status, bytes) = answer?;
    let body = String::from_utf8_lossy(&bytes).to_string();
    if let Some(l) = leaks(&body) {
        return Err(format!("the answer leaks {l}: {status} {}", short(&body)));
    }
    if bytes.iter().any(|b| *b == 0x1b || *b == 0x07 || *b == 0) {
        return Err(format!("the answer holds raw control bytes: {status} {:?}", short(&body)));
    }
    if status >= 500 {
        return Err(format!("the daemon failed (500s are its own fault): {status} {}", short(&body)));
    }
    if status >= 400 && !matches!(expected, Expect::Bare(_)) {
        let (_, message) = error_of(&body)?;
        if control_chars(&message) {
            return Err(format!("the error message echoes control characters: {message:?}"));
        }
    }
    match expected {
        Expect::Error(want_status, want_code, want) => {
            if status != *want_status {
                return Err(format!("expected {want_status} {want_code}, got {status} {}", short(&body)));
            }
            let (code, message) = error_of(&body)?;
            if code != *want_code {
                return Err(format!("expected code {want_code}, got {code}: {}", short(&message)));
            }
            for w in want {
                if !message.contains(w.as_str()) {
                    return Err(format!("the message lacks {w:?}: {}", short(&message)));
                }
            }
            Ok(())
        }
        Expect::Answer(want_status, want) => {
            if status != *want_status {
                return Err(format!("expected {want_status}, got {status} {}", short(&body)));
            }
            for w in want {
                if !body.contains(w.as_str()) {
                    return Err(format!("the answer lacks {w:?}: {}", short(&body)));
                }
            }
            Ok(())
        }
        Expect::Bare(want_status) => {
            if status != *want_status {
                return Err(format!("expected {want_status}, got {status} {}", short(&body)));
            }
            Ok(())
        }
        Expect::Run(want_status, want) => check_run(d, status, &body, want_status, want),
        Expect::Check(f) => f(d, status, &body),
        Expect::Within(_, inner) => check(d, Ok((status, bytes)), inner),
    }
}

/// `/healthz` answers 200 within 2 s.
fn healthy(d: &Daemon) -> Result<(), String> {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/healthz", d.url()))
        .send()
        .map_err(|e| format!("/healthz did not answer within 2 s: {e}"))?;
    if r.status().as_u16() != 200 {
        return Err(format!("/healthz answered {}", r.status()));
    }
    Ok(())
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Runs every case, then checks the daemon is alive and small. Failures are collected
/// so one run of the table shows all of them.
fn run_table(title: &str, d: &mut Daemon, table: Vec<Case>) {
    assert!(!table.is_empty());
    let started = Instant::now();
    let count = table.len();
    let mut failures = Vec::new();
    let mut slow = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (name, input, expected) in table {
        assert!(names.insert(name.clone()), "{title}: case {name:?} is in the table twice");
        let t = Instant::now();
        let answer = send(d, &input);
        let took = t.elapsed();
        if std::env::var_os("HOSTILE_SHOW").is_some() {
            if let Ok((status, body)) = &answer {
                eprintln!(
                    "SHOW {name}: {status} {}",
                    short(&String::from_utf8_lossy(body)).chars().take(300).collect::<String>()
                );
            }
        }
        let mut verdict = check(d, answer, &expected);
        if let (Expect::Within(limit, _), Ok(())) = (&expected, &verdict) {
            if took > *limit {
                verdict = Err(format!("answered after {:.1} s, not within {limit:?}", took.as_secs_f64()));
            }
        }
        let total = t.elapsed();
        if total > Duration::from_secs(5) {
            slow.push(format!("{name} ({:.1} s)", total.as_secs_f64()));
        }
        if std::env::var_os("HOSTILE_TRACE").is_some() {
            let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
            eprintln!("{title}: {name}: {:.2} s, RSS {:.0} MiB", total.as_secs_f64(), rss_mib(pid));
        }
        if let Err(e) = verdict {
            eprintln!("{title}: FAILED {name}: {e}");
            failures.push(format!("{name}: {e}"));
        }
        if let Err(e) = healthy(d) {
            panic!(
                "{title}: after case {name:?} the daemon does not serve: {e}\nfailures:\n{}\nserver log:\n{}",
                failures.join("\n"),
                short_tail(&d.server_log())
            );
        }
    }
    let child = d.child.as_mut().expect("the daemon runs");
    assert!(
        child.try_wait().unwrap().is_none(),
        "{title}: the daemon exited:\n{}",
        short_tail(&d.server_log())
    );
    let rss = rss_mib(child.id());
    eprintln!(
        "{title}: {count} cases in {:.1} s; daemon RSS {rss:.0} MiB; slow cases: {slow:?}",
        started.elapsed().as_secs_f64()
    );
    if !(rss > 0.0 && rss < 300.0) {
        failures.push(format!("after the table the daemon's RSS is {rss:.0} MiB (limit 300 MiB)"));
    }
    assert!(
        failures.is_empty(),
        "{title}: {} of {count} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn short_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ---------------------------------------------------------------------------------
// Daemons, servers, archives and repositories
// ---------------------------------------------------------------------------------

/// A daemon as `Daemon::start` makes it, with these `SLIPWAY_*` variables over the
/// support's own (`SLIPWAY_ALLOWED_SOURCE_HOSTS`, `SLIPWAY_FILE_SOURCE_DIRS`).
fn start_with_env(env: &[(&str, &str)], extra: &[&str]) -> Daemon {
    Daemon::start_with_env(extra, env)
}

/// How a test HTTP server answers.
#[derive(Clone)]
enum Serve {
    /// `302` to this location.
    Redirect(String),
    /// Reads the request and never answers.
    Silent,
    /// Sends a head and then one byte of body every 300 ms, forever.
    Trickle,
    /// `200` with this body.
    Body(Arc<Vec<u8>>),
    /// This status, no body.
    Status(u16),
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that counts the connections it accepts.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn start(how: Serve) -> Server {
        Server::on(TcpListener::bind("127.0.0.1:0").unwrap(), how)
    }

    fn on(listener: TcpListener, how: Serve) -> Server {
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let how = how.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = match how {
                        Serve::Redirect(to) => stream.write_all(
                            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                        ),
                        Serve::Silent => {
                            std::thread::sleep(Duration::from_secs(60));
                            Ok(())
                        }
                        Serve::Trickle => {
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: 100000000\r\n\r\n");
                            for _ in 0..200 {
                                if stream.write_all(&[0x1f]).is_err() {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(300));
                            }
                            Ok(())
                        }
                        Serve::Body(b) => stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    b.len()
                                )
                                .as_bytes(),
                            )
                            .and_then(|_| stream.write_all(&b)),
                        Serve::Status(code) => {
                            stream.write_all(format!("HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
                        }
                    };
                });
            }
        });
        Server { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One raw tar header block; `size` is the octal size field as given.
fn tar_header(name: &[u8], kind: u8, link: &[u8], size: &[u8; 12], mode: u32) -> Vec<u8> {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(size);
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h.to_vec()
}

fn size_field(n: u64) -> [u8; 12] {
    let mut f = [0u8; 12];
    f.copy_from_slice(format!("{n:011o}\0").as_bytes());
    f
}

/// A tar entry: header, then the data padded to a block.
fn entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    entry_b(name.as_bytes(), kind, link.as_bytes(), data, 0o644)
}

fn entry_b(name: &[u8], kind: u8, link: &[u8], data: &[u8], mode: u32) -> Vec<u8> {
    let mut out = tar_header(name, kind, link, &size_field(data.len() as u64), mode);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &str) -> Vec<u8> {
    entry(name, b'0', "", data.as_bytes())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A gzip-compressed tar of these entries, with the end-of-archive blocks.
fn tgz(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut tar = entries.concat();
    tar.extend_from_slice(&[0u8; 1024]);
    gzip(&tar)
}

/// A tar.gz with one regular file of `size` zero bytes, compressed as it is written.
fn zeros_tgz(size: u64) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_header(b"zeros", b'0', b"", &size_field(size), 0o644)).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = size.div_ceil(512) * 512 + 1024;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        gz.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    gz.finish().unwrap()
}

/// Deterministic bytes that do not compress.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn upload(body: Vec<u8>) -> Input {
    let mut i = post("/v1/uploads", body);
    if let Input::Http { headers, .. } = &mut i {
        headers[0].1 = b"application/gzip".to_vec();
    }
    i
}

/// A git repository in `parent` with these files (and symlinks: content `-> target`),
/// committed on `main`.
fn repo_in(parent: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let p = parent.join(name);
    std::fs::create_dir_all(&p).unwrap();
    git(&p, &["init", "-q", "-b", "main"]);
    for (f, content) in files {
        let path = p.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match content.strip_prefix("-> ") {
            Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            None => std::fs::write(&path, content).unwrap(),
        }
    }
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-q", "-m", "c"]);
    p
}

fn tmp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in(std::env::temp_dir()).unwrap()
}

/// Queues an inline task and waits for it to finish.
fn run_to_end(d: &Daemon, yaml: &str) -> String {
    let id = d.queue_task(yaml);
    d.wait_status(&id, FINISHED, Duration::from_secs(60));
    id
}

// ---------------------------------------------------------------------------------
// 1. Task files and templates
// ---------------------------------------------------------------------------------

#[test]
fn hostile_task_files_and_templates() {
    let Some(_tb) = testbed() else { return };
    let mut d = Daemon::start(&[]);
    let step = "steps:\n  - cmd: slipway-busybox true\n";
    let deep_if = format!(
        "steps:\n  - cmd: slipway-busybox true\n{}{}\n",
        "{{if true}}".repeat(10_000),
        "{{end}}".repeat(10_000)
    );
    let deep_parens = format!(
        "steps:\n  - cmd: slipway-busybox echo {{{{ {}1{} }}}}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let list20k = vec!["x"; 20_000].join(",");
    let triple_range = format!(
        "{{{{ $l := splitList \",\" \"{list20k}\" }}}}{{{{ range $l }}}}{{{{ range $l }}}}{{{{ range $l }}}}x{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}\n{step}"
    );
    let deep_flow = format!("steps: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let deep_map = format!("steps: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
    let deep_block: String = (0..300).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
    let mut laughs = String::from("steps:\n  - id: a\n    cmd: slipway-busybox true\n    env: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (i, c) in "bcdefghi".chars().enumerate() {
        let prev = (b'a' + i as u8) as char;
        laughs.push_str(&format!(
            "  - id: {c}\n    cmd: slipway-busybox true\n    env: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let alias_bomb = format!(
        "version: v1.1.0\nalias:\n  values:\n    big: {}\nsteps:\n  - cmd: slipway-busybox echo {}\n",
        "x".repeat(100_000),
        "$big".repeat(1000)
    );
    let nested_alias = "version: v1.1.0\nalias:\n  values:\n    a: $b$b$b$b$b$b$b$b$b$b\n    b: $c$c$c$c$c$c$c$c$c$c\n    c: $d$d$d$d$d$d$d$d$d$d\n    d: $e$e$e$e$e$e$e$e$e$e\n    e: $f$f$f$f$f$f$f$f$f$f\n    f: $g$g$g$g$g$g$g$g$g$g\n    g: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nsteps:\n  - cmd: slipway-busybox echo $a\n";
    let huge_version = format!("version: {}\n{step}", "v".repeat(1 << 20));
    let pwned_abs = std::env::temp_dir().join(unique_id("hostile-pwned-")).display().to_string();
    let pwned_rel = std::env::temp_dir().join(unique_id("hostile-pwned-")).display().to_string();
    let written_nowhere = |path: &str| -> Expect {
        let path = path.to_string();
        Expect::Check(Box::new(move |d, status, body| {
            let verdict = check(d, Ok((status, body.as_bytes().to_vec())), &bad(&["task:", "volumes[0].name"]));
            if status == 201 {
                let id = run_id(status, body)?;
                finished(d, &id, Duration::from_secs(60))?;
            }
            if Path::new(&path).exists() {
                let _ = std::fs::remove_dir_all(&path);
                return Err(format!("the daemon wrote the task's file to {path} on the host; {verdict:?}"));
            }
            verdict
        }))
    };
    let big = "a".repeat(1_000_000);
    let slow_template = format!("{{{{ range 999999 }}}}{{{{ if contains \"b\" \"{big}\" }}}}{{{{ end }}}}{{{{ end }}}}\n{step}");
    // A task file of 50,000 steps (2.3 MB, under the 4 MiB a task file may have): a
    // few seconds to load, and loaded only by the worker (a file in the source).
    let long_upload = {
        let steps: String = (0..50_000)
            .map(|i| format!("  - id: s{i}\n    cmd: slipway-busybox true\n"))
            .collect();
        let (code, body) = d.post("/v1/uploads", tgz(&[file("acb.yaml", &format!("steps:\n{steps}"))]), Some(TOKEN));
        assert_eq!(code, 201, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["sourceLocation"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let many_steps: String = (0..5_000)
        .map(|i| format!("  - id: s{i}\n    cmd: slipway-busybox true\n"))
        .collect();

    let table: Vec<Case> = vec![
        // Templates: every cap is a located error, answered at once.
        case("repeat 1e11", task("steps:\n  - cmd: slipway-busybox echo {{ repeat 100000000000 \"x\" }}\n"), bad(&["task:2:", "larger than"])),
        case("repeat negative", task("steps:\n  - cmd: slipway-busybox echo {{ repeat -5 \"x\" }}x\n    tiemout: 1\n"), bad(&["task:3:5: steps[0].tiemout", "unknown key"])),
        case("10000 nested ifs", task(&deep_if), bad(&["task:3: blocks and parentheses are nested more than 64 deep"])),
        case("10000 nested parens", task(&deep_parens), bad(&["task:2: blocks and parentheses are nested more than 64 deep"])),
        case("triple range over a 20000-item splitList", task(&triple_range), bad(&["task:1", "evaluation steps"])),
        case("range over 3000000", task(&format!("{{{{ range 3000000 }}}}x{{{{ end }}}}\n{step}")), bad(&["task:1", "evaluation steps"])),
        case("range over 1e18", task(&format!("{{{{ range 1000000000000000000 }}}}{{{{ end }}}}\n{step}")), bad(&["task:1", "evaluation steps"])),
        case("replace amplification", task(&format!("{{{{ $x := repeat 4000000 \"a\" }}}}{{{{ $y := replace \"a\" \"aaaaaaaa\" $x }}}}\n{step}")), bad(&["task:1", "larger than"])),
        case("printf amplification", task(&format!("{{{{ $x := repeat 3000000 \"a\" }}}}{{{{ $y := printf \"%s%s%s%s\" $x $x $x $x }}}}\n{step}")), bad(&["task:1", "larger than"])),
        case("splitList into 4M pieces", task(&format!("{{{{ $x := repeat 4000000 \"a\" }}}}{{{{ $y := splitList \"\" $x }}}}\n{step}")), bad(&["task:1: error calling splitList", "larger than 4194304 bytes"])),
        case("join amplification", task(&format!("{{{{ $x := splitList \",\" (repeat 1000 \"a,\") }}}}{{{{ $y := join (repeat 10000 \"b\") $x }}}}\n{step}")), bad(&["task:1: error calling join", "larger than 4194304 bytes"])),
        case("work budget: 100 copies of 1 MB", task(&format!("{{{{ $x := repeat 1000000 \"a\" }}}}{{{{ range 100 }}}}{{{{ $y := print $x }}}}{{{{ end }}}}\n{step}")), bad(&["task:1:", "more than 64 MiB of values"])),
        case("output of 5 MB", task(&format!("{{{{ range 5 }}}}{{{{ repeat 1000000 \"a\" }}}}{{{{ end }}}}\n{step}")), bad(&["task:1", "larger than"])),
        case("toJson escaping amplification", task(&format!("{{{{ $x := repeat 3000000 \"\\\"\" }}}}{{{{ $y := toJson (list $x) }}}}\n{step}")), bad(&["task:1: error calling toJson", "larger than"])),
        case("b64dec of garbage", task("steps:\n  - cmd: slipway-busybox echo {{ b64dec \"%%%\" }}\n"), bad(&["task:2: error calling b64dec", "not base64"])),
        // BUG: each comparison of a 1 MB literal is one evaluation step and copies
        // nothing, so a 1.3 MB request holds a CPU for the whole 10 s deadline (the
        // limits promise that hostile templates fail in well under a second; a few such
        // requests at once take every core). It must be refused within a second or two.
        case("a million comparisons of a 1 MB literal", task(&slow_template), Expect::Within(Duration::from_secs(3), Box::new(bad(&["task:1:", "more than 64 MiB of values"])))),
        case("division by zero", task("steps:\n  - cmd: slipway-busybox echo {{ div 1 0 }}\n"), bad(&["task:2", "division by zero"])),
        // BUG: i64::MIN % -1 overflowed and panicked the renderer (a 500). Go's sprig
        // answers 0, so the task renders and is refused for its unknown key on line 3.
        case("mod i64::MIN by -1", task("steps:\n  - cmd: slipway-busybox echo {{ mod -9223372036854775808 -1 }}\n    tiemout: 1\n"), bad(&["task:3:5: steps[0].tiemout"])),
        case("index far out of range", task("steps:\n  - cmd: slipway-busybox echo {{ index (list 1 2) 99999999999999999999 }}\n"), bad(&["task:2", "index out of range"])),
        case("unknown function", task("steps:\n  - cmd: slipway-busybox echo {{ env \"HOME\" }}\n"), bad(&["task:2", "\"env\" not defined"])),
        case("template define", task("{{ define \"x\" }}{{ template \"x\" }}{{ end }}\n{{ template \"x\" }}\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:1:", "{{define}} is not supported"])),
        case("unterminated action", task("steps:\n  - cmd: slipway-busybox echo {{ .Run.ID\n"), bad(&["task:2: unclosed action"])),
        case("unterminated comment", task("{{/* never closed\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:1: unclosed comment"])),
        case("unclosed if", task("{{ if true }}\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:", "no {{end}}"])),
        case("stray end", task("{{ end }}\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:1: unexpected {{end}}"])),
        // YAML: depth, anchors and aliases.
        case("flow sequences 100000 deep", task(&deep_flow), bad(&["task:1:", "nested more than 64 deep"])),
        case("flow mappings 100000 deep", task(&deep_map), bad(&["task:1:", "nested more than 64 deep"])),
        case("block sequences 300 deep", task(&format!("steps:\n{deep_block}")), bad(&["task:", "nested more than 64 deep"])),
        case("billion laughs", task(&laughs), bad(&["task:4:10: steps[1].env[0]", "invalid type"])),
        case("v1.1.0 alias bomb", task(&alias_bomb), bad(&["task", "alias", "larger than 4 MiB"])),
        // Aliases are not expanded again inside aliases (as acb): nothing multiplies.
        case("nested v1.1.0 aliases", task(nested_alias), ends("Succeeded", &["acb_step_0 | $b$b$b$b$b$b$b$b$b$b"])),
        case("alias with a bad name", task("version: v1.1.0\nalias:\n  values:\n    \"a b\": x\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:2", "alias.values.a b", "letters and digits only"])),
        case("alias directive of two characters", task("version: v1.1.0\nalias:\n  directive: \"&&\"\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:2", "alias.directive"])),
        case("yaml tags", task("steps: !!binary aGVsbG8=\n"), bad(&["task:1:8: steps", "invalid type"])),
        case("duplicate keys", task("steps:\n  - cmd: slipway-busybox true\n    cmd: slipway-busybox false\n"), bad(&["task:2:5: steps[0]", "duplicate field `cmd`"])),
        // Schema.
        case("unknown key", task("steps:\n  - cmd: slipway-busybox true\n    tiemout: 5\n"), bad(&["task:3:5: steps[0].tiemout", "unknown key \"tiemout\"", "did you mean \"timeout\""])),
        case("invalid version", task("version: v9\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:1:", "invalid version \"v9\""])),
        case("huge version", task(&huge_version), bad(&["task:1:1: version: invalid version"])),
        case("cycle", task("steps:\n  - id: a\n    cmd: slipway-busybox true\n    when: [b]\n  - id: b\n    cmd: slipway-busybox true\n    when: [a]\n"), bad(&["task:4:", "a cycle"])),
        case("waits for itself", task("steps:\n  - id: a\n    cmd: slipway-busybox true\n    when: [a]\n"), bad(&["task:4:", "waits for itself"])),
        // Not refused (a long task is a task), but it must not hold a worker: canceled at once.
        // Not refused (a long task is a task), but it must not hold a worker: canceled
        // once its first step runs.
        case("5000 steps", task(&format!("steps:\n{many_steps}")), Expect::Check(Box::new(|d, status, body| {
            let id = run_id(status, body)?;
            d.wait_log(&id, "Executing step ID: s0", Duration::from_secs(60));
            let (code, text) = d.post(&format!("/v1/runs/{id}/cancel"), Vec::new(), Some(TOKEN));
            if code != 200 {
                return Err(format!("cancel: {code} {text}"));
            }
            let (run, _) = finished(d, &id, Duration::from_secs(30))?;
            if run["status"] != "Canceled" { Err(format!("{run}")) } else { Ok(()) }
        }))),
        // BUG: a cancel stopped the worker's lease keeper but not the loading of the task
        // file, so the lease expired and the run ended as Error "the worker ... was lost"
        // seconds after the cancel (reproduced then with a file that rendered for 10 s).
        // The cancel must end the run at once, as Canceled.
        case("cancel while a task file loads", post_json("/v1/runs", serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": "acb.yaml", "sourceLocation": long_upload})), Expect::Check(Box::new(|d, status, body| {
            let id = run_id(status, body)?;
            d.wait_status(&id, &["Running"], Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(300));
            let asked = Instant::now();
            let (code, text) = d.post(&format!("/v1/runs/{id}/cancel"), Vec::new(), Some(TOKEN));
            if code != 200 {
                return Err(format!("cancel: {code} {text}"));
            }
            let (run, log) = finished(d, &id, Duration::from_secs(30))?;
            if run["status"] != "Canceled" || asked.elapsed() > Duration::from_secs(2) {
                return Err(format!("{:.1} s after the cancel the run ended {}: {}\n{}", asked.elapsed().as_secs_f64(), run["status"], run["runErrorMessage"], short(&log)));
            }
            Ok(())
        }))),
        case("negative timeout", task("steps:\n  - cmd: slipway-busybox true\n    timeout: -1\n"), bad(&["task:3:", "steps[0].timeout", "> 0"])),
        case("total timeout too long", task("totalTimeout: 99999999999\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:1:", "totalTimeout"])),
        case("id with a slash", task("steps:\n  - id: ../../x\n    cmd: slipway-busybox true\n"), bad(&["task:2:", "steps[0].id"])),
        case("docker flags as the image", task("steps:\n  - cmd: --privileged -v /:/host slipway-busybox\n"), bad(&["task:2:", "steps[0].cmd"])),
        // What the host may not give.
        case("network: host", task("steps:\n  - cmd: slipway-busybox true\n    network: host\n"), bad(&["task:3:", "steps[0].network", "host's network is not allowed"])),
        case("build --network host", task("steps:\n  - build: --network host -t x .\n"), bad(&["task:2:", "steps[0].build", "host's network is not allowed"])),
        case("build --network=host", task("steps:\n  - build: --network=host -t x .\n"), bad(&["task:2:", "steps[0].build", "host's network is not allowed"])),
        case("default network named host", task("networks:\n  - name: host\n    skipCreation: true\n    isDefault: true\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["steps[0].network", "host's network is not allowed"])),
        // BUG: an undeclared network is handed to the engine as it is, so
        // `container:NAME` joins the network namespace of any container on the host
        // (another run's step, say). It must be refused, naming the field.
        case("network: container:another", task("steps:\n  - cmd: slipway-busybox true\n    network: \"container:slipway-registry\"\n"), bad(&["task:3:", "steps[0].network"])),
        // `docker run` flags before a cmd's image (as the ACR docs write them).
        case("cmd --privileged", task("steps:\n  - cmd: --privileged slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "privileged steps are not allowed"])),
        case("cmd --network host", task("steps:\n  - cmd: --network host slipway-busybox true\n"), bad(&["task:2:8: steps[0].network", "host's network is not allowed"])),
        case("cmd --net=host", task("steps:\n  - cmd: --net=host slipway-busybox true\n"), bad(&["task:2:8: steps[0].network", "host's network is not allowed"])),
        // BUG: the same as `network: container:…`, through the flag.
        case("cmd --network container:another", task("steps:\n  - cmd: --network container:slipway-registry slipway-busybox true\n"), bad(&["task:2:8: steps[0].network"])),
        case("cmd -v of the docker socket", task("steps:\n  - cmd: -v /var/run/docker.sock:/var/run/docker.sock slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "not host paths"])),
        case("cmd -v of a host path in combined flags", task("steps:\n  - cmd: -itv/:/host slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "not host paths"])),
        case("cmd -v of another run's volume", task("steps:\n  - cmd: -v slipway_vol_other:/x slipway-busybox true\n"), bad(&["task:2:5: steps[0]", "not a declared volume"])),
        case("cmd -v of a home path", task("steps:\n  - cmd: -v ~/.ssh:/x slipway-busybox true\n"), bad(&["task:2:5: steps[0]", "not a declared volume"])),
        case("cmd --mount", task("steps:\n  - cmd: --mount type=bind,src=/,dst=/h slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "--mount is not supported"])),
        case("cmd --cap-add", task("steps:\n  - cmd: --cap-add SYS_ADMIN slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "--cap-add is not supported"])),
        case("cmd --pid=host", task("steps:\n  - cmd: --pid=host slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "--pid is not supported"])),
        case("cmd --device", task("steps:\n  - cmd: --device /dev/sda slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "--device is not supported"])),
        case("cmd --security-opt", task("steps:\n  - cmd: --security-opt seccomp=unconfined slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "--security-opt is not supported"])),
        case("cmd --volumes-from", task("steps:\n  - cmd: --volumes-from slipway-registry slipway-busybox true\n"), bad(&["task:2:5: steps[0].cmd", "--volumes-from is not supported"])),
        case("cmd -p on every address", task("steps:\n  - cmd: -p 0.0.0.0:2375:2375 slipway-busybox true\n"), bad(&["task:2:8: steps[0].ports[0]", "0.0.0.0, which is not loopback"])),
        // BUG: and through a build's network, whose RUN steps then read another run's
        // loopback services.
        case("build --network container:another", task("steps:\n  - build: --network container:slipway-registry -t x .\n"), bad(&["task:2:5: steps[0].build"])),
        // What a step leaves where a build reads (issue 18): a FIFO would hold the
        // thread that opens it, a device or a huge file would fill the daemon's memory.
        case(
            "a FIFO as .dockerignore",
            task(&planted("mkfifo .dockerignore", "build: -t x .")),
            ends("Failed", &[".dockerignore is not a regular file"]),
        ),
        case(
            "a FIFO as Dockerfile.dockerignore",
            task(&planted("mkfifo Dockerfile.dockerignore", "build: -t x -f Dockerfile .")),
            ends("Failed", &["Dockerfile.dockerignore is not a regular file"]),
        ),
        case(
            "a FIFO as the Dockerfile",
            task(&planted("rm Dockerfile && mkfifo Dockerfile", "build: -t x .")),
            ends("Failed", &["Dockerfile is not a regular file"]),
        ),
        case(
            "a FIFO as a secret's file",
            task(&planted("mkfifo s.txt", "build: --secret id=s,src=s.txt -t x .")),
            ends("Failed", &["--secret id=s: src=s.txt", "not a regular file"]),
        ),
        case(
            "/dev/zero as .dockerignore",
            task(&planted("ln -s /dev/zero .dockerignore", "build: -t x .")),
            ends("Failed", &[".dockerignore", "inside the source"]),
        ),
        case(
            "a 5 MB .dockerignore",
            task(&planted("yes a | head -c 5000000 > .dockerignore", "build: -t x .")),
            ends("Failed", &[".dockerignore is larger than 4194304 bytes"]),
        ),
        case(
            "a 2 MB Dockerfile",
            task(&planted("yes \\# | head -c 2000000 >> Dockerfile", "build: -t x .")),
            ends("Failed", &["Dockerfile is larger than 1048576 bytes"]),
        ),
        case("build --secret from a host file", task("steps:\n  - build: --secret id=pw,src=/etc/passwd -t x .\n"), ends("Failed", &["--secret id=pw: src=/etc/passwd: a path led outside"])),
        case("ports 0.0.0.0", task("steps:\n  - cmd: slipway-busybox true\n    ports: [\"0.0.0.0:8080:80\"]\n"), bad(&["task:3:", "steps[0].ports[0]", "0.0.0.0"])),
        case("ports [::]", task("steps:\n  - cmd: slipway-busybox true\n    ports: [\"[::]:8080:80\"]\n"), bad(&["steps[0].ports[0]", "not loopback"])),
        case("ports on a public address", task("steps:\n  - cmd: slipway-busybox true\n    ports: [\"8.8.8.8:53:53/udp\"]\n"), bad(&["steps[0].ports[0]", "8.8.8.8"])),
        case("privileged", task("steps:\n  - cmd: slipway-busybox true\n    privileged: true\n"), bad(&["task:3:", "steps[0].privileged", "not allowed"])),
        case("secret from the daemon's environment", task("secrets:\n  - id: home\n    env: HOME\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:", "secrets[0].env", "environment of the machine"])),
        case("secret from the daemon's files", task("secrets:\n  - id: pw\n    file: /etc/passwd\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:", "secrets[0].file", "files of the machine"])),
        case("secret from the daemon's token file", task("secrets:\n  - id: t\n    file: ../../slipway.db\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["secrets[0].file", "not allowed here"])),
        // BUG: a secret volume's name is joined to the run's scratch dir unchecked, so an
        // absolute or dot-dot name writes the task's files anywhere on the host, as the
        // daemon's user (/root/.ssh/authorized_keys, /etc/cron.d/...). It must be refused.
        case("secret volume named by an absolute path", task(&format!("volumes:\n  - name: {pwned_abs}\n    secret:\n      x: aGk=\nsteps:\n  - cmd: slipway-busybox true\n")), written_nowhere(&pwned_abs)),
        case("secret volume named with dot-dot", task(&format!("volumes:\n  - name: ../../../../../../../..{pwned_rel}\n    secret:\n      x: aGk=\nsteps:\n  - cmd: slipway-busybox true\n")), written_nowhere(&pwned_rel)),
        case("secret volume file named ..", task("volumes:\n  - name: v\n    secret:\n      ..: aGk=\nsteps:\n  - cmd: slipway-busybox true\n"), bad(&["task:4:7: volumes[0].secret", "file name \"..\" is not well formed"])),
        // Checked when the run executes: paths resolve beneath the source.
        case("build -f ../../x", task("steps:\n  - build: -f ../../x -t app .\n"), ends("Failed", &["\"../../x", "is outside the run's source"])),
        case("build -f /etc/passwd", task("steps:\n  - build: -f /etc/passwd -t app .\n"), ends("Failed", &["\"/etc/passwd", "is outside the run's source"])),
        case("build context ../..", task("steps:\n  - build: -t app ../..\n"), ends("Failed", &["\"../..\""])),
        case("alias src outside the source", task("version: v1.1.0\nalias:\n  src: [\"../../../../etc/passwd\"]\nsteps:\n  - cmd: slipway-busybox true\n"), ends("Failed", &["../../../../etc/passwd"])),
        case("alias src absolute", task("version: v1.1.0\nalias:\n  src: [\"/etc/passwd\"]\nsteps:\n  - cmd: slipway-busybox true\n"), ends("Failed", &["/etc/passwd"])),
        // Encodings and bytes.
        case("invalid base64", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": "***not base64***"})), bad(&["encodedTaskContent is not base64"])),
        case("non-UTF-8 task", task_bytes(b"steps:\n  - cmd: \xff\xfe\n"), bad(&["encodedTaskContent is not UTF-8 text"])),
        case("empty task", task(""), bad(&["task: steps: the task has no steps"])),
        case("NUL bytes", task("steps:\n  - cmd: slipway-busybox echo a\0b\n"), bad(&["task:", "control characters are not allowed"])),
        case("escape sequences", task("steps:\n  - cmd: slipway-busybox echo \u{1b}[2J\u{7}\n    tiemout: 1\n"), bad(&["task:", "control characters are not allowed"])),
        case("only a BOM", task("\u{feff}"), bad(&["task: steps: the task has no steps"])),
        case("values file 100000 deep", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(step.as_bytes()), "encodedValuesContent": b64(format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes())})), bad(&["values:1:", "nested more than 64 deep"])),
        case("values file not a mapping", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(step.as_bytes()), "encodedValuesContent": b64(b"- a\n- b\n")})), bad(&["values", "must be a mapping"])),
        case("values file not base64", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(step.as_bytes()), "encodedValuesContent": "@@@"})), bad(&["encodedValuesContent is not base64"])),
        case("a secret in an error stays masked", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(b"version: {{ .Values.pw }}\nsteps:\n  - cmd: slipway-busybox true\n"), "values": [{"name": "pw", "value": "hunter2-secret", "isSecret": true}]})), bad(&["task:1:", "invalid version", "*****"])),
        case("a secret in a log stays masked", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(b"steps:\n  - cmd: slipway-busybox echo pw={{ .Values.pw }}\n"), "values": [{"name": "pw", "value": "hunter2-secret", "isSecret": true}]})), ends("Succeeded", &["pw=*****"])),
    ];
    run_table("task files and templates", &mut d, table);
}

// ---------------------------------------------------------------------------------
// 2. Uploads
// ---------------------------------------------------------------------------------

#[test]
fn hostile_uploads() {
    let Some(_tb) = testbed() else { return };
    let mut d = start_with_env(
        &[("SLIPWAY_MAX_CONTEXT_BYTES", "16777216"), ("SLIPWAY_MAX_CONTEXT_ENTRIES", "1000")],
        &["--max-upload-bytes", "4194304"],
    );
    let too_large = |w: &[&str]| Expect::Error(413, "UploadTooLarge", words(w));
    let refused = |w: &[&str]| Expect::Error(400, "BadUpload", words(w));
    let many: Vec<Vec<u8>> = (0..1001).map(|i| file(&format!("f{i}"), "")).collect();
    let pax_big = [entry("pax", b'x', "", &vec![b'a'; 70_000]), file("after", "x")];
    let gnu_big = [entry("././@LongLink", b'L', "", &vec![b'a'; 70_000]), file("after", "x")];
    let pax = |k: &str, v: &str| {
        let rec = format!(" {k}={v}\n");
        let len = (rec.len() + 1..).find(|n| n.to_string().len() + rec.len() == *n).unwrap();
        entry("pax", b'x', "", format!("{len}{rec}").as_bytes())
    };
    let long = format!("{}/file.txt", "d".repeat(300));
    let suid = tgz(&[
        entry_b(b"suid", b'0', b"", b"#!/bin/sh\n", 0o4755),
        entry_b(b"sgid", b'0', b"", b"x", 0o2775),
    ]);
    let garbage_gz = gzip(&noise(100_000));
    let valid = tgz(&[file("a.txt", "hello"), entry("link", b'2', "a.txt", b"")]);
    let mut truncated_gz = tgz(&[file("a.txt", &"x".repeat(100_000))]);
    truncated_gz.truncate(truncated_gz.len() / 2);
    let truncated_tar = {
        let mut t = file("a.txt", &"hello".repeat(1000));
        t.truncate(1500);
        gzip(&t)
    };
    let bad_checksum = {
        let mut e = file("a.txt", "hello");
        e[148] = b'7';
        tgz(&[e])
    };
    let suid_check: Checker = Box::new(|d, status, body| {
        if status != 201 {
            return Err(format!("expected 201, got {status} {body}"));
        }
        let loc = serde_json::from_str::<serde_json::Value>(body).unwrap()["sourceLocation"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, text) = d.post(
            "/v1/runs",
            serde_json::to_vec(&serde_json::json!({"type": "EncodedTaskRunRequest", "sourceLocation": loc,
                "encodedTaskContent": b64(b"steps:\n  - cmd: slipway-busybox stat -c 'mode=%a %n' /workspace/suid /workspace/sgid\n")}))
            .unwrap(),
            Some(TOKEN),
        );
        check_run(
            d,
            code,
            &text,
            "Succeeded",
            &words(&["mode=755 /workspace/suid", "mode=775 /workspace/sgid"]),
        )
    });
    let valid_check: Checker = Box::new(|d, status, body| {
        if status != 201 {
            return Err(format!("expected 201, got {status} {body}"));
        }
        let loc = serde_json::from_str::<serde_json::Value>(body).unwrap()["sourceLocation"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, text) = d.post(
            "/v1/runs",
            serde_json::to_vec(&serde_json::json!({"type": "EncodedTaskRunRequest", "sourceLocation": loc,
                "encodedTaskContent": b64(b"steps:\n  - cmd: slipway-busybox cat /workspace/link\n")}))
            .unwrap(),
            Some(TOKEN),
        );
        check_run(d, code, &text, "Succeeded", &words(&["hello"]))
    });

    let table: Vec<Case> = vec![
        // Not a tar.gz at all.
        case("empty body", upload(Vec::new()), refused(&["not a gzip-compressed tar archive"])),
        case(
            "plain text",
            upload(b"hello, world".to_vec()),
            refused(&["not a gzip-compressed tar archive"]),
        ),
        case(
            "a bare tar",
            upload([file("a", "b"), vec![0; 1024]].concat()),
            refused(&["not a gzip-compressed tar archive"]),
        ),
        case(
            "a zip",
            upload(b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec()),
            refused(&["not a gzip-compressed tar archive"]),
        ),
        case(
            "bzip2",
            upload(b"BZh91AY&SY\x00\x00".to_vec()),
            refused(&["not a gzip-compressed tar archive"]),
        ),
        // BUG: the tar reader's message quotes the garbage it read, so raw binary and
        // control bytes come back in the answer. What it read must be escaped.
        case("gzip of garbage", upload(garbage_gz), refused(&["not a tar archive"])),
        case(
            "truncated gzip",
            upload(truncated_gz),
            refused(&["is refused: incomplete deflate stream"]),
        ),
        case("truncated tar", upload(truncated_tar), refused(&["is refused: unexpected EOF"])),
        case(
            "gzip header only",
            upload(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03".to_vec()),
            refused(&["not a tar archive"]),
        ),
        case(
            "bad checksum",
            upload(bad_checksum),
            refused(&["not a tar archive: archive header checksum mismatch"]),
        ),
        // Paths.
        case(
            "absolute path",
            upload(tgz(&[file("/etc/cron.d/x", "x")])),
            refused(&["\"/etc/cron.d/x\"", "absolute path"]),
        ),
        case(
            "dot-dot",
            upload(tgz(&[file("a/../../x", "x")])),
            refused(&["\"a/../../x\"", "leaves the context"]),
        ),
        case(
            "dot-dot alone",
            upload(tgz(&[entry("..", b'5', "", b"")])),
            refused(&["\"..\"", "leaves the context"]),
        ),
        case(
            "dot-dot inside stays inside",
            upload(tgz(&[file("a/../b", "x")])),
            Expect::Answer(201, words(&["upload://"])),
        ),
        case(
            "pax path absolute",
            upload(tgz(&[pax("path", "/etc/passwd"), file("innocent", "x")])),
            refused(&["\"/etc/passwd\"", "absolute path"]),
        ),
        case(
            "pax path dot-dot",
            upload(tgz(&[pax("path", "../../../x"), file("innocent", "x")])),
            refused(&["\"../../../x\"", "leaves the context"]),
        ),
        case(
            "GNU long name dot-dot",
            upload(tgz(&[entry("././@LongLink", b'L', "", b"../../../x\0"), file("innocent", "x")])),
            refused(&["\"../../../x", "leaves the context"]),
        ),
        case(
            "a 300-byte long name",
            upload(tgz(&[
                entry("././@LongLink", b'L', "", format!("{long}\0").as_bytes()),
                file("innocent", "x"),
            ])),
            Expect::Answer(201, words(&["upload://"])),
        ),
        // Links.
        case(
            "symlink to /etc",
            upload(tgz(&[entry("etc", b'2', "/etc", b"")])),
            refused(&["\"etc\"", "absolute target"]),
        ),
        case(
            "symlink up and out",
            upload(tgz(&[entry("sub/evil", b'2', "../../etc/passwd", b"")])),
            refused(&["\"sub/evil\"", "outside the context"]),
        ),
        case(
            "symlink chain a->., a/b->.., a/b/c->..",
            upload(tgz(&[
                entry("a", b'2', ".", b""),
                entry("a/b", b'2', "..", b""),
                entry("a/b/c", b'2', "..", b""),
            ])),
            refused(&["\"a/b\"", "outside the context"]),
        ),
        case(
            "symlink chain through a dir",
            upload(tgz(&[
                entry("d", b'5', "", b""),
                entry("d/l", b'2', "..", b""),
                entry("d/l/x", b'2', "../..", b""),
            ])),
            refused(&["outside the context"]),
        ),
        case(
            "link changed by a later entry",
            upload(tgz(&[
                entry("p", b'2', "q/r", b""),
                entry("q", b'5', "", b""),
                entry("q/r", b'5', "", b""),
                entry("up", b'2', "p/../../..", b""),
            ])),
            refused(&["\"up\"", "outside the context"]),
        ),
        case(
            "symlink loop",
            upload(tgz(&[entry("x", b'2', "y", b""), entry("y", b'2', "x", b"")])),
            refused(&["outside the context"]),
        ),
        case(
            "file written through a symlinked dir",
            upload(tgz(&[entry("out", b'2', "..", b""), file("out/x", "x")])),
            refused(&["outside the context"]),
        ),
        case(
            "pax linkpath overrides an innocent link",
            upload(tgz(&[pax("linkpath", "/etc/shadow"), entry("l", b'2', "ok", b"")])),
            refused(&["\"l\"", "absolute target"]),
        ),
        case(
            "GNU long link to /etc",
            upload(tgz(&[
                entry("././@LongLink", b'K', "", b"/etc/shadow\0"),
                entry("l", b'2', "ok", b""),
            ])),
            refused(&["\"l\"", "absolute target"]),
        ),
        case(
            "hard link out",
            upload(tgz(&[entry("hl", b'1', "../../etc/passwd", b"")])),
            refused(&["\"hl\"", "hard link points outside"]),
        ),
        case(
            "hard link absolute",
            upload(tgz(&[entry("hl", b'1', "/etc/passwd", b"")])),
            refused(&["\"hl\"", "hard link points outside"]),
        ),
        case(
            "hard link to nothing yet",
            upload(tgz(&[entry("hl", b'1', "later", b""), file("later", "x")])),
            refused(&["\"hl\"", "has not unpacked"]),
        ),
        case(
            "hard link through a symlink out",
            upload(tgz(&[entry("up", b'2', ".", b""), entry("hl", b'1', "up/../../x", b"")])),
            refused(&["\"hl\"", "outside"]),
        ),
        // Special files and types.
        case(
            "char device",
            upload(tgz(&[entry("dev/null", b'3', "", b"")])),
            refused(&["\"dev/null\"", "device files"]),
        ),
        case(
            "block device",
            upload(tgz(&[entry("sda", b'4', "", b"")])),
            refused(&["\"sda\"", "device files"]),
        ),
        case(
            "fifo",
            upload(tgz(&[entry("fifo", b'6', "", b"")])),
            refused(&["\"fifo\"", "named pipes"]),
        ),
        case(
            "sparse",
            upload(tgz(&[entry("sparse", b'S', "", b"")])),
            refused(&["\"sparse\"", "sparse files"]),
        ),
        case(
            "volume label",
            upload(tgz(&[entry("label", b'V', "", b"")])),
            refused(&["\"label\"", "not allowed"]),
        ),
        case(
            "escape bytes in a name are not echoed",
            upload(tgz(&[entry_b(b"bin\x1b[2J\x07\xff", b'3', b"", b"", 0o644)])),
            refused(&["\\u{1b}[2J\\u{7}", "device files"]),
        ),
        case("set-uid and set-gid bits are dropped", upload(suid), Expect::Check(suid_check)),
        case("a good archive with an inner link runs", upload(valid), Expect::Check(valid_check)),
        // Sizes.
        case(
            "decompression bomb: 100 MB of zeros",
            upload(zeros_tgz(100 << 20)),
            too_large(&["expands to more than 16777216 bytes"]),
        ),
        case(
            "size field of 8 GiB",
            upload(tgz(&[tar_header(b"big", b'0', b"", &size_field(0o77777777777), 0o644)])),
            too_large(&["expands to more than"]),
        ),
        case(
            "base-256 size field",
            upload(tgz(&[tar_header(
                b"big",
                b'0',
                b"",
                &[0x80, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff],
                0o644,
            )])),
            too_large(&["expands to more than"]),
        ),
        case("1001 entries", upload(tgz(&many)), too_large(&["more than 1000 entries"])),
        case(
            "pax header over 64 KiB",
            upload(tgz(&pax_big)),
            refused(&["extended header larger than 65536"]),
        ),
        case(
            "GNU long name over 64 KiB",
            upload(tgz(&gnu_big)),
            refused(&["extended header larger than 65536"]),
        ),
        case(
            "pax size",
            upload(tgz(&[pax("size", "99999999999999"), file("x", "x")])),
            refused(&["pax sizes"]),
        ),
        case(
            "upload over max_upload_bytes",
            upload(noise(5 << 20)),
            too_large(&["larger than the limit of 4194304 bytes"]),
        ),
        // Zero blocks end a tar: this is an empty archive, and nothing after them is read.
        case(
            "gzip of 50 MB of zeros (an empty tar)",
            upload(gzip(&vec![0u8; 50 << 20])),
            Expect::Answer(201, words(&["upload://"])),
        ),
        // The wrong way to upload.
        case("GET uploads", get("/v1/uploads"), Expect::Error(405, "MethodNotAllowed", vec![])),
        case(
            "upload without a token",
            unauthenticated(upload(tgz(&[file("a", "b")])), &[]),
            Expect::Error(401, "Unauthorized", words(&["bearer token"])),
        ),
        case(
            "upload to a path",
            post("/v1/uploads/../../etc", tgz(&[file("a", "b")])),
            Expect::Error(404, "NotFound", vec![]),
        ),
    ];
    run_table("uploads", &mut d, table);
}

// ---------------------------------------------------------------------------------
// 3. Sources, on a daemon that allows nothing internal
// ---------------------------------------------------------------------------------

#[test]
fn hostile_sources_on_a_daemon_that_allows_nothing_internal() {
    let Some(_tb) = testbed() else { return };
    // Defaults for what sources may reach: no loopback or private host, no file:// dir.
    let mut d = start_with_env(&[("SLIPWAY_ALLOWED_SOURCE_HOSTS", ""), ("SLIPWAY_FILE_SOURCE_DIRS", "")], &[]);
    let parent = tmp_dir("hostile-src");
    let repo = repo_in(parent.path(), "r", &[("acb.yaml", "steps:\n  - cmd: slipway-busybox true\n")]);
    let t = "steps:\n  - cmd: slipway-busybox true\n";
    let internal = |url: &str| case(url, task_from(t, url), bad(&["sourceLocation:", "allowed_source_hosts"]));
    let files = |url: &str| case(url, task_from(t, url), bad(&["sourceLocation:", "file_source_dirs"]));
    let mut table: Vec<Case> = vec![
        files("file:///etc"),
        files("file:///etc/passwd"),
        files("file:///"),
        files(&format!("file://{}", repo.display())),
        files(&format!("file://{}#main", repo.display())),
        files("file:///tmp/../etc#main"),
        files("file://localhost/etc"),
        files("file:///proc/self/cwd"),
        files("file:///nonexistent/r.git"),
    ];
    for url in [
        "http://127.0.0.1:1/x.tar.gz",
        "http://127.0.0.1:5000/v2/_catalog",
        "http://2130706433/x.tar.gz",
        "http://0x7f000001/x.tar.gz",
        "http://0177.0.0.1/x.tar.gz",
        "http://127.1/x.tar.gz",
        "http://127.0.0.1./x.tar.gz",
        "http://[::1]/x.tar.gz",
        "http://[::ffff:127.0.0.1]/x.tar.gz",
        "http://[::ffff:a00:1]/x.tar.gz",
        "http://[::]/x.tar.gz",
        "http://0.0.0.0:5000/x.tar.gz",
        "http://0/x.tar.gz",
        "http://10.0.0.1/x.tar.gz",
        "http://172.17.0.1/x.tar.gz",
        "http://192.168.0.1/r.git",
        "http://169.254.169.254/latest/meta-data",
        "http://100.100.100.200/latest/meta-data",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://[fe80::1]/x.tar.gz",
        "http://[64:ff9b::7f00:1]/x.tar.gz",
        "http://224.0.0.1/x.tar.gz",
        "http://255.255.255.255/x.tar.gz",
        "git://[::1]:9418/r.git#main",
        "https://127.0.0.1/r.git#main:sub",
        "HTTP://127.0.0.1/r.git",
        "http://user:pw@127.0.0.1/x.tar.gz",
    ] {
        table.push(internal(url));
    }
    table.extend([
        case(
            "credentials are not echoed",
            task_from(t, "http://admin:s3cr3tpw@10.0.0.1/x.tar.gz"),
            Expect::Check(Box::new(|_d, status, body| {
                if status != 400 || body.contains("s3cr3tpw") {
                    Err(format!("{status} {body}"))
                } else {
                    Ok(())
                }
            })),
        ),
        case(
            "upload://../../etc",
            task_from(t, "upload://../../etc"),
            bad(&["sourceLocation: upload", "does not exist"]),
        ),
        case(
            "upload:// with no id",
            task_from(t, "upload://"),
            bad(&["sourceLocation: upload", "does not exist"]),
        ),
        case(
            "unknown upload id",
            task_from(t, "upload://0123456789abcdef0123456789abcdef"),
            bad(&["upload 0123456789abcdef0123456789abcdef does not exist"]),
        ),
        // BUG: the id is echoed as it came, control characters and all (a terminal
        // that prints the message runs them); every other message escapes them.
        case(
            "upload id with escapes",
            task_from(t, "upload://\u{1b}[2J"),
            bad(&["does not exist"]),
        ),
        case(
            "ftp",
            task_from(t, "ftp://127.0.0.1/x.tar.gz"),
            bad(&["sourceLocation:", "is not an upload"]),
        ),
        case(
            "gopher",
            task_from(t, "gopher://127.0.0.1:6379/_INFO"),
            bad(&["sourceLocation:", "is not an upload"]),
        ),
        case(
            "a bare path",
            task_from(t, "/etc/passwd"),
            bad(&["sourceLocation:", "is not an upload"]),
        ),
        case(
            "a relative path",
            task_from(t, "../../etc"),
            bad(&["sourceLocation:", "is not an upload"]),
        ),
        case(
            "a huge location",
            task_from(t, &format!("x{}", "a".repeat(1 << 20))),
            bad(&["sourceLocation:", "is not an upload"]),
        ),
        case(
            "git subfolder ..",
            task_from(t, "https://example.com/r.git#main:.."),
            bad(&["subfolder \"..\"", "relative path inside the repository"]),
        ),
        case(
            "git subfolder a/../..",
            task_from(t, "https://example.com/r.git#main:a/../.."),
            bad(&["subfolder", "relative path inside the repository"]),
        ),
        case(
            "file:// without a host part",
            task_from(t, "file:/etc/x.git"),
            bad(&["sourceLocation:"]),
        ),
        // Names are resolved when the source is fetched, and refused then.
        case(
            "localhost tarball",
            task_from(t, "http://localhost:1/x.tar.gz"),
            ends(
                "Failed",
                &["cannot fetch the source", "localhost is 127.0.0.1", "allowed_source_hosts"],
            ),
        ),
        // `localhost.` does not resolve here; where it does, it resolves to loopback and
        // is refused. Either way nothing is fetched.
        case(
            "localhost. tarball",
            task_from(t, "http://localhost.:1/x.tar.gz"),
            ends(
                "Failed",
                &["cannot fetch the source", "cannot download http://localhost.:1/x.tar.gz"],
            ),
        ),
        case(
            "localhost git",
            task_from(t, "https://localhost/r.git#main"),
            ends(
                "Failed",
                &["cannot fetch the source", "localhost is 127.0.0.1", "allowed_source_hosts"],
            ),
        ),
        case(
            "localhost git://",
            task_from(t, "git://localhost/r.git"),
            ends("Failed", &["cannot fetch the source", "allowed_source_hosts"]),
        ),
        // git:// is not a scheme the URL parser knows, so its host stays a name until the
        // fetch resolves it, and is refused then.
        case(
            "git://127.0.0.1",
            task_from(t, "git://127.0.0.1/r.git"),
            // Refused when the run is requested: outside http(s) an address is still one.
            bad(&["sourceLocation", "127.0.0.1 is 127.0.0.1", "allowed_source_hosts"]),
        ),
        case(
            "git://2130706433",
            task_from(t, "git://2130706433/r.git#main"),
            ends("Failed", &["cannot fetch the source", "allowed_source_hosts"]),
        ),
        case(
            "scp-style git",
            task_from(t, "git@127.0.0.1:r.git"),
            ends("Failed", &["cannot fetch the source", "not a URL"]),
        ),
    ]);
    run_table("sources (nothing internal allowed)", &mut d, table);
}

// ---------------------------------------------------------------------------------
// 4. Sources served from loopback: redirects, slow servers, links in repositories
// ---------------------------------------------------------------------------------

#[test]
fn hostile_sources_served_from_loopback() {
    let Some(_tb) = testbed() else { return };
    // This daemon lists the name `localhost` (its test servers listen there) but not
    // the address 127.0.0.1, nor any other internal one; file:// sources come only from
    // `allowed`. A daemon that lists nothing could not be led to the first hop of a
    // redirect at all (it is loopback too), so the first hop here is http://localhost:A/
    // (allowed), and what each redirect case asserts is that the hop it is sent on to
    // (http://127.0.0.1:B/, [::1], 2130706433, the metadata address; `localhost.`,
    // which does not even resolve here) is refused before B is ever connected to: the
    // run fails naming allowed_source_hosts and B's connection count stays 0. A redirect
    // from one allowed URL to another is followed (a control case).
    let allowed = tmp_dir("hostile-allowed");
    let outside = tmp_dir("hostile-outside");
    let mut d = start_with_env(
        &[
            ("SLIPWAY_ALLOWED_SOURCE_HOSTS", "localhost"),
            ("SLIPWAY_FILE_SOURCE_DIRS", allowed.path().to_str().unwrap()),
            ("SLIPWAY_FETCH_READ_TIMEOUT_SECONDS", "2"),
            ("SLIPWAY_FETCH_CONNECT_TIMEOUT_SECONDS", "2"),
            ("SLIPWAY_MAX_CONTEXT_BYTES", "16777216"),
        ],
        &["--max-upload-bytes", "4194304"],
    );
    let t = "steps:\n  - cmd: slipway-busybox true\n";
    let cat = "steps:\n  - cmd: slipway-busybox cat /workspace/hello\n";
    let good = Server::start(Serve::Body(Arc::new(tgz(&[file("hello", "hello from the tarball")]))));
    let target = Arc::new(Server::start(Serve::Body(Arc::new(tgz(&[file("hello", "reached")])))));
    let redirect_to = |to: String| Server::start(Serve::Redirect(to));
    let to_loopback = redirect_to(format!("http://127.0.0.1:{}/x.tar.gz", target.port));
    let to_v6 = redirect_to(format!("http://[::1]:{}/x.tar.gz", target.port));
    let to_decimal = redirect_to(format!("http://2130706433:{}/x.tar.gz", target.port));
    let to_dot = redirect_to(format!("http://localhost.:{}/x.tar.gz", target.port));
    let to_file = redirect_to("file:///etc/passwd".into());
    let to_metadata = redirect_to("http://169.254.169.254/latest/meta-data".into());
    let to_good = redirect_to(format!("http://localhost:{}/x.tar.gz", good.port));
    let looping = {
        // A server that redirects to itself, forever.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        Server::on(l, Serve::Redirect(format!("http://localhost:{port}/again")))
    };
    let git_target = Arc::new(Server::start(Serve::Status(404)));
    let git_redirect = redirect_to(format!(
        "http://127.0.0.1:{}/r.git/info/refs?service=git-upload-pack",
        git_target.port
    ));
    let silent = Server::start(Serve::Silent);
    let trickle = Server::start(Serve::Trickle);
    let not_found = Server::start(Serve::Status(404));
    let not_gzip = Server::start(Serve::Body(Arc::new(b"<html>hello</html>".to_vec())));
    let absolute = Server::start(Serve::Body(Arc::new(tgz(&[file("/etc/x", "x")]))));
    let bomb = Server::start(Serve::Body(Arc::new(zeros_tgz(100 << 20))));
    let big = Server::start(Serve::Body(Arc::new(noise(5 << 20))));

    // Repositories: links to the host, and a link that looks like a subfolder.
    let host_links = repo_in(
        allowed.path(),
        "links",
        &[
            ("etc", "-> /etc"),
            ("acb.yaml", "-> /etc/passwd"),
            ("values.yaml", "-> /etc/passwd"),
            ("Dockerfile", "-> /etc/passwd"),
            ("sub/Dockerfile", "FROM slipway-busybox\nCOPY leak /leak\nRUN cat /leak\n"),
            ("sub/leak", "-> /etc/passwd"),
            ("up", "-> .."),
            ("ok/acb.yaml", "steps:\n  - cmd: slipway-busybox cat /workspace/msg\n"),
            ("ok/msg", "inside the subfolder\n"),
        ],
    );
    let links_url = format!("file://{}", host_links.display());
    std::os::unix::fs::symlink("/etc", allowed.path().join("etc-link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), allowed.path().join("outside-link")).unwrap();
    let outside_repo = repo_in(outside.path(), "o", &[("acb.yaml", t)]);

    let refused_redirect = |server: &Server, target: Arc<Server>, want: &'static [&'static str]| {
        let url = format!("http://localhost:{}/x.tar.gz", server.port);
        let check: Checker = Box::new(move |d, status, body| {
            check_run(d, status, body, "Failed", &words(want))?;
            match target.hits() {
                0 => Ok(()),
                n => Err(format!("the refused target was connected to {n} times")),
            }
        });
        (task_from(cat, &url), Expect::Check(check))
    };
    let redirect_case = |name: &str, server: &Server, want: &'static [&'static str]| {
        let (input, expect) = refused_redirect(server, target.clone(), want);
        case(name, input, expect)
    };
    let file_task = |path: &str, source: &str| {
        post_json(
            "/v1/runs",
            serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": path, "sourceLocation": source}),
        )
    };
    let cancel_after = |after: Duration| -> Checker {
        Box::new(move |d, status, body| {
            let id = run_id(status, body)?;
            std::thread::sleep(after);
            let (code, text) = d.post(&format!("/v1/runs/{id}/cancel"), Vec::new(), Some(TOKEN));
            if code != 200 {
                return Err(format!("cancel: {code} {text}"));
            }
            let asked = Instant::now();
            let (run, _) = finished(d, &id, Duration::from_secs(10))?;
            if run["status"] != "Canceled" || asked.elapsed() > Duration::from_secs(5) {
                return Err(format!("after {:?} the run is {}", asked.elapsed(), run));
            }
            Ok(())
        })
    };
    let quickly = |limit: Duration, want: &'static [&'static str]| -> Checker {
        Box::new(move |d, status, body| {
            let t = Instant::now();
            check_run(d, status, body, "Failed", &words(want))?;
            if t.elapsed() > limit {
                return Err(format!("the run took {:?} to fail (limit {limit:?})", t.elapsed()));
            }
            Ok(())
        })
    };

    let table: Vec<Case> = vec![
        // Controls: the servers work, and an allowed redirect is followed.
        case(
            "a tarball from localhost",
            task_from(cat, &format!("http://localhost:{}/x.tar.gz", good.port)),
            ends("Succeeded", &["hello from the tarball"]),
        ),
        case(
            "a redirect from localhost to localhost",
            task_from(cat, &format!("http://localhost:{}/x.tar.gz", to_good.port)),
            ends("Succeeded", &["hello from the tarball"]),
        ),
        case(
            "a file:// repository in an allowed dir",
            file_task("acb.yaml", &format!("{links_url}#main:ok")),
            ends("Succeeded", &["inside the subfolder"]),
        ),
        // Redirects out of what is allowed.
        redirect_case(
            "redirect to 127.0.0.1",
            &to_loopback,
            &["cannot fetch the source", "allowed_source_hosts"],
        ),
        redirect_case("redirect to [::1]", &to_v6, &["cannot fetch the source", "allowed_source_hosts"]),
        redirect_case(
            "redirect to 2130706433",
            &to_decimal,
            &["cannot fetch the source", "allowed_source_hosts"],
        ),
        // `localhost.` does not resolve here (where it does, it is refused as loopback).
        redirect_case("redirect to localhost.", &to_dot, &["cannot fetch the source"]),
        // A redirect to another scheme is not followed: the 302 is the answer.
        redirect_case(
            "redirect to file:///etc/passwd",
            &to_file,
            &["cannot fetch the source", "the server answered 302 Found"],
        ),
        redirect_case(
            "redirect to the metadata service",
            &to_metadata,
            &["cannot fetch the source", "allowed_source_hosts"],
        ),
        case(
            "redirect loop",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", looping.port)),
            ends("Failed", &["cannot fetch the source", "more than 5 redirects"]),
        ),
        // BUG: libgit2 follows the git server's redirect on its first request without
        // the daemon checking where it leads, so a git source on an allowed host reaches
        // 127.0.0.1 (any internal address). The run must fail before the target is hit.
        {
            let git_target = git_target.clone();
            case(
                "git redirect to 127.0.0.1",
                task_from(t, &format!("http://localhost:{}/r.git#main", git_redirect.port)),
                Expect::Check(Box::new(move |d, status, body| {
                    let r = check_run(d, status, body, "Failed", &words(&["cannot fetch the source"]));
                    match git_target.hits() {
                        0 => r,
                        n => Err(format!("the git redirect reached 127.0.0.1 ({n} connections); {r:?}")),
                    }
                })),
            )
        },
        // Slow and broken servers.
        case(
            "a server that never answers (tarball)",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", silent.port)),
            Expect::Check(quickly(Duration::from_secs(10), &["cannot fetch the source", "timed out"])),
        ),
        case(
            "a server that never answers (git)",
            task_from(t, &format!("http://localhost:{}/r.git#main", silent.port)),
            Expect::Check(quickly(Duration::from_secs(15), &["cannot fetch the source"])),
        ),
        case(
            "cancel while a tarball trickles in",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", trickle.port)),
            Expect::Check(cancel_after(Duration::from_millis(1500))),
        ),
        case(
            "cancel while a git server is silent",
            task_from(t, &format!("http://localhost:{}/r.git#main", silent.port)),
            Expect::Check(cancel_after(Duration::from_millis(700))),
        ),
        case(
            "the run's timeout ends a trickling fetch",
            post_json(
                "/v1/runs",
                serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(t.as_bytes()), "timeout": 3, "sourceLocation": format!("http://localhost:{}/x.tar.gz", trickle.port)}),
            ),
            ends("Timeout", &["did not finish within the run's timeout"]),
        ),
        case(
            "a tarball answering 404",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", not_found.port)),
            ends("Failed", &["the server answered 404"]),
        ),
        case(
            "a tarball that is HTML",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", not_gzip.port)),
            ends("Failed", &["not a gzip-compressed tar archive"]),
        ),
        case(
            "a tarball with an absolute path",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", absolute.port)),
            ends("Failed", &["\"/etc/x\"", "absolute path"]),
        ),
        case(
            "a tarball bomb",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", bomb.port)),
            ends("Failed", &["expands to more than 16777216 bytes"]),
        ),
        case(
            "a tarball over max_upload_bytes",
            task_from(t, &format!("http://localhost:{}/x.tar.gz", big.port)),
            ends("Failed", &["larger than the limit of 4194304 bytes"]),
        ),
        case(
            "a git server that is a 404",
            task_from(t, &format!("http://localhost:{}/r.git#main", not_found.port)),
            ends("Failed", &["cannot fetch the source", "git:"]),
        ),
        // file:// outside the allowed dir, however it is spelled.
        case(
            "file:// outside the allowed dir",
            task_from(t, &format!("file://{}", outside_repo.display())),
            bad(&["sourceLocation:", "file_source_dirs"]),
        ),
        case(
            "file:// dot-dot out of the allowed dir",
            task_from(
                t,
                &format!(
                    "file://{}/../{}/o",
                    allowed.path().display(),
                    outside.path().file_name().unwrap().to_str().unwrap()
                ),
            ),
            bad(&["sourceLocation:", "file_source_dirs"]),
        ),
        case(
            "file:// through a link to /etc",
            task_from(t, &format!("file://{}/etc-link", allowed.path().display())),
            bad(&["sourceLocation:", "file_source_dirs"]),
        ),
        case(
            "file:// through a link out of the allowed dir",
            task_from(t, &format!("file://{}/outside-link/o", allowed.path().display())),
            bad(&["sourceLocation:", "file_source_dirs"]),
        ),
        // Links inside a repository.
        case(
            "git subfolder that is a link to /etc",
            task_from(t, &format!("{links_url}#main:etc")),
            ends("Failed", &["subfolder \"etc\"", "leads outside the repository"]),
        ),
        case(
            "git subfolder that is a link to ..",
            task_from(t, &format!("{links_url}#main:up")),
            ends("Failed", &["subfolder \"up\"", "leads outside the repository"]),
        ),
        case(
            "git subfolder through a link",
            task_from(t, &format!("{links_url}#main:etc/ssh")),
            ends("Failed", &["subfolder \"etc/ssh\""]),
        ),
        case(
            "git subfolder ..",
            task_from(t, &format!("{links_url}#main:..")),
            bad(&["subfolder \"..\""]),
        ),
        case(
            "git ref that looks like an option",
            task_from(t, &format!("{links_url}#--upload-pack=touch /tmp/pwned")),
            ends("Failed", &["is not a branch, tag or commit"]),
        ),
        case(
            "git ref with dot-dot",
            task_from(t, &format!("{links_url}#../../../etc/passwd")),
            ends("Failed", &["is not a branch, tag or commit"]),
        ),
        case(
            "task file that is a link to /etc/passwd",
            file_task("acb.yaml", &format!("{links_url}#main")),
            ends("Failed", &["cannot read \"acb.yaml\" from the source"]),
        ),
        case(
            "task file through a linked dir",
            file_task("etc/passwd", &format!("{links_url}#main")),
            ends("Failed", &["cannot read \"etc/passwd\" from the source"]),
        ),
        case(
            "task file path absolute",
            file_task("/etc/passwd", &format!("{links_url}#main")),
            ends("Failed", &["cannot read \"/etc/passwd\" from the source"]),
        ),
        case(
            "task file path dot-dot",
            file_task("../../../../../../etc/passwd", &format!("{links_url}#main")),
            ends("Failed", &["cannot read \"../../../../../../etc/passwd\" from the source"]),
        ),
        case(
            "values file that is a link to /etc/passwd",
            post_json(
                "/v1/runs",
                serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": "ok/acb.yaml", "valuesFilePath": "values.yaml", "sourceLocation": format!("{links_url}#main")}),
            ),
            ends("Failed", &["cannot read \"values.yaml\" from the source"]),
        ),
        case(
            "Dockerfile that is a link to /etc/passwd",
            post_json(
                "/v1/runs",
                serde_json::json!({"type": "DockerBuildRequest", "isPushEnabled": false, "imageNames": ["leak:1"], "sourceLocation": format!("{links_url}#main")}),
            ),
            ends("Failed", &["cannot read Dockerfile \"Dockerfile\""]),
        ),
        case(
            "COPY of a link to /etc/passwd",
            post_json(
                "/v1/runs",
                serde_json::json!({"type": "DockerBuildRequest", "isPushEnabled": false, "imageNames": ["leak:2"], "sourceLocation": format!("{links_url}#main:sub")}),
            ),
            // BuildKit sees only the context, where the link leads nowhere.
            ends("Failed", &["\"/etc/passwd\" not found"]),
        ),
    ];
    run_table("sources (served from loopback)", &mut d, table);
    drop(target);
}

// ---------------------------------------------------------------------------------
// 5. Webhooks and registry notifications
// ---------------------------------------------------------------------------------

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn hook(provider: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Input {
    Input::Http {
        method: "POST",
        path: format!("/v1/webhooks/{provider}"),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .chain([("Content-Type".to_string(), b"application/json".to_vec())])
            .collect(),
        body: body.into(),
        token: None,
    }
}

#[test]
fn hostile_webhooks() {
    let Some(_tb) = testbed() else { return };
    let mut d = start_with_env(&[("SLIPWAY_REGISTRY_NOTIFICATION_SECRET", "reg-secret")], &[]);
    let parent = tmp_dir("hostile-hook");
    let repo = repo_in(parent.path(), "app", &[("acb.yaml", "steps:\n  - cmd: slipway-busybox true\n")]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    let secret = "hook-s3cret";
    let spec = serde_json::json!({"contextPath": format!("{url}#main"), "file": "acb.yaml",
        "sourceTrigger": {"enabled": true}, "webhookSecret": secret});
    let (code, body) = send(&d, &http("PUT", "/v1/tasks/hook-task", serde_json::to_vec(&spec).unwrap())).unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    std::fs::create_dir_all(parent.path().join("elsewhere.git")).unwrap();
    let other = serde_json::json!({"contextPath": format!("file://{}/elsewhere.git#main", parent.path().display()), "file": "acb.yaml",
        "sourceTrigger": {"enabled": true}, "webhookSecret": "other-secret"});
    let (code, body) = send(&d, &http("PUT", "/v1/tasks/other-task", serde_json::to_vec(&other).unwrap())).unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));

    let gh = |after: &str, branch: &str| {
        serde_json::to_vec(&serde_json::json!({"ref": format!("refs/heads/{branch}"), "after": after, "repository": {"clone_url": url}}))
            .unwrap()
    };
    let push = gh(&commit, "main");
    let sig = format!("sha256={}", hmac_hex(secret, &push));
    let signed = |body: &[u8], extra: &[(&str, &str)]| {
        let s = format!("sha256={}", hmac_hex(secret, body));
        let mut h: Vec<(String, String)> = vec![("X-Hub-Signature-256".into(), s)];
        h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hook("github", &refs, body.to_vec())
    };
    let ping = serde_json::to_vec(&serde_json::json!({"zen": "hi", "repository": {"clone_url": url}})).unwrap();
    let generic = serde_json::to_vec(&serde_json::json!({"id": "1", "repositoryUrl": url, "branch": "main", "commit": commit})).unwrap();
    let gitlab =
        serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "checkout_sha": commit, "project": {"git_http_url": url}}))
            .unwrap();
    let unauthorized = || Expect::Error(401, "Unauthorized", words(&["signature does not match"]));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!("{{\"pad\":\"{}\"}}", "a".repeat(3 << 20));
    let reg = |headers: &[(&str, &str)], body: &str| Input::Http {
        method: "POST",
        path: "/v1/registry/notifications".into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
        body: body.as_bytes().to_vec(),
        token: None,
    };
    let started_one: Checker = Box::new(|d, status, body| {
        if status != 202 {
            return Err(format!("expected 202, got {status} {body}"));
        }
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let runs = v["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() != 1 {
            return Err(format!("expected one run: {body}"));
        }
        let id = runs[0].as_str().unwrap_or("");
        let (run, log) = finished(d, id, Duration::from_secs(60))?;
        if run["status"] != "Succeeded" {
            return Err(format!("the pushed commit's run ended {}: {log}", run["status"]));
        }
        Ok(())
    });

    let table: Vec<Case> = vec![
        case("github unsigned", hook("github", &[], push.clone()), unauthorized()),
        case("github wrong signature", hook("github", &[("X-Hub-Signature-256", "sha256=00")], push.clone()), unauthorized()),
        case("github signature of another body", hook("github", &[("X-Hub-Signature-256", &format!("sha256={}", hmac_hex(secret, b"{}")))], push.clone()), unauthorized()),
        case("github signature with another task's secret", hook("github", &[("X-Hub-Signature-256", &format!("sha256={}", hmac_hex("other-secret", &push)))], push.clone()), unauthorized()),
        case("github signature with an empty secret", hook("github", &[("X-Hub-Signature-256", &format!("sha256={}", hmac_hex("", &push)))], push.clone()), unauthorized()),
        case("github signature not hex", hook("github", &[("X-Hub-Signature-256", "sha256=zzzz")], push.clone()), unauthorized()),
        case("github sha1 signature", hook("github", &[("X-Hub-Signature", &format!("sha1={}", &hmac_hex(secret, &push)[..40]))], push.clone()), unauthorized()),
        case("github signature without its prefix", hook("github", &[("X-Hub-Signature-256", &hmac_hex(secret, &push))], push.clone()), unauthorized()),
        case("github signature as the bearer token", unauthenticated(http("POST", "/v1/webhooks/github", push.clone()), &[("Authorization", format!("Bearer {TOKEN}").as_bytes())]), unauthorized()),
        case("gitea wrong signature", hook("gitea", &[("X-Gitea-Signature", "00ff")], push.clone()), unauthorized()),
        case("gitlab wrong token", hook("gitlab", &[("X-Gitlab-Token", "hook-s3cre")], gitlab.clone()), unauthorized()),
        case("gitlab token with a suffix", hook("gitlab", &[("X-Gitlab-Token", "hook-s3cret2")], gitlab.clone()), unauthorized()),
        case("generic unsigned", hook("generic", &[], generic.clone()), unauthorized()),
        case("generic signed as github", hook("generic", &[("X-Hub-Signature-256", &format!("sha256={}", hmac_hex(secret, &generic)))], generic.clone()), unauthorized()),
        case("malformed JSON", hook("github", &[("X-Hub-Signature-256", &sig)], &b"{\"ref\": "[..]), bad(&["the payload is not JSON"])),
        case("not JSON at all", hook("gitlab", &[], &b"\xff\xfe\x00garbage"[..]), bad(&["the payload is not JSON"])),
        case("JSON 100000 deep", hook("github", &[], deep.as_bytes()), bad(&["the payload is not JSON", "recursion limit"])),
        case("a 3 MB body", hook("github", &[], huge.as_bytes()), Expect::Error(413, "PayloadTooLarge", vec![])),
        case("unknown provider", hook("bitbucket", &[], push.clone()), bad(&["unknown webhook provider \"bitbucket\""])),
        case("provider with escapes", hook("%1b%5b2J", &[], push.clone()), bad(&["path holds a control character", "\\u{1b}"])),
        case("provider with a slash", hook("..%2F..%2Fv1%2Fruns", &[], push.clone()), bad(&["unknown webhook provider \"../../v1/runs\""])),
        case("no provider", hook("", &[], push.clone()), Expect::Error(404, "NotFound", vec![])),
        case("GET a webhook", unauthenticated(get("/v1/webhooks/github"), &[]), Expect::Error(405, "MethodNotAllowed", vec![])),
        case("non-push event unsigned", hook("github", &[("X-GitHub-Event", "ping")], ping.clone()), unauthorized()),
        case("non-push event signed", signed(&ping, &[("X-GitHub-Event", "ping")]), Expect::Answer(202, words(&["\"runs\":[]"]))),
        case("gitlab tag push event unsigned", hook("gitlab", &[("X-Gitlab-Event", "Tag Push Hook")], gitlab.clone()), unauthorized()),
        case("push without a commit", signed(&serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "repository": {"clone_url": url}})).unwrap(), &[]), bad(&["names no repository URL, branch or commit"])),
        case("push without a repository", signed(br#"{"ref":"refs/heads/main","after":"abc"}"#, &[]), bad(&["names no repository URL, branch or commit"])),
        case("push of a tag", signed(&serde_json::to_vec(&serde_json::json!({"ref": "refs/tags/v1", "after": commit, "repository": {"clone_url": url}})).unwrap(), &[]), bad(&["names no repository URL, branch or commit"])),
        case("fields of the wrong type", signed(br#"{"ref":5,"after":[],"repository":"x"}"#, &[]), bad(&["names no repository URL, branch or commit"])),
        case("branch deletion signed", signed(&gh(&"0".repeat(40), "main"), &[]), Expect::Answer(202, words(&["\"runs\":[]"]))),
        case("push to another branch signed", signed(&gh(&commit, "feature"), &[]), Expect::Answer(202, words(&["\"runs\":[]"]))),
        case("a short commit id", signed(&gh(&commit[..7], "main"), &[]), bad(&["is not a full commit id"])),
        case("a commit that is an option", signed(&gh("--upload-pack=touch /tmp/x", "main"), &[]), bad(&["\"--upload-pack=touch /tmp/x\" is not a full commit id"])),
        case("a commit that is a ref expression", signed(&gh("HEAD~0", "main"), &[]), bad(&["is not a full commit id"])),
        case("push of an unknown repository signed", signed(&serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "after": commit, "repository": {"clone_url": "https://example.com/x.git"}})).unwrap(), &[]), unauthorized()),
        case("a correctly signed push starts one run", hook("github", &[("X-Hub-Signature-256", &sig), ("X-GitHub-Event", "push")], push.clone()), Expect::Check(started_one)),
        case("the same push delivered again starts nothing", hook("github", &[("X-Hub-Signature-256", &sig)], push.clone()), Expect::Answer(202, words(&["\"runs\":[]"]))),
        case("the same commit in capitals starts nothing", signed(&gh(&commit.to_uppercase(), "main"), &[]), Expect::Answer(202, words(&["\"runs\":[]"]))),
        case("the same commit padded with spaces starts nothing", signed(&gh(&format!(" {commit} "), "main"), &[]), Expect::Answer(202, words(&["\"runs\":[]"]))),
        case("registry notification without a secret", reg(&[], "{\"events\":[]}"), Expect::Error(401, "Unauthorized", words(&["shared secret"]))),
        case("registry notification with a wrong secret", reg(&[("X-Slipway-Registry-Secret", "reg-secre")], "{\"events\":[]}"), Expect::Error(401, "Unauthorized", vec![])),
        case("registry notification not JSON", reg(&[("X-Slipway-Registry-Secret", "reg-secret")], "{{{"), bad(&["the envelope is not JSON"])),
        case("registry notification without events", reg(&[("X-Slipway-Registry-Secret", "reg-secret")], "{}"), bad(&["has no events"])),
        case("registry notification of junk events", reg(&[("X-Slipway-Registry-Secret", "reg-secret")], "{\"events\":[1,\"x\",{\"action\":\"push\",\"target\":{\"mediaType\":\"manifest\",\"tag\":\"\\u001b\",\"repository\":\"../..\"}}]}"), Expect::Answer(200, words(&["\"runs\":[]"]))),
    ];
    run_table("webhooks", &mut d, table);
}

// ---------------------------------------------------------------------------------
// 6. API bodies, paths, queries and tokens
// ---------------------------------------------------------------------------------

#[test]
fn hostile_api_bodies() {
    let Some(_tb) = testbed() else { return };
    let mut d = Daemon::start(&[]);
    let done = run_to_end(&d, "steps:\n  - cmd: slipway-busybox echo hello from a finished run\n");
    let parent = tmp_dir("hostile-api");
    let repo = repo_in(parent.path(), "r", &[("acb.yaml", "steps:\n  - cmd: slipway-busybox true\n")]);
    let repo_url = format!("file://{}#main", repo.display());
    let task_spec = serde_json::json!({"contextPath": repo_url, "file": "acb.yaml", "webhookSecret": "hunter2-secret",
        "gitCredentials": {"example.com": "u:hunter2-secret"}, "values": [{"name": "v", "value": "hunter2-secret", "isSecret": true}]});
    let (code, body) = send(&d, &http("PUT", "/v1/tasks/api-task", serde_json::to_vec(&task_spec).unwrap())).unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let encoded = |extra: serde_json::Value| {
        let mut v =
            serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(b"steps:\n  - cmd: slipway-busybox true\n")});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        post_json("/v1/runs", v)
    };
    let build = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"type": "DockerBuildRequest", "isPushEnabled": false});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        post_json("/v1/runs", v)
    };
    let put_task = |name: &str, spec: serde_json::Value| http("PUT", &format!("/v1/tasks/{name}"), serde_json::to_vec(&spec).unwrap());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let three_mb = format!(
        "{{\"type\":\"EncodedTaskRunRequest\",\"encodedTaskContent\":\"{}\"}}",
        "A".repeat(3 << 20)
    );
    let unauthorized = || Expect::Error(401, "Unauthorized", words(&["a valid bearer token is required"]));
    let with_auth = |input: Input, value: &[u8]| unauthenticated(input, &[("Authorization", value)]);
    let not_found_run = |w: &[&str]| Expect::Error(404, "RunNotFound", words(w));
    let no_secrets: Checker = Box::new(|_d, status, body| {
        if status != 200 || body.contains("hunter2") || !body.contains("api-task") {
            return Err(format!("{status} {}", short(body)));
        }
        Ok(())
    });
    let long_id = "a".repeat(60_000);
    let done_log = format!("/v1/runs/{done}/log");

    let table: Vec<Case> = vec![
        // POST /v1/runs: the shape of the body.
        case("no type", post_json("/v1/runs", serde_json::json!({"encodedTaskContent": "x"})), bad(&["has no \"type\""])),
        // Control characters are refused before the store (issue 18).
        case("a NUL in a run id", get("/v1/runs/ab%00cd"), bad(&["path holds a control character"])),
        case("a NUL in a query value", get("/v1/runs?task=a%00b"), bad(&["query holds a control character"])),
        case("an escape in a task name", get("/v1/tasks/x%1b%5b31m"), bad(&["control character"])),
        case(
            "a NUL in a body's string",
            post_json("/v1/runs", serde_json::json!({"type": "DockerBuildRequest", "imageNames": ["x"], "platform": "linux\u{0}/amd64"})),
            bad(&["NUL character"]),
        ),
        case("unknown type", post_json("/v1/runs", serde_json::json!({"type": "ShellRequest"})), bad(&["unknown request type \"ShellRequest\""])),
        case("type with escapes", post_json("/v1/runs", serde_json::json!({"type": "\u{1b}[31mX"})), bad(&["unknown request type", "\\u{1b}"])),
        case("type not a string", post_json("/v1/runs", serde_json::json!({"type": 5})), bad(&["has no \"type\""])),
        case("body an array", post("/v1/runs", "[]"), bad(&["has no \"type\""])),
        case("body null", post("/v1/runs", "null"), bad(&["has no \"type\""])),
        case("body empty", post("/v1/runs", ""), bad(&["the body is not JSON"])),
        case("body not JSON", post("/v1/runs", "type=DockerBuildRequest"), bad(&["the body is not JSON"])),
        case("body invalid UTF-8", post("/v1/runs", &b"{\"type\":\"\xff\xfe\"}"[..]), bad(&["the body is not JSON"])),
        case("body with a NUL", post("/v1/runs", &b"{\"type\":\"Docker\0BuildRequest\"}"[..]), bad(&["the body is not JSON"])),
        case("JSON 100000 deep (arrays)", post("/v1/runs", deep.clone()), bad(&["the body is not JSON", "recursion limit"])),
        case("JSON 100000 deep (objects)", post("/v1/runs", deep_obj.clone()), bad(&["the body is not JSON", "recursion limit"])),
        case("a 3 MB body", post("/v1/runs", three_mb.clone()), Expect::Error(413, "PayloadTooLarge", vec![])),
        case("unknown field", encoded(serde_json::json!({"privileged": true})), bad(&["invalid request", "unknown field `privileged`"])),
        // BUG: serde's message quotes the unknown field as it came, control characters and all.
        case("unknown field with escapes", encoded(serde_json::json!({"\u{1b}]0;pwned\u{7}": 1})), bad(&["invalid request", "unknown field"])),
        case("missing encodedTaskContent", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest"})), bad(&["invalid request", "encodedTaskContent"])),
        case("encodedTaskContent a number", post_json("/v1/runs", serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": 5})), bad(&["invalid request", "invalid type"])),
        case("timeout a string", encoded(serde_json::json!({"timeout": "10"})), bad(&["invalid request", "invalid type"])),
        case("timeout negative", encoded(serde_json::json!({"timeout": -1})), bad(&["invalid request", "invalid value"])),
        case("timeout zero", encoded(serde_json::json!({"timeout": 0})), bad(&["timeout 0 is out of range"])),
        case("timeout too long", encoded(serde_json::json!({"timeout": 28801})), bad(&["timeout 28801 is out of range"])),
        case("timeout u64::MAX", encoded(serde_json::json!({"timeout": u64::MAX})), bad(&["is out of range"])),
        case("timeout 1e30", post("/v1/runs", format!("{{\"type\":\"EncodedTaskRunRequest\",\"encodedTaskContent\":\"{}\",\"timeout\":1e30}}", b64(b"steps: []"))), bad(&["invalid request"])),
        case("timeout 2^64", post("/v1/runs", format!("{{\"type\":\"EncodedTaskRunRequest\",\"encodedTaskContent\":\"{}\",\"timeout\":18446744073709551616}}", b64(b"steps: []"))), bad(&["invalid request"])),
        case("values not a list", encoded(serde_json::json!({"values": {"a": "b"}})), bad(&["invalid request", "invalid type"])),
        case("value with an empty name", encoded(serde_json::json!({"values": [{"name": "", "value": "x"}]})), bad(&["a value with an empty name"])),
        case("value with an unknown field", encoded(serde_json::json!({"values": [{"name": "a", "value": "x", "file": "/etc/passwd"}]})), bad(&["invalid request", "unknown field `file`"])),
        case("image name invalid", build(serde_json::json!({"imageNames": ["Bad Name"]})), bad(&["imageNames"])),
        case("image name a template bomb", build(serde_json::json!({"imageNames": ["x:{{ repeat 100000000000 .Run.ID }}"]})), bad(&["task:", "larger than"])),
        // The template in an image name writes a quote and new keys into the quick build's
        // task: the task may say no more than a task file could.
        case("image name breaking out of its quotes", build(serde_json::json!({"imageNames": [format!("a:{{{{ b64dec `{}` }}}}", b64(b"b' .\"\n    privileged: true\n    user: \"'"))]})), bad(&["task:", "steps[0].privileged", "not allowed"])),
        case("dockerFilePath empty", build(serde_json::json!({"dockerFilePath": " "})), bad(&["dockerFilePath is empty"])),
        case("build argument name with =", build(serde_json::json!({"arguments": [{"name": "A=B", "value": "x"}]})), bad(&["build argument name \"A=B\" is not valid"])),
        case("build argument name empty", build(serde_json::json!({"arguments": [{"name": "", "value": "x"}]})), bad(&["empty name"])),
        case("dockerFilePath out of the source", build(serde_json::json!({"dockerFilePath": "../../../../etc/passwd", "imageNames": ["x:1"]})), ends("Failed", &["\"../../../../etc/passwd", "is outside the run's source"])),
        case("file task path /etc/passwd without a source", post_json("/v1/runs", serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": "/etc/passwd"})), ends("Failed", &["cannot read \"/etc/passwd\" from the source"])),
        case("file task path ../../ without a source", post_json("/v1/runs", serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": "../../../../../etc/passwd"})), ends("Failed", &["cannot read \"../../../../../etc/passwd\" from the source"])),
        case("file task path of the daemon's database", post_json("/v1/runs", serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": "../../slipway.db"})), ends("Failed", &["cannot read \"../../slipway.db\" from the source"])),
        case("file task path empty", post_json("/v1/runs", serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": ""})), bad(&["taskFilePath is empty"])),
        // GET /v1/runs: queries.
        case("top=0", get("/v1/runs?top=0"), bad(&["top \"0\" must be 1 to 1000"])),
        case("top=100000", get("/v1/runs?top=100000"), bad(&["top \"100000\" must be 1 to 1000"])),
        case("top=-1", get("/v1/runs?top=-1"), bad(&["must be 1 to 1000"])),
        case("top=1e3", get("/v1/runs?top=1e3"), bad(&["must be 1 to 1000"])),
        case("status=bogus", get("/v1/runs?status=bogus"), bad(&["status \"bogus\" is not a run status"])),
        case("runType=bogus", get("/v1/runs?runType=bogus"), bad(&["runType \"bogus\" is not a run type"])),
        case("unknown parameter", get("/v1/runs?debug=1"), bad(&["unknown query parameter \"debug\""])),
        case("query with invalid percent-encoding", get("/v1/runs?status=%FF%FE"), bad(&["is not a run status"])),
        case("query with escapes", get("/v1/runs?%1b%5b2J=1"), bad(&["query holds a control character", "\\u{1b}"])),
        case("skipToken SQL", get("/v1/runs?skipToken=%27%20OR%201%3D1%20--"), Expect::Answer(200, words(&["\"value\":[]"]))),
        case("task SQL", get("/v1/runs?task=x%27%20OR%20%271%27%3D%271"), Expect::Answer(200, words(&["\"value\":[]"]))),
        case("image wildcard", get("/v1/runs?image=%25%25%25&top=1"), Expect::Answer(200, words(&["\"value\":"]))),
        // Runs by id, and logs.
        case("run id with dot-dot", get("/v1/runs/..%2F..%2Fetc%2Fpasswd"), not_found_run(&["no run with id \"../../etc/passwd\""])),
        case("log of a dot-dot id", get("/v1/runs/..%2F..%2Fetc%2Fpasswd/log"), not_found_run(&["no run with id"])),
        case("log of a run id ending in .log", get(&format!("/v1/runs/{done}.log%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd%00/log")), bad(&["path holds a control character"])),
        case("a 60000-byte run id", get(&format!("/v1/runs/{long_id}")), not_found_run(&["no run with id"])),
        case("a 120000-byte path", Input::Raw(format!("GET /v1/runs/{long_id}{long_id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()), Expect::Bare(414)),
        case("cancel an unknown run", post("/v1/runs/nosuchrun/cancel", ""), not_found_run(&["no run with id \"nosuchrun\""])),
        case("cancel a finished run", post(&format!("/v1/runs/{done}/cancel"), ""), Expect::Answer(200, words(&["\"status\":\"Succeeded\""]))),
        case("log offset 0", get(&done_log), Expect::Answer(200, words(&["hello from a finished run"]))),
        case("log offset 2^63", get(&format!("{done_log}?offset=9223372036854775808")), Expect::Answer(200, vec![])),
        case("log offset u64::MAX", get(&format!("{done_log}?offset=18446744073709551615")), Expect::Answer(200, vec![])),
        case("log offset 2^64", get(&format!("{done_log}?offset=18446744073709551616")), bad(&["offset \"18446744073709551616\" is not a number"])),
        case("log offset -1", get(&format!("{done_log}?offset=-1")), bad(&["offset \"-1\" is not a number"])),
        case("log offset abc", get(&format!("{done_log}?offset=abc")), bad(&["offset \"abc\" is not a number"])),
        case("log follow of a finished run", get(&format!("{done_log}?follow=true&offset=9223372036854775807")), Expect::Answer(200, vec![])),
        // Paths.
        case("path with dot-dot", Input::Raw(format!("GET /v1/runs/../../etc/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").into_bytes()), Expect::Error(404, "NotFound", words(&["no such endpoint"]))),
        case("path with invalid UTF-8", Input::Raw(format!("GET /v1/runs/%FF%FE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").into_bytes()), Expect::Check(Box::new(|_d, status, body| {
            match status { 400 | 404 => error_of(body).map(|_| ()), s => Err(format!("{s} {body}")) }
        }))),
        case("unknown endpoint", get("/v1/admin"), Expect::Error(404, "NotFound", words(&["no such endpoint"]))),
        case("wrong method", http("DELETE", "/v1/runs", Vec::new()), Expect::Error(405, "MethodNotAllowed", vec![])),
        case("a 1 MB request head", Input::Raw(format!("GET /v1/runs HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n", "a".repeat(1 << 20)).into_bytes()), Expect::Bare(431)),
        // BUG: only a request's head has a deadline (30 s): a body that never comes holds
        // the connection and its handler for ever (70 s and counting here), so a client
        // can pile up connections until the daemon runs out of file descriptors. The
        // daemon must give up on it like on a slow head: answer 408 (or 400), or close.
        case("a body that never comes", Input::Partial(format!("POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{").into_bytes(), Duration::from_secs(40)), Expect::Check(Box::new(|_d, status, body| {
            match status {
                0 | 400 | 408 => Ok(()),
                s => Err(format!("{s} {body}")),
            }
        }))),
        case("not HTTP", Input::Raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03hello TLS\r\n\r\n".to_vec()), Expect::Bare(400)),
        case("200 headers", Input::Raw(format!("GET /v1/runs HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n", (0..200).map(|i| format!("X-{i}: 1\r\n")).collect::<String>()).into_bytes()), Expect::Bare(431)),
        case("two content lengths", Input::Raw(format!("POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 2\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{{}}").into_bytes()), Expect::Bare(400)),
        case("content length and chunked", Input::Raw(format!("POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n").into_bytes()), bad(&["the body is not JSON"])),
        case("a chunk size past u64", Input::Raw(format!("POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n").into_bytes()), bad(&["Failed to buffer the request body"])),
        case("a NUL in a header", Input::Raw(format!("GET /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\0\r\nConnection: close\r\n\r\n").into_bytes()), Expect::Bare(400)),
        case("HTTP/2.0 in an HTTP/1 request line", Input::Raw(format!("GET /v1/runs HTTP/2.0\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").into_bytes()), Expect::Bare(400)),
        // Tokens.
        case("no token", unauthenticated(get("/v1/runs"), &[]), unauthorized()),
        case("wrong token", with_auth(get("/v1/runs"), b"Bearer test-token-2"), unauthorized()),
        case("token prefix", with_auth(get("/v1/runs"), b"Bearer test-token-"), unauthorized()),
        case("token with a suffix", with_auth(get("/v1/runs"), b"Bearer test-token-1x"), unauthorized()),
        case("empty bearer", with_auth(get("/v1/runs"), b"Bearer "), unauthorized()),
        case("basic auth", with_auth(get("/v1/runs"), format!("Basic {}", b64(format!("x:{TOKEN}").as_bytes())).as_bytes()), unauthorized()),
        case("token with a non-ASCII byte", with_auth(get("/v1/runs"), b"Bearer test-token-1\xff"), unauthorized()),
        case("token in the query", unauthenticated(get(&format!("/v1/runs?access_token={TOKEN}")), &[]), unauthorized()),
        case("no token for an upload", unauthenticated(post("/v1/uploads", "x"), &[]), unauthorized()),
        case("no token for a log", unauthenticated(get(&done_log), &[]), unauthorized()),
        case("no token for metrics", unauthenticated(get("/metrics"), &[]), unauthorized()),
        // Tasks.
        case("task name too short", put_task("abc", serde_json::json!({"cmd": "slipway-busybox true"})), bad(&["name \"abc\" must be 5 to 50"])),
        case("task name too long", put_task(&"a".repeat(51), serde_json::json!({"cmd": "slipway-busybox true"})), bad(&["must be 5 to 50"])),
        case("task name with dot-dot", put_task("..%2F..%2F..%2Fetc", serde_json::json!({"cmd": "slipway-busybox true"})), bad(&["name \"../../../etc\" must be 5 to 50"])),
        case("task name with escapes", put_task("abcde%1b%5b2J", serde_json::json!({"cmd": "slipway-busybox true"})), bad(&["path holds a control character", "\\u{1b}"])),
        case("task body names another task", put_task("task-one", serde_json::json!({"name": "task-two", "cmd": "slipway-busybox true"})), bad(&["the body names task \"task-two\""])),
        case("task with file and cmd", put_task("task-both", serde_json::json!({"cmd": "x", "file": "Dockerfile", "contextPath": repo_url})), bad(&["give one of file, cmd and taskContent"])),
        case("task with neither", put_task("task-none", serde_json::json!({})), bad(&["give file"])),
        case("task timeout too short", put_task("task-time", serde_json::json!({"cmd": "slipway-busybox true", "timeout": 1})), bad(&["timeout 1 must be between 300 and 28800"])),
        case("task with a bad timer", put_task("task-cron", serde_json::json!({"cmd": "slipway-busybox true", "timers": [{"name": "t", "schedule": "61 * * * *"}]})), bad(&["timer \"t\""])),
        case("task with a huge timer", put_task("task-cron2", serde_json::json!({"cmd": "slipway-busybox true", "timers": [{"name": "t", "schedule": "*/1 ".repeat(10_000)}]})), bad(&["timer \"t\""])),
        case("task with duplicate timers", put_task("task-cron3", serde_json::json!({"cmd": "slipway-busybox true", "timers": [{"name": "t", "schedule": "* * * * *"}, {"name": "t", "schedule": "* * * * *"}]})), bad(&["timer \"t\" is defined twice"])),
        case("task with a bad context", put_task("task-ctx", serde_json::json!({"file": "Dockerfile", "contextPath": "/etc"})), bad(&["contextPath \"/etc\" must be"])),
        case("task with an unknown field", put_task("task-unk", serde_json::json!({"cmd": "slipway-busybox true", "privileged": true})), bad(&["invalid task", "unknown field `privileged`"])),
        case("task with a bad status", put_task("task-stat", serde_json::json!({"cmd": "slipway-busybox true", "status": "Root"})), bad(&["status \"Root\" is not one of Enabled, Disabled"])),
        case("task JSON 100000 deep", http("PUT", "/v1/tasks/task-deep", deep.clone().into_bytes()), bad(&["invalid task"])),
        case("task JSON objects 100000 deep", http("PUT", "/v1/tasks/task-deep", deep_obj.clone().into_bytes()), bad(&["invalid task"])),
        case("task that exists", put_task("api-task", task_spec.clone()), Expect::Error(409, "Conflict", words(&["a task named \"api-task\" exists"]))),
        case("a task's secrets never come back", get("/v1/tasks/api-task"), Expect::Check(no_secrets)),
        case("patch renaming a task", http("PATCH", "/v1/tasks/api-task", br#"{"name":"evil-task"}"#.to_vec()), bad(&["the body names task \"evil-task\""])),
        case("patch of an unknown task", http("PATCH", "/v1/tasks/nosuch-task", b"{}".to_vec()), Expect::Error(404, "TaskNotFound", words(&["no task named \"nosuch-task\""]))),
        case("patch 100000 deep", http("PATCH", "/v1/tasks/api-task", deep_obj.clone().into_bytes()), bad(&["the body is not JSON", "recursion limit"])),
        case("patch with a bad timeout", http("PATCH", "/v1/tasks/api-task", br#"{"timeout":-5}"#.to_vec()), bad(&["invalid task"])),
        case("delete a dot-dot task", http("DELETE", "/v1/tasks/..%2Fsecrets%2Fapi-task", Vec::new()), Expect::Error(404, "TaskNotFound", vec![])),
        case("run a task with a context out of the allowed dirs", post_json("/v1/tasks/api-task/runs", serde_json::json!({"contextPath": "file:///etc"})), bad(&["contextPath:", "file_source_dirs"])),
        case("run a task with an internal context", post_json("/v1/tasks/api-task/runs", serde_json::json!({"contextPath": "http://169.254.169.254/latest/meta-data"})), Expect::Check(Box::new(|_d, status, body| {
            // The support's daemon allows 127.0.0.1 and localhost only.
            if status == 400 && body.contains("allowed_source_hosts") { Ok(()) } else { Err(format!("{status} {body}")) }
        }))),
        case("run a task with unknown overrides", post_json("/v1/tasks/api-task/runs", serde_json::json!({"privileged": true})), bad(&["invalid overrides", "unknown field"])),
        case("run a task with a file out of the source", post_json("/v1/tasks/api-task/runs", serde_json::json!({"file": "../../../../etc/passwd.yaml"})), ends("Failed", &["cannot read \"../../../../etc/passwd.yaml\" from the source"])),
        case("runs of an unknown task", get("/v1/tasks/nosuch-task/runs"), Expect::Error(404, "TaskNotFound", vec![])),
        case("runs of a task, bad query", get("/v1/tasks/api-task/runs?top=0"), bad(&["must be 1 to 1000"])),
    ];
    run_table("API bodies", &mut d, table);
}

/// The same request with `token` and these extra headers.
fn as_caller(input: Input, token: &str, extra: &[(&str, &[u8])]) -> Input {
    match input {
        Input::Http {
            method,
            path,
            mut headers,
            body,
            ..
        } => {
            headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
            Input::Http {
                method,
                path,
                headers,
                body,
                token: Some(token.to_string()),
            }
        }
        raw => raw,
    }
}

#[test]
fn hostile_tenants() {
    let Some(tb) = testbed() else { return };
    const OTHER: &str = "hostile-team-a-token";
    const OTHER_ADMIN: &str = "hostile-team-a-admin";
    let mut d = start_with_env(
        &[("SLIPWAY_ALLOWED_SOURCE_HOSTS", "")],
        &[
            "--tenant",
            &format!("team-a:token={OTHER}"),
            "--tenant",
            &format!("team-a:admin-token={OTHER_ADMIN}"),
            "--tenant",
            "team-a:repository=team-a/*",
            "--registry",
            &tb.registry,
        ],
    );
    // What tenant team-a has, which the default tenant's token (TOKEN) goes after.
    let theirs = |input: Input| as_caller(input, OTHER, &[]);
    let (code, body) = send(&d, &theirs(task("steps:\n  - cmd: slipway-busybox echo a\n"))).unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let a_run = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = serde_json::json!({"cmd": "slipway-busybox echo a", "values": [{"name": "s", "value": "a-secret", "isSecret": true}]});
    let (code, _) = send(&d, &theirs(http("PUT", "/v1/tasks/a-task", serde_json::to_vec(&spec).unwrap()))).unwrap();
    assert_eq!(code, 201);
    let hook = serde_json::json!({"uri": "https://93.184.216.34/x", "actions": ["push"]});
    let (code, _) = send(
        &d,
        &theirs(http("PUT", "/v1/outgoing-webhooks/ahook1", serde_json::to_vec(&hook).unwrap())),
    )
    .unwrap();
    assert_eq!(code, 201);
    let (code, body) = send(
        &d,
        &theirs(http("POST", "/v1/uploads", tgz(&[file("Dockerfile", "FROM slipway-busybox\n")]))),
    )
    .unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let a_upload = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The caller's own task, whose runs it may point elsewhere.
    let own = serde_json::json!({"cmd": "slipway-busybox echo own"});
    let (code, _) = send(&d, &http("PUT", "/v1/tasks/own-task", serde_json::to_vec(&own).unwrap())).unwrap();
    assert_eq!(code, 201);
    let parent = tmp_dir("hostile-tenants");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let repo = repo_in(
        parent.path(),
        "ctx",
        &[
            (
                "loopback.Dockerfile",
                &format!("FROM slipway-busybox\nADD http://127.0.0.1:{port}/x /x\n"),
            ),
            ("variable.Dockerfile", "FROM slipway-busybox\nADD $FROM_BASE/x /x\n"),
            ("frontend.Dockerfile", "# syntax=slipway-busybox:latest\nFROM slipway-busybox\n"),
            (
                "theirs.Dockerfile",
                &format!("FROM slipway.invalid/{a_run}/docker.io/library/app:latest\n"),
            ),
            ("Dockerfile", "FROM slipway-busybox\n"),
        ],
    );
    let src = format!("file://{}", repo.display());
    let reg = &tb.registry;
    let cli = std::env::var("SLIPWAY_TEST_CLI_IMAGE").unwrap_or_else(|_| "slipway-docker-cli:latest".into());
    let build = |file: &str| format!("steps:\n  - build: -t x -f {file} .\n");
    let through_socket = |cmd: &str| format!("steps:\n  - cmd: {cli} sh -c '{cmd}'\n");
    let not_found = |code: &'static str| Expect::Error(404, code, vec![]);
    let table = vec![
        // Another tenant's things are answered as things that do not exist.
        case("another tenant's run", get(&format!("/v1/runs/{a_run}")), not_found("RunNotFound")),
        case(
            "another tenant's log",
            get(&format!("/v1/runs/{a_run}/log")),
            not_found("RunNotFound"),
        ),
        case(
            "another tenant's run canceled",
            post(&format!("/v1/runs/{a_run}/cancel"), ""),
            not_found("RunNotFound"),
        ),
        case("another tenant's task", get("/v1/tasks/a-task"), not_found("TaskNotFound")),
        case(
            "another tenant's task run",
            post("/v1/tasks/a-task/runs", ""),
            not_found("TaskNotFound"),
        ),
        case(
            "another tenant's task changed",
            http("PATCH", "/v1/tasks/a-task", b"{}".to_vec()),
            not_found("TaskNotFound"),
        ),
        case(
            "another tenant's webhook",
            get("/v1/outgoing-webhooks/ahook1"),
            not_found("WebhookNotFound"),
        ),
        case(
            "another tenant's webhook pinged",
            post("/v1/outgoing-webhooks/ahook1/ping", ""),
            not_found("WebhookNotFound"),
        ),
        case(
            "another tenant's upload",
            post_json(
                "/v1/runs",
                serde_json::json!({"type": "DockerBuildRequest", "sourceLocation": format!("upload://{a_upload}"), "imageNames": ["x"]}),
            ),
            bad(&["does not exist"]),
        ),
        case(
            "another tenant's upload as a task's context",
            http(
                "PUT",
                "/v1/tasks/stolen-context",
                serde_json::to_vec(&serde_json::json!({"contextPath": format!("upload://{a_upload}"), "file": "Dockerfile"})).unwrap(),
            ),
            bad(&["contextPath", "must be a git URL"]),
        ),
        case(
            "another tenant's upload as a run's context",
            post_json(
                "/v1/tasks/own-task/runs",
                serde_json::json!({"contextPath": format!("upload://{a_upload}")}),
            ),
            bad(&["contextPath", "does not exist"]),
        ),
        case(
            "another tenant's run as a cursor",
            get(&format!("/v1/runs?skipToken={a_run}")),
            Expect::Answer(200, words(&["\"value\":[]"])),
        ),
        case(
            "naming another tenant",
            as_caller(get("/v1/runs"), TOKEN, &[("X-Slipway-Tenant", b"team-a")]),
            Expect::Error(403, "NotYourTenant", words(&["acts for tenant default only"])),
        ),
        case(
            "a tenant header that names no tenant",
            as_caller(get("/v1/runs"), TOKEN, &[("X-Slipway-Tenant", b"Team A!")]),
            Expect::Error(400, "BadTenant", vec![]),
        ),
        case(
            "a member keeps a task's secrets",
            theirs(post_json(
                "/v1/tasks/a-task/runs",
                serde_json::json!({"keepSecrets": true, "contextPath": src.clone()}),
            )),
            Expect::Error(403, "AdminOnly", words(&["admin token of tenant team-a"])),
        ),
        case(
            "a registry notification with a tenant's token",
            as_caller(post("/v1/registry/notifications", "{\"events\":[]}"), OTHER, &[]),
            Expect::Error(401, "Unauthorized", vec![]),
        ),
        // What a build would fetch or run from outside the run.
        case(
            "ADD from the host's loopback",
            task_from(&build("loopback.Dockerfile"), &src),
            ends("Failed", &["ADD http://127.0.0.1", "allowed_source_hosts"]),
        ),
        case(
            "ADD with the base image's variable",
            task_from(&build("variable.Dockerfile"), &src),
            ends("Failed", &["cannot be checked"]),
        ),
        case(
            "a local frontend",
            task_from(&build("frontend.Dockerfile"), &src),
            ends("Failed", &["frontends come only from a registry"]),
        ),
        case(
            "FROM another run's image",
            task_from(&build("theirs.Dockerfile"), &src),
            ends("Failed", &["another run's image"]),
        ),
        case(
            "a tag in a run's namespace",
            task_from(
                &format!("steps:\n  - build: -t slipway.invalid/{a_run}/docker.io/library/app:latest .\n"),
                &src,
            ),
            ends("Failed", &["the run's own"]),
        ),
        case(
            "a push to a repository the tenant does not own",
            task_from(
                &format!("steps:\n  - build: -t {reg}/team-a/app:x .\n  - push: [\"{reg}/team-a/app:x\"]\n"),
                &src,
            ),
            ends("Failed", &["may not push to", "team-a/app"]),
        ),
        // Through the run's engine socket.
        case(
            "a negative OOM score",
            task(&through_socket("docker run --rm --oom-score-adj=-1 slipway-busybox true")),
            ends("Failed", &["OomScoreAdj"]),
        ),
        case(
            "a raised ulimit",
            task(&through_socket(
                "docker run --rm --ulimit nproc=999999999:999999999 slipway-busybox true",
            )),
            ends("Failed", &["--ulimit nproc"]),
        ),
        case(
            "a push to another tenant's repository",
            task(&through_socket(&format!(
                "docker tag slipway-busybox {reg}/team-a/x && docker push {reg}/team-a/x"
            ))),
            ends("Failed", &["may not push to"]),
        ),
        case(
            "a pull of a run's image name",
            task(&through_socket(&format!(
                "docker pull slipway.invalid/{a_run}/docker.io/library/app:latest"
            ))),
            ends("Failed", &["cannot be pulled"]),
        ),
        case(
            "another run's image by name",
            task(&through_socket(&format!(
                "docker run --rm slipway.invalid/{a_run}/docker.io/library/app:latest true"
            ))),
            ends("Failed", &["another run's image"]),
        ),
        case(
            "an operator's image pushed under its own name",
            task(&through_socket("docker push slipway-busybox")),
            ends("Failed", &["one of the operator's images"]),
        ),
    ];
    run_table("tenants", &mut d, table);
}

// ---------------------------------------------------------------------------------
// 8. Floods and quotas: what one client may hold, fill or ask for
// ---------------------------------------------------------------------------------

/// `GET path` on a new connection left open: the answer's status once its head came
/// (0 when the daemon closed it without one), and the stream.
fn open_stream(port: u16, path: &str) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    let status = match s.read_exact(&mut head) {
        Ok(()) => String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0),
        Err(_) => 0,
    };
    (status, s)
}

#[test]
fn hostile_floods_and_quotas() {
    let Some(tb) = testbed() else { return };
    let mut d = start_with_env(
        &[
            ("SLIPWAY_MAX_LOG_BYTES", "200000"),
            ("SLIPWAY_MAX_QUEUED_RUNS_PER_TENANT", "3"),
            ("SLIPWAY_MAX_UPLOADS_PER_TENANT", "2"),
            ("SLIPWAY_MAX_FOLLOWS_PER_TOKEN", "3"),
            ("SLIPWAY_MAX_CONNECTIONS_PER_CLIENT", "64"),
            ("SLIPWAY_MAX_PROXY_CONNECTIONS_PER_RUN", "8"),
            ("SLIPWAY_MAX_WORKSPACE_BYTES", "30000000"),
            ("SLIPWAY_STEP_PIDS", "64"),
            ("SLIPWAY_MAX_STEP_MEMORY_BYTES", "1073741824"),
            ("SLIPWAY_MAX_STEP_TMPFS_BYTES", "104857600"),
            ("SLIPWAY_MAX_STEP_SHM_BYTES", "104857600"),
            ("SLIPWAY_MAX_TIMERS_PER_TENANT", "2"),
            ("SLIPWAY_MAX_STEP_PIDS", "1000"),
        ],
        &[],
    );
    let cli = std::env::var("SLIPWAY_TEST_CLI_IMAGE").unwrap_or_else(|_| "slipway-docker-cli:latest".into());
    let through_socket = |cmd: &str| format!("steps:\n  - cmd: {cli} sh -c '{cmd}'\n");
    let port: u16 = d.url().rsplit(':').next().unwrap().parse().unwrap();
    let _ = &tb;
    let timer_task = |name: &str, schedule: &str| {
        http(
            "PUT",
            &format!("/v1/tasks/{name}"),
            serde_json::to_vec(&serde_json::json!({"cmd": "slipway-busybox true", "timers": [{"name": "t", "schedule": schedule}]}))
                .unwrap(),
        )
    };
    let table = vec![
        // 4: a step printing 5 MB leaves a log of 200 kB and says where it stopped.
        case(
            "a log flood is cut at max_log_bytes",
            task("steps:\n  - cmd: slipway-busybox sh -c 'yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 5000000; echo done'\n"),
            Expect::Check(Box::new(|d, status, body| {
                let id = run_id(status, body)?;
                let (run, log) = finished(d, &id, Duration::from_secs(60))?;
                if run["status"] != "Succeeded" || !log.contains("log truncated at") || log.len() > 260_000 {
                    return Err(format!("{} with a log of {} bytes: {}", run["status"], log.len(), short(&log[log.len().saturating_sub(300)..])));
                }
                Ok(())
            })),
        ),
        // 4: the workspace is measured while steps run.
        case(
            "a workspace past max_workspace_bytes ends the run",
            task("steps:\n  - cmd: slipway-busybox sh -c 'dd if=/dev/zero of=/workspace/big bs=1M count=40 && sleep 30'\n"),
            Expect::Run("Failed", words(&["max_workspace_bytes"])),
        ),
        // 6: step limits: the default, and more than the most.
        case(
            "a step's processes are limited by default",
            // cgroup v2's file, or v1's.
            task("steps:\n  - cmd: slipway-busybox sh -c 'echo pids=$(cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null)'\n"),
            Expect::Run("Succeeded", words(&["pids=64"])),
        ),
        case(
            "a step asking for more memory than the most",
            task("steps:\n  - cmd: -m 100g slipway-busybox true\n"),
            Expect::Run("Failed", words(&["memory (-m) of 100 GiB", "at most 1 GiB"])),
        ),
        case(
            "a step asking for less memory gets it",
            task("steps:\n  - cmd: -m 64m slipway-busybox sh -c 'echo mem=$(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)'\n"),
            Expect::Run("Succeeded", words(&["mem=67108864"])),
        ),
        case(
            "a 100 G tmpfs through the socket",
            task(&through_socket("docker run --rm --tmpfs /big:size=100g slipway-busybox true")),
            Expect::Run("Failed", words(&["a tmpfs at /big of 100 GiB", "at most 100 MiB"])),
        ),
        case(
            "a 50 G /dev/shm through the socket",
            task(&through_socket("docker run --rm --shm-size 50g slipway-busybox true")),
            Expect::Run("Failed", words(&["a /dev/shm of 50 GiB"])),
        ),
        case(
            "1,500 processes through the socket",
            task(&through_socket("docker run --rm --pids-limit 1500 slipway-busybox true")),
            Expect::Run("Failed", words(&["processes of 1500", "at most 1000"])),
        ),
        case(
            "a tmpfs without a size through the socket gets the default",
            task(&through_socket("docker run --rm --tmpfs /t slipway-busybox df -k /t")),
            // 256 MiB by default, here cut to the most, 100 MiB.
            Expect::Run("Succeeded", words(&["102400"])),
        ),
        // 4: the engine keeps a step's output in rotating files of bounded size.
        case(
            "the engine's copy of a step's log is bounded",
            task(&format!(
                "steps:\n  - id: me\n    cmd: {cli} sh -c 'docker run --name kid --log-driver json-file --log-opt max-size=100g slipway-busybox true; for c in me kid; do echo $c=$(docker inspect $c | tr -d \" \\n\" | grep -o \"Type...[a-z-]*...Config.:{{[^}}]*}}\"); done'\n"
            )),
            Expect::Run(
                "Succeeded",
                words(&[
                    r#"me=Type":"local","Config":{"max-file":"3","max-size":"1048576"}"#,
                    r#"kid=Type":"local","Config":{"max-file":"3","max-size":"1048576"}"#,
                ]),
            ),
        ),
        case(
            "a classic build asking for 100 G of memory through the socket",
            task(&through_socket("mkdir /c && echo FROM slipway-busybox > /c/Dockerfile && DOCKER_BUILDKIT=0 docker build --memory 100g /c")),
            Expect::Run("Failed", words(&["a build's memory (--memory) of 100 GiB", "at most 1 GiB"])),
        ),
        // 2: a run's connections to its engine proxy are capped; the daemon answers.
        case(
            "a step holding many engine connections",
            // Ten `docker` processes need more threads than the default 64 pids.
            task(&through_socket(
                "docker run -d --name w slipway-busybox sleep 30 >/dev/null; for i in $(seq 1 10); do docker wait w >/dev/null 2>>/tmp/errors & p=\"$p $!\"; done; sleep 3; docker version >/dev/null 2>>/tmp/errors || echo refused; kill $p; sleep 1; docker version >/dev/null && echo freed; grep -m1 \"too many\" /tmp/errors",
            )
            .replace("cmd: ", "cmd: --pids-limit 900 ")),
            Expect::Within(
                Duration::from_secs(60),
                Box::new(Expect::Run("Succeeded", words(&["refused", "freed", "too many connections to the engine", "8 are open for this client"]))),
            ),
        ),
        // 5: a tenant's queue, tasks and timers.
        case(
            "a flood of queued runs",
            get("/v1/runs?top=1"),
            Expect::Check(Box::new(|d, _, _| {
                let mut ids = Vec::new();
                let mut refused = None;
                for _ in 0..20 {
                    let body = serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": b64(b"steps:\n  - cmd: slipway-busybox sleep 30\n")});
                    let (code, text) = d.post("/v1/runs", serde_json::to_vec(&body).unwrap(), Some(TOKEN));
                    match code {
                        201 => ids.push(run_id(code, &text)?),
                        _ => {
                            refused = Some((code, text));
                            break;
                        }
                    }
                }
                for id in &ids {
                    d.post(&format!("/v1/runs/{id}/cancel"), Vec::new(), Some(TOKEN));
                }
                match refused {
                    Some((429, text)) if text.contains("QuotaExceeded") && text.contains("max_queued_runs_per_tenant") => Ok(()),
                    other => Err(format!("after {} runs: {other:?}", ids.len())),
                }
            })),
        ),
        case(
            "a timer every minute",
            timer_task("every-minute", "* * * * *"),
            Expect::Error(400, "BadRequest", words(&["fires 60 s apart", "min_timer_period_seconds"])),
        ),
        case("a timer every hour", timer_task("hourly-1", "0 * * * *"), Expect::Answer(201, vec![])),
        case("a second timer", timer_task("hourly-2", "5 * * * *"), Expect::Answer(201, vec![])),
        case(
            "a timer past max_timers_per_tenant",
            timer_task("hourly-3", "10 * * * *"),
            Expect::Error(429, "QuotaExceeded", words(&["max_timers_per_tenant"])),
        ),
        // 4: uploads a tenant keeps.
        case("an upload", upload(tgz(&[file("Dockerfile", "FROM slipway-busybox\n")])), Expect::Answer(201, vec![])),
        case("a second upload", upload(tgz(&[file("Dockerfile", "FROM slipway-busybox\n")])), Expect::Answer(201, vec![])),
        case(
            "an upload past max_uploads_per_tenant",
            upload(tgz(&[file("Dockerfile", "FROM slipway-busybox\n")])),
            Expect::Error(429, "QuotaExceeded", words(&["max_uploads_per_tenant"])),
        ),
        // 2: follows a token holds, and idle connections one address holds.
        case(
            "a flood of log follows",
            get("/v1/runs?top=1"),
            Expect::Check(Box::new(move |d, _, _| {
                let id = d.queue_task("steps:\n  - cmd: slipway-busybox sleep 20\n");
                let path = format!("/v1/runs/{id}/log?follow=true");
                let held: Vec<_> = (0..3).map(|_| open_stream(port, &path)).collect();
                let statuses: Vec<u16> = held.iter().map(|(s, _)| *s).collect();
                let (fourth, _s) = open_stream(port, &path);
                let (code, text) = d.get_raw(&path.replace("follow=true", "follow=false"), Some(TOKEN))?;
                d.post(&format!("/v1/runs/{id}/cancel"), Vec::new(), Some(TOKEN));
                healthy(d)?;
                if statuses != [200, 200, 200] || fourth != 429 || code != 200 {
                    return Err(format!("follows answered {statuses:?}, then {fourth}; a plain read {code} {}", short(&text)));
                }
                Ok(())
            })),
        ),
        case(
            "a token's requests in flight past max_requests_per_token",
            get("/v1/runs?top=1"),
            Expect::Check(Box::new(move |d, _, _| {
                // 32 requests whose bodies never come hold the token's places.
                let held: Vec<TcpStream> = (0..32)
                    .map(|_| {
                        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                        write!(
                            s,
                            "POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                        )
                        .unwrap();
                        s
                    })
                    .collect();
                std::thread::sleep(Duration::from_millis(500));
                let (code, text) = d.get_raw("/v1/runs?top=1", Some(TOKEN))?;
                healthy(d)?;
                drop(held);
                std::thread::sleep(Duration::from_millis(500));
                let (after, _) = d.get_raw("/v1/runs?top=1", Some(TOKEN))?;
                if code != 429 || !text.contains("TooManyRequests") || !text.contains("max_requests_per_token") || after != 200 {
                    return Err(format!("the 33rd answered {code} {}; after the 32 left, {after}", short(&text)));
                }
                Ok(())
            })),
        ),
        case(
            "memory comes back after a flood of requests",
            get("/v1/runs?top=1"),
            Expect::Check(Box::new(move |d, _, _| {
                let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
                let before = rss_mib(pid);
                let id = d.queue_task("steps:\n  - cmd: slipway-busybox sleep 1\n");
                let path = format!("/v1/runs/{id}/log?follow=true&offset=0");
                let flood: Vec<_> = (0..8)
                    .map(|_| {
                        let path = path.clone();
                        std::thread::spawn(move || {
                            for _ in 0..400 {
                                let _ = open_stream(port, &path);
                            }
                        })
                    })
                    .collect();
                let mut slowest = Duration::ZERO;
                while flood.iter().any(|t| !t.is_finished()) {
                    let t = Instant::now();
                    healthy(d)?;
                    slowest = slowest.max(t.elapsed());
                    std::thread::sleep(Duration::from_millis(200));
                }
                let peak = rss_mib(pid);
                std::thread::sleep(Duration::from_secs(12));
                let after = rss_mib(pid);
                eprintln!("floods: RSS {before:.0} MiB, {peak:.0} after 3,200 follows, {after:.0} 12 s later; /healthz at worst {slowest:?}");
                if slowest > Duration::from_secs(1) {
                    return Err(format!("/healthz took {slowest:?} during the flood"));
                }
                if after > before + 30.0 {
                    return Err(format!("RSS {before:.0} MiB before, {after:.0} MiB 12 s after the flood"));
                }
                Ok(())
            })),
        ),
        case(
            "a flood of idle connections from one address",
            get("/v1/runs?top=1"),
            Expect::Check(Box::new(move |d, _, _| {
                let held: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
                std::thread::sleep(Duration::from_millis(300));
                let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
                extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
                let mut buf = [0u8; 16];
                let closed = matches!(extra.read(&mut buf), Ok(0) | Err(_));
                drop(held);
                std::thread::sleep(Duration::from_millis(300));
                healthy(d)?;
                if !closed {
                    return Err("the 65th connection from one address was served".into());
                }
                Ok(())
            })),
        ),
    ];
    run_table("floods and quotas", &mut d, table);
}
