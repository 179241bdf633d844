//! A fleet without a shared disk: three daemons on one machine with their own data
//! dirs, one PostgreSQL queue, one Azure Blob store (Azurite) and one fleet key. An API
//! node (concurrency 0) receives uploads, requests, log follows and cancels; the two
//! worker nodes run everything.

mod support;

use base64::Engine as _;
use std::time::Duration;
use support::daemon::{Daemon, TOKEN};
use support::*;

/// Azurite's account URL from the test bed; `None` (loudly, or a failure in CI) without it.
fn azurite() -> Option<String> {
    match std::env::var("SLIPWAY_TEST_AZURITE") {
        Ok(u) => Some(u),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but SLIPWAY_TEST_AZURITE is not set"),
        Err(_) => {
            eprintln!("\n!!! SKIPPED: SLIPWAY_TEST_AZURITE is not set (scripts/testbed.sh starts Azurite) !!!\n");
            None
        }
    }
}

/// A fresh fleet key: 32 random bytes in base64.
fn new_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
}

/// A fleet of the test's own: one PostgreSQL database, the test bed's Azurite and a
/// fresh fleet key; timers every minute are the operator's to allow.
struct Fleet {
    db: String,
    endpoint: String,
    key: String,
}

impl Fleet {
    fn new(azurite: &str, db: String) -> Fleet {
        Fleet {
            db,
            endpoint: azurite.trim_end_matches("/devstoreaccount1").to_string(),
            key: new_key(),
        }
    }

    /// A node named `node` running `concurrency` runs at once.
    fn node(&self, node: &str, concurrency: &str) -> Daemon {
        self.node_keyed(node, concurrency, &self.key, None)
    }

