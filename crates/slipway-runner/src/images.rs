//! A run's images in an engine other runs share ([`crate::ImageScope`]): the names its
//! builds make are its own (`slipway_reference::namespace`), the operator's images are
//! pinned under its names when it starts, and every other image it names is looked up
//! in its registry with the run's credentials and used by digest. So a run reads only
//! images it made, the operator's, and what a registry gives it; nothing another run
//! tags can stand in for any of them.

use crate::Shared;
use slipway_reference::{namespace, Reference};
use std::collections::BTreeMap;
use std::time::Duration;

/// What an image name a run uses stands for in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The run's own image (made by it, or the operator's pinned for it): local.
    Own(String),
    /// A registry's image by digest: pulled if missing.
    Registry(String),
}

impl Resolved {
    pub(crate) fn name(&self) -> &str {
        match self {
            Resolved::Own(n) | Resolved::Registry(n) => n,
        }
    }
}

/// The engine name a tag the run makes gets (`build -t NAME`).
pub(crate) fn own_name(shared: &Shared, name: &str) -> Result<String, String> {
    if shared.cfg.images.is_none() {
        return Ok(name.to_string());
    }
    if namespace::is_run_name(name) {
        return Err(format!(
            "{name}: a run's image names are the run's own: tag the image with the name it should have"
        ));
    }
    let r = Reference::parse(name).map_err(|e| e.to_string())?;
    namespace::in_run(&shared.cfg.run_id, &r).ok_or_else(|| format!("{name}: this image name cannot be given to a run's image"))
}

/// Tags the operator's images under the run's names, as they are now: the run sees
/// these, whatever is tagged under the operator's names later.
pub(crate) async fn pin_operator_images(shared: &Shared) {
    let Some(scope) = &shared.cfg.images else { return };
    let pins = scope.operator_images.iter().map(|name| async move {
        let (Ok(r), Some(id)) = (Reference::parse(name), shared.engine.image_id(name).await) else {
            return;
        };
        if let Some(local) = namespace::in_run(&shared.cfg.run_id, &r) {
            if let Err(e) = shared.engine.tag_image(&id, &local).await {
                tracing::warn!(image = %name, error = %e, "pinning an operator's image for a run failed");
            }
        }
    });
    futures_util::future::join_all(pins).await;
}

/// What `name` (a step's image, a Dockerfile's base) stands for in this run.
pub(crate) async fn resolve(shared: &Shared, name: &str) -> Result<Resolved, String> {
    if shared.cfg.images.is_none() {
        return Ok(Resolved::Own(name.to_string()));
    }
    let run_id = &shared.cfg.run_id;
    if namespace::is_run_name(name) {
        return match namespace::run_of(name) {
            Some((run, _)) if &run == run_id => Ok(Resolved::Own(name.to_string())),
            _ => Err(format!("{name} names another run's image")),
        };
    }
    let r = Reference::parse(name).map_err(|e| e.to_string())?;
    if r.digest.is_none() {
        if let Some(local) = namespace::in_run(run_id, &r) {
            if shared.engine.image_id(&local).await.is_some() {
                return Ok(Resolved::Own(local));
            }
        }
    }
    // From its registry, with the run's credentials: the registry decides whether
    // this run may have it, and the digest is what the run gets.
    let credential = shared.credential_for(&r.to_string());
    let auth = credential.map(|c| (c.username, c.password));
    match registry_digest(shared.cfg.may_read.as_ref(), &asked(&r), auth).await {
        Ok(digest) => Ok(Resolved::Registry(format!("{}@{digest}", r.name()))),
        Err(e) => Err(format!(
            "image {name} was not made by this run, is not one of the operator's local images, and {}",
            shared.redactor.mask(&e)
        )),
    }
}

/// The reference a registry is asked for: by digest when one is given, else by tag.
fn asked(r: &Reference) -> String {
    match &r.digest {
        Some(d) => format!("{}@{d}", r.name()),
        None => r.tagged(),
    }
}

/// The digest `image` has in its registry, if the run may read its repository: every
/// registry lookup of a run in a shared engine (bases, step images, frontends, cache
/// sources, the proxy's pulls) comes here.
pub(crate) async fn registry_digest(
    may_read: Option<&slipway_engine_proxy::ReadCheck>,
    image: &str,
    auth: Option<(String, String)>,
) -> Result<String, String> {
    let r = Reference::parse(image).map_err(|e| e.to_string())?;
    if let Some(check) = may_read {
        check(&r.registry, &r.repository)?;
    }
    let client = registry_client().ok_or("no HTTP client for the registry")?;
    slipway_registry::manifest_digest(&client, image, auth)
        .await
        .map_err(|e| format!("its registry answered: {e}"))
}

