//! What starts runs by itself: tasks (saved runs) and their triggers — push webhooks
//! (`webhooks`), base-image updates from registry notifications and polling (`images`),
//! and timers (`timers`). Every run they start goes through
//! [`slipway_worker::submit::submit`]. Knows nothing of HTTP routes.

pub mod images;
pub mod tasks;
pub mod timers;
pub mod webhooks;

use slipway_worker::Node;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// The node's triggers, with what the timer scheduler watches.
pub struct Triggers {
    pub node: Arc<Node>,
    /// Bumped (and `tasks_changed` notified) whenever a task is saved or deleted.
    tasks_version: AtomicU64,
    tasks_changed: Notify,
}

impl std::ops::Deref for Triggers {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl Triggers {
    pub fn new(node: Arc<Node>) -> Triggers {
        Triggers {
            node,
            tasks_version: AtomicU64::new(0),
            tasks_changed: Notify::new(),
        }
    }

    /// Tells the timer scheduler that tasks changed.
    pub fn tasks_touched(&self) {
        self.tasks_version.fetch_add(1, Ordering::SeqCst);
        self.tasks_changed.notify_waiters();
    }
}
