//! One pass over a Dockerfile's instructions, as the builder reads them: stages and
//! their origins, images named by `COPY --from=` and `RUN --mount=from=`, and what
//! `ADD`/`COPY` fetch, with `ARG` (and, for sources, `ENV`) substituted. Every image
//! word keeps its place in the raw text, so a rewrite can change it and nothing else.

use crate::{ScanError, ScanOptions};
use slipway_reference::Reference;
use std::collections::BTreeMap;

/// A word's place in the text: its raw line (0-based) and byte range on that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WordAt {
    pub line: usize,
    pub start: usize,
    pub end: usize,
}

/// One logical instruction: continuations joined, with where each word came from.
struct Instruction {
    /// 1-based line the instruction starts on.
    line: usize,
    words: Vec<(String, WordAt)>,
}

pub(crate) struct Stage {
    pub name: Option<String>,
    pub origin: Origin,
    env: BTreeMap<String, String>,
}

pub(crate) enum Origin {
    Image(Reference),
    Scratch,
    Stage(usize),
}

/// How an image word is written, so a rewrite can write another image the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// `FROM image`: the word is the image.
    Bare,
    /// `--from=image`.
    FromFlag,
    /// `--mount=…,from=image,…`: the flag's other options as written.
    Mount(Vec<String>),
}

/// A word naming an external image (not a stage, not `scratch`).
pub(crate) struct ImageWord {
    pub at: WordAt,
    pub form: Form,
    pub reference: Reference,
}

/// What `ADD` or `COPY` fetches from outside the context: a URL or a git address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// 1-based.
    pub line: usize,
    /// After substitution; `None` when it uses a variable set outside the Dockerfile
    /// (in the base image's environment), so where it leads cannot be told.
    pub url: Option<String>,
    /// As written.
    pub written: String,
    /// In an `ONBUILD` trigger: fetched by a later build, not this one.
    pub onbuild: bool,
    /// Where the instruction's keyword and this source are, for a rewrite (`None` for
    /// the JSON form's words).
    pub(crate) keyword_at: Option<WordAt>,
    pub(crate) source_at: Option<WordAt>,
    /// How many sources the instruction has (remote or not).
    pub(crate) sources: usize,
}

pub(crate) struct Walk {
    pub stages: Vec<Stage>,
    pub copied: Vec<Reference>,
    pub images: Vec<ImageWord>,
    pub remote: Vec<RemoteSource>,
    /// Images `ONBUILD` triggers copy from (`--from=`), with their lines: a later build
    /// reads them, where no rewrite reaches.
    pub onbuild_images: Vec<(usize, String)>,
    pub target_found: bool,
}

/// Reads the instructions in order, as the builder would, up to the end of the target
/// stage; refuses what builders would read differently or this walk cannot read.
pub(crate) fn walk(text: &str, opts: &ScanOptions) -> Result<Walk, ScanError> {
    let mut walker = Walker {
        opts,
        global: opts.predefined.clone(),
        args: opts.predefined.clone(),
        in_stage: false,
        env: BTreeMap::new(),
        out: Walk {
            stages: Vec::new(),
            copied: Vec::new(),
            images: Vec::new(),
            remote: Vec::new(),
            onbuild_images: Vec::new(),
            target_found: false,
        },
    };
    let (list, ambiguous) = instructions(text);
    if let Some((line, keyword)) = ambiguous {
        return Err(ScanError {
            line,
            message: format!(
                "a heredoc line reads as a {keyword} instruction: builders with and without heredocs would read this Dockerfile differently; indent it or reword it"
            ),
        });
    }
    for ins in list {
        let line = ins.line;
        let keyword = ins.words[0].0.to_ascii_uppercase();
        let rest = &ins.words[1..];
        let fail = |message: String| ScanError { line, message };
        match keyword.as_str() {
            "ARG" => walker.declare_args(rest),
            "ENV" => read_env(rest, &walker.args, &mut walker.env),
            "FROM" if walker.out.target_found => break,
            "FROM" => walker.begin_stage(rest, fail)?,
            "ONBUILD" => walker.note_onbuild(line, rest, fail)?,
            "COPY" | "ADD" | "RUN" => {
                let flags = rest.iter().take_while(|(w, _)| w.starts_with("--")).count();
                for (word, _) in &rest[..flags] {
                    plain_flag(word).map_err(fail)?;
                }
                walker.note_flag_images(&rest[..flags], fail)?;
                if keyword != "RUN" {
                    walker.note_remote_sources(&keyword, &ins, &rest[flags..]);
                }
            }
            _ => {}
        }
        if let Some(stage) = walker.out.stages.last_mut() {
            stage.env = walker.env.clone();
        }
    }
    Ok(walker.out)
}

