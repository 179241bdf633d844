//! What the real Azure CLI sent, replayed against a daemon (issue 20): the requests
//! `az --debug` recorded for each `az acr task …` and `az acr run` command
//! (`tests/fixtures/az/requests.json`, azure-cli 2.91.0) go out again in order, each
//! answered with the status `az` saw. It needs no `az` and no engine, so a change that
//! breaks what `az` sends is caught in seconds, here as on any laptop; the end-to-end
//! test with the real `az` (az_e2e) proves the rest. `{repo}` is a git repository the
//! test makes, `{run}` the run the last `scheduleRun` answered with.

mod support;

use support::daemon::Daemon;
use support::*;

const REGISTRY: &str = "/subscriptions/slipway/resourceGroups/slipway/providers/Microsoft.ContainerRegistry/registries/slipway";

/// The secrets the recording was made with: no answer may hold them.
const RECORDED_SECRETS: [&str; 2] = ["xyz", "pw-secret"];

fn fixture() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/az/requests.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An access token for `token`'s caller, as `az login --service-principal` gets one.
fn access_token(d: &Daemon, token: &str) -> String {
    let body = format!("grant_type=client_credentials&client_id=slipway&client_secret={token}&scope=s%2F.default");
    let (code, answer) = d.call(
        "POST",
        "/adfs/oauth2/token",
        Some(body.into_bytes()),
        None,
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(code, 200, "{answer}");
    serde_json::from_str::<serde_json::Value>(&answer).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn what_az_sent_is_answered_as_az_saw() {
    let d = Daemon::start(&["--tenant", "team-a:token=tok-a"]);
    let access = access_token(&d, "tok-a");
    let repo = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let repo_url = format!("file://{}", repo.path().display());
    let mut run = String::new();
    let mut answers = std::collections::BTreeMap::new();
    for command in fixture()["commands"].as_array().unwrap() {
        let name = command["command"].as_str().unwrap();
        for r in command["requests"].as_array().unwrap() {
            let fill = |t: &str| t.replace("{repo}", &repo_url).replace("{run}", &run);
            let path = fill(r["path"].as_str().unwrap());
            let body = (!r["body"].is_null()).then(|| fill(&r["body"].to_string()).into_bytes());
            let method = r["method"].as_str().unwrap();
            let (code, answer) = d.call(method, &path, body, Some(&access), &[]);
            assert_eq!(
                i64::from(code),
                r["status"].as_i64().unwrap(),
                "{name}: {method} {path} answered {answer}"
            );
            // As a value of its own or after `=` (a random id may hold "xyz" by chance).
            for secret in RECORDED_SECRETS {
                let shown = answer.contains(&format!("\"{secret}\"")) || answer.contains(&format!("={secret}"));
                assert!(!shown, "{name}: {method} {path} shows a secret: {answer}");
            }
            let value: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            if path.contains("/scheduleRun") {
                run = value["properties"]["runId"].as_str().unwrap().to_string();
            }
            answers.insert(name.to_string(), value);
        }
    }
    // What each command reads from its last answer.
    let last = |prefix: &str| {
        answers
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no command {prefix}"))
    };
    let listed = last("az acr task credential list");
    assert_eq!(
        listed["properties"]["credentials"]["customRegistries"]["other.example:5000"]["userName"]["value"],
        "carol"
    );
    let removed = last("az acr task credential remove");
    assert!(removed["properties"]["credentials"]["customRegistries"].is_null(), "{removed}");
    let shown = last("az acr task show -n build-app");
    let args = &shown["properties"]["step"]["arguments"];
    assert_eq!(args[0]["value"], "2", "task update changed it: {shown}");
    assert_eq!(args[1]["isSecret"], true);
    let timers = &shown["properties"]["trigger"]["timerTriggers"];
    assert_eq!(timers.as_array().unwrap().len(), 1, "timer t2 added then removed: {timers}");
    let archived = last("az acr task update-run");
    assert_eq!(archived["properties"]["isArchiveEnabled"], true);
    let cmd_task = last("az acr task create -n cmd-task");
    assert_eq!(cmd_task["properties"]["step"]["type"], "EncodedTask");
    // The registry a recorded path names is this daemon's.
    assert!(fixture().to_string().contains(REGISTRY));
}
