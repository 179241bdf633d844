//! The policy as data: a request in, a decision out.

use super::*;
use serde_json::json;

/// Run `r1`: its step container `svc` (engine id `aaa`), a declared network, a workspace
/// at /ws, a shared volume, an exec, a network and a volume it created.
fn scope() -> Scope {
    Scope {
        run_id: "r1".into(),
        label: ("io.slipway.run".into(), "r1".into()),
        name_prefix: "slipway-r1-".into(),
        networks: HashMap::from([("acb_default_network".into(), "acb_default_network_r1".into())]),
        default_network: Some("acb_default_network_r1".into()),
        workspace: Some("/ws".into()),
        volumes: vec!["shared_r1".into()],
        ..Scope::default()
    }
}

fn state() -> State {
    State {
        execs: ["e1".to_string()].into(),
        networks: HashMap::from([("mynet".into(), "mynet_r1".into())]),
        volumes: HashMap::from([("v1".into(), "v1_r1".into())]),
        pulled: HashMap::from([(
            "127.0.0.1:5000/base:1".into(),
            format!("127.0.0.1:5000/base@sha256:{}", "b".repeat(64)),
        )]),
    }
}

/// What the engine and the file system would answer.
fn facts() -> Facts {
    let svc = ContainerInfo {
        id: "aaa".into(),
        name: "slipway-r1-svc".into(),
    };
    Facts {
        containers: HashMap::from([
            ("svc".into(), Some(svc.clone())),
            ("slipway-r1-svc".into(), Some(svc)),
            ("other".into(), None),
            ("slipway-r2-svc".into(), None),
        ]),
        networks: HashMap::from([
            ("labelled_net".into(), Owner::Run("labelled_net".into())),
            ("theirs".into(), Owner::Other),
            ("nowhere".into(), Owner::Absent),
        ]),
        volumes: HashMap::from([
            ("labelled_vol".into(), Owner::Run("labelled_vol".into())),
            ("theirs".into(), Owner::Other),
            ("fresh".into(), Owner::Absent),
        ]),
        workspace: HashMap::from([
            ("".into(), Some("/ws".into())),
            ("sub".into(), Some("/ws/sub".into())),
            ("link".into(), None),
        ]),
        images: HashMap::from([
            (OWN_APP.into(), Some(image_facts(OWN_APP, "own"))),
            (
                "slipway.invalid/r1/docker.io/library/slipway-busybox:latest".into(),
                Some(image_facts("slipway.invalid/r1/docker.io/library/slipway-busybox:latest", "pinned")),
            ),
            ("slipway.invalid/r1/docker.io/library/busybox:latest".into(), None),
            ("slipway.invalid/r1/127.0.0.1_5000/team-a/app:2".into(), None),
            (
                "slipway.invalid/r1/127.0.0.1_5000/team-a/app:1".into(),
                Some(image_facts("slipway.invalid/r1/127.0.0.1_5000/team-a/app:1", "own2")),
            ),
            ("127.0.0.1:5000/team-a/app:1".into(), None),
            ("127.0.0.1:5000/team-a/app:2".into(), None),
            (
                "slipway-busybox:latest".into(),
                Some(image_facts("slipway-busybox:latest", "operators")),
            ),
            ("0123456789ab".into(), Some(image_facts("slipway-busybox:latest", "operators"))),
        ]),
        digests: HashMap::from([
            ("docker.io/library/alpine:3".into(), Ok(format!("sha256:{}", "a".repeat(64)))),
            ("127.0.0.1:5000/private:1".into(), Err("401 Unauthorized".into())),
            (
                format!("docker.io/library/alpine@sha256:{}", "a".repeat(64)),
                Ok(format!("sha256:{}", "a".repeat(64))),
            ),
            (
                format!("127.0.0.1:5000/team-b/secret@sha256:{}", "c".repeat(64)),
                Err("tenant team-a may not read 127.0.0.1:5000/team-b/secret".into()),
            ),
        ]),
    }
}

/// The run's own image `app` (made by a `docker build -t app`).
const OWN_APP: &str = "slipway.invalid/r1/docker.io/library/app:latest";

fn image_facts(name: &str, id: &str) -> images::ImageFacts {
    images::ImageFacts {
        id: id.into(),
        repo_tags: vec![name.into()],
        ..Default::default()
    }
}

/// The run's scope with its images its own: pushes only to team-a/, no URL reachable.
fn scoped() -> Scope {
    let digest: crate::DigestLookup = std::sync::Arc::new(|_, _| Box::pin(async { Err("unused".to_string()) }));
    Scope {
        images: Some(crate::ImageRules {
            digest,
            triggers: std::sync::Arc::new(|_, _| Box::pin(async { Ok(Vec::new()) })),
            hold_name: std::sync::Arc::new(|_| Box::pin(async { Box::new(()) as crate::NameGuard })),
            operator_images: vec!["slipway-busybox:latest".into()],
            may_push: std::sync::Arc::new(|registry: &str, repo: &str| {
                if registry == "127.0.0.1:5000" && !repo.starts_with("team-a/") {
                    Err(format!("tenant team-a may not push to {registry}/{repo}"))
                } else {
                    Ok(())
                }
            }),
        }),
        cap_drop: vec!["MKNOD".into(), "NET_RAW".into()],
        ..scope()
    }
}

fn scoped_decision(method: &str, url: &str, body: Option<Value>) -> Decision {
    decide_with(scoped(), method, url, body)
}

fn scoped_forward(method: &str, url: &str, body: Option<Value>) -> Forward {
    match scoped_decision(method, url, body) {
        Decision::Forward(f) => f,
        other => panic!("{method} {url}: expected a forward, got {other:?}"),
    }
}

fn decide_with(scope: Scope, method: &str, url: &str, body: Option<Value>) -> Decision {
    let policy = Policy::new(scope, "/run/slipway/r1.sock".into());
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let target = match parse_target(path, query) {
        Ok(t) => t,
        Err(r) => return Decision::Refuse(r),
    };
    let (state, facts) = (state(), facts());
    let mut read: Option<Value> = None;
    loop {
        let req = Request {
            method,
            target: &target,
            body: read.as_ref(),
            registry_auth: None,
        };
        match policy.decide(&req, &state, &facts) {
            Decision::Need(needs) if needs == [Need::Body] && read.is_none() => {
                read = Some(body.clone().unwrap_or(Value::Null));
            }
            decision => return decision,
        }
    }
}

fn decide(method: &str, url: &str, body: Option<Value>) -> Decision {
    decide_with(scope(), method, url, body)
}

fn forwarded(method: &str, url: &str, body: Option<Value>) -> Forward {
    match decide(method, url, body) {
        Decision::Forward(f) => f,
        other => panic!("{method} {url}: expected a forward, got {other:?}"),
    }
}

fn json_body(forward: &Forward) -> &Value {
    match &forward.body {
        Body::Json(v) => v,
        other => panic!("expected a JSON body, got {other:?}"),
    }
}

fn created(body: Value) -> Value {
    json_body(&forwarded("POST", "/containers/create", Some(body))).clone()
}

