//! The queue on a real SQLite file.

use slipway_store::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Keeps a backend's database alive for one test: a temporary SQLite file, or a fresh
/// PostgreSQL database.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres,
}

/// The store on every backend: SQLite always, and PostgreSQL when the test bed runs it
/// (`SLIPWAY_TEST_POSTGRES`, set by scripts/testbed.sh; required when CI=true).
async fn stores(clock: Arc<dyn Clock>) -> Vec<(Guard, Arc<dyn Store>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let mut out = vec![(Guard::Sqlite(dir), open(&url, clock.clone()).await.unwrap())];
    match std::env::var("SLIPWAY_TEST_POSTGRES") {
        Ok(admin) => {
            let name = format!("slipway_test_{}", uuid_like());
            let conn = sqlx::PgPool::connect(&admin).await.expect("the test bed's PostgreSQL answers");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&conn)
                .await
                .unwrap();
            let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
            out.push((Guard::Postgres, open(&url, clock).await.unwrap()));
        }
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but SLIPWAY_TEST_POSTGRES is not set: scripts/testbed.sh starts PostgreSQL")
        }
        Err(_) => eprintln!("\n!!! SKIPPED the PostgreSQL half: SLIPWAY_TEST_POSTGRES is not set (run scripts/test.sh) !!!\n"),
    }
    out
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

fn run(id: &str, image: &str) -> NewRun {
    NewRun {
        id: id.into(),
        run_type: RunType::QuickBuild,
        task: None,
        platform: "linux/amd64".into(),
        request: serde_json::json!({"type": "DockerBuildRequest"}),
        image_names: vec![image.into()],
        triggers: Default::default(),
    }
}

#[tokio::test]
async fn concurrent_claims_never_take_a_run_twice() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        for i in 0..300 {
            s.enqueue(run(&format!("r{i}"), "img")).await.unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let claimed = s.claim(&format!("w{w}"), 3, Duration::from_secs(30)).await.unwrap();
                    if claimed.is_empty() {
                        break got;
                    }
                    got.extend(claimed.into_iter().map(|r| r.id));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 300);
        assert_eq!(unique.len(), 300);
    }
}

