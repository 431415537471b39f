//! `Snapshot<T>`: a value changed rarely under a lock and read often without one.
//!
//! Writers change the truth under a mutex and drop the published copy; the next reader
//! rebuilds the copy once and publishes it. Readers on the publish path therefore take no
//! lock, and a burst of changes (100,000 bindings declared in a row) costs one rebuild, not
//! one per change.

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use std::sync::Arc;

pub struct Snapshot<T> {
    truth: Mutex<T>,
    published: ArcSwapOption<T>,
}

impl<T: Clone> Snapshot<T> {
    pub fn new(value: T) -> Snapshot<T> {
        Snapshot {
            truth: Mutex::new(value),
            published: ArcSwapOption::empty(),
        }
    }

    /// The current value, as an immutable shared copy.
    pub fn load(&self) -> Arc<T> {
        if let Some(v) = self.published.load_full() {
            return v;
        }
        let truth = self.truth.lock();
        // Another reader may have published while we waited for the lock.
        if let Some(v) = self.published.load_full() {
            return v;
        }
        let copy = Arc::new(truth.clone());
        self.published.store(Some(copy.clone()));
        copy
    }

    /// Changes the value; readers see the change from their next `load`.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut truth = self.truth.lock();
        let r = f(&mut truth);
        self.published.store(None);
        r
    }

    /// Reads the truth under the lock (for writers' checks).
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.truth.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_updates_and_reuse_the_copy_between_them() {
        let s = Snapshot::new(vec![1]);
        let a = s.load();
        assert!(Arc::ptr_eq(&a, &s.load()));
        s.update(|v| v.push(2));
        assert_eq!(*s.load(), vec![1, 2]);
        assert_eq!(*a, vec![1]);
    }
}
