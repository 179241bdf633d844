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

/// A typed spec or request from its JSON.
fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn run(id: &str, image: &str) -> NewRun {
    NewRun {
        id: id.into(),
        tenant: "default".into(),
        cache_namespace: None,
        run_type: RunType::QuickBuild,
        task: None,
        platform: "linux/amd64".into(),
        request: json(serde_json::json!({"type": "DockerBuildRequest"})),
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
                    let claimed = s.claim(&format!("w{w}"), 3, Duration::from_secs(30), 0).await.unwrap();
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
        let c = s.claim("w1", 1, Duration::from_secs(10), 0).await.unwrap();
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
        let c = s.claim("w2", 1, Duration::from_secs(10), 0).await.unwrap();
        assert_eq!((c[0].id.as_str(), c[0].attempt), ("a", 2));
        // The first worker comes back late: its completion is refused.
        let done = Completion {
            status: Some(RunStatus::Succeeded),
            ..Default::default()
        };
        assert!(!s.complete("a", "w1", 1, done.clone()).await.unwrap());
        assert!(s.complete("a", "w2", 2, done).await.unwrap());
        assert_eq!(s.get(None, "a").await.unwrap().unwrap().status, RunStatus::Succeeded);
        // A second loss ends the run as Error, naming the lost worker.
        let c = s.claim("w3", 1, Duration::from_secs(10), 0).await.unwrap();
        assert_eq!(c[0].id, "b");
        clock.advance(11_000);
        assert_eq!(s.reap(false).await.unwrap(), vec![Reaped::Failed("b".into())]);
        let b = s.get(None, "b").await.unwrap().unwrap();
        assert_eq!(b.status, RunStatus::Error);
        assert!(b.error_message.unwrap().contains("worker running this run was lost"));
    }
}

#[tokio::test]
async fn cancel_reaches_queued_and_running_runs() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        s.enqueue(run("q", "x")).await.unwrap();
        s.enqueue(run("r", "x")).await.unwrap();
        let c = s.claim("w", 1, Duration::from_secs(10), 0).await.unwrap();
        assert_eq!(c[0].id, "q");
        let r = s.request_cancel(None, "r").await.unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Canceled, "a queued run is canceled at once");
        assert!(
            s.claim("w", 5, Duration::from_secs(10), 0).await.unwrap().is_empty(),
            "a canceled run never starts"
        );
        let q = s.request_cancel(None, "q").await.unwrap().unwrap();
        assert!(
            q.cancel_requested && q.status == RunStatus::Started,
            "a running run is asked to stop"
        );
        assert!(s.request_cancel(None, "nope").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn an_archived_run_outlives_the_retention_period() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        for id in ["kept", "gone"] {
            let mut r = run(id, "x");
            r.tenant = "team-a".into();
            s.enqueue(r).await.unwrap();
            s.cancel_queued(None, id).await.unwrap();
        }
        assert!(
            s.set_archived(Some("team-b"), "kept", true).await.unwrap().is_none(),
            "another tenant's run"
        );
        let kept = s.set_archived(Some("team-a"), "kept", true).await.unwrap().unwrap();
        assert!(kept.archived && kept.view().is_archive_enabled);
        let later = SystemClock.now_ms() + 1000;
        assert_eq!(s.finished_before(later).await.unwrap(), ["gone"]);
        s.set_archived(None, "kept", false).await.unwrap();
        let mut both = s.finished_before(later).await.unwrap();
        both.sort();
        assert_eq!(both, ["gone", "kept"]);
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
        assert_eq!(s.counts(None).await.unwrap(), vec![(RunStatus::Queued, 5)]);
    }
}

#[tokio::test]
async fn a_restarted_node_expires_its_old_workers_leases() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        s.enqueue(run("a", "x")).await.unwrap();
        s.claim("node1/old-0", 1, Duration::from_secs(600), 0).await.unwrap();
        assert_eq!(s.expire_node_leases("node1/", "node1/new-").await.unwrap(), 1);
        assert_eq!(s.reap(false).await.unwrap(), vec![Reaped::Failed("a".into())]);
    }
}

#[tokio::test]
async fn tasks_are_saved_updated_listed_and_deleted() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        let t = TaskRecord {
            tenant: "default".into(),
            name: "build-app".into(),
            spec: json(serde_json::json!({"file": "Dockerfile"})),
            enabled: true,
            create_time: 0,
            last_updated_time: 0,
        };
        assert!(s.put_task(&t, true).await.unwrap());
        assert!(!s.put_task(&t, true).await.unwrap(), "creating twice is refused");
        let mut t2 = t.clone();
        t2.enabled = false;
        assert!(s.put_task(&t2, false).await.unwrap());
        assert!(!s.get_task("default", "build-app").await.unwrap().unwrap().enabled);
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
            "default",
            "build-app",
            &[Dependency {
                tenant: "default".into(),
                task: "build-app".into(),
                image: "docker.io/library/alpine:3".into(),
                kind: slipway_api::results::DependencyKind::Runtime,
                digest: "sha256:a".into(),
            }],
        )
        .await
        .unwrap();
        assert_eq!(s.dependents_of("docker.io/library/alpine:3").await.unwrap().len(), 1);
        assert_eq!(s.tracked_images().await.unwrap(), ["docker.io/library/alpine:3"]);
        assert_eq!(s.list_tasks(None).await.unwrap().len(), 1);
        assert!(s.delete_task("default", "build-app").await.unwrap());
        assert!(s.dependents_of("docker.io/library/alpine:3").await.unwrap().is_empty());
    }
}