/// What the walk carries from one instruction to the next: the arguments and
/// environment in scope, and what it found so far.
struct Walker<'a> {
    opts: &'a ScanOptions,
    /// `FROM` sees the arguments declared before the first `FROM` (and the predefined
    /// ones); a stage sees only those it declares, as BuildKit scopes them.
    global: BTreeMap<String, String>,
    /// The arguments the current stage sees.
    args: BTreeMap<String, String>,
    in_stage: bool,
    /// The current stage's environment as far as the Dockerfile sets it.
    env: BTreeMap<String, String>,
    out: Walk,
}

impl Walker<'_> {
    /// `ARG`: each declaration's value (a build argument, its default, or what it had
    /// before the first `FROM`), in scope for the stage, and globally before any stage.
    fn declare_args(&mut self, rest: &[(String, WordAt)]) {
        for (decl, _) in rest {
            let (name, default) = match decl.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(unquote(d))),
                None => (decl.clone(), None),
            };
            // Declared without a default in a stage, an argument keeps the value
            // it had before the first FROM.
            let value = self
                .opts
                .build_args
                .get(&name)
                .cloned()
                .or(default)
                .or_else(|| self.global.get(&name).cloned())
                .or_else(|| self.opts.predefined.get(&name).cloned())
                .unwrap_or_default();
            if !self.in_stage {
                self.global.insert(name.clone(), value.clone());
            }
            self.args.insert(name, value);
        }
    }

    /// `FROM`: a new stage, its origin resolved (an image word is kept for a rewrite),
    /// starting with no arguments and its origin stage's environment.
    fn begin_stage(&mut self, rest: &[(String, WordAt)], fail: impl Fn(String) -> ScanError) -> Result<(), ScanError> {
        let words: Vec<&(String, WordAt)> = rest.iter().filter(|(w, _)| !w.starts_with("--")).collect();
        let (image, name) = match words.as_slice() {
            [image] => (*image, None),
            [image, (as_kw, _), (name, _)] if as_kw.eq_ignore_ascii_case("as") => (*image, Some(name.to_ascii_lowercase())),
            _ => {
                let written: Vec<&str> = rest.iter().map(|(w, _)| w.as_str()).collect();
                return Err(fail(format!(
                    "cannot read FROM {:?}: expected `FROM [--platform=…] image [AS name]`",
                    written.join(" ")
                )));
            }
        };
        // BuildKit's reading first; acb's (a stage's arguments too) where that
        // names no image, which BuildKit would refuse to build anyway.
        let origin = match resolve(&expand(&image.0, &self.global, &BTreeMap::new()), &self.out.stages) {
            Ok(o) => o,
            Err(e) => {
                let mut all = self.global.clone();
                all.extend(self.args.clone());
                resolve(&expand(&image.0, &all, &BTreeMap::new()), &self.out.stages).map_err(|_| fail(e))?
            }
        };
        self.in_stage = true;
        self.args = BTreeMap::new();
        if let Origin::Image(r) = &origin {
            self.out.images.push(ImageWord {
                at: image.1,
                form: Form::Bare,
                reference: r.clone(),
            });
        }
        self.env = match origin {
            Origin::Stage(i) => self.out.stages[i].env.clone(),
            _ => BTreeMap::new(),
        };
        if let (Some(t), Some(n)) = (&self.opts.target, &name) {
            if t.eq_ignore_ascii_case(n) {
                self.out.target_found = true;
            }
        }
        self.out.stages.push(Stage {
            name,
            origin,
            env: self.env.clone(),
        });
        Ok(())
    }

    /// `ONBUILD COPY|ADD|RUN`: the images and remote sources a later build would fetch,
    /// noted apart, since no rewrite of this Dockerfile reaches them.
    fn note_onbuild(&mut self, line: usize, rest: &[(String, WordAt)], fail: impl Fn(String) -> ScanError) -> Result<(), ScanError> {
        let Some((inner, _)) = rest.first() else { return Ok(()) };
        let inner = inner.to_ascii_uppercase();
        if !matches!(inner.as_str(), "COPY" | "ADD" | "RUN") {
            return Ok(());
        }
        let words = &rest[1..];
        let flags = words.iter().take_while(|(w, _)| w.starts_with("--")).count();
        for (word, _) in &words[..flags] {
            plain_flag(word).map_err(&fail)?;
            let from = word
                .strip_prefix("--from=")
                .or_else(|| word.strip_prefix("--mount=").and_then(|m| m.split(',').find_map(mount_from)));
            if let Some(from) = from {
                self.out.onbuild_images.push((line, from.to_string()));
            }
        }
        if inner != "RUN" {
            let all = sources(&words[flags..]);
            let count = all.len();
            for (written, _) in all {
                let url = expand_known(&written, &self.args, &self.env);
                if url.as_deref().is_none_or(is_remote) || is_remote(&unescaped(&written)) {
                    self.out.remote.push(RemoteSource {
                        line,
                        url,
                        written,
                        onbuild: true,
                        keyword_at: None,
                        source_at: None,
                        sources: count,
                    });
                }
            }
        }
        Ok(())
    }

    /// The images `--from=` and `--mount=…,from=` flags name (stages and `scratch` are
    /// not images), kept with their places for a rewrite.
    fn note_flag_images(&mut self, flags: &[(String, WordAt)], fail: impl Fn(String) -> ScanError) -> Result<(), ScanError> {
        for (word, at) in flags {
            let (from, form) = if let Some(v) = word.strip_prefix("--from=") {
                (v.to_string(), Form::FromFlag)
            } else if let Some(m) = word.strip_prefix("--mount=") {
                let parts: Vec<&str> = m.split(',').collect();
                let Some(from) = parts.iter().find_map(|kv| mount_from(kv)) else {
                    continue;
                };
                let others = parts.iter().filter(|kv| mount_from(kv).is_none()).map(|s| s.to_string()).collect();
                (from.to_string(), Form::Mount(others))
            } else {
                continue;
            };
            if let Origin::Image(r) = resolve(&expand(&from, &self.args, &BTreeMap::new()), &self.out.stages).map_err(&fail)? {
                self.out.copied.push(r.clone());
                self.out.images.push(ImageWord {
                    at: *at,
                    form,
                    reference: r,
                });
            }
        }
        Ok(())
    }

    /// The sources of an `ADD` or `COPY` that may be fetched from a network: remote once
    /// substituted, or (for `ADD`) possibly so through the base image's environment.
    fn note_remote_sources(&mut self, keyword: &str, ins: &Instruction, words: &[(String, WordAt)]) {
        let all = sources(words);
        let count = all.len();
        for (written, source_at) in all {
            // The builder unquotes and unescapes a source before it looks
            // at it: one that is only remote then cannot be checked.
            let url = if is_remote(&unescaped(&written)) && !is_remote(&written) {
                None
            } else {
                expand_known(&written, &self.args, &self.env)
            };
            // ADD fetches URLs, and one whose variables come from the base
            // image could be one; COPY refuses URLs itself.
            let remote = match &url {
                Some(u) => is_remote(u),
                None => keyword == "ADD",
            };
            if remote || is_remote(&written) {
                self.out.remote.push(RemoteSource {
                    line: ins.line,
                    url,
                    written,
                    onbuild: false,
                    keyword_at: Some(ins.words[0].1),
                    source_at,
                    sources: count,
                });
            }
        }
    }
}

