//! The dashboard in a real browser: Debian's Chromium driven through chromedriver
//! (WebDriver, fantoccini) against a real daemon running real runs on the engine.
//! Screenshots go to `target/test-artifacts/dashboard/`.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::daemon::{Daemon, TOKEN};
use support::{run, testbed};

/// chromedriver on a free port, ended when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver and Chromium, when they are installed; in CI their absence fails.
fn driver() -> Option<Driver> {
    let path = std::env::var("SLIPWAY_TEST_CHROMEDRIVER")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "chromedriver".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = match Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let why = format!("needs chromedriver ({path}: {e}); scripts/testbed.sh installs Debian's chromium-driver");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true and this test {why}");
            }
            eprintln!("\n!!! SKIPPED: this test {why} !!!\n");
            return None;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    })
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1360,900", "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), serde_json::json!({"browser": "ALL"}));
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// chromedriver's browser log since the last call (`/se/log`).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Console messages at level SEVERE (errors, CSP violations, failed loads).
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

fn artifacts() -> std::path::PathBuf {
    let dir = support::repo_root().join("target/test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let path = artifacts().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Polls `check` until it returns `Some`, for at most `limit`.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

/// The page's HTML as the server sent it, parsed: every parse error of the HTML
/// standard is a failure, as are duplicate ids and a missing title or language.
fn assert_valid_html(page: &str, html: &str) {
    let doc = scraper::Html::parse_document(html);
    assert!(doc.errors.is_empty(), "{page} is not valid HTML: {:?}\n{html}", doc.errors);
    assert!(html.starts_with("<!DOCTYPE html>"), "{page} has no doctype");
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    assert!(doc.select(&sel("html[lang]")).next().is_some(), "{page} has no lang");
    assert!(doc.select(&sel("head > title")).next().is_some(), "{page} has no title");
    let mut ids = std::collections::HashSet::new();
    for e in doc.select(&sel("[id]")) {
        let id = e.value().attr("id").unwrap();
        assert!(ids.insert(id.to_string()), "{page} has the id {id:?} twice");
    }
    for e in doc.select(&sel("input:not([type=hidden]), select")) {
        let labelled = e.value().attr("aria-label").is_some()
            || e.value()
                .attr("id")
                .is_some_and(|id| doc.select(&sel(&format!("label[for=\"{id}\"]"))).next().is_some())
            || e.ancestors().any(|a| a.value().as_element().is_some_and(|el| el.name() == "label"));
        assert!(labelled, "{page}: a form field has no label: {}", e.html());
    }
}

/// GETs `path` with the browser's session cookie, as the server renders it.
fn fetch(d: &Daemon, path: &str, cookie: &str) -> (u16, String) {
    support::rt().block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", d.url()))
            .header("cookie", format!("slipway_session={cookie}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    })
}

fn post_form(d: &Daemon, path: &str, cookie: &str, form: &[(&str, &str)], origin: Option<&str>) -> u16 {
    support::rt().block_on(async {
        let mut r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}{path}", d.url()))
            .header("cookie", format!("slipway_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send().await.unwrap().status().as_u16()
    })
}

fn put_task(d: &Daemon, name: &str, args: &[&str]) {
    let r = run(d.client().args(["task", "create", "-n", name]).args(args));
    assert!(r.ok, "{}", r.all());
}

/// Signs in, watches a run appear and its log stream, cancels it, runs a task again,
/// filters the list; every page is valid HTML, logs no console error, and shows no
/// secret.
#[test]
fn the_dashboard_in_a_real_browser() {
    let Some(tb) = testbed() else { return };
    let Some(driver) = driver() else { return };
    let d = Daemon::start(&[]);
    let secret_arg = format!("argsecret-{}", uuid::Uuid::new_v4().simple());
    let secret_hook = format!("hooksecret-{}", uuid::Uuid::new_v4().simple());
    let secret_value = format!("valuesecret-{}", uuid::Uuid::new_v4().simple());
    put_task(
        &d,
        "nightly-hello",
        &[
            "--cmd",
            &format!("{} echo hello from a task", tb.base_image),
            "--schedule",
            "nightly:30 2 * * *",
            "--secret-arg",
            &format!("API_KEY={secret_arg}"),
            "--set-secret",
            &format!("password={secret_value}"),
            "--webhook-secret",
            &secret_hook,
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(browser(&driver));
    let base = d.url();

    // Signing in: the dashboard sends a visitor without a session to the form.
    rt.block_on(async {
        c.goto(&format!("{base}/tasks")).await.unwrap();
        let url = c.current_url().await.unwrap();
        assert_eq!(url.path(), "/signin", "{url}");
        screenshot(&c, "signin").await;
        c.find(Locator::Id("token"))
            .await
            .unwrap()
            .send_keys("not-the-token")
            .await
            .unwrap();
        c.find(Locator::Css("form.signin button")).await.unwrap().click().await.unwrap();
        let error = until("the sign-in error", Duration::from_secs(10), || text_of(&c, "#signin-error")).await;
        assert!(error.contains("not one of this daemon's tokens"), "{error}");
        c.find(Locator::Id("token")).await.unwrap().send_keys(TOKEN).await.unwrap();
        c.find(Locator::Css("form.signin button")).await.unwrap().click().await.unwrap();
        until("the tasks page after signing in", Duration::from_secs(10), || async {
            (c.current_url().await.ok()?.path() == "/tasks").then_some(())
        })
        .await;
    });
    let cookie = rt.block_on(async { c.get_named_cookie("slipway_session").await.expect("the session cookie") });
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let cookie = cookie.value().to_string();

    // The runs page is open when a run is queued: its row appears and turns Running.
    rt.block_on(async {
        c.goto(&format!("{base}/")).await.unwrap();
        c.wait().for_element(Locator::Id("runs")).await.unwrap();
    });
    let slow = d.queue_task(&format!(
        "version: v1.1.0\nsteps:\n  - id: ticker\n    cmd: {} sh -c 'i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick $i; sleep 0.05; done'\n",
        tb.base_image
    ));
    rt.block_on(async {
        let row = format!("#run-{slow}");
        until("the new run's row", Duration::from_secs(10), || async {
            c.find(Locator::Css(&row)).await.ok()
        })
        .await;
        until("the row to say Running", Duration::from_secs(30), || async {
            let t = text_of(&c, &format!("{row} .status")).await?;
            (t == "Running").then_some(())
        })
        .await;
        screenshot(&c, "runs").await;
    });

    // Its page streams the log live, keeps up, and finds lines.
    rt.block_on(async {
        c.goto(&format!("{base}/runs/{slow}")).await.unwrap();
        let lines = || async { c.find_all(Locator::Css("#log .line")).await.map(|l| l.len()).unwrap_or(0) };
        let first = until("the log's first ticks", Duration::from_secs(20), || async {
            let n = lines().await;
            (n >= 3).then_some(n)
        })
        .await;
        until("more lines, streamed", Duration::from_secs(20), || async {
            (lines().await >= first + 10).then_some(())
        })
        .await;
        let steps = text_of(&c, "table.steps").await.unwrap();
        assert!(steps.contains("ticker") && steps.contains("Running"), "{steps}");
        // Following: the newest line is in view.
        let following: bool = c
            .execute(
                "const l = document.getElementById('log'); return l.scrollHeight - l.scrollTop - l.clientHeight < 60;",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        assert!(following, "the log did not follow its end");
        // Scrolling up stops the following: new lines do not move the view (once the
        // log is taller than its box).
        until("a log taller than its box", Duration::from_secs(30), || async {
            (lines().await >= 80).then_some(())
        })
        .await;
        c.execute(
            "const l = document.getElementById('log'); l.scrollTop = 0; l.dispatchEvent(new Event('scroll'));",
            vec![],
        )
        .await
        .unwrap();
        let before = lines().await;
        until("more lines while scrolled up", Duration::from_secs(20), || async {
            (lines().await >= before + 5).then_some(())
        })
        .await;
        let (top, follow): (f64, bool) = {
            let v = c
                .execute(
                    "return [document.getElementById('log').scrollTop, document.getElementById('log-follow').checked];",
                    vec![],
                )
                .await
                .unwrap();
            (v[0].as_f64().unwrap(), v[1].as_bool().unwrap())
        };
        assert!(
            top < 1.0 && !follow,
            "the log moved while the reader was scrolled up (top {top}, follow {follow})"
        );
        c.find(Locator::Id("log-follow")).await.unwrap().click().await.unwrap();
        c.find(Locator::Id("log-search")).await.unwrap().send_keys("tick 7").await.unwrap();
        let matches = until("search matches", Duration::from_secs(5), || async {
            text_of(&c, "#log-matches").await.filter(|t| t.contains("match"))
        })
        .await;
        assert!(!matches.starts_with("0 "), "{matches}");
        let shown = c.find_all(Locator::Css("#log .line:not(.hidden)")).await.unwrap().len();
        assert!(shown >= 1 && shown < lines().await, "the search kept {shown} lines");
        screenshot(&c, "run-live").await;
        c.find(Locator::Id("log-search")).await.unwrap().clear().await.unwrap();
        // A line link.
        let link = c.find(Locator::Css("#L2 a.ln")).await.unwrap().attr("href").await.unwrap();
        assert_eq!(link.as_deref(), Some("#L2"));
        // Cancel.
        // The live page may redraw the button between finding and clicking it.
        let mut tries = 0;
        while let Err(e) = async { c.find(Locator::Id("cancel")).await?.click().await }.await {
            tries += 1;
            assert!(tries < 10, "cancel could not be clicked: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        until("the run to show Canceled", Duration::from_secs(30), || async {
            text_of(&c, "#details h1 .status").await.filter(|t| t == "Canceled")
        })
        .await;
        until("the feed to end", Duration::from_secs(15), || async {
            let ended = c.execute("return document.body.dataset.logEnded === 'true';", vec![]).await.ok()?;
            ended.as_bool().filter(|b| *b)
        })
        .await;
    });
    assert_eq!(d.run_json(&slow)["status"], "Canceled");
    let raw = d.get(&format!("/v1/runs/{slow}/log")).1;
    assert!(raw.contains("tick 3"));
    // A page that lost its feed reconnects with the last event's id (a byte offset) and
    // gets exactly the lines after it, then the end.
    let offset = raw.find("ticker | tick 5\n").expect("tick 5 in the log");
    let feed = support::rt().block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{base}/live/runs/{slow}"))
            .header("cookie", format!("slipway_session={cookie}"))
            .header("last-event-id", offset.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        tokio::time::timeout(Duration::from_secs(20), r.text())
            .await
            .expect("the finished run's feed ends")
            .unwrap()
    });
    let mut resent = Vec::new();
    for block in feed.split("\n\n") {
        if block.contains("event: log") {
            let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            resent.extend(v["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()));
        }
    }
    let expected: Vec<String> = raw[offset..].lines().map(str::to_string).collect();
    assert_eq!(resent, expected, "the resumed feed");
    assert!(feed.contains("event: end"), "{feed}");

    // Tasks: Run now, then Run again from the run's page.
    let (first_run, again_run) = rt.block_on(async {
        c.goto(&format!("{base}/tasks")).await.unwrap();
        c.find(Locator::Css("#task-nightly-hello button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let first = until("the task's run page", Duration::from_secs(10), || async {
            let url = c.current_url().await.ok()?;
            url.path().strip_prefix("/runs/").map(str::to_string)
        })
        .await;
        until("the task's run to succeed", Duration::from_secs(60), || async {
            text_of(&c, "#details h1 .status").await.filter(|t| t == "Succeeded")
        })
        .await;
        until("the task's output in the log", Duration::from_secs(10), || async {
            text_of(&c, "#log").await.filter(|t| t.contains("hello from a task"))
        })
        .await;
        screenshot(&c, "run").await;
        c.find(Locator::Id("again")).await.unwrap().click().await.unwrap();
        let again = until("the second run's page", Duration::from_secs(10), || async {
            let url = c.current_url().await.ok()?;
            let id = url.path().strip_prefix("/runs/")?.to_string();
            (id != first).then_some(id)
        })
        .await;
        (first, again)
    });
    let again = d.wait_status(&again_run, &["Succeeded"], Duration::from_secs(60));
    assert_eq!(again["task"], "nightly-hello");
    assert_eq!(d.run_json(&first_run)["task"], "nightly-hello");

    // The task's page: the timer's next firing in UTC and local time, the webhook URL.
    rt.block_on(async {
        c.goto(&format!("{base}/tasks/nightly-hello")).await.unwrap();
        let timers = text_of(&c, "#timers").await.unwrap();
        assert!(timers.contains("02:30:00 UTC"), "{timers}");
        assert!(
            !timers.contains("shown with scripts on"),
            "the local time was not filled in: {timers}"
        );
        let hook = text_of(&c, "#webhook").await.unwrap();
        assert!(
            hook.contains(&format!("{base}/v1/webhooks/github")) && hook.contains("set"),
            "{hook}"
        );
        screenshot(&c, "task").await;
    });

    // Disable and enable the task from the list.
    rt.block_on(async {
        c.goto(&format!("{base}/tasks")).await.unwrap();
        c.find(Locator::Css("#task-nightly-hello form[action$='/disable'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until("the task to be disabled", Duration::from_secs(10), || async {
            text_of(&c, "#task-nightly-hello .status").await.filter(|t| t == "Disabled")
        })
        .await;
    });
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&d.get("/v1/tasks/nightly-hello").1).unwrap()["status"],
        "Disabled"
    );
    rt.block_on(async {
        c.find(Locator::Css("#task-nightly-hello form[action$='/enable'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until("the task to be enabled", Duration::from_secs(10), || async {
            text_of(&c, "#task-nightly-hello .status").await.filter(|t| t == "Enabled")
        })
        .await;
    });

    // Filtering the list: by task, then by status.
    rt.block_on(async {
        c.goto(&format!("{base}/")).await.unwrap();
        c.find(Locator::Css("select[name=task] option[value='nightly-hello']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("form.filters button")).await.unwrap().click().await.unwrap();
        until("the filtered list", Duration::from_secs(10), || async {
            (c.current_url().await.ok()?.query()?.contains("task=nightly-hello")).then_some(())
        })
        .await;
        let rows = c.find_all(Locator::Css("#runs tbody tr")).await.unwrap();
        assert_eq!(rows.len(), 2, "two runs of the task");
        let text = text_of(&c, "#runs tbody").await.unwrap();
        assert!(!text.contains(&slow), "{text}");
        c.goto(&format!("{base}/?status=Canceled")).await.unwrap();
        let text = text_of(&c, "#runs tbody").await.unwrap();
        assert!(text.contains(&slow) && !text.contains(&first_run), "{text}");
        screenshot(&c, "runs-filtered").await;
    });

    // No page logged a console error (failed loads and CSP violations included).
    let errors = rt.block_on(async {
        let mut all = console_errors(&c).await;
        for path in [
            "/".to_string(),
            format!("/runs/{slow}"),
            "/tasks".into(),
            "/tasks/nightly-hello".into(),
        ] {
            c.goto(&format!("{base}{path}")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            all.extend(console_errors(&c).await.into_iter().map(|e| format!("{path}: {e}")));
        }
        all
    });
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // Every page is valid HTML and shows no secret value.
    let pages = [
        "/".to_string(),
        "/?status=Running&trigger=Manual".into(),
        format!("/runs/{slow}"),
        format!("/runs/{first_run}"),
        "/tasks".into(),
        "/tasks/nightly-hello".into(),
        "/runs/no-such-run".into(),
    ];
    let mut seen = String::new();
    for p in &pages {
        let (code, html) = fetch(&d, p, &cookie);
        assert!(code == 200 || (p.contains("no-such") && code == 404), "{p}: {code}");
        assert_valid_html(p, &html);
        seen.push_str(&html);
    }
    let (_, signin) = fetch(&d, "/signin", "");
    assert_valid_html("/signin", &signin);
    seen.push_str(&fetch(&d, &format!("/runs/{first_run}/log.txt"), &cookie).1);
    for secret in [&secret_arg, &secret_hook, &secret_value] {
        assert!(!seen.contains(secret.as_str()), "a page showed a secret");
    }

    // Forms need the session's CSRF token and must come from the dashboard's own pages.
    let csrf = {
        let (_, html) = fetch(&d, "/tasks", &cookie);
        let doc = scraper::Html::parse_document(&html);
        let sel = scraper::Selector::parse("input[name=csrf]").unwrap();
        doc.select(&sel).next().unwrap().value().attr("value").unwrap().to_string()
    };
    assert_eq!(post_form(&d, "/tasks/nightly-hello/disable", &cookie, &[], None), 403);
    assert_eq!(
        post_form(&d, "/tasks/nightly-hello/disable", &cookie, &[("csrf", "0000")], None),
        403
    );
    assert_eq!(
        post_form(
            &d,
            "/tasks/nightly-hello/disable",
            &cookie,
            &[("csrf", &csrf)],
            Some("http://evil.example")
        ),
        403
    );
    assert_eq!(post_form(&d, "/tasks/nightly-hello/disable", "", &[("csrf", &csrf)], None), 401);
    assert_eq!(
        post_form(&d, "/tasks/nightly-hello/disable", &cookie, &[("csrf", &csrf)], None),
        303
    );
    // Without a session, pages send the visitor to sign in and live feeds refuse.
    assert_eq!(fetch(&d, "/live/runs", "").0, 401);
    assert!(fetch(&d, "/tasks", "forged.1.2.3").1.contains("Sign in"));
    rt.block_on(async { c.close().await.unwrap() });
}

/// A daemon without tokens (loopback only) asks for no sign-in, but still puts CSRF
/// tokens in its forms and answers only requests addressed to a loopback name.
#[test]
fn without_tokens_on_loopback_no_sign_in_but_no_rebinding() {
    let Some(_tb) = testbed() else { return };
    let mut d = Daemon::start(&[]);
    // Restart it without the token the test daemon usually gets.
    d.terminate();
    d.extra = vec![];
    let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", d.port), "--data-dir"])
        .arg(d.data_dir())
        .arg("--database")
        .arg(format!("sqlite://{}", d.db().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    d.child = Some(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.get_raw("/healthz", None).map(|r| r.0) != Ok(200) {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, html) = d.get_raw("/", None).unwrap();
    assert_eq!(code, 200);
    assert!(html.contains("<h1>Runs</h1>") && !html.contains("Sign out"), "{html}");
    let status = support::rt().block_on(async {
        reqwest::Client::new()
            .get(format!("{}/", d.url()))
            .header("host", "rebound.example:80")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 421, "a page for another name must not be answered");
    // A form without the visitor's token is refused even here.
    assert_eq!(post_form(&d, "/tasks/none-such/disable", "", &[], None), 403);
    // The API too: nothing for a rebound name, no change from another site's page (a
    // form can post text that reads as JSON), while the CLI's requests go through.
    let api = |method: &str, path: &str, headers: &[(&str, &str)]| {
        support::rt().block_on(async {
            let mut r = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", d.url()));
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            let resp = r
                .header("content-type", "text/plain")
                .body(r#"{"type": "EncodedTaskRunRequest", "encodedTaskContent": "dmVyc2lvbjogdjEuMS4wCnN0ZXBzOgogIC0gY21kOiBoZWxsby13b3JsZAo="}"#)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        })
    };
    assert_eq!(api("GET", "/v1/runs", &[("host", "rebound.example:80")]), 421);
    assert_eq!(api("POST", "/v1/runs", &[("origin", "http://evil.example")]), 403);
    assert_eq!(api("POST", "/v1/runs", &[("sec-fetch-site", "cross-site")]), 403);
    assert_eq!(api("GET", "/v1/runs", &[]), 200);
    let (code, _) = d.get_raw("/v1/runs?top=1", None).unwrap();
    assert_eq!(code, 200);
}
