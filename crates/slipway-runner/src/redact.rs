//! Masks secret values in text before it leaves the runner.

use std::sync::Arc;

/// Replaces every known secret value with `*****`.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        secrets.retain(|s| !s.is_empty());
        // Longer first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: Arc::new(secrets),
        }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "*****");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_longest_first() {
        let r = super::Redactor::new(vec!["abc".into(), "abcdef".into(), String::new()]);
        assert_eq!(r.mask("x abcdef y abc"), "x ***** y *****");
    }
}
