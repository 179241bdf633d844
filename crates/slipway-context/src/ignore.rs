//! Docker's `.dockerignore` matcher.

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    exclusion: bool,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let mut rules = Vec::new();
        for line in text.lines() {
            // A comment only when `#` is the first character.
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            let cleaned = clean(p);
            let cleaned = cleaned.trim_start_matches('/').to_string();
            if cleaned.is_empty() || cleaned == "." {
                continue;
            }
            rules.push(Rule {
                pattern: cleaned,
                exclusion,
            });
        }
        DockerIgnore { rules }
    }

    /// Whether any rule re-includes (`!`), which means an excluded directory must still be walked.
    pub fn has_exclusions(&self) -> bool {
        self.rules.iter().any(|r| r.exclusion)
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut excluded = false;
        for rule in &self.rules {
            let mut hit = glob(rule.pattern.as_bytes(), path.as_bytes());
            if !hit {
                hit = parents.iter().any(|p| glob(rule.pattern.as_bytes(), p.as_bytes()));
            }
            if hit {
                excluded = !rule.exclusion;
            }
        }
        excluded
    }
}

/// Lexical path cleaning as Go's `filepath.Clean` does for relative paths.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let absolute = p.starts_with('/');
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Glob match of a whole path: `*` and `?` stay within a segment, `**` crosses
/// segments, `[...]` classes and `\` escapes work as in Go's filepath.Match.
/// Results are memoised by (pattern, text) position, so a pattern full of stars
/// costs polynomial time, not exponential (a context's `.dockerignore` is untrusted).
fn glob(p: &[u8], t: &[u8]) -> bool {
    let mut memo = std::collections::HashMap::new();
    glob_at(p, t, &mut memo)
}

fn glob_at(p: &[u8], t: &[u8], memo: &mut std::collections::HashMap<(usize, usize), bool>) -> bool {
    let key = (p.len(), t.len());
    if let Some(&hit) = memo.get(&key) {
        return hit;
    }
    let result = glob_step(p, t, memo);
    memo.insert(key, result);
    result
}

fn glob_step(p: &[u8], t: &[u8], memo: &mut std::collections::HashMap<(usize, usize), bool>) -> bool {
    if p.is_empty() {
        return t.is_empty();
    }
    match p[0] {
        b'*' if p.get(1) == Some(&b'*') => {
            let mut rest = &p[2..];
            while rest.first() == Some(&b'*') {
                rest = &rest[1..];
            }
            if rest.first() == Some(&b'/') {
                // `**/x` matches x at any depth, including none.
                let after = &rest[1..];
                if glob_at(after, t, memo) {
                    return true;
                }
                (0..t.len()).any(|i| t[i] == b'/' && glob_at(after, &t[i + 1..], memo))
            } else {
                (0..=t.len()).any(|i| glob_at(rest, &t[i..], memo))
            }
        }
        b'*' => {
            let rest = &p[1..];
            let mut i = 0;
            loop {
                if glob_at(rest, &t[i..], memo) {
                    return true;
                }
                if i >= t.len() || t[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        b'?' => !t.is_empty() && t[0] != b'/' && glob_at(&p[1..], &t[1..], memo),
        b'[' => {
            let Some(end) = p.iter().skip(1).position(|&c| c == b']').map(|i| i + 1) else {
                return false;
            };
            if t.is_empty() || t[0] == b'/' {
                return false;
            }
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some(b'^') | Some(b'!'));
            if negate {
                class = &class[1..];
            }
            let c = t[0];
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    if class[i] <= c && c <= class[i + 2] {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if class[i] == c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            hit != negate && glob_at(&p[end + 1..], &t[1..], memo)
        }
        b'\\' if p.len() > 1 => !t.is_empty() && t[0] == p[1] && glob_at(&p[2..], &t[1..], memo),
        c => !t.is_empty() && t[0] == c && glob_at(&p[1..], &t[1..], memo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Docker's documentation of `.dockerignore`.
    #[test]
    fn docker_documented_cases() {
        let i = DockerIgnore::parse("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(i.excludes("somedir/temporary.txt"));
        assert!(i.excludes("somedir/temp"));
        assert!(i.excludes("somedir/subdir/temporary.txt"));
        assert!(i.excludes("tempa"));
        assert!(!i.excludes("temporary.txt"));
        assert!(!i.excludes("a/b/c/temp.txt"));
    }

    #[test]
    fn double_star_crosses_directories() {
        let i = DockerIgnore::parse("**/*.go\n");
        assert!(i.excludes("main.go"));
        assert!(i.excludes("a/b/c.go"));
        assert!(!i.excludes("a/b/c.rs"));
    }

    #[test]
    fn last_rule_wins_and_bang_reincludes() {
        let i = DockerIgnore::parse("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(!i.excludes("README.md"));
        assert!(i.excludes("README-secret.md"));
    }

    #[test]
    fn directory_rules_exclude_contents_and_paths_are_cleaned() {
        let i = DockerIgnore::parse("/node_modules\n./build/../dist\n#notacomment? no: comment\n #kept\n");
        assert!(i.excludes("node_modules/a/b.js"));
        assert!(i.excludes("dist/app.js"));
        assert!(!i.excludes("src/node_modules_x"));
        // ` #kept` is a pattern, not a comment: the `#` is not the first character.
        assert!(i.excludes("#kept"));
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let pattern = "**a**a**a**a**a**a**a**a**a**a**b";
        let i = DockerIgnore::parse(pattern);
        let path = "a/".repeat(40) + &"a".repeat(40);
        let start = std::time::Instant::now();
        assert!(!i.excludes(&path));
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
    }

    #[test]
    fn character_classes_and_escapes() {
        let i = DockerIgnore::parse("file[0-9].txt\nx\\*y\n");
        assert!(i.excludes("file7.txt"));
        assert!(!i.excludes("filea.txt"));
        assert!(i.excludes("x*y"));
        assert!(!i.excludes("xay"));
    }
}
