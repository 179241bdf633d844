//! The blobs behind the URLs the Azure CLI is given, as Azure Blob Storage serves them
//! to `azure-storage-blob`: a context upload (one `PUT`, `x-ms-blob-type: BlockBlob`, or
//! above 64 MiB its blocks then their list, staged by [`super::blocks`])
//! and a run's log (`HEAD` for its size and, once the run ended, `x-ms-meta-Complete`
//! with its outcome; `GET` with `x-ms-range`). The URL's query is the credential: a
//! shared-access signature this daemon made, bound to the path, the permission and an
//! expiry. `az` prints a log line only at a CRLF, so the log is served as a view with
//! CRLF line ends, offsets counted in that view ([`super::crlf`]).

use super::crlf::{to_crlf, CrlfIndex};
use crate::failure::{bad_request, internal, Failure};
use crate::{Server, Shared};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use slipway_api::tenant::{Caller, Role};
use slipway_store::RunStatus;
use std::collections::HashMap;

/// Where a context for `tenant` is put.
pub(crate) fn upload_path(tenant: &str, id: &str) -> String {
    format!("/arm-blobs/uploads/{tenant}/{id}")
}

/// Where a run's log is read.
pub(crate) fn log_path(run_id: &str) -> String {
    format!("/arm-blobs/logs/{run_id}")
}

fn forbidden(why: &str) -> Failure {
    Failure(StatusCode::FORBIDDEN, "AuthenticationFailed", why.to_string())
}

/// The headers every blob answer carries.
fn blob_headers(h: &mut HeaderMap) {
    h.insert("x-ms-version", HeaderValue::from_static("2021-08-06"));
    h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
    h.insert(
        "x-ms-request-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid is a header value"),
    );
    h.insert("Last-Modified", HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT"));
}

/// `PUT /arm-blobs/uploads/{tenant}/{id}?<sas>`: the context, received as `/v1/uploads`
/// receives one (checked entry by entry, within the tenant's quotas).
pub(crate) async fn put_upload(
    State(d): Shared,
    Path((tenant, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, Failure> {
    d.arm
        .check_sas(&upload_path(&tenant, &id), 'w', &q, d.clock.now_ms() / 1000)
        .map_err(forbidden)?;
    // One URL, one context: a second PUT to it (the URL is good for an hour) would
    // change a source a queued run already names.
    if d.store.upload_tenant(&id).await.map_err(internal)?.is_some() {
        return Err(Failure(
            StatusCode::CONFLICT,
            "BlobAlreadyExists",
            "this upload URL was used; ask for another (listBuildSourceUploadUrl)".into(),
        ));
    }
    let who = Caller {
        tenant,
        role: Role::Member,
        token_hash: String::new(),
    };
    match q.get("comp").map(String::as_str) {
        None => {
            crate::intake::receive_upload(&d, &who, &id, body).await?;
        }
        Some("block") => {
            let block = q.get("blockid").ok_or_else(|| bad_request("comp=block needs a blockid"))?;
            super::blocks::stage(&d, &who, &id, block, body).await?;
        }
        Some("blocklist") => {
            let xml = axum::body::to_bytes(body, 4 << 20)
                .await
                .map_err(|e| bad_request(format!("the block list is unreadable or above 4 MiB: {e}")))?;
            super::blocks::commit(&d, &who, &id, &xml).await?;
        }
        Some(other) => return Err(bad_request(format!("comp={other} is not a way to put a context"))),
    }
    let mut r = StatusCode::CREATED.into_response();
    blob_headers(r.headers_mut());
    r.headers_mut()
        .insert("ETag", HeaderValue::from_str(&format!("\"{id}\"")).map_err(internal)?);
    Ok(r)
}

/// A run's outcome as ACR writes it in the log blob's `Complete` metadata.
fn outcome(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "successful",
        RunStatus::Failed => "failed",
        RunStatus::Canceled => "canceled",
        RunStatus::Timeout => "timedout",
        _ => "internalerror",
    }
}

/// Run `id`'s CRLF index, counted as far as the log is written (from where it was
/// counted before).
async fn indexed(d: &Server, id: &str) -> Result<CrlfIndex, Failure> {
    let mut index = d.arm_logs.get(id);
    let before = index.written;
    loop {
        let chunk = d.node.read_log(id, index.written).await.map_err(internal)?;
        if chunk.is_empty() {
            break;
        }
        index.extend(&chunk);
    }
    if index.written > before {
        d.arm_logs.put(id, index.clone());
    }
    Ok(index)
}

/// Bytes `start..=end` of the CRLF view, read from the index's mark before `start`.
async fn view_range(d: &Server, id: &str, index: &CrlfIndex, start: u64, end: u64) -> Result<Vec<u8>, Failure> {
    let (written, viewed) = index.mark_before(start);
    // Each byte written is one or two in the view: this many written bytes cover it.
    let need = end + 1 - viewed;
    let mut raw = Vec::new();
    while (raw.len() as u64) < need {
        let chunk = d.node.read_log(id, written + raw.len() as u64).await.map_err(internal)?;
        if chunk.is_empty() {
            break;
        }
        raw.extend_from_slice(&chunk);
    }
    raw.truncate(need as usize);
    let view = to_crlf(&raw);
    let (from, to) = ((start - viewed) as usize, view.len().min((end + 1 - viewed) as usize));
    Ok(view.get(from..to).unwrap_or_default().to_vec())
}

/// How long a `HEAD` of a running run's log waits for the log to grow or the run to
/// end. `az` reads the size, reads what is new, and sleeps 2 to 3 s whenever the size
/// has not moved: held this long, it sees a line as it is written instead of after its
/// sleep, and a run's end at once. Bounded in time, and in number by the server's
/// per-client connection cap.
const HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits (at most [`HOLD`]) until run `id`'s log holds more than `written` bytes or
/// the run has finished.
async fn hold(d: &Server, id: &str, written: u64) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + HOLD;
    loop {
        let appended = d.node.log_appended.notified();
        if !d.node.read_log(id, written).await.map_err(internal)?.is_empty() {
            return Ok(());
        }
        let finished = d
            .store
            .get(None, id)
            .await
            .map_err(internal)?
            .is_none_or(|r| r.status.is_finished());
        if finished || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        // A line appended on this node wakes it; one shipped from another node of a
        // fleet, or the run's end, is seen at the next look.
        let step = (tokio::time::Instant::now() + std::time::Duration::from_millis(200)).min(deadline);
        tokio::select! {
            _ = appended => {}
            _ = tokio::time::sleep_until(step) => {}
        }
    }
}

/// `bytes=a-b` (or `bytes=a-`) of `x-ms-range` or `Range`.
fn range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let text = headers.get("x-ms-range").or(headers.get("range"))?.to_str().ok()?;
    let (start, end) = text.strip_prefix("bytes=")?.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()))
}

