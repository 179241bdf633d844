//! A real `slipway serve` process on a free loopback port with its own data dir and
//! SQLite file, driven over HTTP and through the real client.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-1";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    pub extra: Vec<String>,
    /// A database URL other than the default SQLite file in `dir`.
    pub database: Option<String>,
    /// Environment variables the daemon process gets (settings as `SLIPWAY_*`).
    pub envs: Vec<(String, String)>,
    /// The CA of the daemon's certificate when it serves HTTPS.
    pub tls_ca: Option<PathBuf>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        Daemon::start_on(None, extra)
    }

    /// Starts the daemon on `database` (a URL), or on its own SQLite file.
    pub fn start_on(database: Option<String>, extra: &[&str]) -> Daemon {
        Daemon::start_full(database, extra, &[])
    }

    /// Starts the daemon with these environment variables besides the usual ones.
    pub fn start_with_env(extra: &[&str], envs: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(None, extra, envs)
    }

    /// Starts the daemon on `database` (or its own SQLite file), with these flags and
    /// environment variables besides the usual ones.
    pub fn start_full(database: Option<String>, extra: &[&str], envs: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            database,
            envs: envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            tls_ca: None,
        };
        d.spawn();
        d
    }

    /// Starts the daemon serving HTTPS with `cert` and `key`, whose CA is `ca`, and a
    /// request head's time of 5 s.
    pub fn start_tls(ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path, extra: &[&str]) -> Daemon {
        let mut flags = vec![
            "--tls-cert".to_string(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ];
        flags.extend(extra.iter().map(|s| s.to_string()));
        let mut d = Daemon {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            extra: flags,
            database: None,
            // A silent connection is closed after 5 s, so tests can see it happen.
            envs: vec![("SLIPWAY_HTTP_HEADER_TIMEOUT_SECONDS".into(), "5".into())],
            tls_ca: Some(ca.to_path_buf()),
        };
        d.spawn();
        d
    }

    /// An HTTP client that trusts the daemon's certificate when it serves HTTPS.
    pub fn http(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &self.tls_ca {
            let pem = std::fs::read(ca).unwrap();
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("slipway.db")
    }

    /// Starts (or restarts) the daemon process and waits until it is healthy.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port), "--data-dir"])
            .arg(self.data_dir())
            .arg("--database")
            .arg(self.database.clone().unwrap_or_else(|| format!("sqlite://{}", self.db().display())))
            .args(["--token", TOKEN, "--lease-seconds", "4"])
            // Test repositories and servers live in /tmp and on loopback, which a daemon
            // refuses to reach unless its operator lists them.
            .env("SLIPWAY_FILE_SOURCE_DIRS", std::env::temp_dir())
            .env("SLIPWAY_ALLOWED_SOURCE_HOSTS", "127.0.0.1,localhost")
            // The test bed's images exist only in the engine: the operator's, for runs.
            .env("SLIPWAY_LOCAL_IMAGES", super::LOCAL_IMAGES)
            // A test's daemon stops its runs at once when the test ends.
            .env("SLIPWAY_SHUTDOWN_GRACE_SECONDS", "1")
            .args(&self.extra)
            .envs(self.envs.iter().cloned())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.get_raw("/healthz", None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not become healthy:\n{}", self.server_log());
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits for the process to end; returns how long that took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        started.elapsed()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn client(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
        c.env("SLIPWAY_SERVER", self.url())
            .env("SLIPWAY_TOKEN", TOKEN)
            .current_dir(super::repo_root());
        if let Some(ca) = &self.tls_ca {
            // The client's TLS (OpenSSL) trusts the bundle this names instead of the system's.
            c.env("SSL_CERT_FILE", ca);
        }
        c
    }

    pub fn get_raw(&self, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.url());
        super::rt().block_on(async {
            let mut r = self.http().get(url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let resp = r.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            Ok((status, resp.text().await.map_err(|e| e.to_string())?))
        })
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_raw(path, Some(TOKEN)).unwrap()
    }

    pub fn post(&self, path: &str, body: Vec<u8>, token: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.url());
        super::rt().block_on(async {
            let mut r = self.http().post(url).body(body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        })
    }

    /// Any request with `token` (and extra headers); the status and the body's text.
    pub fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>, token: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
        let url = format!("{}{path}", self.url());
        super::rt().block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut r = self.http().request(method, url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some(b) = body {
                r = r.header("Content-Type", "application/json").body(b);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        })
    }

    /// `path` of the dashboard, signed in with `token`: the status and the page.
    pub fn signed_in_get(&self, token: &str, path: &str) -> (u16, String) {
        super::rt().block_on(async {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let signin = http
                .post(format!("{}/signin", self.url()))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&next=/"))
                .send()
                .await
                .unwrap();
            let cookie = signin
                .headers()
                .get("set-cookie")
                .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
                .expect("a session cookie");
            let r = http
                .get(format!("{}{path}", self.url()))
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        })
    }

    pub fn run_json(&self, id: &str) -> serde_json::Value {
        let (code, body) = self.get(&format!("/v1/runs/{id}"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn wait_status(&self, id: &str, want: &[&str], limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.run_json(id);
            if want.iter().any(|w| r["status"] == *w) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} is {} after {limit:?}, not one of {want:?}\n{}",
                r["status"],
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the run's log contains `needle`.
    pub fn wait_log(&self, id: &str, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let (_, log) = self.get(&format!("/v1/runs/{id}/log"));
            if log.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "run {id}'s log never showed {needle:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Queues an inline task and returns its run id.
    pub fn queue_task(&self, yaml: &str) -> String {
        use base64::Engine as _;
        let body = serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": base64::engine::general_purpose::STANDARD.encode(yaml)});
        let (code, text) = self.post("/v1/runs", serde_json::to_vec(&body).unwrap(), Some(TOKEN));
        assert_eq!(code, 201, "{text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["runId"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
