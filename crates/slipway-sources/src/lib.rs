//! A run's source, from where the client said it is to a directory on the worker's
//! disk: uploads (checked entry by entry, unpacked beneath the run's directory), git
//! repositories (branch, tag, commit, subfolder; credentials from the run) and tar.gz
//! URLs, with what a source may make the daemon reach decided in `reach` (no loopback,
//! private ranges or `file://` unless the operator lists them). Knows nothing of runs,
//! tasks or HTTP routes.

pub mod fetch;
pub mod reach;
pub mod uploads;

pub use fetch::{download, fetch, set_git_timeouts, validate, FetchOptions, Source, SourceError};
pub use reach::Reach;
