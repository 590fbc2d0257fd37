//! The subscriptions a process delivers to, kept in memory and reloaded from the store at most a
//! second after they change elsewhere (at once when they change through this process's API).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::{DeliveryStore, StoredSubscription};
use crate::store::StoreError;

/// Longest a loaded list is used before it is read again.
const MAX_AGE: Duration = Duration::from_secs(1);

/// Every subscription, as last loaded.
type Snapshot = Arc<[Arc<StoredSubscription>]>;

/// A cache of the subscriptions in a [`DeliveryStore`].
pub struct SubscriptionDirectory {
    store: Arc<dyn DeliveryStore>,
    loaded: RwLock<Option<(Instant, Snapshot)>>,
    /// One reload at a time; the others wait for its result.
    reloading: tokio::sync::Mutex<()>,
}

impl SubscriptionDirectory {
    /// A directory of `store`'s subscriptions, loaded on first use.
    pub fn new(store: Arc<dyn DeliveryStore>) -> Self {
        Self {
            store,
            loaded: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Every subscription, reloaded when the cached list is older than a second.
    pub async fn all(&self) -> Result<Snapshot, StoreError> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _reloading = self.reloading.lock().await;
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let subscriptions: Snapshot = self
            .store
            .subscriptions()
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = Some((Instant::now(), subscriptions.clone()));
        }
        Ok(subscriptions)
    }

    /// The subscription with this id, if it exists.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<StoredSubscription>>, StoreError> {
        let find = |all: &Snapshot| all.iter().find(|s| s.subscription.id == id).cloned();
        if let Some(found) = find(&self.all().await?) {
            return Ok(Some(found));
        }
        // Created a moment ago in another process: look again rather than wait a second.
        self.invalidate();
        Ok(find(&self.all().await?))
    }

    /// Forgets the cached list, after a change through this process.
    pub fn invalidate(&self) {
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = None;
        }
    }

    fn fresh(&self) -> Option<Snapshot> {
        let loaded = self.loaded.read().ok()?;
        let (at, subscriptions) = loaded.as_ref()?;
        (at.elapsed() < MAX_AGE).then(|| subscriptions.clone())
    }
}
