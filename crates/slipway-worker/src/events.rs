//! What a node tells about its runs as they go, for whoever listens (the daemon's
//! outbound webhooks): a run queued, started, finished, or an image pushed. The
//! listener is told in passing and must not block; it reads what it needs itself.

use std::sync::Arc;

/// Something that happened to a run.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Queued,
    Started,
    Finished,
    /// A step pushed an image.
    Pushed(slipway_plan::OutputImage),
}

/// Told of every [`RunEvent`] of the runs this node submits or runs.
pub trait RunEvents: Send + Sync {
    fn run_event(&self, run_id: &str, event: RunEvent);
}

/// The listener a node tells, once one is set.
#[derive(Default)]
pub(crate) struct Listeners(std::sync::OnceLock<Arc<dyn RunEvents>>);

impl Listeners {
    pub(crate) fn set(&self, listener: Arc<dyn RunEvents>) -> bool {
        self.0.set(listener).is_ok()
    }

    pub(crate) fn tell(&self, run_id: &str, event: RunEvent) {
        if let Some(l) = self.0.get() {
            l.run_event(run_id, event);
        }
    }
}