    /// A node with fleet key `key` (and `previous`, the key it replaces).
    fn node_keyed(&self, node: &str, concurrency: &str, key: &str, previous: Option<&str>) -> Daemon {
        let mut envs = vec![
            ("SLIPWAY_NODE", node.to_string()),
            ("SLIPWAY_BLOB_STORE", "azure://slipway".to_string()),
            ("SLIPWAY_BLOB_STORE_OPTIONS", "azure_storage_use_emulator=true".to_string()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
            ("SLIPWAY_FLEET_KEY", key.to_string()),
            ("SLIPWAY_MIN_TIMER_PERIOD_SECONDS", "60".to_string()),
        ];
        if let Some(previous) = previous {
            envs.push(("SLIPWAY_FLEET_KEY_PREVIOUS", previous.to_string()));
        }
        let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Daemon::start_full(Some(self.db.clone()), &["--concurrency", concurrency], &refs)
    }
}

#[test]
fn three_nodes_share_the_queue_the_blobs_and_the_secrets() {
    let Some(tb) = testbed() else { return };
    let Some(azurite) = azurite() else { return };
    let Some(db) = fresh_postgres(&format!("slipway_test_fleet_{}", std::process::id())) else {
        return;
    };
    let fleet = Fleet::new(&azurite, db.clone());
    let start = |node: &str, concurrency: &str| fleet.node(node, concurrency);
    let mut a = start("api", "0");
    let mut b = start("wb", "1");
    let mut c = start("wc", "1");

    // A timer every minute, which all three nodes' schedulers see: each occurrence must
    // start one run across the fleet (checked at the end, after a minute boundary).
    let made = chrono::Utc::now();
    let timer = run(a
        .client()
        .args(["task", "create", "-n", "fleet-tick", "--cmd"])
        .arg(format!("{} echo tick", tb.base_image))
        .args(["--schedule", "every:* * * * *"]));
    assert!(timer.ok, "{}", timer.all());

    // An upload received by the API node is built by a worker node, with a secret build
    // argument that only the fleet key opens there; the client follows the log on A.
    let secret = format!("Fl33t-Secret-{}", unique_id(""));
    let ctx = dir_with(&[(
        "Dockerfile",
        &format!(
            "FROM {}\nARG TOKEN\nRUN echo token=$TOKEN; echo built-in-the-fleet\n",
            tb.base_image
        ),
    )]);
    let built = run(a
        .client()
        .args(["build", "--no-push", "--no-cache", "-t", &unique_id("fleet-"), "--secret-build-arg"])
        .arg(format!("TOKEN={secret}"))
        .arg(ctx.path()));
    assert!(built.ok, "{}\n{}", built.all(), a.server_log());
    assert!(
        built.stdout.contains("built-in-the-fleet") && built.stdout.contains("token=*****"),
        "{}",
        built.stdout
    );
    assert!(
        built.stdout.contains("started on wb") || built.stdout.contains("started on wc"),
        "a worker node ran it:\n{}",
        built.stdout
    );
    let first = built
        .all()
        .lines()
        .find_map(|l| l.strip_prefix("Queued a run with ID: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", built.all()));

    // The log of a run going on elsewhere reaches a follower on A while it runs.
    let live = a.queue_task(&format!(
        "steps:\n  - cmd: {} sh -c 'echo first-line; sleep 4; echo second-line'\n",
        tb.base_image
    ));
    a.wait_log(&live, "| first-line", Duration::from_secs(60));
    let during = a.run_json(&live);
    assert_eq!(during["status"], "Running", "{during}");
    a.wait_status(&live, &["Succeeded"], Duration::from_secs(60));
    a.wait_log(&live, "| second-line", Duration::from_secs(10));

    // A cancel given to A stops the run on the worker node.
    let long = a.queue_task(&format!(
        "steps:\n  - cmd: {} sh -c 'echo long-started; sleep 120'\n",
        tb.base_image
    ));
    a.wait_log(&long, "| long-started", Duration::from_secs(60));
    let (code, text) = a.post(&format!("/v1/runs/{long}/cancel"), Vec::new(), Some(TOKEN));
    assert_eq!(code, 200, "{text}");
    a.wait_status(&long, &["Canceled"], Duration::from_secs(30));

    // Secrets are gone from the database once the runs ended.
    let left: Vec<String> = rt().block_on(async {
        let pool = sqlx::PgPool::connect(&db).await.unwrap();
        sqlx::query_scalar("SELECT owner FROM sealed_secrets")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert!(
        left.is_empty(),
        "sealed secrets outlived their runs: {left:?} (runs {first}, {live}, {long})"
    );

    // A worker node killed in the middle of a run: the others notice the lost lease,
    // the run ends Error, and the queue goes on on the node that is left.
    let doomed = a.queue_task(&format!(
        "steps:\n  - cmd: {} sh -c 'echo doomed-started; sleep 120'\n",
        tb.base_image
    ));
    a.wait_log(&doomed, "| doomed-started", Duration::from_secs(60));
    let (_, log) = a.get(&format!("/v1/runs/{doomed}/log"));
    if log.contains("started on wb") {
        b.kill9();
    } else {
        c.kill9();
    }
    let after = a.queue_task(&format!("steps:\n  - cmd: {} echo after-the-loss\n", tb.base_image));
    let lost = a.wait_status(&doomed, &["Error"], Duration::from_secs(60));
    assert!(lost["runErrorMessage"].as_str().unwrap_or("").contains("lost"), "{lost}");
    a.wait_status(&after, &["Succeeded"], Duration::from_secs(60));

    // Every timer occurrence since the task was made started exactly one run.
    let boundary = made + chrono::Duration::seconds(60 - chrono::Timelike::second(&made) as i64 + 8);
    if let Ok(wait) = (boundary - chrono::Utc::now()).to_std() {
        std::thread::sleep(wait);
    }
    let (code, body) = a.get("/v1/tasks/fleet-tick/runs?top=50");
    assert_eq!(code, 200, "{body}");
    let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut occurrences: Vec<String> = runs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["timerTrigger"]["scheduleOccurrence"].as_str().unwrap_or("").to_string())
        .collect();
    let fired = occurrences.len();
    occurrences.sort();
    occurrences.dedup();
    assert!(fired >= 1, "the timer never fired: {body}");
    assert_eq!(occurrences.len(), fired, "an occurrence started more than one run: {body}");

    // Without A's data dir, every run's log is still served (from the blob store).
    a.terminate();
    std::fs::remove_dir_all(a.data_dir()).unwrap();
    a.spawn();
    for (id, want) in [
        (&first, "built-in-the-fleet"),
        (&live, "second-line"),
        (&long, "long-started"),
        (&doomed, "worker running this run was lost"),
    ] {
        let (code, log) = a.get(&format!("/v1/runs/{id}/log"));
        assert_eq!(code, 200);
        assert!(log.contains(want), "run {id}'s log from the blob store:\n{log}");
        assert!(!log.contains(&secret));
    }
}

/// Issue 19: a task's secrets live in the vault, so whichever node starts its run —
/// a webhook delivered to a worker node, a timer won by any node, a `task run` asked
/// of another node — the run gets every one, and none is readable in the database.
#[test]
fn a_tasks_secrets_reach_its_runs_on_every_node() {
    use hmac::{KeyInit, Mac};
    let Some(tb) = testbed() else { return };
    let Some(azurite) = azurite() else { return };
    let Some(db) = fresh_postgres(&format!("slipway_test_vault_{}", std::process::id())) else {
        return;
    };
    let fleet = Fleet::new(&azurite, db.clone());
    let start = |node: &str, concurrency: &str| fleet.node(node, concurrency);
    let a = start("api", "0");
    let b = start("wb", "1");
    let c = start("wc", "1");

    let secret = format!("Vault-Secret-{}", unique_id(""));
    let hook_secret = format!("hook-{}", unique_id(""));
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.path().join("Dockerfile"),
        format!(
            "FROM {}\nARG TOKEN\nCOPY msg /msg\nRUN test -n \"$TOKEN\" && echo token-is-$TOKEN\n",
            tb.base_image
        ),
    )
    .unwrap();
    let commit = |msg: &str| {
        std::fs::write(repo.path().join("msg"), msg).unwrap();
        git(repo.path(), &["add", "."]);
        git(repo.path(), &["commit", "-q", "-m", msg]);
        git(repo.path(), &["rev-parse", "HEAD"])
    };
    commit("first");
    let url = format!("file://{}", repo.path().display());
    let made = chrono::Utc::now();
    let created = run(a
        .client()
        .args([
            "task",
            "create",
            "-n",
            "secretive",
            "--context",
            &format!("{url}#main"),
            "--file",
            "Dockerfile",
            "--no-push",
        ])
        .args(["--secret-arg", &format!("TOKEN={secret}"), "--webhook-secret", &hook_secret])
        .args(["--registry-credential", &format!("{}=robot:{secret}-reg", tb.registry)])
        .args(["--git-credential", &format!("git.example.com=robot:{secret}-git")])
        .args(["--commit-trigger-enabled", "true", "--schedule", "every:* * * * *"]));
    assert!(created.ok, "{}", created.all());

    // A signed push delivered to each worker node, as a load balancer would.
    let mut runs = Vec::new();
    for (node, msg) in [(&b, "second"), (&c, "third")] {
        let pushed = commit(msg);
        let body =
            serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "after": pushed, "repository": {"clone_url": url}})).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(hook_secret.as_bytes()).unwrap();
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let (code, answer) = node.call(
            "POST",
            "/v1/webhooks/github",
            Some(body),
            None,
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", msg),
                ("X-Hub-Signature-256", &signature),
            ],
        );
        assert_eq!(code, 202, "a push delivered to a worker node: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        runs.push(answer["runs"][0].as_str().unwrap().to_string());
    }
    // A task run asked of a worker node.
    let asked = run(b.client().args(["task", "run", "-n", "secretive", "--no-logs"]));
    assert!(asked.ok, "{}", asked.all());
    let (_, listed) = a.get("/v1/tasks/secretive/runs?top=50");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    for r in listed["value"].as_array().unwrap() {
        let id = r["runId"].as_str().unwrap().to_string();
        if !runs.contains(&id) && r["timerTrigger"].is_null() {
            runs.push(id);
        }
    }
    assert_eq!(runs.len(), 3, "{listed}");
    // A timer occurrence, fired by whichever node won it.
    let boundary = made + chrono::Duration::seconds(60 - chrono::Timelike::second(&made) as i64 + 8);
    if let Ok(wait) = (boundary - chrono::Utc::now()).to_std() {
        std::thread::sleep(wait);
    }
    let (_, listed) = a.get("/v1/tasks/secretive/runs?top=50");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let timer = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["timerTrigger"].is_object())
        .unwrap_or_else(|| panic!("the timer never fired: {listed}"));
    runs.push(timer["runId"].as_str().unwrap().to_string());

    for id in &runs {
        let end = a.wait_status(id, &["Succeeded", "Failed", "Error"], Duration::from_secs(120));
        let (_, log) = a.get(&format!("/v1/runs/{id}/log"));
        assert_eq!(end["status"], "Succeeded", "run {id}: {end}\n{log}");
        assert!(log.contains("token-is-*****"), "run {id} had its secret, masked:\n{log}");
        assert!(!log.contains(&secret), "run {id}'s log shows the secret");
    }
    // The dashboard's task page on another node knows the task's webhook secret is set.
    let page = c.signed_in_get(TOKEN, "/tasks/secretive");
    assert_eq!(page.0, 200, "{}", page.1);
    assert!(
        page.1.contains("A secret is <strong>set</strong>"),
        "the task page on a worker node: {}",
        page.1
    );
    assert!(!page.1.contains(&hook_secret) && !page.1.contains(&secret));
    // The database holds every secret sealed, none in clear.
    let dump = std::process::Command::new("pg_dump").arg("--dbname").arg(&db).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("task-secretive"), "the task's secrets are sealed in the database");
    for needle in [&secret, &hook_secret] {
        assert!(!dump.contains(needle.as_str()), "pg_dump shows a secret");
    }
    // No node keeps a secrets file of its own in a fleet.
    for node in [&a, &b, &c] {
        let files: Vec<_> = walk(&node.data_dir())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/secrets/"))
            .collect();
        assert!(files.is_empty(), "{files:?}");
    }
}