#[tokio::test]
async fn claims_are_oldest_first_and_fenced_by_owner_and_attempt() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    for (_d, s) in stores(clock.clone()).await {
        s.enqueue(run("a", "x")).await.unwrap();
        s.enqueue(run("b", "x")).await.unwrap();
        let c = s.claim("w1", 1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(c[0].id, "a");
        assert_eq!((c[0].status, c[0].attempt), (RunStatus::Started, 1));
        assert!(s.mark_running("a", "w1", 1).await.unwrap());
        assert!(
            !s.renew("a", "w2", 1, Duration::from_secs(10)).await.unwrap(),
            "another worker cannot renew"
        );
        // The lease expires, the reaper re-queues it once, another worker takes it.
        clock.advance(11_000);
        assert_eq!(s.reap(true).await.unwrap(), vec![Reaped::Requeued("a".into())]);
        let c = s.claim("w2", 1, Duration::from_secs(10)).await.unwrap();
        assert_eq!((c[0].id.as_str(), c[0].attempt), ("a", 2));
        // The first worker comes back late: its completion is refused.
        let done = Completion {
            status: Some(RunStatus::Succeeded),
            ..Default::default()
        };
        assert!(!s.complete("a", "w1", 1, done.clone()).await.unwrap());
        assert!(s.complete("a", "w2", 2, done).await.unwrap());
        assert_eq!(s.get("a").await.unwrap().unwrap().status, RunStatus::Succeeded);
        // A second loss ends the run as Error, naming the lost worker.
        let c = s.claim("w3", 1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(c[0].id, "b");
        clock.advance(11_000);
        assert_eq!(s.reap(false).await.unwrap(), vec![Reaped::Failed("b".into())]);
        let b = s.get("b").await.unwrap().unwrap();
        assert_eq!(b.status, RunStatus::Error);
        assert!(b.error_message.unwrap().contains("worker running this run was lost"));
    }
}

#[tokio::test]
async fn cancel_reaches_queued_and_running_runs() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        s.enqueue(run("q", "x")).await.unwrap();
        s.enqueue(run("r", "x")).await.unwrap();
        let c = s.claim("w", 1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(c[0].id, "q");
        let r = s.request_cancel("r").await.unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Canceled, "a queued run is canceled at once");
        assert!(
            s.claim("w", 5, Duration::from_secs(10)).await.unwrap().is_empty(),
            "a canceled run never starts"
        );
        let q = s.request_cancel("q").await.unwrap().unwrap();
        assert!(
            q.cancel_requested && q.status == RunStatus::Started,
            "a running run is asked to stop"
        );
        assert!(s.request_cancel("nope").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        for i in 0..5 {
            s.enqueue(run(&format!("r{i}"), if i % 2 == 0 { "reg/app:1" } else { "reg/other:1" }))
                .await
                .unwrap();
        }
        let page = s
            .list(&ListFilter {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r4", "r3"]);
        let next = s
            .list(&ListFilter {
                limit: 2,
                before_id: Some("r3".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(next.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r2", "r1"]);
        let apps = s
            .list(&ListFilter {
                image: Some("app".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(apps.len(), 3);
        let queued = s
            .list(&ListFilter {
                status: Some(RunStatus::Queued),
                run_type: Some(RunType::QuickBuild),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(queued.len(), 5);
        assert_eq!(s.counts().await.unwrap(), vec![(RunStatus::Queued, 5)]);
    }
}

#[tokio::test]
async fn a_restarted_node_expires_its_old_workers_leases() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        s.enqueue(run("a", "x")).await.unwrap();
        s.claim("node1/old-0", 1, Duration::from_secs(600)).await.unwrap();
        assert_eq!(s.expire_node_leases("node1/", "node1/new-").await.unwrap(), 1);
        assert_eq!(s.reap(false).await.unwrap(), vec![Reaped::Failed("a".into())]);
    }
}

#[tokio::test]
async fn tasks_are_saved_updated_listed_and_deleted() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        let t = TaskRecord {
            name: "build-app".into(),
            spec: serde_json::json!({"file": "Dockerfile"}),
            enabled: true,
            create_time: 0,
            last_updated_time: 0,
        };
        assert!(s.put_task(&t, true).await.unwrap());
        assert!(!s.put_task(&t, true).await.unwrap(), "creating twice is refused");
        let mut t2 = t.clone();
        t2.enabled = false;
        assert!(s.put_task(&t2, false).await.unwrap());
        assert!(!s.get_task("build-app").await.unwrap().unwrap().enabled);
        assert!(
            !s.put_task(
                &TaskRecord {
                    name: "nope".into(),
                    ..t.clone()
                },
                false
            )
            .await
            .unwrap(),
            "updating a missing task is refused"
        );
        s.set_dependencies(
            "build-app",
            &[Dependency {
                task: "build-app".into(),
                image: "docker.io/library/alpine:3".into(),
                kind: "runtime".into(),
                digest: "sha256:a".into(),
            }],
        )
        .await
        .unwrap();
        assert_eq!(s.dependents_of("docker.io/library/alpine:3").await.unwrap().len(), 1);
        assert_eq!(s.tracked_images().await.unwrap(), ["docker.io/library/alpine:3"]);
        assert_eq!(s.list_tasks().await.unwrap().len(), 1);
        assert!(s.delete_task("build-app").await.unwrap());
        assert!(s.dependents_of("docker.io/library/alpine:3").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_event_key_starts_at_most_one_run() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        let mut a = run("a", "x");
        a.triggers.timer = Some(serde_json::json!({"timerTriggerName": "t1"}));
        assert!(s.enqueue_once("timer:task:t1:100", a).await.unwrap().is_some());
        assert!(s.enqueue_once("timer:task:t1:100", run("b", "x")).await.unwrap().is_none());
        assert!(s.get("b").await.unwrap().is_none());
        assert_eq!(s.get("a").await.unwrap().unwrap().triggers.timer.unwrap()["timerTriggerName"], "t1");
        assert_eq!(s.swap_image_digest("img", "sha256:1").await.unwrap(), None);
        assert_eq!(s.swap_image_digest("img", "sha256:2").await.unwrap(), Some("sha256:1".into()));
    }
}

#[tokio::test]
async fn triggers_changes_and_steps_are_listed() {
    let clock = Arc::new(ManualClock::new(1_000));
    for (_d, s) in stores(clock.clone()).await {
        let t0 = clock.now_ms();
        let mut timer = run("t1", "reg/app:1");
        timer.triggers.timer = Some(serde_json::json!({"timerTriggerName": "nightly"}));
        s.enqueue(timer).await.unwrap();
        s.enqueue(run("m1", "reg/app:1")).await.unwrap();
        let by = |k| ListFilter {
            trigger: Some(k),
            ..Default::default()
        };
        let ids = |v: Vec<RunRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(s.list(&by(TriggerKind::Timer)).await.unwrap()), ["t1"]);
        assert_eq!(ids(s.list(&by(TriggerKind::Manual)).await.unwrap()), ["m1"]);
        assert!(s.list(&by(TriggerKind::Commit)).await.unwrap().is_empty());
        // Steps are written while the run goes, fenced like every worker write.
        clock.advance(500);
        let c = s.claim("w1", 1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(c[0].id, "t1");
        let steps = serde_json::json!([{"id": "build", "status": "Running"}]);
        assert!(s.set_steps("t1", "w1", 1, &steps).await.unwrap());
        assert!(!s.set_steps("t1", "w2", 1, &steps).await.unwrap());
        assert_eq!(s.get("t1").await.unwrap().unwrap().steps, steps);
        // Watching for changes: oldest change first, only those after the time given.
        let changed = s
            .list(&ListFilter {
                updated_after: Some(t0 + 200),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(changed), ["t1"]);
        // Completion keeps the steps written when it brings none.
        let done = Completion {
            status: Some(RunStatus::Succeeded),
            ..Default::default()
        };
        assert!(s.complete("t1", "w1", 1, done).await.unwrap());
        assert_eq!(s.get("t1").await.unwrap().unwrap().steps, steps);
    }
}

#[tokio::test]
async fn webhook_deliveries_are_claimed_once_retried_and_purged() {
    let clock = Arc::new(ManualClock::new(10_000));
    for (_d, s) in stores(clock.clone()).await {
        let t0 = clock.now_ms();
        let hook = WebhookRecord {
            name: "deploy1".into(),
            spec: serde_json::json!({"name": "deploy1", "uri": "https://x/"}),
            enabled: true,
            create_time: 0,
            last_updated_time: 0,
        };
        assert!(s.put_webhook(&hook, true).await.unwrap());
        assert!(!s.put_webhook(&hook, true).await.unwrap(), "a second create fails");
        assert!(s
            .put_webhook(
                &WebhookRecord {
                    enabled: false,
                    ..hook.clone()
                },
                false
            )
            .await
            .unwrap());
        assert!(!s.get_webhook("deploy1").await.unwrap().unwrap().enabled);
        let new = |id: &str| NewDelivery {
            id: id.into(),
            webhook: "deploy1".into(),
            action: "push".into(),
            body: format!("{{\"id\":\"{id}\"}}"),
        };
        s.add_deliveries(&[new("a"), new("b")]).await.unwrap();
        // One claim takes them; a second finds none while the lease holds.
        let got = s.claim_deliveries("n1", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(s.claim_deliveries("n2", 10, Duration::from_secs(30)).await.unwrap().is_empty());
        let attempt = |id: &str, n: i64, code: Option<i64>| AttemptRecord {
            delivery_id: id.into(),
            attempt: n,
            time: 10_000,
            status_code: code,
            latency_ms: 3,
            error: code.is_none().then(|| "refused".to_string()),
            response: None,
        };
        assert!(s
            .finish_attempt("n1", &attempt("a", 1, Some(200)), AfterAttempt::Delivered)
            .await
            .unwrap());
        assert!(s
            .finish_attempt("n1", &attempt("b", 1, None), AfterAttempt::RetryAt(t0 + 2_000))
            .await
            .unwrap());
        // Not the owner: refused and not recorded.
        assert!(!s
            .finish_attempt("n2", &attempt("b", 2, Some(200)), AfterAttempt::Delivered)
            .await
            .unwrap());
        // Not due yet, then due.
        assert!(s.claim_deliveries("n2", 10, Duration::from_secs(30)).await.unwrap().is_empty());
        clock.advance(3_000);
        let again = s.claim_deliveries("n2", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        assert!(s
            .finish_attempt("n2", &attempt("b", 2, Some(200)), AfterAttempt::Delivered)
            .await
            .unwrap());
        let list = s.list_deliveries("deploy1", 10).await.unwrap();
        assert_eq!(
            list.iter().map(|d| (d.id.as_str(), d.status)).collect::<Vec<_>>(),
            [("b", DeliveryStatus::Delivered), ("a", DeliveryStatus::Delivered)]
        );
        let attempts = s.attempts_of(&["a".into(), "b".into()]).await.unwrap();
        assert_eq!(attempts.len(), 3);
        assert_eq!(attempts[1].error.as_deref(), Some("refused"));
        // Old ended deliveries are forgotten; the webhook's deletion takes the rest.
        assert_eq!(s.purge_deliveries(t0 + 10_000).await.unwrap(), 2);
        assert!(s.attempts_of(&["a".into(), "b".into()]).await.unwrap().is_empty());
        s.add_deliveries(&[new("c")]).await.unwrap();
        assert!(s.delete_webhook("deploy1").await.unwrap());
        assert!(s.list_deliveries("deploy1", 10).await.unwrap().is_empty());
    }
}
