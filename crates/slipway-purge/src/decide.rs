//! What a purge deletes, decided from what the registry holds, with no I/O: the tags
//! the filters match and not an exclude, older than `--ago`, less the newest `--keep`
//! of each repository; then by digest, since a Distribution registry deletes a
//! manifest with every tag that points to it: a digest goes only when all its tags go.

use crate::filter::Filter;
use crate::options::PurgeOptions;
use std::collections::{BTreeMap, BTreeSet};

/// A tag as the registry holds it, and when it was made (ms since the epoch), if known.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub created_ms: Option<i64>,
}

/// A manifest no tag points to, that Slipway knows of.
#[derive(Debug, Clone, PartialEq)]
pub struct UntaggedInfo {
    pub digest: String,
    pub created_ms: Option<i64>,
}

/// One repository's tags and untagged manifests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepositoryInventory {
    pub name: String,
    pub tags: Vec<TagInfo>,
    pub untagged: Vec<UntaggedInfo>,
}

/// Why something a filter matched stays.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kept {
    /// Among the newest `--keep` images of its repository.
    Newest,
    /// Younger than `--ago`.
    Young,
    /// Its age is unknown: no record and no `created` in its config.
    AgeUnknown,
    /// Excluded by this `--exclude`.
    Excluded(String),
    /// Its digest is also that of these tags, which stay.
    SharesDigest(Vec<String>),
    /// A running run uses its digest.
    InUse,
}

/// What a purge does to one repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepositoryPlan {
    pub name: String,
    /// Manifests to delete, with the tags that go with them.
    pub delete: Vec<(String, Vec<String>)>,
    /// Tags and untagged digests a filter matched that stay, and why.
    pub kept: Vec<(String, Kept)>,
}

/// The purge of every repository the filters name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurgePlan {
    pub repositories: Vec<RepositoryPlan>,
}

impl PurgePlan {
    pub fn deleted_tags(&self) -> usize {
        self.repositories.iter().flat_map(|r| &r.delete).map(|(_, tags)| tags.len()).sum()
    }

    pub fn deleted_manifests(&self) -> usize {
        self.repositories.iter().map(|r| r.delete.len()).sum()
    }
}

fn any_match(filters: &[Filter], repo: &str, tag: &str) -> Result<Option<String>, String> {
    for f in filters {
        if f.matches(repo, tag)? {
            return Ok(Some(f.text.clone()));
        }
    }
    Ok(None)
}

