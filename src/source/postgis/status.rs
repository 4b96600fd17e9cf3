//! Whether the database answers, as the watcher and every PostGIS layer last found it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The database's reachability as last seen by anyone who talked to it: the watcher's polls
/// and the layers' queries. Without the layers, `/health` said `ok` for up to a poll period
/// after tiles had started answering 503.
pub struct DbStatus {
    /// Mirror of `state.0`, read without the lock: a successful query checks only this, so
    /// the common case (reachable, still reachable) costs one atomic load.
    reachable: AtomicBool,
    /// Reachable, and the last failure's message; one lock, so that a failure and a success
    /// racing each other leave a consistent pair (never "unavailable" with no error).
    state: Mutex<(bool, Option<String>)>,
}

impl Default for DbStatus {
    fn default() -> Self {
        DbStatus {
            reachable: AtomicBool::new(false),
            state: Mutex::new((false, Some("not checked yet".into()))),
        }
    }
}

impl DbStatus {
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Why the database was last found unreachable; `None` while it is reachable.
    pub fn last_error(&self) -> Option<String> {
        self.lock().1.clone()
    }

    /// A contact succeeded (a query answered, or a watcher poll). Returns whether this changed
    /// the state, having logged the change.
    pub fn contact_ok(&self) -> bool {
        if self.reachable() {
            return false;
        }
        let mut state = self.lock();
        let changed = !state.0;
        *state = (true, None);
        self.reachable.store(true, Ordering::Release);
        drop(state);
        if changed {
            tracing::info!("database reachable");
        }
        changed
    }

    /// A contact failed because the database cannot be reached (not a bad value, not a
    /// statement timeout). Returns whether this changed the state, having logged the change.
    pub fn contact_failed(&self, error: &str) -> bool {
        let mut state = self.lock();
        let changed = state.0;
        *state = (false, Some(error.to_string()));
        self.reachable.store(false, Ordering::Release);
        drop(state);
        if changed {
            tracing::warn!(error = %error, "database unreachable; tiles of its layers answer 503 until it is back");
        }
        changed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Option<String>)> {
        // Each use writes a whole pair, so a poisoned lock still holds a valid one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_and_a_success_each_change_the_state_once() {
        let status = DbStatus::default();
        assert!(!status.reachable());
        assert_eq!(status.last_error().as_deref(), Some("not checked yet"));
        // Down from the start is no change.
        assert!(!status.contact_failed("refused"));
        assert_eq!(status.last_error().as_deref(), Some("refused"));
        assert!(status.contact_ok());
        assert!(!status.contact_ok());
        assert!(status.reachable());
        assert_eq!(status.last_error(), None);
        assert!(status.contact_failed("closed"));
        assert!(!status.contact_failed("closed again"));
        assert!(!status.reachable());
        assert_eq!(status.last_error().as_deref(), Some("closed again"));
    }
}
