//! An image a run pushed, as the runner reports it, the store keeps it and the API
//! shows it: one type for all of them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputImage {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// `os/arch[/variant]` of one platform's image under a multi-platform tag; none for
    /// a single-platform image or the tag's image index itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The manifest's media type and size in bytes, as the registry describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}