/// `ENV K=V …` or the old `ENV K V`.
fn read_env(rest: &[(String, WordAt)], args: &BTreeMap<String, String>, env: &mut BTreeMap<String, String>) {
    let Some((first, _)) = rest.first() else { return };
    if first.contains('=') {
        for (pair, _) in rest {
            if let Some((k, v)) = pair.split_once('=') {
                let v = expand(&unquote(v), args, env);
                env.insert(k.to_string(), v);
            }
        }
    } else {
        let value: Vec<&str> = rest[1..].iter().map(|(w, _)| w.as_str()).collect();
        let v = expand(&unquote(&value.join(" ")), args, env);
        env.insert(first.clone(), v);
    }
}

/// The sources of `ADD`/`COPY` words (after the flags), with their places: every word
/// but the last, or the JSON form's list (whose words have no single place).
fn sources(words: &[(String, WordAt)]) -> Vec<(String, Option<WordAt>)> {
    let joined: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    let joined = joined.join(" ");
    if joined.trim_start().starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(&joined) {
            return list
                .split_last()
                .map(|(_, s)| s.iter().map(|w| (w.clone(), None)).collect())
                .unwrap_or_default();
        }
    }
    words
        .split_last()
        .map(|(_, s)| s.iter().map(|(w, at)| (w.clone(), Some(*at))).collect())
        .unwrap_or_default()
}