fn timer_event(name: &str) -> slipway_api::results::TimerTriggerEvent {
    slipway_api::results::TimerTriggerEvent {
        timer_trigger_name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_event_key_starts_at_most_one_run() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        let mut a = run("a", "x");
        a.triggers.timer = Some(timer_event("t1"));
        assert!(s.enqueue_once("timer:task:t1:100", a).await.unwrap().is_some());
        assert!(s.enqueue_once("timer:task:t1:100", run("b", "x")).await.unwrap().is_none());
        assert!(s.get(None, "b").await.unwrap().is_none());
        assert_eq!(
            s.get(None, "a").await.unwrap().unwrap().triggers.timer.unwrap().timer_trigger_name,
            "t1"
        );
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
        timer.triggers.timer = Some(timer_event("nightly"));
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
        let c = s.claim("w1", 1, Duration::from_secs(10), 0).await.unwrap();
        assert_eq!(c[0].id, "t1");
        let steps = vec![slipway_api::results::StepView {
            id: "build".into(),
            status: "Running".into(),
            ..Default::default()
        }];
        assert!(s.set_steps("t1", "w1", 1, &steps).await.unwrap());
        assert!(!s.set_steps("t1", "w2", 1, &steps).await.unwrap());
        assert_eq!(s.get(None, "t1").await.unwrap().unwrap().steps, steps);
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
        assert_eq!(s.get(None, "t1").await.unwrap().unwrap().steps, steps);
    }
}

