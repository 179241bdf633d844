//! `--filter` and `--exclude`: `REPOSITORY_REGEX:TAG_REGEX`, as acr-cli reads them. The
//! repository expression matches a whole name (`^…$`), the tag expression anywhere in a
//! tag. Both are `fancy-regex`, so lookahead works (`app:^(?!keep-).*`), with a
//! backtracking limit: a tenant's expression cannot hold a worker.

use fancy_regex::{Regex, RegexBuilder};

/// Backtracking steps one match may take before the filter gives up.
const BACKTRACK_LIMIT: usize = 100_000;

/// One `REPOSITORY:TAG` filter, compiled.
#[derive(Debug, Clone)]
pub struct Filter {
    pub text: String,
    repository: Regex,
    tag: Regex,
}

/// Where `text` splits into its repository and tag expressions: the one `:` that is
/// not inside a `[…]` class and not the `:` of a `(?flags:…)` group.
fn split_point(text: &str) -> Result<usize, String> {
    let b = text.as_bytes();
    let (mut i, mut class, mut found) = (0, false, None);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !class => class = true,
            b']' if class => class = false,
            b'(' if !class && b.get(i + 1) == Some(&b'?') => {
                let flags = b[i + 2..].iter().take_while(|c| b"imsUx-".contains(c)).count();
                if b.get(i + 2 + flags) == Some(&b':') {
                    i += 2 + flags;
                }
            }
            b':' if !class => {
                if found.is_some() {
                    return Err(format!(
                        "filter {text:?} has more than one ':' between expressions; write REPOSITORY:TAG"
                    ));
                }
                found = Some(i);
            }
            _ => {}
        }
        i += 1;
    }
    found.ok_or_else(|| format!("filter {text:?} has no ':'; write REPOSITORY:TAG, e.g. 'hello-world:.*'"))
}

fn compile(pattern: &str, whole: &str, what: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map_err(|e| format!("filter {whole:?}: the {what} expression is not valid: {e}"))
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let at = split_point(text)?;
        let (repository, tag) = (&text[..at], &text[at + 1..]);
        if repository.is_empty() || tag.is_empty() {
            return Err(format!("filter {text:?} needs both a repository and a tag expression"));
        }
        Ok(Filter {
            text: text.to_string(),
            repository: compile(&format!("^(?:{repository})$"), text, "repository")?,
            tag: compile(tag, text, "tag")?,
        })
    }

    /// Whether the filter's repository expression names `repository`.
    pub fn names_repository(&self, repository: &str) -> Result<bool, String> {
        self.repository
            .is_match(repository)
            .map_err(|e| format!("filter {:?} gave up on repository {repository:?}: {e}", self.text))
    }

    /// Whether the filter matches `tag` of `repository`.
    pub fn matches(&self, repository: &str, tag: &str) -> Result<bool, String> {
        Ok(self.names_repository(repository)?
            && self
                .tag
                .is_match(tag)
                .map_err(|e| format!("filter {:?} gave up on tag {tag:?}: {e}", self.text))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_splits_at_its_one_colon_and_anchors_the_repository() {
        let f = Filter::parse("hello-world:.*").unwrap();
        assert!(f.matches("hello-world", "v1").unwrap());
        assert!(!f.matches("hello-world-2", "v1").unwrap(), "the repository is matched whole");
        let f = Filter::parse("app:^(?!keep-).*").unwrap();
        assert!(f.matches("app", "v1").unwrap());
        assert!(!f.matches("app", "keep-1").unwrap(), "lookahead");
        let f = Filter::parse("(?i:APP):v[:0-9]").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            f.matches("app", "v1").unwrap(),
            "a flag group's ':' and a class's are not the split"
        );
        let f = Filter::parse("team-a/.*:test").unwrap();
        assert!(f.matches("team-a/web", "my-test-1").unwrap(), "the tag expression matches anywhere");
        for (bad, needle) in [
            ("nocolon", "no ':'"),
            ("a:b:c", "more than one"),
            (":x", "both"),
            ("a:(", "not valid"),
        ] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.contains(needle) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_catastrophic_expression_gives_up_with_an_error() {
        // Gives up within the backtracking limit (some 40 ms), naming filter and tag.
        let f = Filter::parse("app:^(\\w+\\s?)*(?!x)$").unwrap();
        let e = f.matches("app", &format!("{}!", "a".repeat(40))).unwrap_err();
        assert!(e.contains("gave up on tag") && e.contains("app:"), "{e}");
    }
}
