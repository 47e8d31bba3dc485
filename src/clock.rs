//! The box's clock, as a handle: the system clock in production, a
//! settable one in tests (undo windows, validity windows) so no test sleeps.

use crate::domain::time::Millis;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Clock {
    /// Set only in tests: a fixed time that `advance` moves.
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    pub fn fixed(at: Millis) -> Clock {
        Clock { fixed: Some(Arc::new(AtomicI64::new(at))) }
    }

    pub fn now(&self) -> Millis {
        match &self.fixed {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as Millis)
                .unwrap_or(0),
        }
    }

    /// Moves a fixed clock forward; does nothing to the system clock.
    pub fn advance(&self, ms: Millis) {
        if let Some(t) = &self.fixed {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}