/// Issue 19: a live fleet rotates its key. Every node restarts with the new key and the
/// old one as `fleet_key_previous` (the first re-seals everything), then drops the old
/// one; the task's secret reaches each run throughout, and a node left with only the old
/// key refuses the run with a clear error instead of running it without its secret.
#[test]
fn a_live_fleet_rotates_its_key() {
    let Some(tb) = testbed() else { return };
    let Some(azurite) = azurite() else { return };
    let Some(db) = fresh_postgres(&format!("slipway_test_rotate_{}", std::process::id())) else {
        return;
    };
    let fleet = Fleet::new(&azurite, db.clone());
    let (old, new) = (fleet.key.clone(), new_key());
    let secret = format!("Rotated-Secret-{}", unique_id(""));
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nARG TOKEN\nRUN test -n \"$TOKEN\" && echo token-is-$TOKEN\n",
            tb.base_image
        ),
    )
    .unwrap();
    let repo = ctx.path().display().to_string();
    git(ctx.path(), &["init", "-q", "-b", "main"]);
    git(ctx.path(), &["add", "."]);
    git(ctx.path(), &["commit", "-q", "-m", "first"]);
    let run_through = |node: &Daemon, want: &str| -> serde_json::Value {
        let asked = run(node.client().args(["task", "run", "-n", "rotating", "--no-wait"]));
        assert!(asked.ok, "{}", asked.all());
        let id = asked.stdout.split("ID: ").nth(1).unwrap().trim().to_string();
        let end = node.wait_status(&id, &["Succeeded", "Failed", "Error"], Duration::from_secs(120));
        let (_, log) = node.get(&format!("/v1/runs/{id}/log"));
        assert_eq!(end["status"], want, "run {id}: {end}\n{log}");
        assert!(!log.contains(&secret), "run {id}'s log shows the secret");
        if want == "Succeeded" {
            assert!(log.contains("token-is-*****"), "run {id} had its secret, masked:\n{log}");
        }
        end
    };

    let mut api = fleet.node_keyed("api", "0", &old, None);
    let mut worker = fleet.node_keyed("w", "1", &old, None);
    let created = run(api
        .client()
        .args([
            "task",
            "create",
            "-n",
            "rotating",
            "--context",
            &format!("file://{repo}#main"),
            "--file",
            "Dockerfile",
            "--no-push",
        ])
        .args(["--secret-arg", &format!("TOKEN={secret}")]));
    assert!(created.ok, "{}", created.all());
    run_through(&worker, "Succeeded");

    // Rolling restart, new key first with the old one beside it.
    api.terminate();
    api = fleet.node_keyed("api", "0", &new, Some(&old));
    worker.terminate();
    worker = fleet.node_keyed("w", "1", &new, Some(&old));
    run_through(&worker, "Succeeded");
    // Then without the old key: everything was sealed again under the new one.
    worker.terminate();
    worker = fleet.node_keyed("w", "1", &new, None);
    run_through(&api, "Succeeded");

    // A node that missed the rotation cannot open the task's secret and says so.
    worker.terminate();
    let stale = fleet.node_keyed("stale", "1", &old, None);
    let end = run_through(&api, "Error");
    let message = end["runErrorMessage"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("cannot be read"), "{end}\n{}", stale.server_log());
    let dump = std::process::Command::new("pg_dump").arg("--dbname").arg(&db).output().unwrap();
    assert!(!String::from_utf8_lossy(&dump.stdout).contains(&secret), "pg_dump shows the secret");
}
