//! What some exchange types keep besides their bindings, and the check the publish path makes
//! before it routes through them ([`ExchangeState::admit`]):
//!
//! - an `x-delayed-message` exchange holds messages with a positive `x-delay` in its *delay
//!   store*, a task of its own (`delay_store`) that routes each through the
//!   exchange when its delay is over; the publish path hands such a message to the store as
//!   it would to a queue, so publisher confirms and `tx.commit` work unchanged;
//! - an `x-message-deduplication` exchange (or a delayed exchange whose `x-delayed-type` is
//!   one) drops messages whose `x-deduplication-header` its [`DedupCache`] has seen.
//!
//! A deduplication cache is shared by every connection publishing to the exchange, so it
//! sits behind a mutex: the one lock per message on Warren's publish path, taken only for
//! these exchanges and only for messages that carry the header.
//!
//! # Durability
//!
//! A durable exchange of these types gets a data directory (`warren_store::ExchangeDirs`):
//! - `delayed/`: the delay store's message log (a `QueueLog`): persistent messages held by a
//!   durable delayed exchange survive a restart and are routed when due (at once if the
//!   delay ran out while the broker was down). Transient ones are held in memory only.
//! - `dedup-cache/`: with `x-cache-persistence = disk`, the cache's entries, one `QueueLog`
//!   record each (seq = the entry's stamp, `properties_raw` = expiry as u64 BE, body = the
//!   key), acked when the entry leaves the cache. Entries reach the disk within
//!   [`CACHE_SYNC_INTERVAL`] of their message, and at once on a clean stop; a crash may
//!   forget the newest ones (those keys then pass once more). With `memory` (the plugin's default) the cache starts empty
//!   after a restart.

use crate::durability::blocking;
use crate::clock::wall_clock_ms;
use crate::delay_store::{self, DelayRef, DelaySpawn};
use crate::target::Target;
use crate::vhost::VHost;
use bytes::Bytes;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::error;
use warren_amqp::ShortStr;
use warren_core::dedup::{cache_ttl_header, DedupCache, DedupKey};
use warren_core::delayed::delay_of;
use warren_core::entity::ExchangeMeta;
use warren_core::exchange_type::{CachePersistence, ExchangeBehaviour};
use warren_core::routing::ExchangeKind;
use warren_core::vhost::Admission;
use warren_core::{BrokerError, Message};
use warren_store::{ExchangeDirs, QueueLog, StoredMessage};

/// How often a persistent deduplication cache's new entries are made durable.
pub const CACHE_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Subdirectories of an exchange's data directory.
const DELAYED_DIR: &str = "delayed";
const DEDUP_CACHE_DIR: &str = "dedup-cache";

/// What the runtime keeps for one exchange (the `state` of a `warren_core::vhost::Exchange`):
/// nothing for most types (the default), a cache or a delay store for the plugin types.
#[derive(Default)]
pub struct ExchangeState {
    dedup: Option<Arc<Mutex<Cache>>>,
    /// The delay store of a delayed exchange.
    pub delay: Option<DelayRef>,
    /// The data directory of a durable exchange that keeps state on disk.
    dir: Option<PathBuf>,
}

/// A deduplication cache and, when it persists, its log.
struct Cache {
    cache: DedupCache,
    log: Option<QueueLog>,
    dirty: bool,
}

impl ExchangeState {
    /// For an exchange being declared, whose arguments the vhost model validated into
    /// `behaviour`: sets up what its type keeps.
    pub fn create(
        vhost: &Arc<VHost>,
        meta: &ExchangeMeta,
        behaviour: ExchangeBehaviour,
    ) -> Result<Self, BrokerError> {
        Self::build(vhost, meta, behaviour, false)
    }

