//! Task aliases (v1.1.0): `$Registry`, custom `alias.values`, alias `src` files,
//! a custom directive, and image aliases for the first word of a `cmd`.

use std::collections::BTreeMap;

/// The run aliases every v1.1.0 task has; each expands to a template the renderer fills in.
pub const RUN_ALIASES: &[(&str, &str)] = &[
    ("ID", "{{.Run.ID}}"),
    ("SharedVolume", "{{.Run.SharedVolume}}"),
    ("Registry", "{{.Run.Registry}}"),
    ("RegistryName", "{{.Run.RegistryName}}"),
    ("Date", "{{.Run.Date}}"),
    ("OS", "{{.Run.OS}}"),
    ("Architecture", "{{.Run.Architecture}}"),
    ("Commit", "{{.Run.Commit}}"),
    ("Branch", "{{.Run.Branch}}"),
];

/// Image aliases usable as the first word of a `cmd` without a directive (acb's defaults).
pub const DEFAULT_IMAGE_ALIASES: &[(&str, &str)] = &[
    ("acr", "mcr.microsoft.com/acr/acr-cli:0.19"),
    ("az", "mcr.microsoft.com/acr/azure-cli:2ff604c"),
    ("bash", "mcr.microsoft.com/acr/bash:2ff604c"),
    ("curl", "mcr.microsoft.com/acr/curl:2ff604c"),
    ("cssc", "mcr.microsoft.com/acr/cssc:2ff604c"),
];

/// The alias table of one task.
#[derive(Debug, Clone)]
pub struct Aliases {
    pub directive: char,
    /// `$name` → text.
    pub values: BTreeMap<String, String>,
    /// First word of a `cmd` → image.
    pub images: BTreeMap<String, String>,
}

impl Aliases {
    /// Builds the table: defaults, then configured image aliases, then `src` files in
    /// order (later files win), then inline values, which win over all.
    pub fn new(
        directive: char,
        configured_images: &BTreeMap<String, String>,
        src_files: &[BTreeMap<String, String>],
        inline: &BTreeMap<String, String>,
    ) -> Aliases {
        let mut images: BTreeMap<String, String> = DEFAULT_IMAGE_ALIASES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        images.extend(configured_images.clone());
        let mut values: BTreeMap<String, String> = RUN_ALIASES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        values.extend(images.clone());
        for file in src_files {
            values.extend(file.clone());
        }
        values.extend(inline.clone());
        for (k, v) in &values {
            if images.contains_key(k) {
                images.insert(k.clone(), v.clone());
            }
        }
        Aliases { directive, values, images }
    }

    /// Replaces `<directive>name` everywhere in `text`. A doubled directive is one literal
    /// directive; an unknown name is left as it is. `None` once the result would pass
    /// `max_bytes` (a short text naming a long alias many times is no reason to use the
    /// machine's memory).
    pub fn expand(&self, text: &str, max_bytes: usize) -> Option<String> {
        let mut out = String::with_capacity(text.len().min(max_bytes));
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != self.directive {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&self.directive) {
                chars.next();
                out.push(self.directive);
                continue;
            }
            let mut name = String::new();
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphanumeric() {
                    name.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            match self.values.get(&name) {
                Some(v) if !name.is_empty() => out.push_str(v),
                _ => {
                    out.push(self.directive);
                    out.push_str(&name);
                }
            }
            if out.len() > max_bytes {
                return None;
            }
        }
        (out.len() <= max_bytes).then_some(out)
    }

    /// The image a `cmd`'s first word stands for, if it is an image alias.
    pub fn image(&self, first_word: &str) -> Option<&str> {
        self.images.get(first_word).map(String::as_str)
    }
}

/// Finds the top-level `key:` block of a YAML text without parsing the whole file,
/// which may not be YAML until its templates are rendered.
pub fn top_level_block(text: &str, key: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    let prefix = format!("{key}:");
    while let Some(line) = lines.next() {
        if line.starts_with(&prefix) {
            let mut block = String::from(line);
            block.push('\n');
            while let Some(next) = lines.peek() {
                if next.starts_with(' ') || next.starts_with('\t') || next.trim().is_empty() || next.starts_with('#') {
                    block.push_str(next);
                    block.push('\n');
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(block);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(inline: &[(&str, &str)]) -> Aliases {
        let inline = inline.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Aliases::new('$', &BTreeMap::new(), &[], &inline)
    }

    #[test]
    fn expands_known_names_and_leaves_the_rest() {
        let a = table(&[("repo", "hello")]);
        assert_eq!(
            a.expand("$Registry/$repo:$ID $$HOME $nope $", 1 << 20).unwrap(),
            "{{.Run.Registry}}/hello:{{.Run.ID}} $HOME $nope $"
        );
    }

    #[test]
    fn inline_values_win_over_src_files_and_later_files_win() {
        let f1 = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "1".to_string())]);
        let f2 = BTreeMap::from([("b".to_string(), "2".to_string()), ("c".to_string(), "2".to_string())]);
        let inline = BTreeMap::from([("c".to_string(), "3".to_string())]);
        let a = Aliases::new('$', &BTreeMap::new(), &[f1, f2], &inline);
        assert_eq!(a.expand("$a$b$c", 1 << 20).unwrap(), "123");
        assert_eq!(a.expand("$a$b$c", 2), None);
    }

    #[test]
    fn custom_directive_and_image_aliases() {
        let conf = BTreeMap::from([("bash".to_string(), "local/bash:1".to_string())]);
        let a = Aliases::new('&', &conf, &[], &BTreeMap::new());
        assert_eq!(a.expand("&ID && $ID", 1 << 20).unwrap(), "{{.Run.ID}} & $ID");
        assert_eq!(a.image("bash"), Some("local/bash:1"));
        assert_eq!(a.image("az"), Some("mcr.microsoft.com/acr/azure-cli:2ff604c"));
        assert_eq!(a.image("busybox"), None);
    }
}
