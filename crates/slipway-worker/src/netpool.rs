//! Networks made ahead of runs. Creating a bridge network is the slowest part of a
//! run's start on this engine (about 95 ms), so each worker has one ready.

use slipway_engine::{Engine, POOL_LABEL};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct NetworkPool {
    engine: Arc<dyn Engine>,
    instance: String,
    target: usize,
    spare: Mutex<Vec<String>>,
}

impl NetworkPool {
    pub fn new(engine: Arc<dyn Engine>, instance: &str, target: usize) -> Arc<NetworkPool> {
        Arc::new(NetworkPool {
            engine,
            instance: instance.to_string(),
            target,
            spare: Mutex::new(Vec::new()),
        })
    }

    /// Removes the pool networks that daemons on this node left when they died (call
    /// after their runs' containers are gone). Instances are `node/pid-…`; a network whose
    /// process is still alive belongs to another daemon sharing this engine and is kept.
    pub async fn clear_stale(&self, node: &str) {
        let prefix = format!("{node}/");
        match self.engine.networks_labelled(POOL_LABEL).await {
            Ok(networks) => {
                for (name, owner) in networks {
                    let Some(pid) = owner.strip_prefix(&prefix).and_then(|rest| rest.split('-').next()) else {
                        continue;
                    };
                    if owner == self.instance || std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        continue;
                    }
                    if let Err(e) = self.engine.remove_network(&name).await {
                        tracing::warn!(network = %name, error = %e, "removing a stale pool network failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing pool networks failed"),
        }
    }

    /// Creates networks until `target` are ready.
    pub async fn fill(&self) {
        loop {
            if self.spare.lock().unwrap_or_else(|p| p.into_inner()).len() >= self.target {
                return;
            }
            let name = format!("slipway-pool-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
            let labels = HashMap::from([(POOL_LABEL.to_string(), self.instance.clone())]);
            match self.engine.create_network(&name, "bridge", false, labels).await {
                Ok(()) => self.spare.lock().unwrap_or_else(|p| p.into_inner()).push(name),
                Err(e) => {
                    tracing::warn!(error = %e, "creating a pool network failed; runs will create their own");
                    return;
                }
            }
        }
    }

    /// A ready network, if there is one; a replacement is made in the background.
    pub fn take(self: &Arc<Self>) -> Option<String> {
        let taken = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let me = self.clone();
        tokio::spawn(async move { me.fill().await });
        taken
    }

    /// Removes the spare networks (at shutdown).
    pub async fn drain(&self) {
        let spare: Vec<String> = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        for n in spare {
            let _ = self.engine.remove_network(&n).await;
        }
    }
}
