//! Build contexts: which files go to the engine, and the tar stream that carries them.
//!
//! [`DockerIgnore`] implements Docker's `.dockerignore` rules (moby's
//! patternmatcher, which differs from gitignore: `*` never crosses `/`, `**` does,
//! `!` re-includes, the last matching rule wins, and a rule matching a directory
//! excludes what is under it). No maintained crate implements these rules, so they
//! live here, once. [`tar_stream`] walks a directory on a blocking thread and sends
//! the archive in chunks through a bounded channel, so a context is never held in
//! memory whole.
//!
//! ```
//! let ignore = slipway_context::DockerIgnore::parse("*.log\n!keep.log\nbuild/\n");
//! assert!(ignore.excludes("debug.log"));
//! assert!(!ignore.excludes("keep.log"));
//! assert!(ignore.excludes("build/out/app"));
//! assert!(!ignore.excludes("src/debug.log"));
//! ```

pub mod archive;
mod beneath;
mod ignore;
mod pack;
mod regular;

pub use beneath::Beneath;
pub use cap_std::{ambient_authority, fs::Dir};
pub use ignore::DockerIgnore;
pub use pack::{context_ignore, tar_stream, write_tar, ContextError, Overlay, MAX_IGNORE_BYTES};
pub use regular::read_regular;
