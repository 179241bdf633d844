//! How one execution of a step ended, and what it produced.

use crate::report::{ImageDependencies, OutputImage};

/// How one execution ended.
pub(crate) enum Outcome {
    Ok,
    /// The command ran and failed (non-zero exit); retries apply.
    Failed(String),
    /// Something around the command failed (image, engine); not retried.
    Error(String),
    TimedOut,
    Canceled,
}

#[derive(Default)]
pub(crate) struct Produced {
    pub images: Vec<OutputImage>,
    pub dependencies: Vec<ImageDependencies>,
}
