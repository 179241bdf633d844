//! What comes into the daemon from any of its surfaces (the `/v1` API, the Azure CLI's
//! ARM surface): a context upload, a source a run or a task names, a run request. Each is
//! checked and queued here once, whichever surface it came through.

use crate::failure::{bad_request, internal, Failure};
use crate::Server;
use axum::body::Body;
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use slipway_api::model::{RunRequest, Upload};
use slipway_api::requests::{self, TaskSource};
use slipway_api::tenant::Caller;
use slipway_sources::{self as sources, uploads};

/// Receives a context upload `id` for `who`'s tenant within its quotas, checked entry by
/// entry; the API's uploads and the Azure CLI's blob uploads both come here.
pub(crate) async fn receive_upload(d: &Server, who: &Caller, id: &str, body: Body) -> Result<Upload, Failure> {
    let id = id.to_string();
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    let limits = slipway_context::archive::Limits {
        max_bytes: d.settings.max_context_bytes,
        max_entries: d.settings.max_context_entries,
        ..Default::default()
    };
    // A tenant keeps at most so many uploads and bytes; unused ones are purged.
    let (count, used) = d.store.upload_usage(&who.tenant).await.map_err(internal)?;
    let quota = |m: String| Failure(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", m);
    if count >= d.settings.max_uploads_per_tenant {
        return Err(quota(format!(
            "tenant {} keeps {count} uploads, the most it may (max_uploads_per_tenant); unused uploads are removed after {} hours",
            who.tenant, d.settings.unused_upload_hours
        )));
    }
    let room = d.settings.max_upload_bytes_per_tenant.saturating_sub(used);
    if room == 0 {
        return Err(quota(format!(
            "tenant {}'s uploads hold {used} bytes, the most it may (max_upload_bytes_per_tenant); unused uploads are removed after {} hours",
            who.tenant, d.settings.unused_upload_hours
        )));
    }
    let max = d.settings.max_upload_bytes.min(room);
    let received = uploads::receive(&d.settings.data_dir, &id, Box::pin(stream), max, limits).await;
    if let Ok(size) = &received {
        // The caller's tenant's: another tenant's run cannot name it.
        d.store.put_upload(&id, &who.tenant, *size).await.map_err(internal)?;
        // In a fleet, the node that runs it may be another.
        d.share_upload(&id).await.map_err(internal)?;
    }
    match received {
        Ok(size) => Ok(Upload {
            source_location: format!("upload://{id}"),
            id,
            size,
        }),
        Err(e) => Err(match e.status() {
            413 if max < d.settings.max_upload_bytes => quota(format!(
                "the upload is larger than the {room} bytes left of tenant {}'s uploads (max_upload_bytes_per_tenant)",
                who.tenant
            )),
            413 => Failure(StatusCode::PAYLOAD_TOO_LARGE, "UploadTooLarge", e.to_string()),
            400 => Failure(StatusCode::BAD_REQUEST, "BadUpload", e.to_string()),
            _ => internal(e),
        }),
    }
}

/// Checks a source a run or a task names (`field` says which): its form and reach,
/// and that an upload is the caller's tenant's. Another tenant's upload is answered as
/// a missing one: no oracle.
pub(crate) async fn check_source(d: &Server, who: &Caller, location: Option<&str>, field: &str) -> Result<(), Failure> {
    if let Some(upload) = location.and_then(|l| l.strip_prefix("upload://")) {
        let owner = d.store.upload_tenant(upload).await.map_err(internal)?;
        if owner.as_deref().is_some_and(|o| who.sees(o)) {
            d.ensure_upload(upload).await;
        } else {
            return Err(bad_request(format!("{field}: upload {upload} does not exist")));
        }
    }
    sources::validate(location, &d.settings.data_dir, &d.reach).map_err(|e| bad_request(format!("{field}: {e}")))
}

/// Queues a run of `request` for `who`: its source checked (an upload must be the
/// caller's tenant's), a task given inline checked now with the messages `slipway plan`
/// gives. The API's and the Azure CLI's runs both start here.
pub(crate) async fn start_run(d: &Server, who: &Caller, request: RunRequest) -> Result<slipway_store::RunRecord, Failure> {
    let source = request.source_location().map(str::to_string);
    check_source(d, who, source.as_deref(), "sourceLocation").await?;
    let submission = slipway_worker::submit::Submission::of_request(&who.tenant, request, None).map_err(|e| bad_request(e.0))?;
    let run_id = submission.run.id.clone();
    // A task given inline is checked now, with the same messages as `slipway plan`.
    let job = requests::job(&submission.run.request, submission.secrets.values.clone()).map_err(|e| bad_request(e.0))?;
    if let TaskSource::Text(text) = &job.task {
        let from_file = match &job.values_file {
            Some(requests::ValuesSource::Text(t)) => slipway_taskfile::parse_values("values", t).map_err(|e| bad_request(e.to_string()))?,
            _ => serde_json::Value::Object(Default::default()),
        };
        let run = slipway_taskfile::RunVars::new(&run_id, &d.settings.registry, d.now());
        let opts = d.task_options(run, job.values_over(from_file), job.secrets.clone());
        let redactor = slipway_plan::Redactor::new(job.secrets.values().cloned().collect());
        // Rendering is bounded but can still take a while: never on the async runtime.
        let text = text.clone();
        let checked = tokio::task::spawn_blocking(move || {
            // Files the task names (alias src) live in the source, which is not fetched yet.
            let skip = |_: &str| Ok(String::new());
            slipway_taskfile::load("task", &text, &opts, &skip).map(|_| ())
        })
        .await
        .map_err(internal)?;
        if let Err(e) = checked {
            return Err(bad_request(redactor.mask(&e.to_string())));
        }
    }
    slipway_worker::submit::submit(d, submission)
        .await
        .map_err(submit_failure)?
        .ok_or_else(|| internal("the run was not queued"))
}

/// A quota is the caller's to mend (429); anything else is the daemon's.
pub(crate) fn submit_failure(e: slipway_worker::submit::SubmitError) -> Failure {
    match e {
        e @ slipway_worker::submit::SubmitError::Quota { .. } => Failure(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", e.to_string()),
        e => internal(e),
    }
}