/// Whether any filter names `repo` (a purge looks only at those repositories; with
/// `--untagged-only` and no filter, at every one).
pub fn named(options: &PurgeOptions, repo: &str) -> Result<bool, String> {
    if options.filters.is_empty() && options.untagged_only {
        return Ok(true);
    }
    for f in &options.filters {
        if f.names_repository(repo)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The plan for `repo` at `now_ms`; `in_use` holds the digests running runs use.
pub fn decide(
    options: &PurgeOptions,
    repo: &RepositoryInventory,
    now_ms: i64,
    in_use: &BTreeSet<String>,
) -> Result<RepositoryPlan, String> {
    let cutoff = now_ms - options.ago.as_millis() as i64;
    // `--ago 0` is every age, known or not.
    let all_ages = options.ago.is_zero();
    let old = |created: Option<i64>| if all_ages { Some(true) } else { created.map(|c| c <= cutoff) };
    let mut plan = RepositoryPlan {
        name: repo.name.clone(),
        ..Default::default()
    };
    let mut going: Vec<&TagInfo> = Vec::new();
    if !options.untagged_only {
        for t in &repo.tags {
            if any_match(&options.filters, &repo.name, &t.tag)?.is_none() {
                continue;
            }
            if let Some(ex) = any_match(&options.excludes, &repo.name, &t.tag)? {
                plan.kept.push((t.tag.clone(), Kept::Excluded(ex)));
                continue;
            }
            match old(t.created_ms) {
                None => plan.kept.push((t.tag.clone(), Kept::AgeUnknown)),
                Some(false) => plan.kept.push((t.tag.clone(), Kept::Young)),
                Some(true) => going.push(t),
            }
        }
        // The newest `--keep` images of those that would go stay, with every tag of them.
        going.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.tag.cmp(&b.tag)));
        let mut newest: Vec<&str> = Vec::new();
        for t in &going {
            if newest.len() < options.keep && !newest.contains(&t.digest.as_str()) {
                newest.push(&t.digest);
            }
        }
        let (kept, rest): (Vec<&TagInfo>, Vec<&TagInfo>) = going.into_iter().partition(|t| newest.contains(&t.digest.as_str()));
        plan.kept.extend(kept.into_iter().map(|t| (t.tag.clone(), Kept::Newest)));
        going = rest;
    }
    // By digest: every tag of it must go, and no running run may use it.
    let going_tags: BTreeSet<&str> = going.iter().map(|t| t.tag.as_str()).collect();
    let mut by_digest: BTreeMap<&str, Vec<&TagInfo>> = BTreeMap::new();
    for t in &going {
        by_digest.entry(t.digest.as_str()).or_default().push(t);
    }
    for (digest, tags) in by_digest {
        let staying: Vec<String> = repo
            .tags
            .iter()
            .filter(|t| t.digest == digest && !going_tags.contains(t.tag.as_str()))
            .map(|t| t.tag.clone())
            .collect();
        let names: Vec<String> = tags.iter().map(|t| t.tag.clone()).collect();
        if !staying.is_empty() {
            plan.kept
                .extend(names.into_iter().map(|n| (n, Kept::SharesDigest(staying.clone()))));
        } else if in_use.contains(digest) {
            plan.kept.extend(names.into_iter().map(|n| (n, Kept::InUse)));
        } else {
            plan.delete.push((digest.to_string(), names));
        }
    }
    if options.untagged || options.untagged_only {
        let tagged: BTreeSet<&str> = repo.tags.iter().map(|t| t.digest.as_str()).collect();
        for u in repo.untagged.iter().filter(|u| !tagged.contains(u.digest.as_str())) {
            let old_enough = old(u.created_ms) == Some(true);
            if in_use.contains(&u.digest) {
                plan.kept.push((u.digest.clone(), Kept::InUse));
            } else if old_enough {
                plan.delete.push((u.digest.clone(), Vec::new()));
            } else {
                plan.kept.push((u.digest.clone(), Kept::Young));
            }
        }
    }
    plan.kept.sort();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 100 * DAY;

    fn tag(tag: &str, digest: &str, days_old: Option<i64>) -> TagInfo {
        TagInfo {
            tag: tag.into(),
            digest: digest.into(),
            created_ms: days_old.map(|d| NOW - d * DAY),
        }
    }

    fn options(args: &str) -> PurgeOptions {
        PurgeOptions::parse(&shell_words(args)).unwrap()
    }

    fn shell_words(s: &str) -> Vec<String> {
        s.split_whitespace().map(|w| w.trim_matches('\'').to_string()).collect()
    }

    fn repo() -> RepositoryInventory {
        RepositoryInventory {
            name: "app".into(),
            tags: vec![
                tag("v1", "sha256:1", Some(10)),
                tag("v2", "sha256:2", Some(8)),
                tag("v3", "sha256:3", Some(5)),
                tag("keep-1", "sha256:4", Some(20)),
                tag("latest", "sha256:5", Some(1)),
                tag("also-v3", "sha256:3", Some(5)),
                tag("mystery", "sha256:6", None),
            ],
            untagged: vec![
                UntaggedInfo {
                    digest: "sha256:old".into(),
                    created_ms: Some(NOW - 30 * DAY),
                },
                UntaggedInfo {
                    digest: "sha256:new".into(),
                    created_ms: Some(NOW),
                },
            ],
        }
    }

    fn deleted(plan: &RepositoryPlan) -> Vec<String> {
        let mut d: Vec<String> = plan.delete.iter().map(|(d, _)| d.clone()).collect();
        d.sort();
        d
    }

    #[test]
    fn old_matching_tags_go_by_digest_and_the_rest_stay_with_a_reason() {
        let o = options("--filter app:^(?!keep-).* --ago 3d --keep 1");
        let plan = decide(&o, &repo(), NOW, &BTreeSet::new()).unwrap();
        // v1 (10 d), v2 (8 d) and v3 (5 d, also tagged also-v3) are old; the newest
        // image of them is kept with both its tags.
        assert_eq!(deleted(&plan), ["sha256:1", "sha256:2"]);
        assert!(plan.kept.contains(&("v3".into(), Kept::Newest)));
        assert!(plan.kept.contains(&("also-v3".into(), Kept::Newest)));
        assert!(plan.kept.contains(&("latest".into(), Kept::Young)));
        assert!(plan.kept.contains(&("mystery".into(), Kept::AgeUnknown)));
        assert!(!plan.kept.iter().any(|(t, _)| t == "keep-1"), "lookahead: never matched");
    }

    #[test]
    fn a_digest_goes_only_with_all_its_tags() {
        // latest is young and shares v1's digest: v1 is reported, not deleted, since
        // deleting the digest would untag latest too.
        let mut r = repo();
        r.tags.push(tag("stable", "sha256:1", Some(0)));
        let plan = decide(&options("--filter app:^v1$|^stable$ --ago 3d"), &r, NOW, &BTreeSet::new()).unwrap();
        assert!(plan.delete.is_empty(), "{plan:?}");
        assert!(plan.kept.contains(&("stable".into(), Kept::Young)));
        assert!(plan.kept.contains(&("v1".into(), Kept::SharesDigest(vec!["stable".into()]))));
    }

    #[test]
    fn excludes_in_use_and_untagged_are_decided_too() {
        let o = options("--filter app:.* --exclude app:^v1$ --ago 0 --untagged");
        let in_use = BTreeSet::from(["sha256:2".to_string()]);
        let plan = decide(&o, &repo(), NOW, &in_use).unwrap();
        assert!(plan.kept.contains(&("v1".into(), Kept::Excluded("app:^v1$".into()))));
        assert!(plan.kept.contains(&("v2".into(), Kept::InUse)));
        assert_eq!(
            deleted(&plan),
            ["sha256:3", "sha256:4", "sha256:5", "sha256:6", "sha256:new", "sha256:old"]
        );
        let only = options("--untagged-only --ago 7d");
        let plan = decide(&only, &repo(), NOW, &BTreeSet::new()).unwrap();
        assert_eq!(deleted(&plan), ["sha256:old"]);
        assert_eq!(plan.kept, [("sha256:new".to_string(), Kept::Young)]);
    }
}
