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

use slipway_reference::Reference;
use std::collections::{BTreeMap, BTreeSet};

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

struct Stage {
    name: Option<String>,
    /// The external image this stage starts from, or the index of the stage it builds on.
    origin: Origin,
}

enum Origin {
    Image(Reference),
    Scratch,
    Stage(usize),
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
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut args: BTreeMap<String, String> = opts.predefined.clone();
    let mut stages: Vec<Stage> = Vec::new();
    let mut copied: Vec<Reference> = Vec::new();
    let mut target_found = false;
    for (line, instruction) in instructions(text) {
        let (keyword, rest) = match instruction.split_once(char::is_whitespace) {
            Some((k, r)) => (k.to_ascii_uppercase(), r.trim()),
            None => (instruction.to_ascii_uppercase(), ""),
        };
        match keyword.as_str() {
            "ARG" => {
                for decl in shell_like_words(rest) {
                    let (name, default) = match decl.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(unquote(d))),
                        None => (decl.clone(), None),
                    };
                    let value = opts
                        .build_args
                        .get(&name)
                        .cloned()
                        .or(default)
                        .or_else(|| opts.predefined.get(&name).cloned())
                        .unwrap_or_default();
                    args.insert(name, value);
                }
            }
            "FROM" => {
                if target_found {
                    break;
                }
                let words: Vec<String> = shell_like_words(rest).into_iter().filter(|w| !w.starts_with("--")).collect();
                let (image, name) = match words.as_slice() {
                    [image] => (image.clone(), None),
                    [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => (image.clone(), Some(name.to_ascii_lowercase())),
                    _ => {
                        return Err(ScanError {
                            line,
                            message: format!("cannot read FROM {rest:?}: expected `FROM [--platform=…] image [AS name]`"),
                        })
                    }
                };
                let image = expand(&image, &args);
                let origin = resolve(&image, &stages).map_err(|message| ScanError { line, message })?;
                if let (Some(t), Some(n)) = (&opts.target, &name) {
                    if t.eq_ignore_ascii_case(n) {
                        target_found = true;
                    }
                }
                stages.push(Stage { name, origin });
            }
            "COPY" | "ADD" | "RUN" => {
                for word in shell_like_words(rest).iter().take_while(|w| w.starts_with("--")) {
                    let from = if let Some(v) = word.strip_prefix("--from=") {
                        Some(v.to_string())
                    } else if let Some(m) = word.strip_prefix("--mount=") {
                        m.split(',').find_map(|kv| kv.strip_prefix("from=")).map(str::to_string)
                    } else {
                        None
                    };
                    let Some(from) = from else { continue };
                    let from = expand(&from, &args);
                    if let Origin::Image(r) = resolve(&from, &stages).map_err(|message| ScanError { line, message })? {
                        copied.push(r);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(t) = &opts.target {
        if !target_found {
            return Err(ScanError {
                line: 0,
                message: format!("target stage {t:?} not found"),
            });
        }
    }
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
    let mut buildtime: BTreeMap<String, Reference> = copied.into_iter().map(|r| (r.to_string(), r)).collect();
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

/// A name in `FROM` or `--from=`: an earlier stage (by name or index), `scratch`, or an image.
fn resolve(name: &str, stages: &[Stage]) -> Result<Origin, String> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
        return Ok(Origin::Stage(i));
    }
    if let Ok(i) = name.parse::<usize>() {
        if i < stages.len() {
            return Ok(Origin::Stage(i));
        }
    }
    if lower == "scratch" {
        return Ok(Origin::Scratch);
    }
    Reference::parse(name).map(Origin::Image).map_err(|e| e.to_string())
}

/// Logical instructions with the line each starts on: continuations joined, comments
/// and parser directives dropped.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let escape = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .find_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("escape=")
                .map(|e| e.trim().chars().next().unwrap_or('\\'))
        })
        .unwrap_or('\\');
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if current.is_empty() {
            start = i + 1;
        }
        match line.strip_suffix(escape) {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push((start, std::mem::take(&mut current).trim().to_string()));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push((start, current.trim().to_string()));
    }
    out
}

fn shell_like_words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].to_string();
        }
    }
    t.to_string()
}

/// Expands `$V`, `${V}`, `${V:-default}` and `${V:+alternative}`; unset names are empty.
fn expand(s: &str, args: &BTreeMap<String, String>) -> String {
    let get = |name: &str| args.get(name).cloned().unwrap_or_default();
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut body = String::new();
            for b in chars.by_ref() {
                if b == '}' {
                    break;
                }
                body.push(b);
            }
            if let Some((name, default)) = body.split_once(":-") {
                let v = get(name);
                out.push_str(&if v.is_empty() { expand(default, args) } else { v });
            } else if let Some((name, alt)) = body.split_once(":+") {
                if !get(name).is_empty() {
                    out.push_str(&expand(alt, args));
                }
            } else {
                out.push_str(&get(&body));
            }
        } else {
            let mut name = String::new();
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphanumeric() || n == '_' {
                    name.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&get(&name));
            }
        }
    }
    out
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
}
