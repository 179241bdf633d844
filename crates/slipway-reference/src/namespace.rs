//! A run's own image names in an engine that many runs share.
//!
//! An engine has one image namespace: a name one run tags is the name every other run
//! reads. So an image a run makes is named, in the engine, inside the run's own
//! namespace: `slipway.invalid/<run id>/<registry>/<repository>:<tag>`, the registry's
//! port colon written `_` (`127.0.0.1:5000` → `127.0.0.1_5000`). The host is in the
//! `.invalid` domain, which never resolves, so such a name cannot be pushed by mistake.
//! The mapping is a function of the run id and the name, so everything that acts for
//! the run (the runner, the run's engine proxy) finds the same engine name without
//! sharing state, and the name reads back into the one the run used.
//!
//! ```
//! use slipway_reference::{namespace, Reference};
//! let app = Reference::parse("127.0.0.1:5000/team-a/app:1").unwrap();
//! let local = namespace::in_run("swabc12345", &app).unwrap();
//! assert_eq!(local, "slipway.invalid/swabc12345/127.0.0.1_5000/team-a/app:1");
//! let (run, back) = namespace::run_of(&local).unwrap();
//! assert_eq!((run.as_str(), back.to_string()), ("swabc12345", app.to_string()));
//! ```

use crate::Reference;

/// The registry host of every run's own image names.
pub const HOST: &str = "slipway.invalid";

/// The engine name `reference` has in run `run_id`'s namespace (tag kept, digest
/// dropped: a digest names content, which needs no namespace). `None` when the name
/// cannot be carried (an IPv6 registry address).
pub fn in_run(run_id: &str, reference: &Reference) -> Option<String> {
    if reference.registry.starts_with('[') {
        return None;
    }
    let registry = reference.registry.to_ascii_lowercase().replace(':', "_");
    let name = format!("{HOST}/{run_id}/{registry}/{}:{}", reference.repository, reference.tag());
    // The result must itself be a valid reference (length, characters).
    Reference::parse(&name).ok().map(|_| name)
}

/// The prefix every engine name of run `run_id`'s images starts with.
pub fn prefix(run_id: &str) -> String {
    format!("{HOST}/{run_id}/")
}

/// Whether `name` (as the engine or a client writes it) is in some run's namespace.
pub fn is_run_name(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with(&format!("{HOST}/"))
}

/// The run and the reference an engine name of a run's namespace stands for.
pub fn run_of(name: &str) -> Option<(String, Reference)> {
    let rest = name.strip_prefix(HOST)?.strip_prefix('/')?;
    let (run_id, rest) = rest.split_once('/')?;
    let (registry, repository) = rest.split_once('/')?;
    let registry = match registry.rsplit_once('_') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => format!("{host}:{port}"),
        _ => registry.to_string(),
    };
    let parsed = Reference::parse(&format!("{registry}/{repository}")).ok()?;
    Some((run_id.to_string(), parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for name in [
            "app",
            "app:v1",
            "team/app:2",
            "localhost:5000/a/b:c",
            "registry.example.com/x/y/z:latest",
            "127.0.0.1:5000/team-a/app:1",
        ] {
            let reference = r(name);
            let local = in_run("sw12345678", &reference).unwrap();
            assert!(local.starts_with(&prefix("sw12345678")), "{local}");
            assert!(is_run_name(&local));
            let (run, back) = run_of(&local).unwrap();
            assert_eq!((run.as_str(), back.to_string()), ("sw12345678", reference.to_string()), "{name}");
        }
    }

    #[test]
    fn a_digest_is_not_carried_and_ipv6_registries_cannot_be() {
        let d = format!("sha256:{}", "a".repeat(64));
        let local = in_run("sw1", &r(&format!("app:v1@{d}"))).unwrap();
        assert_eq!(local, "slipway.invalid/sw1/docker.io/library/app:v1");
        assert_eq!(in_run("sw1", &r("[::1]:5000/app")), None);
    }

    #[test]
    fn other_names_are_no_run_names() {
        assert!(!is_run_name("127.0.0.1:5000/app:1"));
        assert!(is_run_name("SLIPWAY.invalid/x/y"));
        assert_eq!(run_of("slipway.invalid/onlyrun"), None);
        assert_eq!(run_of("docker.io/library/app:latest"), None);
    }
}