/// A flag as the builder reads it only when it is written plainly: BuildKit strips
/// quotes and escapes from flag words (`--fr"om"=x` is `--from=x`) and takes a bare
/// `--from`'s value from the next word, which this walk would read otherwise.
fn plain_flag(word: &str) -> Result<(), String> {
    if !word.is_ascii() {
        return Err(format!(
            "{word}: write a flag in ASCII (builders split other characters differently)"
        ));
    }
    if word.contains(['"', '\'', '\\', '`']) {
        return Err(format!("{word}: write a flag without quotes or escapes"));
    }
    if word == "--from" || word == "--mount" {
        return Err(format!("{word}: write the flag's value after `=`"));
    }
    Ok(())
}

/// A mount option naming the image or stage it mounts from (`from=`, keys in any case).
fn mount_from(option: &str) -> Option<&str> {
    let (key, value) = option.split_once('=')?;
    key.trim().eq_ignore_ascii_case("from").then_some(value)
}

/// A word with its quotes and escapes removed, as the builder's shell words are.
fn unescaped(word: &str) -> String {
    word.chars().filter(|c| !matches!(c, '"' | '\'' | '\\' | '`')).collect()
}

/// A source the builder fetches from a network rather than the context.
fn is_remote(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
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

/// The escape character a parser directive sets (`# escape=``), `\` otherwise.
fn escape_char(text: &str) -> char {
    directives(text)
        .into_iter()
        .find(|(_, key, _)| key == "escape")
        .and_then(|(_, _, v)| v.chars().next())
        .unwrap_or('\\')
}

/// The parser directives at the top (`# key=value`), with their 1-based lines: they end
/// at the first line that is not one.
pub(crate) fn directives(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(body) = line.trim().strip_prefix('#') else { break };
        let Some((key, value)) = body.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        // BuildKit stops reading directives at the first one it does not know.
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        out.push((i + 1, key, value.trim().to_string()));
    }
    out
}

