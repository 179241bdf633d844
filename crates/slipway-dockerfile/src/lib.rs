//! Which images a Dockerfile depends on, without building it.
//!
//! The runtime dependency is the origin of the final stage (or of `--target`),
//! followed through stage aliases; the buildtime dependencies are the origins of
//! the other stages and images named by `COPY --from=` or `RUN --mount=from=`.
//! `ARG` defaults are substituted into `FROM` (with `${V:-d}` and `${V:+a}`) and
//! `--build-arg` overrides them; `FROM --platform=…` is understood; `scratch` is no
//! dependency. This is what ACR records to rebuild images when a base changes.
//!
//! ```
//! let text = "ARG V=3.19\nFROM golang:1.22 AS build\nFROM alpine:${V}\nCOPY --from=build /x /x\n";
//! let deps = slipway_dockerfile::scan(text, &Default::default()).unwrap();
//! assert_eq!(deps.runtime.unwrap().to_string(), "docker.io/library/alpine:3.19");
//! assert_eq!(deps.buildtime[0].to_string(), "docker.io/library/golang:1.22");
//! ```

mod walk;

pub use walk::RemoteSource;

use slipway_reference::Reference;
use std::collections::{BTreeMap, BTreeSet};
use walk::Origin;

/// What a scan needs besides the Dockerfile text.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// `--build-arg` values; they override `ARG` defaults.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage that is built (the final one when unset).
    pub target: Option<String>,
    /// Arguments in scope without an `ARG`: BuildKit's platform arguments
    /// (`TARGETARCH`, `BUILDPLATFORM`…), usable in `FROM` lines.
    pub predefined: BTreeMap<String, String>,
}

/// The images a Dockerfile depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dependencies {
    /// The origin of the built stage; `None` when it is `scratch`.
    pub runtime: Option<Reference>,
    /// Other stages' origins and images copied from, sorted and without duplicates.
    pub buildtime: Vec<Reference>,
}

/// Why a Dockerfile could not be scanned; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct ScanError {
    pub line: usize,
    pub message: String,
}

/// The platform of this machine as BuildKit names it: `linux/amd64`, `linux/arm64`.
pub fn native_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

/// BuildKit's automatic platform arguments for a build of `target` (the native
/// platform when `None`) on this machine: `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`,
/// `TARGETVARIANT` and the same four for `BUILD`.
pub fn platform_args(target: Option<&str>) -> BTreeMap<String, String> {
    let native = native_platform();
    let mut args = BTreeMap::new();
    for (prefix, p) in [("TARGET", target.unwrap_or(&native)), ("BUILD", native.as_str())] {
        let mut parts = p.splitn(3, '/');
        args.insert(format!("{prefix}PLATFORM"), p.to_string());
        args.insert(format!("{prefix}OS"), parts.next().unwrap_or("linux").to_string());
        args.insert(format!("{prefix}ARCH"), parts.next().unwrap_or("").to_string());
        args.insert(format!("{prefix}VARIANT"), parts.next().unwrap_or("").to_string());
    }
    args
}

/// Scans Dockerfile `text`.
pub fn scan(text: &str, opts: &ScanOptions) -> Result<Dependencies, ScanError> {
    let w = walk::walk(without_bom(text), opts)?;
    if let Some(t) = &opts.target {
        if !w.target_found {
            return Err(ScanError {
                line: 0,
                message: format!("target stage {t:?} not found"),
            });
        }
    }
    let stages = &w.stages;
    let Some(last) = stages.len().checked_sub(1) else {
        return Err(ScanError {
            line: 0,
            message: "no FROM instruction".into(),
        });
    };
    // The built stage and the stages it builds on make the runtime chain.
    let mut chain = BTreeSet::new();
    let mut at = last;
    let runtime = loop {
        chain.insert(at);
        match &stages[at].origin {
            Origin::Image(r) => break Some(r.clone()),
            Origin::Scratch => break None,
            Origin::Stage(i) => at = *i,
        }
    };
    // Keyed by the normalised form, so `alpine` and `library/alpine:latest` are one image.
    let mut buildtime: BTreeMap<String, Reference> = w.copied.into_iter().map(|r| (r.to_string(), r)).collect();
    for (i, stage) in stages.iter().enumerate() {
        if let (false, Origin::Image(r)) = (chain.contains(&i), &stage.origin) {
            buildtime.entry(r.to_string()).or_insert_with(|| r.clone());
        }
    }
    Ok(Dependencies {
        runtime,
        buildtime: buildtime.into_values().collect(),
    })
}

fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Every external image the Dockerfile names where the builder reads it (`FROM`,
/// `COPY --from=`, `RUN --mount=from=`), once each, in order.
pub fn image_references(text: &str, opts: &ScanOptions) -> Result<Vec<Reference>, ScanError> {
    let mut out: Vec<Reference> = Vec::new();
    for word in walk::walk(without_bom(text), opts)?.images {
        if !out.iter().any(|r| r.to_string() == word.reference.to_string()) {
            out.push(word.reference);
        }
    }
    Ok(out)
}

/// The Dockerfile with each external image replaced by what `replace` gives for it
/// (keyed by [`Reference`]'s normalised form; an image it does not list is left as it
/// is). Only those words change: every other byte, and so every line number, stays.
pub fn rewrite(text: &str, opts: &ScanOptions, replace: &BTreeMap<String, String>) -> Result<String, ScanError> {
    let text = without_bom(text);
    let w = walk::walk(text, opts)?;
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    // From the end of each line back, so earlier positions stay true.
    let mut edits: Vec<(walk::WordAt, String)> = w
        .images
        .into_iter()
        .filter_map(|word| {
            let new = replace.get(&word.reference.to_string())?;
            let text = match word.form {
                walk::Form::Bare => new.clone(),
                walk::Form::FromFlag => format!("--from={new}"),
                walk::Form::Mount(others) => {
                    let mut parts = others;
                    parts.push(format!("from={new}"));
                    format!("--mount={}", parts.join(","))
                }
            };
            Some((word.at, text))
        })
        .collect();
    edits.sort_by_key(|(at, _)| std::cmp::Reverse((at.line, at.start)));
    for (at, new) in edits {
        if let Some(line) = lines.get_mut(at.line) {
            line.replace_range(at.start..at.end, &new);
        }
    }
    Ok(lines.join("\n"))
}

/// What `ADD` and `COPY` fetch from URLs or git addresses, in every stage that is built.
pub fn remote_sources(text: &str, opts: &ScanOptions) -> Result<Vec<RemoteSource>, ScanError> {
    Ok(walk::walk(without_bom(text), opts)?.remote)
}

/// The Dockerfile with its `# syntax=` directive naming `frontend` instead (unchanged
/// without one).
pub fn with_frontend(text: &str, frontend_image: &str) -> String {
    let text = without_bom(text);
    let Some((line, _)) = frontend(text) else {
        return text.to_string();
    };
    text.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == line {
                format!("# syntax={frontend_image}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The images `ONBUILD` triggers copy from (`--from=`, `--mount=from=`), as written,
/// with their lines: the later build that runs a trigger reads them.
pub fn onbuild_images(text: &str, opts: &ScanOptions) -> Result<Vec<(usize, String)>, ScanError> {
    Ok(walk::walk(without_bom(text), opts)?.onbuild_images)
}

/// The Dockerfile with each `ADD` of a URL that `local` gives a path for (a file the
/// daemon fetched into the context) turned into a `COPY` of that path: the builder then
/// fetches nothing itself. An `ADD` that mixes URLs with files of the context, or
/// writes its sources as a JSON list, is refused: its meaning would change.
pub fn fetched_by_daemon(text: &str, opts: &ScanOptions, local: &dyn Fn(&RemoteSource) -> Option<String>) -> Result<String, ScanError> {
    let text = without_bom(text);
    let w = walk::walk(text, opts)?;
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut edits: Vec<(walk::WordAt, String)> = Vec::new();
    let mut keywords: Vec<walk::WordAt> = Vec::new();
    for r in w.remote.iter().filter(|r| !r.onbuild) {
        let Some(path) = local(r) else { continue };
        let (Some(keyword), Some(source)) = (r.keyword_at, r.source_at) else {
            return Err(ScanError {
                line: r.line,
                message: format!("ADD {}: write a URL's ADD as `ADD URL DEST`, not as a JSON list", r.written),
            });
        };
        let remote_here = w.remote.iter().filter(|x| x.keyword_at == r.keyword_at).count();
        if remote_here != r.sources {
            return Err(ScanError {
                line: r.line,
                message: format!("ADD {}: give a URL an ADD of its own, not one with files of the context", r.written),
            });
        }
        edits.push((source, path));
        if !keywords.contains(&keyword) {
            keywords.push(keyword);
            edits.push((keyword, "COPY".to_string()));
        }
    }
    edits.sort_by_key(|(at, _)| std::cmp::Reverse((at.line, at.start)));
    for (at, new) in edits {
        if let Some(line) = lines.get_mut(at.line) {
            line.replace_range(at.start..at.end, &new);
        }
    }
    Ok(lines.join("\n"))
}

/// The first of an image's `ONBUILD` triggers that fetches (`ADD URL`) or copies from
/// another image: it would run in the build that uses the image, where no check of
/// that build's own Dockerfile sees it.
pub fn reaching_trigger(triggers: &[String]) -> Option<&String> {
    triggers.iter().find(|trigger| {
        let text = format!("FROM scratch\n{trigger}\n");
        let opts = ScanOptions::default();
        let fetches = remote_sources(&text, &opts).map(|r| !r.is_empty()).unwrap_or(true);
        let copies = image_references(&text, &opts).map(|r| !r.is_empty()).unwrap_or(true);
        fetches || copies
    })
}

/// The frontend a `# syntax=` parser directive names, with its 1-based line.
pub fn frontend(text: &str) -> Option<(usize, String)> {
    walk::directives(without_bom(text))
        .into_iter()
        .find(|(_, key, _)| key == "syntax")
        .map(|(line, _, value)| (line, value))
}

/// A frontend named in one of the other forms BuildKit's `DetectSyntax` reads — a
/// `# syntax=` after a `#!` line, a first line `//syntax=`, or a JSON object's
/// `"syntax"` — with its 1-based line: a rewrite that pins `# syntax=` does not see it.
pub fn frontend_in_another_form(text: &str) -> Option<(usize, String)> {
    let text = without_bom(text);
    // BuildKit drops a `#!` line first, then reads JSON, then `//` directives (each
    // line while it is one it knows), then the `#` directives.
    let (skipped, rest) = match text.trim_start().starts_with("#!") {
        true => (1, text.split_once('\n').map(|(_, r)| r).unwrap_or("")),
        false => (0, text),
    };
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(rest) {
        if let Some(v) = m.get("syntax").and_then(|v| v.as_str()) {
            return Some((skipped + 1, v.trim().to_string()));
        }
    }
    for (i, line) in rest.lines().enumerate() {
        let Some((key, value)) = line.trim().strip_prefix("//").and_then(|b| b.split_once('=')) else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if key == "syntax" {
            return Some((skipped + i + 1, value.trim().to_string()));
        }
        if !matches!(key.as_str(), "escape" | "check") {
            break;
        }
    }
    if skipped == 1 {
        return walk::directives(rest)
            .into_iter()
            .find(|(_, key, _)| key == "syntax")
            .map(|(l, _, value)| (l + 1, value));
    }
    None
}

/// One image reference as the scan report shows it (acb's shape, Docker Hub as `docker.io`).
pub fn reference_json(r: &Reference) -> serde_json::Value {
    serde_json::json!({
        "registry": r.registry,
        "repository": r.repository,
        "tag": r.tag(),
        "digest": r.digest.clone().unwrap_or_default(),
        "reference": r.to_string(),
    })
}

/// The scan report `slipway scan` prints: one entry per `-t` image (one with a null
/// image when there is none), in acb's layout.
pub fn report(deps: &Dependencies, images: &[Reference]) -> serde_json::Value {
    let entry = |image: Option<&Reference>| {
        serde_json::json!({
            "image": image.map(reference_json),
            "runtime-dependency": deps.runtime.as_ref().map(reference_json),
            "buildtime-dependency": deps.buildtime.iter().map(reference_json).collect::<Vec<_>>(),
        })
    };
    if images.is_empty() {
        serde_json::Value::Array(vec![entry(None)])
    } else {
        serde_json::Value::Array(images.iter().map(|i| entry(Some(i))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(text: &str, args: &[(&str, &str)], target: Option<&str>) -> (String, Vec<String>) {
        let opts = ScanOptions {
            build_args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            target: target.map(str::to_string),
            ..ScanOptions::default()
        };
        let d = scan(text, &opts).unwrap();
        (
            d.runtime.map(|r| r.to_string()).unwrap_or_default(),
            d.buildtime.iter().map(|r| r.to_string()).collect(),
        )
    }

    #[test]
    fn arg_defaults_and_overrides() {
        let df =
            "ARG BASE=mcr.microsoft.com/dotnet/runtime:8.0\nARG SDK\nFROM ${SDK:-mcr.microsoft.com/dotnet/sdk:8.0} AS build\nFROM $BASE\n";
        assert_eq!(
            deps(df, &[], None),
            (
                "mcr.microsoft.com/dotnet/runtime:8.0".into(),
                vec!["mcr.microsoft.com/dotnet/sdk:8.0".into()]
            )
        );
        assert_eq!(
            deps(df, &[("SDK", "my/sdk:1"), ("BASE", "alpine")], None).0,
            "docker.io/library/alpine:latest"
        );
        assert_eq!(deps(df, &[("SDK", "my/sdk:1")], None).1, vec!["docker.io/my/sdk:1".to_string()]);
        assert_eq!(
            deps("ARG T\nFROM alpine${T:+:}${T}\n", &[("T", "3")], None).0,
            "docker.io/library/alpine:3"
        );
    }

    #[test]
    fn platform_continuations_and_copy_from() {
        let df = "FROM --platform=$BUILDPLATFORM \\\n  golang:1.22 AS build\nFROM alpine:3.19\nCOPY --from=build /x /x\nCOPY --from=busybox:1 /bin/sh /sh\nRUN --mount=type=cache,from=tools:2,target=/t true\n";
        assert_eq!(
            deps(df, &[], None),
            (
                "docker.io/library/alpine:3.19".into(),
                vec![
                    "docker.io/library/busybox:1".into(),
                    "docker.io/library/golang:1.22".into(),
                    "docker.io/library/tools:2".into()
                ]
            )
        );
    }

    #[test]
    fn target_stops_the_walk_and_scratch_is_no_dependency() {
        let df = "FROM scratch AS base\nFROM node:lts AS build\nFROM nginx:stable AS final\n";
        assert_eq!(deps(df, &[], Some("build")), ("docker.io/library/node:lts".into(), vec![]));
        assert_eq!(
            deps("FROM golang AS b\nFROM scratch\nCOPY --from=b /x /x\n", &[], None),
            ("".into(), vec!["docker.io/library/golang:latest".into()])
        );
        assert!(scan(
            "FROM a AS x\n",
            &ScanOptions {
                target: Some("nope".into()),
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn stage_chains_are_runtime_not_buildtime() {
        let df = "FROM base:1 AS a\nFROM a AS b\nFROM tool:2 AS t\nFROM b\n";
        assert_eq!(
            deps(df, &[], None),
            ("docker.io/library/base:1".into(), vec!["docker.io/library/tool:2".into()])
        );
    }

    #[test]
    fn bad_from_lines_are_errors_with_lines() {
        let e = scan("FROM alpine\nFROM a b c d\n", &ScanOptions::default()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = scan("FROM Bad:Name:x\n", &ScanOptions::default()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(scan("# nothing\n", &ScanOptions::default()).is_err());
    }

    fn replacing(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(from, to)| (Reference::parse(from).unwrap().to_string(), to.to_string()))
            .collect()
    }

    #[test]
    fn a_rewrite_changes_image_words_and_nothing_else() {
        let df = "# syntax=docker/dockerfile:1\nARG BASE=base:1\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nRUN echo \"a   b\" \\\n  && true\nFROM build AS again\nFROM \\\n   runtime:2\nCOPY --from=build /x /x\nCOPY --from=tools:3 /t /t\nRUN --mount=type=cache,from=cache:4,target=/c,id=x true\nADD http://example.com/a /a\n";
        let map = replacing(&[
            ("base:1", "slipway.invalid/r/docker.io/library/base:1"),
            (
                "runtime:2",
                "reg.io/runtime@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            ),
            ("tools:3", "T"),
            ("cache:4", "C"),
        ]);
        let out = rewrite(df, &ScanOptions::default(), &map).unwrap();
        let want = "# syntax=docker/dockerfile:1\nARG BASE=base:1\nFROM --platform=$BUILDPLATFORM slipway.invalid/r/docker.io/library/base:1 AS build\nRUN echo \"a   b\" \\\n  && true\nFROM build AS again\nFROM \\\n   reg.io/runtime@sha256:1111111111111111111111111111111111111111111111111111111111111111\nCOPY --from=build /x /x\nCOPY --from=T /t /t\nRUN --mount=type=cache,target=/c,id=x,from=C true\nADD http://example.com/a /a\n";
        assert_eq!(out, want);
        assert_eq!(out.lines().count(), df.lines().count());
        let names: Vec<String> = image_references(df, &ScanOptions::default())
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "docker.io/library/base:1",
                "docker.io/library/runtime:2",
                "docker.io/library/tools:3",
                "docker.io/library/cache:4"
            ]
        );
        // An image the map does not list stays as written.
        assert_eq!(
            rewrite("FROM alpine\n", &ScanOptions::default(), &BTreeMap::new()).unwrap(),
            "FROM alpine\n"
        );
    }

    #[test]
    fn a_rewrite_follows_build_arguments_and_platforms() {
        let df = "ARG TAG\nFROM app:${TAG}\nFROM base:${TARGETARCH}\n";
        let opts = ScanOptions {
            build_args: [("TAG".to_string(), "7".to_string())].into(),
            predefined: platform_args(Some("linux/arm64")),
            ..Default::default()
        };
        let out = rewrite(df, &opts, &replacing(&[("app:7", "A"), ("base:arm64", "B")])).unwrap();
        assert_eq!(out, "ARG TAG\nFROM A\nFROM B\n");
    }

    #[test]
    fn remote_sources_are_found_after_substitution() {
        let df = "ARG HOST=127.0.0.1\nFROM a\nARG HOST\nENV PORT=8080\nADD http://${HOST}:$PORT/x /x\nADD [\"https://example.com/y\", \"/y\"]\nADD ./local /l\nCOPY --chown=1 git@github.com:o/r.git /r\nADD $FROM_BASE_IMAGE/z /z\n";
        let found: Vec<(usize, Option<String>)> = remote_sources(df, &ScanOptions::default())
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.url))
            .collect();
        assert_eq!(
            found,
            [
                (5, Some("http://127.0.0.1:8080/x".to_string())),
                (6, Some("https://example.com/y".to_string())),
                (8, Some("git@github.com:o/r.git".to_string())),
                (9, None),
            ]
        );
        // A global argument a stage does not declare is not the stage's (the base
        // image's environment may set that name).
        let df = "ARG HOST=127.0.0.1\nFROM a\nADD http://${HOST}/x /x\n";
        assert_eq!(remote_sources(df, &ScanOptions::default()).unwrap()[0].url, None);
    }

    #[test]
    fn frontends_in_the_other_forms_are_found() {
        assert_eq!(
            frontend_in_another_form("#!x\n# syntax=evil/f\nFROM a\n"),
            Some((2, "evil/f".into()))
        );
        assert_eq!(frontend_in_another_form("//syntax = evil/f\nFROM a\n"), Some((1, "evil/f".into())));
        assert_eq!(frontend_in_another_form("{\"syntax\": \"evil/f\"}"), Some((1, "evil/f".into())));
        assert_eq!(frontend_in_another_form("# syntax=ok/f\nFROM a\n"), None);
        assert_eq!(frontend_in_another_form("FROM a\n"), None);
        assert_eq!(
            frontend_in_another_form("//escape=\\\n//syntax=evil/f\nFROM a\n"),
            Some((2, "evil/f".into()))
        );
        assert_eq!(
            frontend_in_another_form("#!x\n{\"syntax\": \"evil/f\"}"),
            Some((2, "evil/f".into()))
        );
    }

    #[test]
    fn what_the_builder_reads_otherwise_is_seen_or_refused() {
        let o = ScanOptions::default();
        let refs = |df: &str| -> Vec<String> { image_references(df, &o).unwrap().iter().map(|r| r.to_string()).collect() };
        // FROM sees the global argument, not the stage's.
        let df = "ARG B=victim:1\nFROM a\nARG B=scratch\nFROM ${B}\n";
        assert_eq!(refs(df), ["docker.io/library/a:latest", "docker.io/library/victim:1"]);
        // A heredoc's body is no instruction, and one that reads like one is refused.
        let df = "FROM a\nRUN <<EOF\necho FROM is a word\nEOF\nCOPY --from=b:1 / /\n";
        assert_eq!(refs(df), ["docker.io/library/a:latest", "docker.io/library/b:1"]);
        let df = "FROM a\nRUN <<-EOF\n\tFROM a AS evil/image:1\n\tEOF\nCOPY --from=evil/image:1 / /\n";
        assert!(image_references(df, &o).unwrap_err().message.contains("heredoc"));
        // `$((1<<2))` opens no heredoc.
        let df = "FROM a\nRUN echo $((1<<2))\nCOPY --from=c:1 / /\n";
        assert_eq!(refs(df).len(), 2);
        // Flags the builder would unquote, a bare --from, mount keys in another case.
        for df in [
            "FROM a\nCOPY --fr\"om\"=x:1 / /\n",
            "FROM a\nCOPY --fr\\om=x:1 / /\n",
            "FROM a\nCOPY --from x:1 / /\n",
        ] {
            assert!(image_references(df, &o).is_err(), "{df}");
        }
        assert_eq!(refs("FROM a\nRUN --mount=type=bind,From=x:1 true\n")[1], "docker.io/library/x:1");
        // An unknown directive ends the directives: a later escape= is a comment.
        let df = "# x=y\n# escape=`\nFROM a\nCOPY --from=d:1 `\n / /\n";
        assert!(refs(df).contains(&"docker.io/library/d:1".to_string()) || image_references(df, &o).is_err());
        // A continuation is the escape character and then only spaces and tabs.
        let df = "FROM a\nRUN echo \\\u{a0}\nFROM e:1\n";
        assert_eq!(refs(df).len(), 2);
        // A source only remote once unquoted cannot be checked.
        let r = remote_sources("FROM a\nADD \"http:\"//127.0.0.1/x /x\n", &o).unwrap();
        assert_eq!(r[0].url, None);
    }

    #[test]
    fn the_builder_s_readings_are_the_scan_s() {
        // A blank line inside a continuation does not end the instruction.
        let df = "FROM a\nCOPY \\\n\n  --from=other:1 / /x\nADD \\\n\n http://127.0.0.1/x /y\n";
        let o = ScanOptions::default();
        assert_eq!(image_references(df, &o).unwrap()[1].to_string(), "docker.io/library/other:1");
        assert_eq!(remote_sources(df, &o).unwrap()[0].url.as_deref(), Some("http://127.0.0.1/x"));
        // A default stands only for a name the Dockerfile sets; the base image may set it.
        let df = "FROM a\nADD ${U:-https://ok.example/}x /x\n";
        assert_eq!(remote_sources(df, &o).unwrap()[0].url, None);
        // ONBUILD triggers that fetch or copy from images are reported.
        let df = "FROM a\nONBUILD ADD http://127.0.0.1/x /x\nONBUILD COPY --from=theirs:1 /a /b\n";
        let r = remote_sources(df, &o).unwrap();
        assert!(r[0].onbuild && r[0].url.as_deref() == Some("http://127.0.0.1/x"));
        assert_eq!(onbuild_images(df, &o).unwrap(), [(3, "theirs:1".to_string())]);
    }

    #[test]
    fn a_fetched_add_becomes_a_copy_of_the_fetched_file() {
        let df = "FROM a\nARG H=example.com\nADD --chown=1 https://${H}/r.tgz /opt/\nADD local.tgz /x/\n";
        let out = fetched_by_daemon(df, &ScanOptions::default(), &|r| {
            (r.url.as_deref() == Some("https://example.com/r.tgz")).then(|| ".slipway-fetched/0/r.tgz".to_string())
        })
        .unwrap();
        assert_eq!(
            out,
            "FROM a\nARG H=example.com\nCOPY --chown=1 .slipway-fetched/0/r.tgz /opt/\nADD local.tgz /x/\n"
        );
        let mixed = "FROM a\nADD https://example.com/r local /x/\n";
        let e = fetched_by_daemon(mixed, &ScanOptions::default(), &|_| Some("f".into())).unwrap_err();
        assert!(e.message.contains("an ADD of its own"), "{e}");
        let json = "FROM a\nADD [\"https://example.com/r\", \"/x\"]\n";
        assert!(fetched_by_daemon(json, &ScanOptions::default(), &|_| Some("f".into())).is_err());
    }

    #[test]
    fn the_frontend_directive_is_read_only_at_the_top() {
        assert_eq!(frontend("# syntax=my/frontend:1\nFROM a\n"), Some((1, "my/frontend:1".into())));
        assert_eq!(frontend("#escape=`\n# SYNTAX = x\nFROM a\n"), Some((2, "x".into())));
        assert_eq!(frontend("FROM a\n# syntax=x\n"), None);
        assert_eq!(frontend("# a comment\n# syntax=x\nFROM a\n"), None);
        assert_eq!(
            with_frontend("#syntax=a:1\nFROM b\n", "a@sha256:0"),
            "# syntax=a@sha256:0\nFROM b\n"
        );
        assert_eq!(with_frontend("FROM b\n", "x"), "FROM b\n");
    }
}
