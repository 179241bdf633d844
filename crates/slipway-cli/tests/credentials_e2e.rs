//! A task's own git and registry credentials reach the fetch and the push: a source
//! behind git-over-HTTP with basic auth, and a registry that requires a login
//! (Distribution with htpasswd auth). Neither the daemon's settings nor its files hold
//! them; nothing prints them.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::*;

struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = rt().block_on(async { reqwest::get(url).await.is_ok() });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "nothing answers at {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Distribution on a free loopback port, requiring `user:password` (htpasswd, bcrypt).
fn registry_with_login(dir: &std::path::Path, user: &str, password: &str) -> (Helper, String) {
    let port = free_port();
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: slipway-test\n    path: {htpasswd}\n",
            data = dir.join("data").display(),
            htpasswd = dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry runs (scripts/testbed.sh installs it)");
    let host = format!("127.0.0.1:{port}");
    wait_http(&format!("http://{host}/v2/"));
    (Helper(child), host)
}

fn manifest_status(host: &str, repo: &str, tag: &str, login: Option<(&str, &str)>) -> u16 {
    rt().block_on(async {
        let mut r = reqwest::Client::new()
            .head(format!("http://{host}/v2/{repo}/manifests/{tag}"))
            .header("Accept", "application/vnd.docker.distribution.manifest.v2+json");
        if let Some((u, p)) = login {
            r = r.basic_auth(u, Some(p));
        }
        r.send().await.unwrap().status().as_u16()
    })
}

#[test]
fn a_tasks_own_credentials_reach_the_fetch_and_the_push() {
    let Some(tb) = testbed() else { return };
    let (git_token, registry_password) = ("git-t0ken-5e1f", "reg-pa55-9b7c");
    let reg_dir = tempfile::tempdir().unwrap();
    let (_registry, registry) = registry_with_login(reg_dir.path(), "pusher", registry_password);

    let git_root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(
        work.path().join("Dockerfile"),
        format!("FROM {}\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n", tb.base_image),
    )
    .unwrap();
    std::fs::write(work.path().join("msg"), "from a private repository\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-q", "-m", "one"]);
    git(
        git_root.path(),
        &["clone", "-q", "--bare", work.path().to_str().unwrap(), "repo.git"],
    );
    let git_port = free_port();
    let _git = Helper(
        Command::new("python3")
            .arg(repo_root().join("tests/fixtures/git_http_server.py"))
            .args([git_root.path().to_str().unwrap(), "builder", git_token, &git_port.to_string()])
            .spawn()
            .unwrap(),
    );
    wait_http(&format!("http://127.0.0.1:{git_port}/"));

    // The daemon itself knows neither credential.
    let d = Daemon::start(&[]);
    let tag = unique_id("t");
    let image = format!("{registry}/private-app:{tag}");
    let r = run(d.client().args([
        "task",
        "create",
        "-n",
        "private-app",
        "--context",
        &format!("http://127.0.0.1:{git_port}/repo.git#main"),
        "--file",
        "Dockerfile",
        "-t",
        &image,
        "--git-credential",
        &format!("127.0.0.1:{git_port}=builder:{git_token}"),
        "--registry-credential",
        &format!("{registry}=pusher:{registry_password}"),
    ]));
    assert!(r.ok, "{}", r.all());
    let (code, body) = d.post("/v1/tasks/private-app/runs", Vec::new(), Some(support::daemon::TOKEN));
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let run_json = d.wait_status(&id, &["Succeeded", "Failed", "Error"], Duration::from_secs(120));
    let log = d.get(&format!("/v1/runs/{id}/log")).1;
    assert_eq!(run_json["status"], "Succeeded", "{log}");
    assert_eq!(
        manifest_status(&registry, "private-app", &tag, None),
        401,
        "the registry wants a login"
    );
    assert_eq!(
        manifest_status(&registry, "private-app", &tag, Some(("pusher", registry_password))),
        200,
        "pushed with the task's login"
    );

    // Neither secret appears anywhere the daemon writes or answers.
    let mut seen = vec![log, d.server_log(), d.get("/v1/runs?top=10").1, d.get("/v1/tasks/private-app").1];
    for entry in walk(d.dir.path()) {
        if entry.to_string_lossy().contains("/secrets/") {
            continue; // the 0600 files that hold them, by design
        }
        seen.push(String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned());
    }
    for text in seen {
        assert!(
            !text.contains(git_token) && !text.contains(registry_password),
            "a credential leaked:\n{text}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
