//! Errors that point at the file, line and field that caused them.

use std::fmt;

/// Where in a task file something is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    /// The field, as a path: `steps[2].timeout`.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        Ok(())
    }
}

/// What kind of problem a task file has; tests and callers match on this, people read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Yaml,
    Template,
    Alias,
    UnknownKey,
    InvalidVersion,
    InvalidValue,
    MissingStepType,
    MultipleStepTypes,
    DuplicateId,
    ReservedId,
    InvalidId,
    UnknownDependency,
    SelfReference,
    Cycle,
    ParallelMixed,
    InvalidImage,
    InvalidBuildArgs,
    InvalidCmd,
    Secret,
    Volume,
    Mount,
    Network,
    NotAllowed,
}

/// A problem in a task file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub struct TaskError {
    pub kind: ErrorKind,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl TaskError {
    pub(crate) fn new(kind: ErrorKind, location: Location, message: impl Into<String>) -> Self {
        TaskError {
            kind,
            location,
            message: message.into(),
        }
    }
}

/// A problem that does not stop the task (an unknown key when those are allowed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}
