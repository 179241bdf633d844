//! `docker run` flags at the start of a `cmd:` (`cmd: -t --rm -e X=1 image args`), as
//! the ACR docs write them. The flags that mean something for a step map onto its
//! properties; the rest are refused by name.

/// What the flags before a `cmd`'s image ask for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunFlags {
    pub env: Vec<String>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub entry_point: Option<String>,
    pub ports: Vec<String>,
    /// `-v NAME:/path`: mounts of declared volumes.
    pub volumes: Vec<(String, String)>,
    pub privileged: bool,
    pub detach: bool,
    pub network: Option<String>,
    /// `-m/--memory`, `--pids-limit`, `--shm-size`: within the daemon's step limits.
    pub memory: Option<u64>,
    pub pids_limit: Option<u64>,
    pub shm_size: Option<u64>,
}

const SUPPORTED: &str = "-t/--tty, -i/--interactive, --rm, -d/--detach, -e/--env, -w/--workdir, -u/--user, --entrypoint, -p/--publish, -v/--volume (of declared volumes), --privileged, --network, -m/--memory, --pids-limit, --shm-size";

/// Takes the flags off the front of `words` (leaving the image first). Errors name the flag.
pub fn take(words: &mut Vec<String>) -> Result<RunFlags, String> {
    let mut flags = RunFlags::default();
    let mut i = 0;
    while i < words.len() && words[i].starts_with('-') && words[i] != "-" {
        let word = words[i].clone();
        i += 1;
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (word.clone(), None),
        };
        // Short flags may be combined (`-it`, `-dt`); a value flag ends the group.
        if !name.starts_with("--") && name.len() > 2 {
            let letters: Vec<char> = name[1..].chars().collect();
            for (k, c) in letters.iter().enumerate() {
                match c {
                    't' | 'i' => {}
                    'd' => flags.detach = true,
                    'e' | 'w' | 'u' | 'p' | 'v' | 'm' => {
                        let rest: String = letters[k + 1..].iter().collect();
                        let value = if rest.is_empty() {
                            next(words, &mut i, &format!("-{c}"))?
                        } else {
                            rest
                        };
                        apply(&mut flags, &format!("-{c}"), value)?;
                        break;
                    }
                    other => return Err(unsupported(&format!("-{other}"))),
                }
            }
            continue;
        }
        match name.as_str() {
            "-t" | "--tty" | "-i" | "--interactive" | "--rm" => {}
            "-d" | "--detach" => flags.detach = true,
            "--privileged" => flags.privileged = true,
            "-e" | "--env" | "-w" | "--workdir" | "-u" | "--user" | "--entrypoint" | "-p" | "--publish" | "-v" | "--volume"
            | "--network" | "--net" | "-m" | "--memory" | "--pids-limit" | "--shm-size" => {
                let value = match inline {
                    Some(v) => v,
                    None => next(words, &mut i, &name)?,
                };
                apply(&mut flags, &name, value)?;
            }
            "--name" => {
                return Err("--name is not needed: a step's id is its container's name (set `id:`)".into());
            }
            other => return Err(unsupported(other)),
        }
    }
    words.drain(..i);
    Ok(flags)
}

fn next(words: &[String], i: &mut usize, flag: &str) -> Result<String, String> {
    let v = words
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("docker run flag {flag} needs a value"))?;
    *i += 1;
    Ok(v)
}

fn unsupported(flag: &str) -> String {
    format!("docker run flag {flag} is not supported in a cmd step (supported: {SUPPORTED})")
}

fn size(flag: &str, value: &str) -> Result<u64, String> {
    slipway_limits::step::parse_size(value)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} {value:?}: expected a size such as 512m or 2g"))
}

fn apply(flags: &mut RunFlags, name: &str, value: String) -> Result<(), String> {
    match name {
        "-e" | "--env" => flags.env.push(value),
        "-w" | "--workdir" => flags.working_directory = Some(value),
        "-u" | "--user" => flags.user = Some(value),
        "--entrypoint" => flags.entry_point = Some(value),
        "-p" | "--publish" => flags.ports.push(value),
        "--network" | "--net" => flags.network = Some(value),
        "-m" | "--memory" => flags.memory = Some(size(name, &value)?),
        "--shm-size" => flags.shm_size = Some(size(name, &value)?),
        "--pids-limit" => {
            flags.pids_limit = Some(
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--pids-limit {value:?}: expected a number of processes above 0"))?,
            )
        }
        "-v" | "--volume" => {
            let (volume, path) = value
                .split_once(':')
                .ok_or_else(|| format!("-v {value:?}: expected NAME:/path of a declared volume"))?;
            if volume.starts_with('/') || volume.starts_with('.') {
                return Err(format!(
                    "-v {value:?}: a cmd step mounts declared volumes only (volumes: in the task), not host paths"
                ));
            }
            let path = path.split(':').next().unwrap_or(path);
            flags.volumes.push((volume.to_string(), path.to_string()));
        }
        _ => return Err(unsupported(name)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shell_words::split(s).unwrap()
    }

    #[test]
    fn flags_map_onto_step_properties() {
        let mut w = words("-t --rm -it -e A=1 --env=B=2 -w /src -u 1000 --entrypoint sh -p 8080:80 -v cfg:/etc/app:ro --network net -d reg.io/img:1 echo hi");
        let f = take(&mut w).unwrap();
        assert_eq!(w, ["reg.io/img:1", "echo", "hi"]);
        assert_eq!(f.env, ["A=1", "B=2"]);
        assert_eq!(f.working_directory.as_deref(), Some("/src"));
        assert_eq!(f.user.as_deref(), Some("1000"));
        assert_eq!(f.entry_point.as_deref(), Some("sh"));
        assert_eq!(f.ports, ["8080:80"]);
        assert_eq!(f.volumes, [("cfg".to_string(), "/etc/app".to_string())]);
        assert_eq!(f.network.as_deref(), Some("net"));
        assert!(f.detach);
        let mut w = words("-m 1g --pids-limit 200 --shm-size=128m img");
        let f = take(&mut w).unwrap();
        assert_eq!((f.memory, f.pids_limit, f.shm_size), (Some(1 << 30), Some(200), Some(128 << 20)));
        assert!(take(&mut words("--memory lots img")).unwrap_err().contains("--memory \"lots\""));
        assert!(take(&mut words("--pids-limit -1 img")).unwrap_err().contains("--pids-limit"));
        let mut w = words("-eX=1 img");
        assert_eq!(take(&mut w).unwrap().env, ["X=1"]);
        let mut w = words("image --not-a-flag-of-ours");
        assert_eq!(take(&mut w).unwrap(), RunFlags::default());
        assert_eq!(w, ["image", "--not-a-flag-of-ours"]);
    }

    #[test]
    fn other_flags_are_refused_by_name() {
        for (cmd, needle) in [
            ("--cap-add SYS_ADMIN img", "--cap-add"),
            ("-v /:/host img", "not host paths"),
            ("--name x img", "step's id"),
            ("-x img", "-x"),
            ("-e", "needs a value"),
            ("--mount type=bind,src=/,dst=/h img", "--mount"),
        ] {
            let e = take(&mut words(cmd)).unwrap_err();
            assert!(e.contains(needle), "{cmd}: {e}");
        }
    }
}