/// The Dockerfile with every image it builds from resolved for this run, the images
/// it names, and the frontend pinned by digest; errors name the line.
pub(crate) async fn rewrite_dockerfile(shared: &Shared, text: &str, opts: &slipway_dockerfile::ScanOptions) -> Result<String, String> {
    if shared.cfg.images.is_none() {
        return Ok(text.to_string());
    }
    if let Some((line, frontend)) = slipway_dockerfile::frontend_in_another_form(text) {
        return Err(format!(
            "line {line}: the frontend {frontend} is named in a form this daemon does not pin: write it as `# syntax=` on the first line"
        ));
    }
    if let Some((line, image)) = slipway_dockerfile::onbuild_images(text, opts).map_err(|e| e.to_string())?.first() {
        return Err(format!(
            "line {line}: ONBUILD copies from {image}: a trigger reads an image by name in a later build, where no check sees it; copy from an image in the build that needs it"
        ));
    }
    let mut replace = BTreeMap::new();
    for r in slipway_dockerfile::image_references(text, opts).map_err(|e| e.to_string())? {
        let resolved = resolve(shared, &r.to_string()).await?;
        let triggers = match &resolved {
            Resolved::Own(local) => shared.engine.image_triggers(local).await,
            Resolved::Registry(image) => {
                let auth = shared.credential_for(image).map(|c| (c.username, c.password));
                let client = registry_client().ok_or("no HTTP client for the registry")?;
                slipway_registry::image_triggers(&client, image, auth)
                    .await
                    .map_err(|e| format!("{r}: its ONBUILD triggers cannot be read: {}", shared.redactor.mask(&e)))?
            }
        };
        if let Some(trigger) = slipway_dockerfile::reaching_trigger(&triggers) {
            return Err(format!(
                "{r} has the ONBUILD trigger `{trigger}`, which fetches a URL or copies from an image: a build here does not run it unchecked"
            ));
        }
        replace.insert(r.to_string(), resolved.name().to_string());
    }
    let mut out = slipway_dockerfile::rewrite(text, opts, &replace).map_err(|e| e.to_string())?;
    if let Some((line, frontend)) = slipway_dockerfile::frontend(text) {
        let pinned = registry_frontend(shared, &frontend)
            .await
            .map_err(|e| format!("Dockerfile line {line}: # syntax={frontend}: {e}"))?;
        out = slipway_dockerfile::with_frontend(&out, &pinned);
    }
    Ok(out)
}

/// A BuildKit frontend: only a registry's image, by digest (a local image by that name
/// could be anyone's).
pub(crate) async fn registry_frontend(shared: &Shared, name: &str) -> Result<String, String> {
    if namespace::is_run_name(name) {
        return Err("a frontend must come from a registry".into());
    }
    let r = Reference::parse(name).map_err(|e| e.to_string())?;
    let allowed = |r: &Reference| shared.cfg.images.as_ref().is_none_or(|s| s.allows_frontend(r));
    if !allowed(&Reference { digest: None, ..r.clone() }) {
        return Err(not_allowed_frontend(&r));
    }
    let credential = shared.credential_for(&r.to_string()).map(|c| (c.username, c.password));
    let digest = registry_digest(shared.cfg.may_read.as_ref(), &asked(&r), credential)
        .await
        .map_err(|e| format!("frontends come only from a registry, by digest, and {}", shared.redactor.mask(&e)))?;
    let pinned = format!("{}@{digest}", r.name());
    match Reference::parse(&pinned) {
        Ok(p) if allowed(&p) => Ok(pinned),
        _ => Err(not_allowed_frontend(&r)),
    }
}

fn not_allowed_frontend(r: &Reference) -> String {
    format!(
        "{}: frontends come only from a registry, by digest, and only those the operator lists in allowed_frontends (a frontend builds whatever it likes of the engine's images and caches)",
        r.name()
    )
}

/// Lines of a build's output with the run's own image names as the task wrote them.
pub(crate) fn familiar_names(run_id: &str, line: &str) -> String {
    let prefix = namespace::prefix(run_id);
    if !line.contains(&prefix) {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(&prefix) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .unwrap_or(tail.len());
        let name = &tail[..end];
        match namespace::run_of(name) {
            Some((_, r)) => out.push_str(&r.familiar()),
            None => out.push_str(name),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A client for the registry's own API: no redirects followed.
pub(crate) fn registry_client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_output_says_the_names_the_task_wrote() {
        let line = "#9 naming to slipway.invalid/sw1/127.0.0.1_5000/team-a/app:1 done";
        assert_eq!(super::familiar_names("sw1", line), "#9 naming to 127.0.0.1:5000/team-a/app:1 done");
        let two = "tag slipway.invalid/sw1/docker.io/library/app:latest, slipway.invalid/sw1/docker.io/team/x:2";
        assert_eq!(super::familiar_names("sw1", two), "tag app:latest, team/x:2");
        assert_eq!(super::familiar_names("sw1", "nothing here"), "nothing here");
    }
}