/// `HEAD` and `GET /arm-blobs/logs/{id}?<sas>`: the run's log as a blob.
pub(crate) async fn log(
    State(d): Shared,
    method: Method,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    d.arm
        .check_sas(&log_path(&id), 'r', &q, d.clock.now_ms() / 1000)
        .map_err(forbidden)?;
    let snapshot = || async {
        let record = d
            .store
            .get(None, &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "BlobNotFound", "the specified blob does not exist".into()))?;
        // Read after the status: once it says finished, the log holds every line.
        let finished = record.status.is_finished().then_some(record.status);
        Ok::<_, Failure>((finished, indexed(&d, &id).await?))
    };
    let (mut finished, mut index) = snapshot().await?;
    if method == Method::HEAD && finished.is_none() {
        hold(&d, &id, index.written).await?;
        (finished, index) = snapshot().await?;
    }
    let total = index.len();
    let (status, body, content_range) = match (method == Method::HEAD, range(&headers)) {
        (true, _) => (StatusCode::OK, Vec::new(), None),
        (false, None) if total == 0 => (StatusCode::OK, Vec::new(), None),
        (false, None) => (StatusCode::OK, view_range(&d, &id, &index, 0, total - 1).await?, None),
        (false, Some((start, _))) if start >= total => {
            return Err(Failure(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "the range is past the log's end".into(),
            ));
        }
        (false, Some((start, end))) => {
            let end = end.unwrap_or(total - 1).clamp(start, total - 1);
            let part = view_range(&d, &id, &index, start, end).await?;
            (StatusCode::PARTIAL_CONTENT, part, Some(format!("bytes {start}-{end}/{total}")))
        }
    };
    let length = if method == Method::HEAD { total } else { body.len() as u64 };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    blob_headers(h);
    h.insert("Content-Type", HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("Content-Length", HeaderValue::from(length));
    h.insert("ETag", HeaderValue::from_str(&format!("\"{id}-{total}\"")).map_err(internal)?);
    h.insert("Accept-Ranges", HeaderValue::from_static("bytes"));
    if let Some(cr) = content_range {
        h.insert("Content-Range", HeaderValue::from_str(&cr).map_err(internal)?);
    }
    if let Some(s) = finished {
        h.insert("x-ms-meta-Complete", HeaderValue::from_static(outcome(s)));
    }
    Ok(r)
}
