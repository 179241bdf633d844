//! What a node shares with the rest of a fleet when it is configured to: the blob store
//! (uploaded contexts, finished logs) and, through the vault, the fleet key (secrets
//! sealed in the database). Without them a node keeps everything in its data dir, as one machine does.
//!
//! A live run's log is also written to the database in pieces, about every 200 ms, so
//! a follower on any node reads it; when the run ends the whole log goes to the blob
//! store and the pieces are dropped.

use crate::Node;
use slipway_api::secrets::RunSecrets;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The notification a node sends when a run's log grows (the payload: the run id).
pub const LOG_CHANNEL: &str = "slipway_log";
/// The notification a node sends when a run is to be canceled (the payload: its id).
pub const CANCEL_CHANNEL: &str = "slipway_cancel";

/// How often a live run's new lines go to the database.
const SHIP_EVERY: Duration = Duration::from_millis(200);

pub fn upload_key(id: &str) -> String {
    format!("uploads/{id}.tar.gz")
}

pub fn log_key(run_id: &str) -> String {
    format!("logs/{run_id}.log")
}

impl Node {
    /// Listens for the fleet's notifications: a log that grew wakes this node's
    /// followers, a cancel reaches the run if this node runs it.
    pub async fn listen_to_fleet(self: &Arc<Node>) -> Result<(), String> {
        let me = Arc::downgrade(self);
        let on: slipway_store::Listener = Arc::new(move |channel: &str, payload: &str| {
            let Some(node) = me.upgrade() else { return };
            match channel {
                LOG_CHANNEL => node.log_appended.notify_waiters(),
                CANCEL_CHANNEL => node.cancel_local(payload),
                _ => {}
            }
        });
        self.store
            .listen(&[LOG_CHANNEL, CANCEL_CHANNEL], on)
            .await
            .map_err(|e| format!("cannot listen for the fleet's notifications: {e}"))
    }