fn created_host(host: Value) -> Value {
    created(json!({"Image": "busybox", "HostConfig": host}))["HostConfig"].clone()
}

fn query(forward: &Forward, key: &str) -> Option<String> {
    first(&forward.query, key).map(str::to_string)
}

#[test]
fn harmless_endpoints_pass_as_they_are() {
    for (method, url) in [
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/v1.41/version"),
        ("GET", "/info"),
        ("GET", "/images/json?all=1"),
        ("GET", "/images/127.0.0.1:5000/team/app:1.0/json"),
        ("GET", "/images/busybox/history"),
        ("POST", "/images/busybox/tag?repo=example.com/b&tag=1"),
        ("POST", "/images/example.com/b/push?tag=1"),
        ("GET", "/images/busybox/get"),
        ("GET", "/images/get?names=a&names=b"),
        ("POST", "/images/load?quiet=1"),
        ("GET", "/distribution/docker.io/library/busybox/json"),
        ("POST", "/auth"),
        ("POST", "/images/create?fromImage=busybox&tag=latest"),
        ("POST", "/images/create?fromSrc=-&repo=imported"),
        ("POST", "/build?t=app&dockerfile=Dockerfile&version=1"),
        ("GET", "/exec/e1/json"),
        ("POST", "/v1.41/exec/e1/start"),
        ("POST", "/exec/e1/resize?h=10&w=20"),
    ] {
        let f = forwarded(method, url, None);
        let path = url.split('?').next().unwrap();
        let path = path.strip_prefix("/v1.41").unwrap_or(path);
        assert_eq!(f.path, path, "{method} {url}");
        assert_eq!(f.body, Body::Stream, "{method} {url}");
        assert_eq!(f.after, After::Nothing, "{method} {url}");
    }
}

