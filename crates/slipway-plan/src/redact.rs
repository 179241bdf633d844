//! Masks secret values in text before it leaves the runner, the API or a webhook's
//! record: the one masking every crate uses.

use std::sync::{Arc, RwLock};

/// Replaces every known secret value with `*****`.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        secrets.retain(|s| !s.is_empty());
        // Longer first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: Arc::new(RwLock::new(secrets)),
        }
    }

    /// Masks `secret` too from now on (a value first read during the run, such as a
    /// build secret's file).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut all = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        if !all.iter().any(|s| s == secret) {
            all.push(secret.to_string());
            all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.read().unwrap_or_else(|p| p.into_inner()).iter() {
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