/// Logical instructions with the line each starts on and where each word is: comment
/// lines dropped, continuations joined (a word never spans lines).
/// Heredoc bodies (`RUN <<EOF` … `EOF`) are skipped, as BuildKit reads them; a body
/// line that older builders would take for an instruction this walk looks at is
/// returned, with its line, to be refused.
fn instructions(text: &str) -> (Vec<Instruction>, Option<(usize, String)>) {
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut current: Option<Instruction> = None;
    let mut heredocs: std::collections::VecDeque<(String, bool)> = std::collections::VecDeque::new();
    let mut ambiguous = None;
    for (i, raw) in text.split('\n').enumerate() {
        if let Some((end, strip_tabs)) = heredocs.front() {
            let body = if *strip_tabs { raw.trim_start_matches('\t') } else { raw };
            if body.trim_end_matches('\r') == end {
                heredocs.pop_front();
            } else if ambiguous.is_none() {
                let first = raw.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if matches!(first.as_str(), "FROM" | "COPY" | "ADD" | "ONBUILD" | "ARG" | "RUN") {
                    ambiguous = Some((i + 1, first));
                }
            }
            continue;
        }
        let line = raw.trim();
        // Blank lines and comments never end an instruction: inside a continuation the
        // builder skips them too.
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let offset = raw.len() - raw.trim_start().len();
        // BuildKit's rule: the escape character, then only spaces and tabs.
        let kept = raw.trim_start().trim_end_matches([' ', '\t', '\r']);
        let (head, continues) = match kept.strip_suffix(escape) {
            Some(head) => (head, true),
            None => (line, false),
        };
        let ins = current.get_or_insert_with(|| Instruction {
            line: i + 1,
            words: Vec::new(),
        });
        let mut start = None;
        for (j, c) in head.char_indices().chain(std::iter::once((head.len(), ' '))) {
            // BuildKit splits an instruction's words at ASCII blanks (flags byte by
            // byte, where 0x85 and 0xA0 split too: `plain_flag` refuses those words).
            match (c == ' ' || c == '\t', start) {
                (false, None) => start = Some(j),
                (true, Some(s)) => {
                    let at = WordAt {
                        line: i,
                        start: offset + s,
                        end: offset + j,
                    };
                    ins.words.push((head[s..j].to_string(), at));
                    start = None;
                }
                _ => {}
            }
        }
        if !continues {
            if let Some(done) = current.take().filter(|c| !c.words.is_empty()) {
                heredocs.extend(heredoc_ends(&done));
                out.push(done);
            }
        }
    }
    if let Some(done) = current.filter(|c| !c.words.is_empty()) {
        out.push(done);
    }
    (out, ambiguous)
}

/// The words ending the heredocs an instruction opens (`<<EOF`, `<<-EOF`, `<<"EOF"`),
/// and whether their bodies' leading tabs are stripped.
fn heredoc_ends(ins: &Instruction) -> Vec<(String, bool)> {
    let keyword = ins.words[0].0.to_ascii_uppercase();
    if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        return Vec::new();
    }
    let mut out = Vec::new();
    // A whole word `[n]<<[-]NAME`, NAME maybe quoted, as BuildKit's heredoc pattern.
    for (word, _) in &ins.words[1..] {
        let Some(rest) = word.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<") else {
            continue;
        };
        let (strip_tabs, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let name = rest.trim_matches(['"', '\'']);
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push((name.to_string(), strip_tabs));
        }
    }
    out
}

pub(crate) fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].to_string();
        }
    }
    t.to_string()
}

/// Expands `$V`, `${V}`, `${V:-default}` and `${V:+alternative}` from `env`, then
/// `args`; unset names are empty.
fn expand(s: &str, args: &BTreeMap<String, String>, env: &BTreeMap<String, String>) -> String {
    substitute(s, &|name| {
        Some(env.get(name).or_else(|| args.get(name)).cloned().unwrap_or_default())
    })
    .unwrap_or_default()
}

/// As [`expand`], but `None` when a name is set neither here nor by an argument: the
/// base image's environment may set it, so the result cannot be known.
fn expand_known(s: &str, args: &BTreeMap<String, String>, env: &BTreeMap<String, String>) -> Option<String> {
    substitute(s, &|name| env.get(name).or_else(|| args.get(name)).cloned())
}

fn substitute(s: &str, get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
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
                // A name set outside (the base image's environment) decides, unknown.
                let v = get(name)?;
                out.push_str(&if v.is_empty() { substitute(default, get)? } else { v });
            } else if let Some((name, alt)) = body.split_once(":+") {
                if !get(name)?.is_empty() {
                    out.push_str(&substitute(alt, get)?);
                }
            } else {
                out.push_str(&get(&body)?);
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
                out.push_str(&get(&name)?);
            }
        }
    }
    Some(out)
}