#[test]
fn refusals_say_what_was_refused() {
    let cases: &[(&str, &str, Option<Value>, u16, &str)] = &[
        ("DELETE", "/images/busybox:latest", None, 403, "removing images is not available"),
        ("POST", "/containers/prune", None, 403, "pruning is not available"),
        ("POST", "/images/prune", None, 403, "pruning"),
        ("POST", "/networks/prune", None, 403, "pruning"),
        ("POST", "/volumes/prune", None, 403, "pruning"),
        ("POST", "/build/prune", None, 403, "pruning"),
        (
            "POST",
            "/images/create?fromSrc=http://10.0.0.1/x.tar",
            None,
            403,
            "importing an image from a URL",
        ),
        ("POST", "/images/create?fromImage=a&fromSrc=http://x", None, 403, "fromSrc"),
        ("POST", "/images/create?repo=x", None, 403, "needs fromImage"),
        ("POST", "/build?remote=https://example.com/repo.git", None, 403, "remote URL"),
        ("POST", "/build?version=2", None, 403, "set DOCKER_BUILDKIT=0"),
        ("POST", "/build?session=abc", None, 403, "set DOCKER_BUILDKIT=0"),
        ("POST", "/session", None, 403, "set DOCKER_BUILDKIT=0"),
        ("POST", "/grpc", None, 403, "set DOCKER_BUILDKIT=0"),
        ("POST", "/build?networkmode=host", None, 403, "operator setting allow_host_network"),
        ("POST", "/build?cgroupparent=/x", None, 403, "cgroup parent"),
        (
            "POST",
            "/build?networkmode=theirs",
            None,
            403,
            "network theirs does not belong to this run",
        ),
        (
            "POST",
            "/containers/svc/update",
            None,
            403,
            "POST /containers/svc/update is not available through this run's engine socket",
        ),
        ("GET", "/containers/svc/attach/ws", None, 403, "is not available"),
        ("GET", "/containers/other/json", None, 404, "no such container in this run: other"),
        (
            "POST",
            "/containers/slipway-r2-svc/stop",
            None,
            404,
            "no such container in this run: slipway-r2-svc",
        ),
        ("DELETE", "/containers/other", None, 404, "no such container in this run"),
        ("DELETE", "/containers/svc?link=1", None, 403, "removing links"),
        (
            "POST",
            "/containers/svc/start?checkpoint=c1&checkpoint-dir=/etc",
            None,
            403,
            "checkpoint",
        ),
        ("POST", "/commit?container=other", None, 404, "no such container in this run: other"),
        ("POST", "/exec/e2/start", None, 404, "no such exec instance in this run: e2"),
        ("DELETE", "/exec/e1", None, 403, "is not available"),
        ("POST", "/swarm/init", None, 403, "POST /swarm/init is not available"),
        ("GET", "/plugins", None, 403, "is not available"),
        ("GET", "/system/df", None, 403, "is not available"),
        ("GET", "/", None, 403, "is not available"),
        ("get", "/_ping", None, 403, "is not available"),
        ("GET", "/networks/theirs", None, 404, "no such network in this run: theirs"),
        ("DELETE", "/networks/nowhere", None, 404, "no such network in this run"),
        ("GET", "/volumes/theirs", None, 404, "no such volume in this run: theirs"),
        ("DELETE", "/volumes/fresh", None, 404, "no such volume in this run"),
        (
            "POST",
            "/networks/mynet/connect",
            Some(json!({"Container": "other"})),
            404,
            "no such container in this run: other",
        ),
        (
            "POST",
            "/networks/theirs/disconnect",
            Some(json!({"Container": "svc"})),
            404,
            "no such network",
        ),
        (
            "POST",
            "/containers/svc/exec",
            Some(json!({"Cmd": ["sh"], "Privileged": true})),
            403,
            "allow_privileged",
        ),
        (
            "POST",
            "/containers/svc/exec",
            Some(json!({"Cmd": ["sh"], "privileged": true})),
            403,
            "allow_privileged",
        ),
        ("POST", "/containers/svc/exec", Some(json!([1])), 400, "must be a JSON object"),
        ("GET", "/containers/json?filters=notjson", None, 400, "filters must be"),
        ("GET", "/events?filters=[1]", None, 400, "filters must be"),
    ];
    for (method, url, body, status, message) in cases {
        match decide(method, url, body.clone()) {
            Decision::Refuse(r) => {
                assert_eq!(r.status, *status, "{method} {url}: {}", r.message);
                assert!(r.message.contains(message), "{method} {url}: {:?} lacks {message:?}", r.message);
            }
            other => panic!("{method} {url}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn request_lines_are_read_as_the_engine_routes_them() {
    let t = parse_target("/v1.41/containers/svc%2Djob/json", Some("a=1&b=x+y&c=%3B")).unwrap();
    assert_eq!(t.version.as_deref(), Some("1.41"));
    assert_eq!(t.path, "/containers/svc-job/json");
    assert_eq!(t.raw_path, "/v1.41/containers/svc%2Djob/json");
    assert_eq!(
        t.query,
        vec![("a".into(), "1".into()), ("b".into(), "x y".into()), ("c".into(), ";".into())]
    );

    assert_eq!(parse_target("/v1.41", None).unwrap().path, "/");
    assert_eq!(parse_target("/version", None).unwrap().version, None);
    assert_eq!(parse_target("/vx/version", None).unwrap().path, "/vx/version");

    for bad in [
        "/v1.23/containers/svc/start",
        "/v1/containers/json",
        "/containers/svc/../../images/prune",
        "/containers/svc/%2E%2E/x",
        "/containers//json",
        "/containers/json/",
        "/containers/%zz/json",
        "/containers/%FF/json",
        "/containers/a%00/json",
    ] {
        assert_eq!(parse_target(bad, None).unwrap_err().status, 400, "{bad}");
    }
    assert!(parse_target("/v1.24/containers/json", None).is_ok());
    assert!(parse_target("/v1.41.0/containers/json", None).is_ok());

    // An encoded slash is a slash to the engine's router: the path has one more segment.
    assert!(matches!(decide("GET", "/containers/svc%2Fx/json", None), Decision::Refuse(r) if r.status == 403));
}

#[test]
fn paths_are_encoded_only_where_they_must_be() {
    assert_eq!(encode_path("/images/127.0.0.1:5000/a:b/json"), "/images/127.0.0.1:5000/a:b/json");
    assert_eq!(encode_path("/containers/a b?c#%/json"), "/containers/a%20b%3Fc%23%25/json");
}

#[test]
fn container_references_become_the_runs_engine_ids() {
    for (method, url, path) in [
        ("GET", "/v1.41/containers/svc/logs?follow=1&stdout=1", "/containers/aaa/logs"),
        ("GET", "/containers/slipway-r1-svc/json", "/containers/aaa/json"),
        ("POST", "/containers/svc/attach?stream=1&stdout=1", "/containers/aaa/attach"),
        ("POST", "/containers/svc/wait?condition=next-exit", "/containers/aaa/wait"),
        ("PUT", "/containers/svc/archive?path=/tmp", "/containers/aaa/archive"),
        ("HEAD", "/containers/svc/archive?path=/tmp", "/containers/aaa/archive"),
        ("DELETE", "/containers/svc?force=1&v=1", "/containers/aaa"),
    ] {
        assert_eq!(forwarded(method, url, None).path, path, "{method} {url}");
    }
    assert_eq!(
        forwarded("GET", "/containers/svc/logs?follow=1", None).query,
        vec![("follow".into(), "1".into())]
    );

    let start = forwarded("POST", "/containers/svc/start", Some(json!({"Privileged": true})));
    assert_eq!(start.body, Body::Empty, "a start body is never forwarded");

    let rename = forwarded("POST", "/containers/svc/rename?name=web", None);
    assert_eq!(query(&rename, "name").as_deref(), Some("slipway-r1-web"));

    let commit = forwarded("POST", "/commit?container=svc&repo=snap", None);
    assert_eq!(query(&commit, "container").as_deref(), Some("aaa"));
    assert_eq!(query(&commit, "repo").as_deref(), Some("snap"));
}

#[test]
fn unknown_references_are_asked_about_all_at_once() {
    assert_eq!(
        decide("GET", "/containers/mystery/json", None),
        Decision::Need(vec![Need::Container("mystery".into())])
    );
    let body = json!({"Image": "b", "HostConfig": {
        "Binds": ["/workspace:/a", "cache:/c"],
        "VolumesFrom": ["mystery"],
        "NetworkMode": "somenet"
    }});
    let Decision::Need(mut needs) = decide("POST", "/containers/create", Some(body)) else {
        panic!("expected needs")
    };
    needs.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(
        needs,
        vec![
            Need::Container("mystery".into()),
            Need::Network("somenet".into()),
            Need::Volume("cache".into()),
        ]
    );
}

#[test]
fn lists_and_events_only_show_the_run() {
    let label = json!({"io.slipway.run=r1": true});
    for (url, expected) in [
        ("/containers/json?all=1", json!({"label": label})),
        ("/networks", json!({"label": label})),
        ("/volumes", json!({"label": label})),
        ("/events?since=1", json!({"label": label})),
        (
            r#"/containers/json?filters={"status":["running"],"label":["a=b"]}"#,
            json!({"status": {"running": true}, "label": {"a=b": true, "io.slipway.run=r1": true}}),
        ),
        (
            r#"/events?filters={"label":{"io.slipway.run=r2":true}}"#,
            json!({"label": {"io.slipway.run=r2": true, "io.slipway.run=r1": true}}),
        ),
        // The engine reads the first `filters`; the others are dropped.
        (
            r#"/containers/json?filters={"name":["x"]}&filters={}"#,
            json!({"name": {"x": true}, "label": label}),
        ),
    ] {
        let f = forwarded("GET", url, None);
        let filters: Vec<&str> = all(&f.query, "filters").collect();
        assert_eq!(filters.len(), 1, "{url}");
        assert_eq!(serde_json::from_str::<Value>(filters[0]).unwrap(), expected, "{url}");
    }
    let f = forwarded("GET", "/containers/json?all=1&filters=", None);
    assert_eq!(query(&f, "all").as_deref(), Some("1"));
}

#[test]
fn created_containers_carry_the_label_the_prefix_and_the_runs_network() {
    let f = forwarded(
        "POST",
        "/containers/create?name=web",
        Some(json!({"Image": "busybox", "Labels": {"io.slipway.run": "r2", "mine": "x"}})),
    );
    assert_eq!(query(&f, "name").as_deref(), Some("slipway-r1-web"));
    let body = json_body(&f);
    assert_eq!(body["Labels"], json!({"io.slipway.run": "r1", "mine": "x"}));
    assert_eq!(body["HostConfig"]["NetworkMode"], "acb_default_network_r1");

    let f = forwarded("POST", "/containers/create?name=slipway-r1-svc2", Some(json!({"Image": "b"})));
    assert_eq!(query(&f, "name").as_deref(), Some("slipway-r1-svc2"), "not prefixed twice");
    let f = forwarded("POST", "/containers/create", Some(json!({"Image": "b"})));
    assert_eq!(query(&f, "name"), None, "an unnamed container stays unnamed");

    // The engine takes host config from the top level too (when `HostConfig` is missing,
    // null, or for some fields beside it): refused, not read past the checks.
    for body in [
        json!({"Image": "b", "Privileged": true, "Binds": ["/:/host"]}),
        json!({"Image": "b", "HostConfig": null, "Privileged": true}),
        json!({"Image": "b", "HostConfig": {}, "VolumeDriver": "x"}),
    ] {
        match decide("POST", "/containers/create", Some(body.clone())) {
            Decision::Refuse(r) => assert!(r.status == 400 && r.message.contains("at the top level"), "{body}: {r:?}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    // Whatever case the client writes the key in.
    let body = created(json!({"Image": "b", "labels": {"a": "b"}, "hostconfig": {"networkmode": "bridge"}}));
    assert_eq!(body["labels"], json!({"a": "b", "io.slipway.run": "r1"}));
    assert_eq!(body["hostconfig"], json!({"networkmode": "acb_default_network_r1"}));
}

#[test]
fn network_modes_map_to_the_runs_networks() {
    for (mode, expected) in [
        ("", "acb_default_network_r1"),
        ("default", "acb_default_network_r1"),
        ("bridge", "acb_default_network_r1"),
        ("none", "none"),
        ("acb_default_network", "acb_default_network_r1"),
        ("acb_default_network_r1", "acb_default_network_r1"),
        ("mynet", "mynet_r1"),
        ("labelled_net", "labelled_net"),
        ("container:svc", "container:aaa"),
    ] {
        assert_eq!(created_host(json!({"NetworkMode": mode}))["NetworkMode"], expected, "{mode}");
    }
    let without_default = Scope {
        default_network: None,
        ..scope()
    };
    let Decision::Forward(f) = decide_with(
        without_default,
        "POST",
        "/containers/create",
        Some(json!({"HostConfig": {"NetworkMode": "default"}})),
    ) else {
        panic!()
    };
    assert_eq!(json_body(&f)["HostConfig"]["NetworkMode"], "default");

    let host = created_host(json!({"NetworkMode": "mynet"}));
    assert_eq!(host["NetworkMode"], "mynet_r1");
    let body = created(json!({
        "Image": "b",
        "HostConfig": {"NetworkMode": "acb_default_network"},
        "NetworkingConfig": {"EndpointsConfig": {"acb_default_network": {"Aliases": ["web"], "Links": ["svc:db"]}}}
    }));
    assert_eq!(
        body["NetworkingConfig"]["EndpointsConfig"],
        json!({"acb_default_network_r1": {"Aliases": ["web"], "Links": ["slipway-r1-svc:db"]}})
    );

    let f = forwarded("POST", "/build?networkmode=mynet&t=x", None);
    assert_eq!(query(&f, "networkmode").as_deref(), Some("mynet_r1"));
    assert_eq!(query(&f, "t").as_deref(), Some("x"));
}

#[test]
fn binds_and_mounts_stay_in_the_workspace_and_the_runs_volumes() {
    let host = created_host(json!({"Binds": [
        "/workspace:/src",
        "/workspace/:/w:ro",
        "/workspace/./:/w2",
        "v1:/data",
        "v1_r1:/data2:ro",
        "shared_r1:/shared",
        "labelled_vol:/l",
        "/anonymous",
        "/var/run/docker.sock:/var/run/docker.sock",
    ]}));
    assert_eq!(
        host["Binds"],
        json!([
            "/ws:/src",
            "/ws:/w:ro",
            "/ws:/w2",
            "v1_r1:/data",
            "v1_r1:/data2:ro",
            "shared_r1:/shared",
            "labelled_vol:/l",
            "/anonymous",
            "/run/slipway/r1.sock:/var/run/docker.sock",
        ])
    );
    let host = created_host(json!({"Mounts": [
        {"Type": "bind", "Source": "/workspace", "Target": "/w"},
        {"type": "volume", "source": "v1", "target": "/v"},
        {"Type": "volume", "Target": "/anon"},
        {"Type": "tmpfs", "Target": "/t"},
    ]}));
    assert_eq!(
        host["Mounts"],
        json!([
            {"Type": "bind", "Source": "/ws", "Target": "/w"},
            {"type": "volume", "source": "v1_r1", "target": "/v"},
            {"Type": "volume", "Target": "/anon"},
            {"Type": "tmpfs", "Target": "/t"},
        ])
    );

    // A volume the engine does not have is created for the run, as the engine would.
    let f = forwarded("POST", "/containers/create", Some(json!({"HostConfig": {"Binds": ["fresh:/f"]}})));
    assert_eq!(json_body(&f)["HostConfig"]["Binds"], json!(["fresh_r1:/f"]));
    assert_eq!(
        f.before,
        vec![Before::CreateVolume {
            client: "fresh".into(),
            engine: "fresh_r1".into()
        }]
    );
}

#[test]
fn containers_refer_to_the_runs_containers_only() {
    let host = created_host(json!({
        "VolumesFrom": ["svc:ro", "slipway-r1-svc"],
        "Links": ["svc", "/svc:/me/db"],
        "PidMode": "container:svc",
        "IpcMode": "container:slipway-r1-svc",
    }));
    assert_eq!(host["VolumesFrom"], json!(["aaa:ro", "aaa"]));
    assert_eq!(host["Links"], json!(["slipway-r1-svc:svc", "slipway-r1-svc:db"]));
    assert_eq!(host["PidMode"], "container:aaa");
    assert_eq!(host["IpcMode"], "container:aaa");
}

#[test]
fn published_ports_stay_on_loopback() {
    let host = created_host(json!({"PortBindings": {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostPort": "8081"}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}, {"HostIp": "::1", "HostPort": "9001"}],
        "82/tcp": null,
    }}));
    assert_eq!(
        host["PortBindings"],
        json!({
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}],
            "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}, {"HostIp": "::1", "HostPort": "9001"}],
            "82/tcp": null,
        })
    );
    let public = Scope {
        allow_public_ports: true,
        ..scope()
    };
    let body = json!({"HostConfig": {"PublishAllPorts": true, "PortBindings": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}]}}});
    let Decision::Forward(f) = decide_with(public, "POST", "/containers/create", Some(body)) else {
        panic!("allow_public_ports allows them")
    };
    assert_eq!(json_body(&f)["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"], "0.0.0.0");
}

#[test]
fn dangerous_container_configs_are_refused() {
    let cases: &[(Value, u16, &str)] = &[
        (
            json!({"Privileged": true}),
            403,
            "privileged mode (--privileged) is not allowed in this run (the operator setting allow_privileged allows it)",
        ),
        (json!({"privileged": true}), 403, "allow_privileged"),
        (json!({"Privileged": false, "privileged": true}), 400, "names one field twice"),
        (json!({"Privileged": "yes"}), 403, "allow_privileged"),
        (json!({"CapAdd": ["SYS_ADMIN"]}), 403, "adding capabilities (--cap-add SYS_ADMIN)"),
        (json!({"CapAdd": "NET_ADMIN"}), 403, "NET_ADMIN"),
        (json!({"Capabilities": ["CAP_SYS_ADMIN"]}), 403, "Capabilities"),
        (
            json!({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}]}),
            403,
            "host devices (--device)",
        ),
        (json!({"DeviceRequests": [{"Count": -1}]}), 403, "device requests"),
        (json!({"DeviceCgroupRules": ["c *:* rwm"]}), 403, "device cgroup rules"),
        (
            json!({"SecurityOpt": ["seccomp=unconfined"]}),
            403,
            "security options (--security-opt seccomp=unconfined)",
        ),
        (
            json!({"SecurityOpt": ["no-new-privileges", "apparmor=unconfined"]}),
            403,
            "apparmor=unconfined",
        ),
        (json!({"Sysctls": {"kernel.core_pattern": "|/x"}}), 403, "sysctls"),
        (json!({"CgroupParent": "/"}), 403, "cgroup parent"),
        (json!({"Runtime": "nvidia"}), 403, "runtime nvidia"),
        (json!({"ReadonlyPaths": []}), 403, "ReadonlyPaths"),
        (json!({"MaskedPaths": []}), 403, "MaskedPaths"),
        (json!({"PidMode": "host"}), 403, "--pid host (PidMode) is not allowed"),
        (json!({"IpcMode": "host"}), 403, "--ipc host"),
        (json!({"UTSMode": "host"}), 403, "--uts host"),
        (json!({"UsernsMode": "host"}), 403, "--userns host"),
        (json!({"CgroupnsMode": "host"}), 403, "--cgroupns host"),
        (json!({"PidMode": "container:other"}), 403, "no such container in this run: other"),
        (json!({"PublishAllPorts": true}), 403, "allow_public_ports"),
        (
            json!({"PortBindings": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}}),
            403,
            "publishing port 80/tcp on 0.0.0.0 is not allowed in this run (the operator setting allow_public_ports allows it)",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]}}),
            403,
            "allow_public_ports",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostIp": "::ffff:0.0.0.0", "HostPort": "8080"}]}}),
            403,
            "allow_public_ports",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostIp": "10.1.2.3", "HostPort": "8080"}]}}),
            403,
            "allow_public_ports",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostIp": "localhost", "HostPort": "8080"}]}}),
            400,
            "invalid host address",
        ),
        (
            json!({"NetworkMode": "host"}),
            403,
            "the host network (--network host) is not allowed in this run (the operator setting allow_host_network allows it)",
        ),
        (json!({"NetworkMode": "HOST"}), 403, "allow_host_network"),
        (json!({"NetworkMode": "theirs"}), 403, "network theirs does not belong to this run"),
        (
            json!({"NetworkMode": "nowhere"}),
            403,
            "network nowhere does not belong to this run",
        ),
        (
            json!({"NetworkMode": "container:other"}),
            403,
            "no such container in this run: other",
        ),
        (
            json!({"LogConfig": {"Type": "syslog", "Config": {"syslog-address": "tcp://10.0.0.1:514"}}}),
            403,
            "log driver syslog",
        ),
        (json!({"VolumeDriver": "convoy"}), 403, "volume driver convoy"),
        (
            json!({"Binds": ["/:/host"]}),
            403,
            "host path / cannot be mounted in this run: only /workspace and paths beneath it can",
        ),
        (json!({"Binds": ["/etc:/x:ro"]}), 403, "host path /etc cannot be mounted"),
        (json!({"Binds": ["/workspacex:/x"]}), 403, "host path /workspacex cannot be mounted"),
        (json!({"Binds": ["/workspace/../etc:/x"]}), 403, "`..` is not allowed"),
        (json!({"Binds": ["/workspace/link:/x"]}), 403, "only /workspace itself can"),
        (json!({"Binds": ["theirs:/x"]}), 403, "volume theirs does not belong to this run"),
        (json!({"Binds": ["../x:/x"]}), 400, "invalid volume name"),
        (json!({"Binds": ["a:b:c:d"]}), 400, "invalid bind"),
        (json!({"Binds": "/:/host"}), 400, "Binds must be a list"),
        (
            json!({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}),
            403,
            "host path /etc",
        ),
        (
            json!({"Mounts": [{"Type": "bind", "Source": "etc", "Target": "/x"}]}),
            400,
            "absolute",
        ),
        (
            json!({"Mounts": [{"Type": "volume", "Source": "x", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]}),
            403,
            "volume driver config",
        ),
        (
            json!({"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]}),
            403,
            "mounts of type \"npipe\"",
        ),
        (
            json!({"Mounts": [{"Type": "volume", "Source": "theirs", "Target": "/x"}]}),
            403,
            "volume theirs does not belong",
        ),
        (json!({"VolumesFrom": ["other"]}), 403, "no such container in this run: other"),
        (
            json!({"Links": ["slipway-r2-svc:db"]}),
            403,
            "no such container in this run: slipway-r2-svc",
        ),
    ];
    for (host, status, message) in cases {
        let body = json!({"Image": "busybox", "HostConfig": host});
        match decide("POST", "/containers/create", Some(body)) {
            Decision::Refuse(r) => {
                assert_eq!(r.status, *status, "{host}: {}", r.message);
                assert!(r.message.contains(message), "{host}: {:?} lacks {message:?}", r.message);
            }
            other => panic!("{host}: expected a refusal, got {other:?}"),
        }
    }
    let Decision::Refuse(r) = decide("POST", "/containers/create", Some(json!("x"))) else {
        panic!()
    };
    assert_eq!(r.status, 400);
    let Decision::Refuse(r) = decide("POST", "/containers/create", Some(json!({"HostConfig": []}))) else {
        panic!()
    };
    assert_eq!(r.status, 400);
}

#[test]
fn operator_settings_lift_their_refusals() {
    let lenient = Scope {
        allow_privileged: true,
        allow_host_network: true,
        allow_public_ports: true,
        ..scope()
    };
    let body = json!({"HostConfig": {"Privileged": true, "NetworkMode": "host", "PublishAllPorts": true}});
    assert!(matches!(
        decide_with(lenient.clone(), "POST", "/containers/create", Some(body)),
        Decision::Forward(_)
    ));
    let exec = json!({"Cmd": ["sh"], "Privileged": true});
    assert!(matches!(
        decide_with(lenient, "POST", "/containers/svc/exec", Some(exec)),
        Decision::Forward(_)
    ));
    let host = created_host(json!({"SecurityOpt": ["no-new-privileges"], "CapDrop": ["ALL"]}));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
}

#[test]
fn execs_are_remembered_and_only_theirs_are_reachable() {
    let f = forwarded(
        "POST",
        "/containers/svc/exec",
        Some(json!({"Cmd": ["echo", "x"], "AttachStdout": true})),
    );
    assert_eq!(f.path, "/containers/aaa/exec");
    assert_eq!(f.after, After::Exec);
    assert_eq!(json_body(&f), &json!({"Cmd": ["echo", "x"], "AttachStdout": true}));
}

#[test]
fn networks_are_created_for_the_run_under_its_names() {
    let f = forwarded(
        "POST",
        "/networks/create",
        Some(
            json!({"Name": "backend", "Driver": "bridge", "CheckDuplicate": true, "Options": {}, "IPAM": {"Driver": "default", "Config": [], "Options": {}}}),
        ),
    );
    let body = json_body(&f);
    assert_eq!(body["Name"], "backend_r1");
    assert_eq!(body["Labels"], json!({"io.slipway.run": "r1"}));
    assert_eq!(
        f.after,
        After::Network {
            client: "backend".into(),
            engine: "backend_r1".into()
        }
    );

    for (body, message) in [
        (
            json!({"Name": "n", "Driver": "macvlan", "Options": {"parent": "eth0"}}),
            "network driver macvlan is not available",
        ),
        (json!({"Name": "n", "Driver": "ipvlan"}), "ipvlan"),
        (json!({"Name": "n", "Driver": "host"}), "network driver host"),
        (json!({"Name": "n", "Driver": "overlay"}), "network driver overlay"),
        (
            json!({"Name": "n", "Options": {"com.docker.network.bridge.name": "docker0"}}),
            "network option com.docker.network.bridge.name",
        ),
        (json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/8"}]}}), "subnet"),
        (json!({"Name": "n", "IPAM": {"Driver": "custom"}}), "IPAM drivers"),
        (json!({"Name": "n", "ConfigFrom": {"Network": "macvlan-config"}}), "ConfigFrom"),
        (json!({"Name": "n", "Ingress": true}), "Ingress"),
    ] {
        let Decision::Refuse(r) = decide("POST", "/networks/create", Some(body.clone())) else {
            panic!("{body}: expected a refusal")
        };
        assert!(r.message.contains(message), "{body}: {}", r.message);
    }

    assert_eq!(forwarded("GET", "/networks/mynet", None).path, "/networks/mynet_r1");
    assert_eq!(forwarded("GET", "/networks/labelled_net", None).path, "/networks/labelled_net");
    let removed = forwarded("DELETE", "/networks/acb_default_network", None);
    assert_eq!(removed.path, "/networks/acb_default_network_r1");
    assert_eq!(removed.after, After::ForgetNetwork("acb_default_network_r1".into()));

    let connect = forwarded(
        "POST",
        "/networks/mynet/connect",
        Some(json!({"Container": "svc", "EndpointConfig": {"Aliases": ["a"]}})),
    );
    assert_eq!(connect.path, "/networks/mynet_r1/connect");
    assert_eq!(json_body(&connect)["Container"], "aaa");
}

#[test]
fn volumes_are_created_for_the_run_under_its_names() {
    let f = forwarded(
        "POST",
        "/volumes/create",
        Some(json!({"Name": "cache", "Driver": "local", "DriverOpts": {}, "Labels": {}})),
    );
    assert_eq!(json_body(&f)["Name"], "cache_r1");
    assert_eq!(json_body(&f)["Labels"], json!({"io.slipway.run": "r1"}));
    assert_eq!(f.after, After::Volume { client: "cache".into() });

    let anonymous = forwarded("POST", "/volumes/create", Some(json!({})));
    assert_eq!(json_body(&anonymous), &json!({"Labels": {"io.slipway.run": "r1"}}));

    for (body, message) in [
        (
            json!({"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/"}}),
            "volume driver options (device=/,o=bind,type=none) are not allowed in this run",
        ),
        (json!({"Name": "v", "driveropts": {"device": "/"}}), "volume driver options"),
        (json!({"Name": "v", "Driver": "nfs"}), "volume driver nfs is not available"),
    ] {
        let Decision::Refuse(r) = decide("POST", "/volumes/create", Some(body.clone())) else {
            panic!("{body}: expected a refusal")
        };
        assert!(r.message.contains(message), "{body}: {}", r.message);
    }

    assert_eq!(forwarded("GET", "/volumes/v1", None).path, "/volumes/v1_r1");
    assert_eq!(forwarded("GET", "/volumes/labelled_vol", None).path, "/volumes/labelled_vol");
    let removed = forwarded("DELETE", "/volumes/shared_r1", None);
    assert_eq!(removed.after, After::ForgetVolume("shared_r1".into()));
}

#[test]
fn state_remembers_what_responses_tell() {
    let mut state = State::default();
    state.remember(&After::Exec, Some(&json!({"Id": "e9"})));
    state.remember(
        &After::Network {
            client: "n".into(),
            engine: "n_r1".into(),
        },
        Some(&json!({"Id": "x"})),
    );
    state.remember(&After::Volume { client: "v".into() }, Some(&json!({"Name": "v_r1"})));
    state.remember(&After::Volume { client: "".into() }, Some(&json!({"Name": "0123abcd"})));
    assert!(state.execs.contains("e9"));
    assert_eq!(state.network("n"), Some("n_r1"));
    assert_eq!(state.network("n_r1"), Some("n_r1"));
    assert_eq!(state.volume("v"), Some("v_r1"));
    assert_eq!(state.volume("0123abcd"), Some("0123abcd"));
    state.remember(&After::ForgetNetwork("n_r1".into()), None);
    state.remember(&After::ForgetVolume("v_r1".into()), None);
    assert_eq!(state.network("n"), None);
    assert_eq!(state.volume("v"), None);
}

#[test]
fn a_trusted_host_passes_host_access_but_keeps_names_and_labels() {
    let trusted = Scope {
        trust_host: true,
        allow_privileged: true,
        allow_host_network: true,
        allow_public_ports: true,
        ..scope()
    };
    let body = json!({"HostConfig": {
        "Binds": ["/etc:/host:ro"], "Privileged": true, "CapAdd": ["SYS_ADMIN"], "PidMode": "host",
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x"}]
    }});
    let Decision::Forward(f) = decide_with(trusted, "POST", "/containers/create?name=svc", Some(body)) else {
        panic!("a trusted host's create is forwarded");
    };
    let Body::Json(sent) = &f.body else { panic!("a JSON body") };
    assert_eq!(sent["HostConfig"]["Binds"], json!(["/etc:/host:ro"]));
    assert!(sent["Labels"].as_object().is_some_and(|l| !l.is_empty()), "still labelled: {sent}");
    assert!(
        f.query.iter().any(|(k, v)| k == "name" && v.ends_with("svc") && v != "svc"),
        "{:?}",
        f.query
    );
    // Without trust the same body is refused.
    let body = json!({"HostConfig": {"Binds": ["/etc:/host:ro"]}});
    assert!(!matches!(
        decide_with(scope(), "POST", "/containers/create", Some(body)),
        Decision::Forward(_)
    ));
}

#[test]
fn a_runs_images_are_its_own_names() {
    // A name the step uses means the run's image of that name, or what it pulled.
    let c = json_body(&scoped_forward("POST", "/containers/create", Some(json!({"Image": "app"})))).clone();
    assert_eq!(c["Image"], OWN_APP);
    let c = json_body(&scoped_forward(
        "POST",
        "/containers/create",
        Some(json!({"Image": "slipway-busybox"})),
    ))
    .clone();
    assert_eq!(
        c["Image"], "slipway.invalid/r1/docker.io/library/slipway-busybox:latest",
        "the operator's, pinned"
    );
    let c = json_body(&scoped_forward(
        "POST",
        "/containers/create",
        Some(json!({"Image": "127.0.0.1:5000/base:1"})),
    ))
    .clone();
    assert_eq!(
        c["Image"],
        format!("127.0.0.1:5000/base@sha256:{}", "b".repeat(64)),
        "what it pulled, by digest"
    );
    // What it has not: 404, so the CLI pulls it; another run's: refused.
    for (image, status, text) in [
        ("busybox", 404, "No such image: busybox"),
        ("slipway.invalid/r2/docker.io/library/app:latest", 403, "another run's image"),
        ("0123456789ab", 404, "No such image"),
    ] {
        match scoped_decision("POST", "/containers/create", Some(json!({ "Image": image }))) {
            Decision::Refuse(r) => assert!(r.status == status && r.message.contains(text), "{image}: {r:?}"),
            other => panic!("{image}: {other:?}"),
        }
    }
    // Names the step makes land in its namespace.
    let f = scoped_forward("POST", "/images/app/tag?repo=127.0.0.1:5000/team-a/app&tag=2", None);
    assert_eq!(f.path, format!("/images/{OWN_APP}/tag"));
    assert_eq!(
        (query(&f, "repo").unwrap(), query(&f, "tag").unwrap()),
        ("slipway.invalid/r1/127.0.0.1_5000/team-a/app".to_string(), "2".to_string())
    );
    let f = scoped_forward("POST", "/images/create?fromSrc=-&repo=imported&tag=1", None);
    assert_eq!(query(&f, "repo").unwrap(), "slipway.invalid/r1/docker.io/library/imported");
    assert!(f.query.iter().any(|(k, v)| k == "changes" && v == "LABEL io.slipway.run=r1"));
    let f = scoped_forward("POST", "/commit?container=svc&repo=snap", None);
    assert_eq!(query(&f, "repo").unwrap(), "slipway.invalid/r1/docker.io/library/snap");
    assert_eq!(scoped_forward("POST", "/images/load", None).body, Body::LoadTar);
}

#[test]
fn pulls_are_by_digest_and_pushes_only_where_the_tenant_may() {
    let f = scoped_forward("POST", "/images/create?fromImage=alpine&tag=3", None);
    let digest = format!("sha256:{}", "a".repeat(64));
    assert_eq!(
        (query(&f, "fromImage").unwrap(), query(&f, "tag").unwrap()),
        ("docker.io/library/alpine".to_string(), digest.clone())
    );
    assert_eq!(
        f.before,
        [Before::Remember {
            client: "docker.io/library/alpine:3".into(),
            engine: format!("docker.io/library/alpine@{digest}")
        }]
    );
    match scoped_decision("POST", "/images/create?fromImage=127.0.0.1:5000/private&tag=1", None) {
        Decision::Refuse(r) => assert!(r.message.contains("401"), "{r:?}"),
        other => panic!("{other:?}"),
    }
    // A push names the image for its length only, where the tenant owns the repository.
    let f = scoped_forward("POST", "/images/127.0.0.1:5000/team-a/app/push?tag=1", None);
    assert_eq!(
        f.before,
        [Before::Tag {
            source: "slipway.invalid/r1/127.0.0.1_5000/team-a/app:1".into(),
            target: "127.0.0.1:5000/team-a/app:1".into()
        }]
    );
    assert_eq!(f.finally, [Finally::Untag("127.0.0.1:5000/team-a/app:1".into())]);
    for (url, status, text) in [
        (
            "/images/127.0.0.1:5000/team-b/app/push?tag=1",
            403,
            "may not push to 127.0.0.1:5000/team-b/app",
        ),
        ("/images/127.0.0.1:5000/team-a/app/push?tag=2", 404, "No such image"),
        ("/images/slipway-busybox/push?tag=latest", 403, "one of the operator's images"),
    ] {
        match scoped_decision("POST", url, None) {
            Decision::Refuse(r) => assert!(r.status == status && r.message.contains(text), "{url}: {r:?}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn proxied_builds_are_the_runs_and_leave_nothing() {
    let f = scoped_forward(
        "POST",
        "/build?t=app:2&t=127.0.0.1:5000/team-a/x&rm=0&forcerm=0&pull=1&labels=%7B%22a%22%3A%22b%22%7D",
        None,
    );
    let ts: Vec<&str> = f.query.iter().filter(|(k, _)| k == "t").map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        ts,
        [
            "slipway.invalid/r1/docker.io/library/app:2",
            "slipway.invalid/r1/127.0.0.1_5000/team-a/x:latest"
        ]
    );
    assert_eq!(
        (query(&f, "rm").as_deref(), query(&f, "forcerm").as_deref(), query(&f, "pull")),
        (Some("1"), Some("1"), None)
    );
    let labels: Value = serde_json::from_str(&query(&f, "labels").unwrap()).unwrap();
    assert_eq!(labels, json!({"a": "b", "io.slipway.run": "r1"}));
    assert_eq!(
        f.body,
        Body::BuildTar {
            dockerfile: "Dockerfile".into()
        }
    );
}

#[test]
fn host_config_cannot_come_in_sideways() {
    for (body, status, text) in [
        (
            json!({"Image": "app", "VolumeDriver": "evil"}),
            400,
            "VolumeDriver at the top level",
        ),
        (json!({"Image": "app", "memory": 1}), 400, "Memory at the top level"),
        (json!({"Image": "app", "HostConfig": {"OomScoreAdj": -500}}), 403, "OomScoreAdj"),
        (
            json!({"Image": "app", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": -1, "Hard": -1}]}}),
            403,
            "--ulimit nofile",
        ),
        (
            json!({"Image": "app", "HostConfig": {"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}}),
            400,
            "unknown ulimit",
        ),
    ] {
        match scoped_decision("POST", "/containers/create", Some(body.clone())) {
            Decision::Refuse(r) => assert!(r.status == status && r.message.contains(text), "{body}: {r:?}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    let c = json_body(&scoped_forward(
        "POST",
        "/containers/create",
        Some(json!({"Image": "app", "HostConfig": {"CapDrop": ["CHOWN"], "Ulimits": [{"Name": "nofile", "Soft": 64, "Hard": 64}]}})),
    ))
    .clone();
    assert_eq!(c["HostConfig"]["CapDrop"], json!(["CHOWN", "MKNOD", "NET_RAW"]));
}

#[test]
fn image_answers_show_only_the_runs() {
    let policy = Policy::new(scoped(), "/s".into());
    let pulled = state().pulled;
    let list = json!([
        {"Id": "own", "RepoTags": [OWN_APP], "RepoDigests": [], "Labels": {}},
        {"Id": "pinned", "RepoTags": ["slipway.invalid/r1/docker.io/library/slipway-busybox:latest", "slipway-busybox:latest"], "RepoDigests": []},
        {"Id": "theirs", "RepoTags": ["slipway.invalid/r2/docker.io/library/app:latest"], "RepoDigests": []},
        {"Id": "operators", "RepoTags": ["slipway-busybox:latest"], "RepoDigests": []},
        {"Id": "pulled", "RepoTags": [], "RepoDigests": [format!("127.0.0.1:5000/base@sha256:{}", "b".repeat(64)), "127.0.0.1:5000/other@sha256:1"]},
        {"Id": "dangling", "RepoTags": [], "RepoDigests": [], "Labels": {"io.slipway.run": "r1"}},
    ]);
    let shown = policy.image_list(&pulled, list.clone(), &[]);
    let summary: Vec<(String, Value, Value)> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Id"].as_str().unwrap().to_string(),
                i["RepoTags"].clone(),
                i["RepoDigests"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("own".to_string(), json!(["app:latest"]), json!([])),
            ("pinned".to_string(), json!(["slipway-busybox:latest"]), json!([])),
            (
                "pulled".to_string(),
                json!(["127.0.0.1:5000/base:1"]),
                json!([format!("127.0.0.1:5000/base@sha256:{}", "b".repeat(64))])
            ),
            ("dangling".to_string(), json!([]), json!([])),
        ]
    );
    let filtered = policy.image_list(&pulled, list, &["app".to_string()]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let history = policy.image_history(
        &pulled,
        json!([{"Tags": [OWN_APP, "slipway.invalid/r2/docker.io/library/x:1"]}, {"Tags": null}]),
    );
    assert_eq!(history, json!([{"Tags": ["app:latest"]}, {"Tags": null}]));
}

#[test]
fn what_the_engine_looks_up_among_everyones_images_is_refused() {
    let a = "a".repeat(64);
    // A pull by digest asks the registry too: the engine would hand out another run's pull.
    let f = scoped_forward("POST", &format!("/images/create?fromImage=alpine&tag=sha256:{a}"), None);
    assert_eq!(query(&f, "tag").unwrap(), format!("sha256:{a}"));
    for (method, url, status, text) in [
        (
            "POST",
            format!(
                "/images/create?fromImage=127.0.0.1:5000/team-b/secret&tag=sha256:{}",
                "c".repeat(64)
            ),
            404,
            "may not read".to_string(),
        ),
        // The engine pulls when both are given.
        (
            "POST",
            "/images/create?fromSrc=-&fromImage=slipway-busybox&tag=latest".to_string(),
            400,
            "fromSrc and fromImage".to_string(),
        ),
        (
            "GET",
            "/images/json?filters=%7B%22since%22%3A%5B%22slipway.invalid%2Fr2%2Fx%22%5D%7D".to_string(),
            403,
            "since filter".to_string(),
        ),
        (
            "GET",
            "/containers/json?filters=%7B%22ancestor%22%3A%5B%22theirs%22%5D%7D".to_string(),
            403,
            "ancestor filter".to_string(),
        ),
        (
            "GET",
            "/distribution/127.0.0.1:5000/team-b/secret/json".to_string(),
            403,
            "/distribution".to_string(),
        ),
        // Another run may be using the registry's image this one pulled.
        (
            "DELETE",
            "/images/127.0.0.1:5000/base:1".to_string(),
            403,
            "a registry's image".to_string(),
        ),
        (
            "POST",
            "/build?ulimits=%5B%7B%22NAME%22%3A%22nofile%22%2C%22SOFT%22%3A-1%2C%22HARD%22%3A-1%7D%5D".to_string(),
            403,
            "--ulimit nofile".to_string(),
        ),
        ("POST", "/containers/create".to_string(), 400, "names one field twice".to_string()),
    ] {
        let body = (url == "/containers/create")
            .then(|| json!({"Image": "app", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1, "soft": -1}]}}));
        match scoped_decision(method, &url, body) {
            Decision::Refuse(r) => assert!(r.status == status && r.message.contains(&text), "{url}: {r:?}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn step_sizes_get_the_defaults_and_stay_within_the_most() {
    let limited = Scope {
        step_limits: Some(slipway_limits::StepLimits::default()),
        ..scope()
    };
    let forward = |method: &str, url: &str, body: Option<Value>| match decide_with(limited.clone(), method, url, body) {
        Decision::Forward(f) => f,
        other => panic!("{method} {url}: expected a forward, got {other:?}"),
    };
    let create = |host: Value| {
        json_body(&forward(
            "POST",
            "/containers/create",
            Some(json!({"Image": "busybox", "HostConfig": host})),
        ))["HostConfig"]
            .clone()
    };
    // Asking for nothing, or Docker's "0"/"-1" for none, gets the defaults.
    for host in [json!({}), json!({"Memory": 0, "PidsLimit": -1, "ShmSize": 0})] {
        let h = create(host);
        assert_eq!(
            (h["Memory"].clone(), h["PidsLimit"].clone(), h["ShmSize"].clone()),
            (json!(4u64 << 30), json!(1024), json!(64u64 << 20))
        );
    }
    let h = create(json!({"Memory": 1 << 30, "MemorySwap": 2u64 << 30, "PidsLimit": 50, "Tmpfs": {"/t": "rw,size=1g"}}));
    assert_eq!((h["Memory"].clone(), h["PidsLimit"].clone()), (json!(1 << 30), json!(50)));
    assert_eq!(h["Tmpfs"]["/t"], json!(format!("rw,size={}", 1u64 << 30)));
    assert_eq!(
        create(json!({"Tmpfs": {"/t": ""}}))["Tmpfs"]["/t"],
        json!(format!("size={}", 256u64 << 20))
    );
    let logs = json!({"Type": "local", "Config": {"max-size": (50u64 << 20).to_string(), "max-file": "3"}});
    assert_eq!(create(json!({}))["LogConfig"], logs);
    assert_eq!(
        create(json!({"LogConfig": {"Type": "json-file", "Config": {"max-size": "100g"}}}))["LogConfig"],
        logs
    );
    assert_eq!(create(json!({"LogConfig": {"Type": "none"}}))["LogConfig"], json!({"Type": "none"}));
    let b = forward("POST", "/build?t=x&memory=0", None);
    assert_eq!(
        (query(&b, "memory"), query(&b, "shmsize")),
        (Some((4u64 << 30).to_string()), Some((64u64 << 20).to_string()))
    );
    let b = forward("POST", "/build?t=x&memory=1000000&shmsize=2000000", None);
    assert_eq!(
        (query(&b, "memory"), query(&b, "shmsize")),
        (Some("1000000".into()), Some("2000000".into()))
    );

    for (url, body, words) in [
        (
            "/containers/create",
            Some(json!({"HostConfig": {"Memory": 17u64 << 30}})),
            "memory of 17 GiB asked for; this daemon allows at most 16 GiB",
        ),
        (
            "/containers/create",
            Some(json!({"HostConfig": {"MemorySwap": -1}})),
            "MemorySwap (--memory-swap) of -1",
        ),
        (
            "/containers/create",
            Some(json!({"HostConfig": {"PidsLimit": 5000}})),
            "processes of 5000 asked for; this daemon allows at most 4096",
        ),
        (
            "/containers/create",
            Some(json!({"HostConfig": {"ShmSize": 50u64 << 30}})),
            "a /dev/shm of 50 GiB",
        ),
        (
            "/containers/create",
            Some(json!({"HostConfig": {"Tmpfs": {"/t": "size=100g"}}})),
            "a tmpfs at /t of 100 GiB",
        ),
        (
            "/containers/create",
            Some(json!({"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"SizeBytes": 3u64 << 30}}]}})),
            "a tmpfs at /m of 3 GiB",
        ),
        ("/build?memory=20000000000", None, "a build's memory (--memory) of 18.6 GiB"),
        ("/build?memswap=-1", None, "a build's memswap (--memory-swap) of -1"),
        ("/build?shmsize=9999999999", None, "a build's /dev/shm (--shm-size) of 9.3 GiB"),
        ("/build?memory=lots", None, "memory= must be a whole number of bytes"),
    ] {
        match decide_with(limited.clone(), "POST", url, body) {
            Decision::Refuse(r) => assert!(r.message.contains(words), "{url}: {}", r.message),
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }
}