#[tokio::test]
async fn webhook_deliveries_are_claimed_once_retried_and_purged() {
    let clock = Arc::new(ManualClock::new(10_000));
    for (_d, s) in stores(clock.clone()).await {
        let t0 = clock.now_ms();
        let hook = WebhookRecord {
            tenant: "default".into(),
            name: "deploy1".into(),
            spec: json(serde_json::json!({"name": "deploy1", "uri": "https://x/"})),
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
        assert!(!s.get_webhook("default", "deploy1").await.unwrap().unwrap().enabled);
        let new = |id: &str| NewDelivery {
            id: id.into(),
            tenant: "default".into(),
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
        let list = s.list_deliveries("default", "deploy1", 10).await.unwrap();
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
        assert!(s.delete_webhook("default", "deploy1").await.unwrap());
        assert!(s.list_deliveries("default", "deploy1", 10).await.unwrap().is_empty());
    }
}

/// A run of `tenant`.
fn run_of(tenant: &str, id: &str) -> NewRun {
    NewRun {
        tenant: tenant.into(),
        ..run(id, "reg/app:1")
    }
}

#[tokio::test]
async fn a_tenant_sees_and_names_only_its_own() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        for (tenant, id) in [("team-a", "a1"), ("team-b", "b1"), ("team-a", "a2"), ("team-b", "b2")] {
            s.enqueue(run_of(tenant, id)).await.unwrap();
        }
        // Lookups and lists on a tenant's behalf find only its runs.
        assert!(s.get(Some("team-a"), "a1").await.unwrap().is_some());
        assert!(s.get(Some("team-a"), "b1").await.unwrap().is_none());
        assert_eq!(s.get(None, "b1").await.unwrap().unwrap().tenant, "team-b");
        let listed = |tenant: &str, before: Option<&str>| {
            let f = ListFilter {
                tenant: Some(tenant.into()),
                before_id: before.map(str::to_string),
                ..Default::default()
            };
            let s = s.clone();
            async move { s.list(&f).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>() }
        };
        assert_eq!(listed("team-a", None).await, ["a2", "a1"]);
        assert_eq!(listed("team-a", Some("a2")).await, ["a1"]);
        // Another tenant's run id is no paging cursor: it finds nothing, as an unknown id does.
        assert!(listed("team-a", Some("b2")).await.is_empty());
        assert_eq!(s.counts(Some("team-b")).await.unwrap(), vec![(RunStatus::Queued, 2)]);
        // Cancel on the wrong tenant's behalf does nothing at all.
        assert!(!s.cancel_queued(Some("team-a"), "b1").await.unwrap());
        assert!(s.request_cancel(Some("team-a"), "b1").await.unwrap().is_none());
        assert_eq!(s.get(None, "b1").await.unwrap().unwrap().status, RunStatus::Queued);
        assert!(s.request_cancel(Some("team-b"), "b1").await.unwrap().is_some());

        // Two tenants may each have a task of the same name.
        for tenant in ["team-a", "team-b"] {
            let t = TaskRecord {
                tenant: tenant.into(),
                name: "build-app".into(),
                spec: json(serde_json::json!({ "file": format!("{tenant}.Dockerfile") })),
                enabled: true,
                create_time: 0,
                last_updated_time: 0,
            };
            assert!(s.put_task(&t, true).await.unwrap(), "{tenant}");
        }
        assert_eq!(
            s.get_task("team-b", "build-app").await.unwrap().unwrap().spec.file.as_deref(),
            Some("team-b.Dockerfile")
        );
        assert_eq!(s.list_tasks(Some("team-a")).await.unwrap().len(), 1);
        assert_eq!(s.list_tasks(None).await.unwrap().len(), 2);
        assert!(s.delete_task("team-a", "build-app").await.unwrap());
        assert!(s.get_task("team-b", "build-app").await.unwrap().is_some());

        // Webhooks, with their deliveries, too.
        for tenant in ["team-a", "team-b"] {
            let w = WebhookRecord {
                tenant: tenant.into(),
                name: "deploy".into(),
                spec: json(serde_json::json!({})),
                enabled: true,
                create_time: 0,
                last_updated_time: 0,
            };
            assert!(s.put_webhook(&w, true).await.unwrap());
            s.add_deliveries(&[NewDelivery {
                id: format!("d-{tenant}"),
                tenant: tenant.into(),
                webhook: "deploy".into(),
                action: "ping".into(),
                body: "{}".into(),
            }])
            .await
            .unwrap();
        }
        let a: Vec<String> = s
            .list_deliveries("team-a", "deploy", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(a, ["d-team-a"]);
        assert!(s.delete_webhook("team-b", "deploy").await.unwrap());
        assert_eq!(s.list_webhooks(None).await.unwrap().len(), 1);
        assert_eq!(s.list_deliveries("team-a", "deploy", 10).await.unwrap().len(), 1);

        // The directory every node reads.
        assert_eq!(s.directory().await.unwrap(), None);
        let dir = slipway_api::tenant::Directory {
            operator_token_hashes: vec![slipway_api::tenant::token_hash("ops")],
            ..Default::default()
        };
        s.put_directory(&dir).await.unwrap();
        s.put_directory(&dir).await.unwrap();
        assert_eq!(s.directory().await.unwrap(), Some(dir));
    }
}

#[tokio::test]
async fn what_was_there_before_tenants_is_the_default_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::migrate!("../../migrations/sqlite").run_to(5, &pool).await.unwrap();
        for sql in [
            r#"INSERT INTO runs (id, status, run_type, request, create_time, last_updated_time, task) VALUES ('old1', 'Succeeded', 'QuickBuild', '{"type":"DockerBuildRequest","imageNames":["app:1"]}', 1, 1, 'build-app')"#,
            "INSERT INTO tasks (name, spec, status, create_time, last_updated_time) VALUES ('build-app', '{}', 'Enabled', 1, 1)",
            "INSERT INTO task_dependencies (task, image, kind, digest, last_updated_time) VALUES ('build-app', 'docker.io/library/a:1', 'runtime', '', 1)",
            "INSERT INTO webhooks (name, spec, enabled, create_time, last_updated_time) VALUES ('deploy', '{}', 1, 1, 1)",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let s = open(&url, Arc::new(SystemClock)).await.unwrap();
    assert_eq!(s.get(Some("default"), "old1").await.unwrap().unwrap().tenant, "default");
    assert!(s.get_task("default", "build-app").await.unwrap().is_some());
    assert_eq!(s.dependents_of("docker.io/library/a:1").await.unwrap()[0].tenant, "default");
    assert!(s.get_webhook("default", "deploy").await.unwrap().is_some());
}

#[tokio::test]
async fn claims_take_turns_between_tenants_and_keep_each_within_its_cap() {
    for (_d, s) in stores(Arc::new(SystemClock)).await {
        // One tenant floods the queue first; another queues one run after it.
        for i in 0..50 {
            s.enqueue(run_of("flood", &format!("f{i}"))).await.unwrap();
        }
        s.enqueue(run_of("quiet", "q0")).await.unwrap();
        let first = s.claim("w1", 1, Duration::from_secs(30), 0).await.unwrap();
        assert_eq!(first[0].id, "f0", "oldest first while loads are even");
        // The flooding tenant has one running, the other none: the other's run is next.
        let next = s.claim("w2", 1, Duration::from_secs(30), 0).await.unwrap();
        assert_eq!(next[0].id, "q0");
        // Several at once alternate too, oldest of each tenant first.
        s.enqueue(run_of("quiet", "q1")).await.unwrap();
        s.enqueue(run_of("quiet", "q2")).await.unwrap();
        let ids: Vec<String> = s
            .claim("w3", 4, Duration::from_secs(30), 0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&"q1".to_string()) && ids.contains(&"f1".to_string()), "{ids:?}");
        // A cap: a tenant at it gets nothing more, whatever it has queued.
        let capped = s.claim("w4", 10, Duration::from_secs(30), 3).await.unwrap();
        assert!(capped.iter().all(|r| r.tenant != "flood"), "{capped:?}");
        assert!(capped.iter().all(|r| r.id == "q2"), "{capped:?}");
    }
}
