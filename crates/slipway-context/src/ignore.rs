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
/// Every state (pattern position, text position) is computed once and costs O(1) on
/// top of the states it asks for, so a match costs O(pattern × path) whatever the
/// stars (a context's `.dockerignore` is untrusted).
fn glob(p: &[u8], t: &[u8]) -> bool {
    let mut memo = std::collections::HashMap::new();
    glob_at(p, t, &mut memo)
}

type Memo = std::collections::HashMap<(usize, usize, bool), bool>;

fn glob_at(p: &[u8], t: &[u8], memo: &mut Memo) -> bool {
    let key = (p.len(), t.len(), false);
    if let Some(&hit) = memo.get(&key) {
        return hit;
    }
    let result = glob_step(p, t, memo);
    memo.insert(key, result);
    result
}

/// `after` matched right after some `/` of `t` (the `**/` state once it has left the
/// start): skip to the next `/`, then try.
fn after_a_slash(after: &[u8], t: &[u8], memo: &mut Memo) -> bool {
    let key = (after.len(), t.len(), true);
    if let Some(&hit) = memo.get(&key) {
        return hit;
    }
    let result = match t.first() {
        None => false,
        Some(b'/') => glob_at(after, &t[1..], memo) || after_a_slash(after, &t[1..], memo),
        Some(_) => after_a_slash(after, &t[1..], memo),
    };
    memo.insert(key, result);
    result
}

fn glob_step(p: &[u8], t: &[u8], memo: &mut Memo) -> bool {
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
                glob_at(after, t, memo) || after_a_slash(after, t, memo)
            } else {
                // Match nothing more, or take one character (any) and stay.
                glob_at(rest, t, memo) || (!t.is_empty() && glob_at(p, &t[1..], memo))
            }
        }
        b'*' => {
            // Match nothing more, or take one character of this segment and stay.
            glob_at(&p[1..], t, memo) || (!t.is_empty() && t[0] != b'/' && glob_at(p, &t[1..], memo))
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
        // Found by fuzzing: single stars looped over the rest of the text in each state
        // (cubic; 7.7 s for this in a release build).
        let i = DockerIgnore::parse(&("*a".repeat(400) + "c"));
        let start = std::time::Instant::now();
        assert!(!i.excludes(&"a".repeat(800)));
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
        assert!(DockerIgnore::parse("**/x").excludes("a/b/x") && !DockerIgnore::parse("**/x").excludes("a/bx"));
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