    /// Makes an upload received by another node available here (a no-op without a
    /// blob store, or when it is here already). Ids are checked, never trusted.
    pub async fn ensure_upload(&self, id: &str) {
        let Some(blobs) = &self.blobs else { return };
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return;
        }
        let local = slipway_sources::uploads::archive_path(&self.settings.data_dir, id);
        if local.exists() {
            return;
        }
        if let Err(e) = blobs.fetch_to_file(&upload_key(id), &local).await {
            tracing::warn!(upload = id, error = %e, "fetching an upload from the blob store failed");
        }
    }

    /// Keeps a received upload in the blob store too, for the node that will run it.
    pub async fn share_upload(&self, id: &str) -> Result<(), String> {
        let Some(blobs) = &self.blobs else { return Ok(()) };
        let local = slipway_sources::uploads::archive_path(&self.settings.data_dir, id);
        blobs.put_file(&upload_key(id), &local).await.map_err(|e| e.to_string())
    }

    /// Keeps a run's secrets until its worker reads them, in the vault.
    pub async fn keep_secrets(&self, run_id: &str, secrets: &RunSecrets) -> Result<(), crate::vault::VaultError> {
        if secrets.is_empty() {
            return Ok(());
        }
        self.vault.keep(&crate::vault::Owner::run(run_id), secrets).await
    }

    /// The secrets a run was submitted with (none if it had none, or they were removed).
    pub async fn read_secrets(&self, run_id: &str) -> Result<RunSecrets, String> {
        self.vault.read(&crate::vault::Owner::run(run_id)).await.map_err(|e| e.to_string())
    }

    /// Removes a run's secrets once it has ended (or was never queued).
    pub async fn remove_secrets(&self, run_id: &str) {
        self.vault.delete(&crate::vault::Owner::run(run_id)).await;
    }

    /// Adds `line` to the log of a run this node did not run to its end (a lost
    /// worker's): this node's file, or in a fleet the shipped pieces, then the blob store.
    pub async fn note_in_log(&self, run_id: &str, line: &str) {
        let Some(blobs) = &self.blobs else {
            if let Ok(sink) = self.log_sink(run_id) {
                sink(line);
            }
            return;
        };
        let mut log = Vec::new();
        while let Ok(more) = self.store.read_log(run_id, log.len() as u64, 1 << 20).await {
            if more.is_empty() {
                break;
            }
            log.extend_from_slice(&more);
        }
        log.extend_from_slice(format!("{line}\n").as_bytes());
        match blobs.put(&log_key(run_id), log.into()).await {
            Ok(()) => {
                let _ = self.store.delete_log(run_id).await;
            }
            Err(e) => tracing::warn!(run_id, error = %e, "archiving a lost run's log failed"),
        }
    }

    /// Up to 1 MiB of a run's log from `offset`, wherever it is: this node's file, the
    /// database (a live run elsewhere), or the blob store (a finished one).
    pub async fn read_log(&self, run_id: &str, offset: u64) -> std::io::Result<Vec<u8>> {
        let path = crate::logs::log_path(&self.settings.data_dir, run_id);
        let Some(blobs) = &self.blobs else {
            return crate::logs::read_from(&path, offset);
        };
        if path.exists() {
            return crate::logs::read_from(&path, offset);
        }
        let live = self.store.read_log(run_id, offset, 1 << 20).await.map_err(std::io::Error::other)?;
        if !live.is_empty() {
            return Ok(live);
        }
        match blobs.read_from(&log_key(run_id), offset, 1 << 20).await {
            Ok(Some(b)) => Ok(b.to_vec()),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// Sends a live run's new log bytes to the database, and its whole log to the blob
/// store at the end.
pub struct Shipper {
    node: Arc<Node>,
    run_id: String,
    pending: Arc<Mutex<Vec<u8>>>,
    shipped: Arc<tokio::sync::Mutex<u64>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Shipper {
    /// A shipper for `run_id` and the sink that feeds it (lines go to `inner` too).
    pub fn start(node: &Arc<Node>, run_id: &str, inner: slipway_engine::LogSink) -> (Shipper, slipway_engine::LogSink) {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let shipped = Arc::new(tokio::sync::Mutex::new(0u64));
        let sink: slipway_engine::LogSink = {
            let pending = pending.clone();
            Arc::new(move |line: &str| {
                inner(line);
                let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                p.extend_from_slice(line.as_bytes());
                p.push(b'\n');
            })
        };
        let ticker = {
            let (node, run_id, pending, shipped) = (node.clone(), run_id.to_string(), pending.clone(), shipped.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SHIP_EVERY).await;
                    ship(&node, &run_id, &pending, &shipped).await;
                }
            })
        };
        (
            Shipper {
                node: node.clone(),
                run_id: run_id.to_string(),
                pending,
                shipped,
                ticker,
            },
            sink,
        )
    }

    /// Ships what is left and puts the whole log in the blob store.
    pub async fn finish(self) {
        self.ticker.abort();
        ship(&self.node, &self.run_id, &self.pending, &self.shipped).await;
        if let Some(blobs) = &self.node.blobs {
            let path = crate::logs::log_path(&self.node.settings.data_dir, &self.run_id);
            if let Err(e) = blobs.put_file(&log_key(&self.run_id), &path).await {
                tracing::warn!(run_id = %self.run_id, error = %e, "archiving the log to the blob store failed");
            }
        }
    }
}

async fn ship(node: &Node, run_id: &str, pending: &Mutex<Vec<u8>>, shipped: &tokio::sync::Mutex<u64>) {
    let mut at = shipped.lock().await;
    let bytes = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    if bytes.is_empty() {
        return;
    }
    match node.store.append_log(run_id, *at, &bytes).await {
        Ok(()) => {
            *at += bytes.len() as u64;
            // Followers on other nodes wake now rather than at their next check.
            let _ = node.store.notify(LOG_CHANNEL, run_id).await;
        }
        Err(e) => {
            tracing::warn!(run_id, error = %e, "shipping log lines to the database failed; retrying");
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            let mut again = bytes;
            again.extend_from_slice(&p);
            *p = again;
        }
    }
}
