//! Reads a `build:` step's arguments the way `docker build` reads its command line.

pub use slipway_plan::BuildSpec;

const VALUE_FLAGS: &[&str] = &[
    "-t",
    "--tag",
    "-f",
    "--file",
    "--build-arg",
    "--target",
    "--label",
    "--platform",
    "--network",
    "--secret",
    "--cache-from",
    "--add-host",
    "--isolation",
];
const BOOL_FLAGS: &[&str] = &["--no-cache", "--pull", "-q", "--quiet", "--rm", "--force-rm"];

/// Parses the text of a `build:` step.
pub fn parse(text: &str) -> Result<BuildSpec, String> {
    let words = shell_words::split(text).map_err(|e| format!("cannot split build arguments: {e}"))?;
    let mut spec = BuildSpec::default();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if !word.starts_with('-') || word == "-" {
            positional.push(word.clone());
            continue;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            // `-tname` is `-t name`; the flag is the first two bytes only when they are
            // a whole character (a word can start with `-` and any letter).
            _ if !word.starts_with("--") && word.len() > 2 && word.is_char_boundary(2) && VALUE_FLAGS.contains(&&word[..2]) => {
                (word[..2].to_string(), Some(word[2..].to_string()))
            }
            _ => (word.clone(), None),
        };
        if BOOL_FLAGS.contains(&flag.as_str()) {
            let on = match inline.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => return Err(format!("{flag} takes true or false, not {v:?}")),
            };
            match flag.as_str() {
                "--no-cache" => spec.no_cache = on,
                "--pull" => spec.pull = on,
                "-q" | "--quiet" => spec.quiet = on,
                _ => {}
            }
            continue;
        }
        if !VALUE_FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown docker build flag {flag:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = words.get(i).ok_or_else(|| format!("flag {flag} needs a value"))?.clone();
                i += 1;
                v
            }
        };
        match flag.as_str() {
            "-t" | "--tag" => spec.tags.push(value),
            "-f" | "--file" => spec.dockerfile = value,
            "--build-arg" => spec.build_args.push(value),
            "--target" => spec.target = Some(value),
            "--label" => spec.labels.push(value),
            "--platform" => spec.platform = Some(value),
            "--network" => spec.network = Some(value),
            "--secret" => spec.secrets.push(value),
            "--cache-from" => spec.cache_from.push(value),
            "--add-host" => spec.add_hosts.push(value),
            "--isolation" => spec.isolation = Some(value),
            _ => unreachable!("flag lists agree"),
        }
    }
    match positional.len() {
        0 => return Err("build arguments name no context (the path or URL that comes last, such as `.`)".into()),
        1 => spec.context = positional.remove(0),
        _ => return Err(format!("build arguments name more than one context: {}", positional.join(", "))),
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dash_and_a_wide_character_is_not_a_flag() {
        // Found by the fuzzer: slicing `-é` at byte 2 panicked.
        let e = parse("-é .").unwrap_err();
        assert!(e.contains("-é"), "{e}");
        assert_eq!(parse("-t\u{e9}x .").unwrap().tags, ["\u{e9}x"]);
    }

    #[test]
    fn reads_docker_build_arguments() {
        let s = parse("-t a:1 --tag=b:2 -f sub/Dockerfile --build-arg A=1 --build-arg=B --target final --no-cache --pull --label x=y --platform linux/amd64 --network host --secret id=s,src=f ctx").unwrap();
        assert_eq!(s.tags, ["a:1", "b:2"]);
        assert_eq!(s.dockerfile, "sub/Dockerfile");
        assert_eq!(s.build_args, ["A=1", "B"]);
        assert_eq!(s.target.as_deref(), Some("final"));
        assert!(s.no_cache && s.pull);
        assert_eq!(s.labels, ["x=y"]);
        assert_eq!(s.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(s.network.as_deref(), Some("host"));
        assert_eq!(s.secrets, ["id=s,src=f"]);
        assert_eq!(s.context, "ctx");
    }

    #[test]
    fn context_may_come_first_and_quotes_are_honoured() {
        let s = parse("https://x/y.tar.gz -f 'a b/Dockerfile' -tapp").unwrap();
        assert_eq!(s.context, "https://x/y.tar.gz");
        assert_eq!(s.dockerfile, "a b/Dockerfile");
        assert_eq!(s.tags, ["app"]);
    }

    #[test]
    fn refuses_what_docker_would_refuse() {
        assert!(parse("-t a").unwrap_err().contains("no context"));
        assert!(parse("-t a . other").unwrap_err().contains("more than one context"));
        assert!(parse("--bogus .").unwrap_err().contains("--bogus"));
        assert!(parse(". -t").unwrap_err().contains("needs a value"));
    }
}