    /// For a durable exchange at start-up, with what it kept on disk; returns how it routes
    /// too (a definition whose arguments no longer validate routes as a plain direct
    /// exchange). Its delay store waits for [`ExchangeState::start`] (bindings must be
    /// restored before it routes).
    pub fn restore(
        vhost: &Arc<VHost>,
        meta: &ExchangeMeta,
    ) -> Result<(ExchangeBehaviour, Self), BrokerError> {
        let behaviour = ExchangeBehaviour::from_declaration(meta.kind, &meta.arguments)
            .unwrap_or_else(|e| {
                error!(
                    "exchange '{}' in vhost '{}': arguments ignored: {}",
                    meta.name, vhost.name, e.reply_text()
                );
                ExchangeBehaviour::plain(ExchangeKind::Direct)
            });
        Ok((behaviour, Self::build(vhost, meta, behaviour, true)?))
    }

    fn build(
        vhost: &Arc<VHost>,
        meta: &ExchangeMeta,
        behaviour: ExchangeBehaviour,
        recovering: bool,
    ) -> Result<Self, BrokerError> {
        let persistent_cache = behaviour
            .dedup
            .is_some_and(|s| s.persistence == CachePersistence::Disk);
        let dir = match vhost.durability() {
            Some(d) if meta.durable && (behaviour.delayed || persistent_cache) => {
                Some(d.exchange_dir(&vhost.name, &meta.name, recovering)?)
            }
            _ => None,
        };
        let mut state = ExchangeState {
            dedup: None,
            delay: None,
            dir,
        };
        if let Err(e) = state.open(vhost, meta, behaviour, recovering) {
            // A new exchange leaves nothing behind; a recovered one keeps its data for the
            // next start.
            if !recovering {
                state.destroy();
            }
            return Err(e);
        }
        Ok(state)
    }

    fn open(
        &mut self,
        vhost: &Arc<VHost>,
        meta: &ExchangeMeta,
        behaviour: ExchangeBehaviour,
        recovering: bool,
    ) -> Result<(), BrokerError> {
        if let Some(settings) = behaviour.dedup {
            let mut cache = Cache {
                cache: DedupCache::new(settings.size, settings.ttl_ms),
                log: None,
                dirty: false,
            };
            if let (Some(dir), CachePersistence::Disk) = (&self.dir, settings.persistence) {
                cache.cache.track_removals();
                let (log, recovered) = open_log(vhost, dir.join(DEDUP_CACHE_DIR))?;
                let now = wall_clock_ms();
                for r in recovered {
                    let expires = r
                        .message
                        .properties_raw
                        .get(..8)
                        .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                    // Copied out of the segment's read buffer.
                    let key = DedupKey::from_bytes(Bytes::copy_from_slice(&r.message.body));
                    cache.cache.restore(key, expires, r.seq, now);
                }
                cache.log = Some(log);
                cache.forget_removed();
            }
            let cache = Arc::new(Mutex::new(cache));
            if cache.lock().log.is_some() {
                tokio::spawn(sync_cache(Arc::downgrade(&cache)));
            }
            self.dedup = Some(cache);
        }
        if behaviour.delayed {
            let (log, recovered) = match &self.dir {
                Some(dir) => {
                    let (log, recovered) = open_log(vhost, dir.join(DELAYED_DIR))?;
                    (Some(log), recovered)
                }
                None => (None, Vec::new()),
            };
            self.delay = Some(delay_store::spawn(DelaySpawn {
                id: vhost.next_queue_id(),
                exchange: meta.name.clone(),
                vhost: vhost.name.clone(),
                log,
                recovered,
                dir: self.dir.clone(),
                started: !recovering,
                routes: vhost.routes(),
            }));
        }
        Ok(())
    }

    /// Lets a restored delay store route what is due (once the vhost's bindings are back).
    pub fn start(&self) {
        if let Some(store) = &self.delay {
            store.start();
        }
    }

    /// The exchange is gone: stops its delay store (dropping what it held) and removes its
    /// data.
    pub fn destroy(&self) {
        if let Some(cache) = &self.dedup {
            if let Some(log) = cache.lock().log.take() {
                if let Err(e) = blocking(|| log.destroy()) {
                    error!("cannot remove a deduplication cache: {e}");
                }
            }
        }
        match (&self.delay, &self.dir) {
            // The store removes the directory once it has closed its log.
            (Some(store), _) => store.destroy(),
            (None, Some(dir)) => {
                if let Err(e) = blocking(|| ExchangeDirs::remove(dir)) {
                    error!("cannot remove exchange data: {e}");
                }
            }
            (None, None) => {}
        }
    }

