//! A context put in blocks, as `azure-storage-blob` puts a blob above its single-put
//! size (64 MiB): each `PUT …?comp=block&blockid=…` is staged on this node's disk
//! (`arm-blocks/{tenant}/{upload}/{hex of the block id}`), then `PUT …?comp=blocklist`
//! reads the staged blocks in the list's order as one context, received as every upload
//! is. What a tenant stages counts against its upload bytes, in at most
//! [`MAX_STAGING_PER_TENANT`] uploads at once; staging left behind is removed once its
//! URL has expired. The URL names the node that gave it (`public_url`), so one upload's
//! blocks reach one node of a fleet.

use crate::failure::{bad_request, internal, Failure};
use crate::Server;
use axum::body::Body;
use axum::http::StatusCode;
use futures_util::{StreamExt, TryStreamExt};
use slipway_api::arm_blob::{block_ids, block_name, MAX_BLOCKS};
use slipway_api::model::Upload;
use slipway_api::tenant::Caller;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The largest block taken (`az` puts 4 MiB ones).
pub(crate) const MAX_BLOCK_BYTES: u64 = 100 << 20;
/// The most uploads a tenant stages at once.
pub(crate) const MAX_STAGING_PER_TENANT: usize = 4;
/// Staging older than this is removed: its upload URL expired long before.
const STAGING_SECONDS: u64 = 2 * 3600;

fn staging_root(d: &Server) -> PathBuf {
    d.node.data("arm-blocks")
}

fn staging(d: &Server, tenant: &str, id: &str) -> PathBuf {
    staging_root(d).join(tenant).join(id)
}

fn quota(m: String) -> Failure {
    Failure(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", m)
}

/// The bytes staged under `dir` (every upload of a tenant), and how many uploads.
fn staged(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut uploads = 0;
    for upload in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        uploads += 1;
        for block in std::fs::read_dir(upload.path()).into_iter().flatten().flatten() {
            bytes += block.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (bytes, uploads)
}

/// Removes staging whose upload URL has expired.
fn sweep(root: &Path) {
    let now = std::time::SystemTime::now();
    for tenant in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for upload in std::fs::read_dir(tenant.path()).into_iter().flatten().flatten() {
            let old = upload
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age.as_secs() > STAGING_SECONDS);
            if old {
                let _ = std::fs::remove_dir_all(upload.path());
            }
        }
    }
}

/// The bytes `who` may still stage or upload.
async fn room(d: &Server, who: &Caller) -> Result<u64, Failure> {
    let (_, used) = d.store.upload_usage(&who.tenant).await.map_err(internal)?;
    let s = &d.settings;
    Ok(s.max_upload_bytes.min(s.max_upload_bytes_per_tenant.saturating_sub(used)))
}

/// `PUT …?comp=block&blockid=ID`: stages one block of upload `id`.
pub(crate) async fn stage(d: &Server, who: &Caller, id: &str, block_id: &str, body: Body) -> Result<(), Failure> {
    let name = block_name(block_id).map_err(bad_request)?;
    let (root, tenant_dir, dir) = (staging_root(d), staging_root(d).join(&who.tenant), staging(d, &who.tenant, id));
    // Every look at the disk on a blocking thread, once.
    let (tenant_bytes, uploads, blocks, started) = {
        let (tenant_dir, dir) = (tenant_dir.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let started = dir.exists();
            if !started {
                sweep(&root);
            }
            let (bytes, uploads) = staged(&tenant_dir);
            let blocks = std::fs::read_dir(&dir).map(|r| r.count()).unwrap_or(0);
            (bytes, uploads, blocks, started)
        })
        .await
        .map_err(internal)?
    };
    if !started && uploads >= MAX_STAGING_PER_TENANT {
        return Err(quota(format!(
            "tenant {} is putting {uploads} contexts in blocks at once, the most it may; finish one first",
            who.tenant
        )));
    }
    if blocks >= MAX_BLOCKS {
        return Err(bad_request(format!("an upload has at most {MAX_BLOCKS} blocks")));
    }
    let left = room(d, who).await?.saturating_sub(tenant_bytes);
    let max = MAX_BLOCK_BYTES.min(left);
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let part = dir.join(format!("{name}.part"));
    let mut file = tokio::fs::File::create(&part).await.map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(bad_request(format!("the block was cut short: {e}")));
            }
        };
        written += chunk.len() as u64;
        if written > max {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(if max < MAX_BLOCK_BYTES {
                quota(format!(
                    "the block is larger than the {left} bytes left of tenant {}'s uploads (max_upload_bytes, max_upload_bytes_per_tenant)",
                    who.tenant
                ))
            } else {
                Failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestBodyTooLarge",
                    format!("a block is at most {MAX_BLOCK_BYTES} bytes"),
                )
            });
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    tokio::fs::rename(&part, dir.join(&name)).await.map_err(internal)?;
    Ok(())
}

/// `PUT …?comp=blocklist`: upload `id` made of its staged blocks in the list's order,
/// received as one context; the staging is then removed.
pub(crate) async fn commit(d: &Server, who: &Caller, id: &str, xml: &[u8]) -> Result<Upload, Failure> {
    let text = std::str::from_utf8(xml).map_err(|_| bad_request("the block list is not UTF-8"))?;
    let dir = staging(d, &who.tenant, id);
    let mut paths = Vec::new();
    for block in block_ids(text).map_err(bad_request)? {
        let path = dir.join(block_name(&block).map_err(bad_request)?);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                "InvalidBlockList",
                format!("block {block:?} of the list was not put"),
            ));
        }
        paths.push(path);
    }
    let blocks = futures_util::stream::iter(paths)
        .then(|p| async move { tokio::fs::File::open(p).await.map(tokio_util::io::ReaderStream::new) })
        .try_flatten();
    let received = crate::intake::receive_upload(d, who, id, Body::from_stream(blocks)).await;
    if received.is_ok() {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    received
}
