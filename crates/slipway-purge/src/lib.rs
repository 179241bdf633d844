//! `acr purge`, decided: its command line ([`PurgeOptions`]), its `--ago` durations and
//! `REPOSITORY:TAG` filters (with lookahead and `--exclude`), and what a purge deletes
//! from what a registry holds ([`decide`]). Pure: no I/O, no clock; the caller lists
//! the registry, passes the time, and deletes what the plan says.
//!
//! ```
//! use slipway_purge::{decide, PurgeOptions, RepositoryInventory, TagInfo};
//! let args: Vec<String> = ["--filter", "app:.*", "--ago", "1d"].iter().map(|s| s.to_string()).collect();
//! let options = PurgeOptions::parse(&args).unwrap();
//! let repo = RepositoryInventory {
//!     name: "app".into(),
//!     tags: vec![TagInfo { tag: "v1".into(), digest: "sha256:1".into(), created_ms: Some(0) }],
//!     untagged: vec![],
//! };
//! let plan = decide(&options, &repo, 2 * 86_400_000, &Default::default()).unwrap();
//! assert_eq!(plan.delete, [("sha256:1".to_string(), vec!["v1".to_string()])]);
//! ```

mod ago;
mod decide;
mod filter;
mod options;

pub use ago::parse_ago;
pub use decide::{decide, named, Kept, PurgePlan, RepositoryInventory, RepositoryPlan, TagInfo, UntaggedInfo};
pub use filter::Filter;
pub use options::{PurgeOptions, MAX_CONCURRENCY};
