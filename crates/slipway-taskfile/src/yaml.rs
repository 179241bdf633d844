//! Every YAML call Slipway makes goes through this module, so a change of YAML
//! crate is one file. `serde_yaml_ng` (a maintained fork with serde_yaml's API)
//! turns text into typed values; `yaml-rust2`'s event parser gives each key its
//! line and column, which serde does not expose.

use crate::error::{ErrorKind, Location, TaskError};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column of every key and sequence item, by path (`steps[1].when`).
#[derive(Debug, Default)]
pub struct Positions {
    at: HashMap<String, (usize, usize)>,
}

impl Positions {
    pub fn index(text: &str) -> Positions {
        let mut rx = Receiver::default();
        let mut parser = Parser::new_from_str(text);
        // A document that does not scan is reported by serde with its own position.
        let _ = parser.load(&mut rx, false);
        Positions { at: rx.at }
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, file: &str, path: &str) -> Location {
        let mut p = path;
        loop {
            if let Some(&(line, column)) = self.at.get(p) {
                return Location {
                    file: file.to_string(),
                    line,
                    column,
                    field: Some(path.to_string()).filter(|s| !s.is_empty()),
                };
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return Location {
                        file: file.to_string(),
                        line: 0,
                        column: 0,
                        field: Some(path.to_string()).filter(|s| !s.is_empty()),
                    };
                }
            }
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    at: HashMap<String, (usize, usize)>,
}

impl Receiver {
    /// Called at the start of a value; returns the value's path.
    fn value_path(&mut self, mark: Marker) -> Option<String> {
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.at.entry(p.clone()).or_insert(pos);
                Some(p)
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                    if key.is_none() {
                        let p = join(path, &value);
                        self.at.entry(p).or_insert((mark.line(), mark.col() + 1));
                        *key = Some(value);
                        return;
                    }
                }
                self.value_path(mark);
            }
            Event::Alias(_) => {
                self.value_path(mark);
            }
            Event::MappingStart(..) => {
                let path = self.value_path(mark).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Deepest nesting of mappings and sequences any YAML Slipway reads may have. Task,
/// values and alias files are a few levels deep; a hostile `[[[[…` is refused after
/// reading `MAX_DEPTH` events instead of costing time quadratic in its depth.
pub const MAX_DEPTH: usize = 64;

/// Refuses `text` if its collections nest deeper than [`MAX_DEPTH`], streaming its events
/// (nothing is built). Syntax errors are left for serde to report with its own words.
fn check_depth(file: &str, text: &str) -> Result<(), TaskError> {
    let too_deep = |mark: Marker| {
        TaskError::new(
            ErrorKind::Yaml,
            Location {
                file: file.to_string(),
                line: mark.line(),
                column: mark.col() + 1,
                field: None,
            },
            format!("mappings and sequences are nested more than {MAX_DEPTH} deep (the limit)"),
        )
    };
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            // The scanner stops at 255 open flow collections, before it yields their events.
            Err(e) if e.info().contains("recursion limit") => return Err(too_deep(*e.marker())),
            Err(_) => return Ok(()),
            Ok((Event::MappingStart(..) | Event::SequenceStart(..), mark)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(mark));
                }
            }
            Ok((Event::MappingEnd | Event::SequenceEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
        }
    }
}

/// Deserialises `text`, returning the value and the paths of keys the type does not know.
pub fn from_str<T: DeserializeOwned>(file: &str, text: &str) -> Result<(T, Vec<String>), TaskError> {
    check_depth(file, text)?;
    let mut unknown = Vec::new();
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let value: Result<T, _> = serde_ignored::deserialize(de, |path| unknown.push(path_string(&path)));
    match value {
        Ok(v) => Ok((v, unknown)),
        Err(e) => Err(yaml_error(file, &e)),
    }
}

/// A YAML mapping of strings, as alias `src` files and `--values` files hold.
pub fn value_from_str(file: &str, text: &str) -> Result<serde_json::Value, TaskError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    check_depth(file, text)?;
    serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, &e))
}

fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> TaskError {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    let mut message = e.to_string();
    // serde_yaml appends the position the location already carries.
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    let (field, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.is_empty() => (Some(path.to_string()), rest.to_string()),
        _ => (None, message),
    };
    TaskError::new(
        ErrorKind::Yaml,
        Location {
            file: file.to_string(),
            line,
            column,
            field,
        },
        message,
    )
}

fn path_string(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        Path::Map { parent, key } => join(&path_string(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => path_string(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_items() {
        let text = "version: v1.1.0\nsteps:\n  - id: a\n    cmd: x\n  - cmd: y\n    when: [a]\n";
        let p = Positions::index(text);
        let at = |path: &str| {
            let l = p.locate("f", path);
            (l.line, l.column)
        };
        assert_eq!(at("version"), (1, 1));
        assert_eq!(at("steps[0]").0, 3);
        assert_eq!(at("steps[0].cmd"), (4, 5));
        assert_eq!(at("steps[1].when"), (6, 5));
        assert_eq!(at("steps[1].when[0]"), (6, 12));
        assert_eq!(at("steps[1].nope").0, 5);
    }
}
