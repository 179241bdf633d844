//! Base-image-update triggers. The daemon learns a tracked tag's digest from the
//! registry's push notifications or by polling its manifest; a new digest (not a
//! re-push of the same one, not a new tag) starts every enabled dependent task whose
//! trigger type matches. A rebuilt image that is itself a base starts its dependents
//! in turn, each once: a run's trigger carries the chain of tasks that led to it, and
//! a task already in the chain is not started again.

use crate::tasks;
use crate::Triggers;
use slipway_reference::Reference;
use slipway_store::ListFilter;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An image tag seen with a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// Normalised `registry/repository:tag`.
    pub image: String,
    pub digest: String,
}

/// Reads the manifest pushes (with a tag) out of a Distribution notification envelope.
pub fn parse_envelope(body: &[u8]) -> Result<Vec<Sighting>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the envelope is not JSON: {e}"))?;
    let events = v.get("events").and_then(|e| e.as_array()).ok_or("the envelope has no events")?;
    let mut out = Vec::new();
    for e in events {
        let s = |p: &str| e.pointer(p).and_then(|x| x.as_str()).unwrap_or("");
        let media = s("/target/mediaType");
        if s("/action") != "push" || s("/target/tag").is_empty() || !media.contains("manifest") {
            continue;
        }
        let host = if !s("/request/host").is_empty() {
            s("/request/host").to_string()
        } else {
            s("/target/url").split('/').nth(2).unwrap_or("").to_string()
        };
        let Ok(r) = Reference::parse(&format!("{host}/{}:{}", s("/target/repository"), s("/target/tag"))) else {
            continue;
        };
        out.push(Sighting {
            image: r.tagged(),
            digest: s("/target/digest").to_string(),
        });
    }
    Ok(out)
}