    /// Makes a persistent deduplication cache's new entries durable now (at shutdown).
    pub fn sync(&self) {
        if let Some(cache) = &self.dedup {
            let mut guard = cache.lock();
            let c = &mut *guard;
            if let (Some(log), true) = (c.log.as_mut(), c.dirty) {
                if let Err(e) = blocking(|| log.sync()) {
                    error!("cannot sync a deduplication cache: {e}");
                }
                c.dirty = false;
            }
        }
    }

    /// Decides what happens to `message` at this exchange, before its bindings are looked
    /// at: the delay comes first (a delayed deduplication exchange deduplicates when it
    /// routes, after the delay), then deduplication.
    pub fn admit(&self, message: &Message) -> Admission<Target> {
        if let Some(store) = &self.delay {
            if delay_of(message).is_some() {
                return Admission::Hold(Target::Delay(store.clone()));
            }
        }
        let Some(cache) = &self.dedup else {
            return Admission::Route;
        };
        let Some(key) = DedupKey::of(message) else {
            return Admission::Route;
        };
        let ttl = cache_ttl_header(message);
        let now = wall_clock_ms();
        let mut c = cache.lock();
        let Some(stamp) = c.cache.admit(key.clone(), ttl, now) else {
            return Admission::Drop;
        };
        if c.log.is_some() {
            c.store(stamp, &key);
        }
        Admission::Route
    }
}

impl Cache {
    /// Appends a new entry to the log (buffered; [`sync_cache`] makes it durable).
    fn store(&mut self, stamp: u64, key: &DedupKey) {
        let expires = self.cache.expiry(key).unwrap_or(0);
        let record = StoredMessage {
            exchange: ShortStr::from_static(""),
            routing_key: ShortStr::from_static(""),
            properties_raw: Bytes::copy_from_slice(&expires.to_be_bytes()),
            body: key.as_bytes().clone(),
            enqueued_ms: None,
        };
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.append(stamp, &record) {
                error!("cannot store a deduplication cache entry: {e}");
            }
            self.dirty = true;
        }
        self.forget_removed();
    }

    /// Acks in the log the entries the cache dropped.
    fn forget_removed(&mut self) {
        let removed = self.cache.take_removed();
        if let (Some(log), false) = (self.log.as_mut(), removed.is_empty()) {
            if let Err(e) = log.ack(&removed) {
                error!("cannot drop deduplication cache entries: {e}");
            }
            self.dirty = true;
        }
    }
}

/// Makes a persistent cache's changes durable every [`CACHE_SYNC_INTERVAL`], until its
/// exchange is gone.
async fn sync_cache(cache: Weak<Mutex<Cache>>) {
    loop {
        tokio::time::sleep(CACHE_SYNC_INTERVAL).await;
        let Some(cache) = cache.upgrade() else { return };
        let mut guard = cache.lock();
        let c = &mut *guard;
        let Some(log) = c.log.as_mut() else { return };
        if !c.dirty {
            continue;
        }
        if let Err(e) = blocking(|| log.sync()) {
            error!("cannot sync a deduplication cache: {e}");
        }
        c.dirty = false;
    }
}

fn open_log(
    vhost: &VHost,
    dir: PathBuf,
) -> Result<(QueueLog, Vec<warren_store::RecoveredMessage>), BrokerError> {
    let durability = vhost
        .durability()
        .expect("exchange data directories exist only with durability");
    let (log, recovered, report) = durability
        .open_log_at(&dir)
        .map_err(|e| BrokerError::internal(format!("cannot open {}: {e}", dir.display())))?;
    crate::durability::log_recovery(&dir.display().to_string(), &report);
    Ok((log, recovered))
}