/// Which task (and chain of tasks) produced `digest` of `image`: a finished run that
/// output it, or a run still going that was asked to push this tag (the registry
/// notifies while the pushing run is still running).
async fn producer(d: &Triggers, image: &str, digest: &str) -> (Option<String>, Vec<String>) {
    let Ok(r) = Reference::parse(image) else {
        return (None, Vec::new());
    };
    let runs = d
        .store
        .list(&ListFilter {
            image: Some(r.repository.clone()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let names_it = |run: &slipway_store::RunRecord| {
        run.image_names
            .iter()
            .any(|n| Reference::parse(n).map(|x| x.tagged() == image).unwrap_or(false))
    };
    for run in runs {
        let output = run.output_images.iter().any(|o| o.digest == digest);
        let pushing = !run.status.is_finished() && names_it(&run);
        if output || pushing {
            let chain = run.triggers.image_update.as_ref().map(|t| t.chain.clone()).unwrap_or_default();
            return (run.task.as_ref().map(|t| tasks::trigger_key(&run.tenant, t)), chain);
        }
    }
    (None, Vec::new())
}

/// Acts on a digest seen for `image`; returns the ids of the runs started. The chain
/// names tasks as [`tasks::trigger_key`] does: within their tenant.
pub async fn seen(d: &Arc<Triggers>, sighting: &Sighting) -> Result<Vec<String>, String> {
    let before = d
        .store
        .swap_image_digest(&sighting.image, &sighting.digest)
        .await
        .map_err(|e| e.to_string())?;
    let dependents = d.store.dependents_of(&sighting.image).await.map_err(|e| e.to_string())?;
    if dependents.is_empty() {
        return Ok(Vec::new());
    }
    let (made_by, mut chain) = producer(d, &sighting.image, &sighting.digest).await;
    if let Some(t) = &made_by {
        if !chain.contains(t) {
            chain.push(t.clone());
        }
    }
    let r = Reference::parse(&sighting.image).map_err(|e| e.to_string())?;
    let mut started = Vec::new();
    for dep in dependents {
        if chain.contains(&tasks::trigger_key(&dep.tenant, &dep.task)) {
            tracing::info!(task = %dep.task, image = %sighting.image, "not rebuilding: the task is already in this update's chain");
            continue;
        }
        let baseline = if dep.digest.is_empty() {
            before.clone()
        } else {
            Some(dep.digest.clone())
        };
        if baseline.is_none() || baseline.as_deref() == Some(sighting.digest.as_str()) {
            continue;
        }
        let Ok(Some(record)) = d.store.get_task(&dep.tenant, &dep.task).await else {
            continue;
        };
        let spec = &record.spec;
        if !record.enabled || !spec.base_image_trigger.enabled {
            continue;
        }
        if dep.kind != slipway_api::results::DependencyKind::Runtime
            && spec.base_image_trigger.kind != slipway_api::task::BaseImageTriggerType::All
        {
            continue;
        }
        let trigger = slipway_api::results::ImageUpdateTriggerEvent {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: slipway_api::time::millis(d.now()),
            images: vec![slipway_api::results::ImageRef {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                tag: r.tag().to_string(),
                digest: sighting.digest.clone(),
                reference: None,
            }],
            chain: chain.clone(),
        };
        let triggers = slipway_store::Triggers {
            image_update: Some(trigger),
            ..Default::default()
        };
        let key = format!("image:{}:{}@{}", dep.task, sighting.image, sighting.digest);
        let overrides = slipway_api::task::Overrides {
            pull: true,
            ..Default::default()
        };
        let started_run = match tasks::start(d, &dep.tenant, spec, overrides, None, Some(key), triggers).await {
            Err(tasks::StartError::Submit(e @ slipway_worker::submit::SubmitError::Quota { .. })) => {
                tracing::warn!(tenant = %dep.tenant, task = %dep.task, "a base image change started no run: {e}");
                continue;
            }
            other => other.map_err(|e| e.to_string())?,
        };
        if let Some(run) = started_run {
            tracing::info!(task = %dep.task, image = %sighting.image, run_id = %run.id, "base image changed: task started");
            started.push(run.id);
        }
    }
    Ok(started)
}

/// Polls every tracked image's digest, for registries that send no notifications.
pub async fn poll(d: Arc<Triggers>, shutdown: CancellationToken) {
    let every = d.settings.poll_interval_seconds;
    if every == 0 {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
            _ = shutdown.cancelled() => return,
        }
        let Ok(images) = d.store.tracked_images().await else { continue };
        for image in images {
            let registry = Reference::parse(&image).map(|r| r.registry).unwrap_or_default();
            let credential = d
                .settings
                .registry_credentials
                .get(&registry)
                .map(|c| (c.user.clone(), c.secret.clone()));
            match slipway_registry::manifest_digest(&client, &image, credential).await {
                Ok(digest) => {
                    if let Err(e) = seen(
                        &d,
                        &Sighting {
                            image: image.clone(),
                            digest,
                        },
                    )
                    .await
                    {
                        tracing::warn!(image, error = %e, "acting on a polled digest failed");
                    }
                }
                Err(e) => tracing::debug!(image, error = %e, "polling a base image failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_yield_tagged_manifest_pushes() {
        let body = br#"{"events":[
          {"action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:aa","repository":"base","tag":"1","url":"http://127.0.0.1:5000/v2/base/manifests/sha256:aa"},"request":{"host":"127.0.0.1:5000"}},
          {"action":"push","target":{"mediaType":"application/octet-stream","digest":"sha256:bb","repository":"base"},"request":{"host":"127.0.0.1:5000"}},
          {"action":"pull","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:cc","repository":"base","tag":"1"},"request":{"host":"127.0.0.1:5000"}}
        ]}"#;
        assert_eq!(
            parse_envelope(body).unwrap(),
            vec![Sighting {
                image: "127.0.0.1:5000/base:1".into(),
                digest: "sha256:aa".into()
            }]
        );
        assert!(parse_envelope(b"nope").is_err());
    }
}
