//! The bridge to `warren-store`: the definitions store and the directory of queue message
//! logs, and the conversions between the broker's definitions and their stored form.
//!
//! Store calls block on `fsync`; they run through [`blocking`] so a tokio worker hands its
//! other tasks to another thread meanwhile.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};
use warren_amqp::ShortStr;
use warren_core::entity::{ExchangeMeta, QueueMeta};
use warren_core::exchange_type::ExchangeType;
use warren_core::BrokerError;
use warren_core::vhost::{self, Destination};
use warren_store::{
    BindingDef, DefinitionChange, DefinitionStore, Definitions, ExchangeDef, ExchangeDirs,
    QueueDef, QueueLog, QueueLogConfig, RecoveredMessage, StoreError,
};

/// Runs a blocking store call without stalling the tokio worker's other tasks.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn store_failed(what: &str, e: StoreError) -> BrokerError {
    BrokerError::internal(format!("cannot {what}: {e}"))
}

pub struct Durability {
    definitions: Mutex<DefinitionStore>,
    queues_dir: PathBuf,
    next_log_id: AtomicU64,
    pub paging: Paging,
    /// Data of durable delayed-message and deduplication exchanges (`exchange_state`).
    exchange_dirs: Mutex<ExchangeDirs>,
}

/// How queues page messages out of memory (see `queue_task::paging`).
pub struct Paging {
    /// Memory one queue's loaded ready messages may hold normally.
    pub budget: usize,
    /// True while the broker is under memory pressure (resident memory above half the high
    /// watermark, RabbitMQ's default paging ratio): queues then keep only a read-ahead.
    pub pressure: watch::Sender<bool>,
    /// Where queues' spill directories go (emptied at start-up).
    pub spill_dir: PathBuf,
    next_spill: AtomicU64,
}

impl Paging {
    /// A fresh spill directory name for a queue.
    pub fn spill_path(&self) -> PathBuf {
        self.spill_dir
            .join(self.next_spill.fetch_add(1, Ordering::Relaxed).to_string())
    }
}

impl Durability {
    /// Opens the data directory's stores; returns what the definitions store holds.
    pub fn open(
        data_dir: &Path,
        queue_memory_budget: usize,
    ) -> Result<(Arc<Durability>, Definitions), StoreError> {
        let spill_dir = data_dir.join("spill");
        // Spilled messages were never promised durable: what a previous run left is garbage.
        if spill_dir.exists() {
            std::fs::remove_dir_all(&spill_dir).map_err(|source| StoreError::Io {
                op: "remove directory",
                path: spill_dir.clone(),
                source,
            })?;
        }
        let (store, defs) = DefinitionStore::open(&data_dir.join("definitions"))?;
        let queues_dir = data_dir.join("queues");
        std::fs::create_dir_all(&queues_dir).map_err(|source| StoreError::Io {
            op: "create",
            path: queues_dir.clone(),
            source,
        })?;
        let max_id = defs.queues.iter().map(|q| q.log_id).max().unwrap_or(0);
        // Logs no definition names are left over from a queue deleted (or never finished
        // declaring) just before a crash.
        if let Ok(entries) = std::fs::read_dir(&queues_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let known = name
                    .parse::<u64>()
                    .ok()
                    .is_some_and(|id| defs.queues.iter().any(|q| q.log_id == id));
                if !known {
                    warn!("removing orphaned queue log {}", entry.path().display());
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        // Data of exchanges deleted (or never finished declaring) before a crash goes too.
        let exchange_dirs = ExchangeDirs::open(&data_dir.join("exchanges"), |vhost, name| {
            defs.exchanges
                .iter()
                .any(|e| e.vhost == vhost && e.name == name && keeps_data(&e.kind))
        })?;
        let durability = Durability {
            definitions: Mutex::new(store),
            queues_dir,
            next_log_id: AtomicU64::new(max_id + 1),
            paging: Paging {
                budget: queue_memory_budget,
                pressure: watch::channel(false).0,
                spill_dir,
                next_spill: AtomicU64::new(1),
            },
            exchange_dirs: Mutex::new(exchange_dirs),
        };
        Ok((Arc::new(durability), defs))
    }

    /// Makes definition changes durable (fsynced) before the caller replies `-ok`.
    pub fn apply(&self, changes: &[DefinitionChange]) -> Result<(), BrokerError> {
        blocking(|| self.definitions.lock().apply(changes))
            .map_err(|e| store_failed("store definitions", e))
    }

    /// Creates the message log of a new durable queue.
    pub fn create_queue_log(&self) -> Result<(u64, QueueLog), BrokerError> {
        let id = self.next_log_id.fetch_add(1, Ordering::Relaxed);
        let (log, _) = self
            .recover_queue_log(id, |_| debug_assert!(false, "a new log is empty"))
            .map_err(|e| store_failed("create a queue log", e))?;
        Ok((id, log))
    }

    /// Opens (recovering) a durable queue's message log, handing each recovered message to
    /// `each` as its segment is read.
    pub fn recover_queue_log(
        &self,
        id: u64,
        each: impl FnMut(RecoveredMessage),
    ) -> Result<(QueueLog, warren_store::RecoveryReport), StoreError> {
        blocking(|| {
            QueueLog::open_with(
                &self.queues_dir.join(id.to_string()),
                QueueLogConfig::default(),
                each,
            )
        })
    }
}

impl Durability {
    /// The data directory of a durable exchange whose type keeps state: the one it had
    /// before the restart (`recovering`), or a new one.
    pub fn exchange_dir(
        &self,
        vhost: &str,
        name: &str,
        recovering: bool,
    ) -> Result<PathBuf, BrokerError> {
        let mut dirs = self.exchange_dirs.lock();
        if recovering {
            if let Some(dir) = dirs.recovered(vhost, name) {
                return Ok(dir);
            }
        }
        blocking(|| dirs.create(vhost, name)).map_err(|e| store_failed("create exchange data", e))
    }

    /// Opens (recovering) a log kept in an exchange's data directory.
    pub fn open_log_at(
        &self,
        dir: &Path,
    ) -> Result<
        (
            QueueLog,
            Vec<RecoveredMessage>,
            warren_store::RecoveryReport,
        ),
        StoreError,
    > {
        blocking(|| QueueLog::open(dir, QueueLogConfig::default()))
    }
}

/// Exchange types whose durable exchanges may have a data directory.
fn keeps_data(kind: &str) -> bool {
    matches!(
        ExchangeType::parse(kind),
        Some(ExchangeType::DelayedMessage | ExchangeType::MessageDeduplication)
    )
}

/// The vhost model's definition changes in the store's form. `new_queue_log` is the message
/// log of the queue a `PutQueue` declares (the model knows no logs).
pub fn stored_changes(
    vhost: &str,
    changes: &[vhost::DefinitionChange],
    new_queue_log: Option<u64>,
) -> Vec<DefinitionChange> {
    let named = |name: &ShortStr| (vhost.to_string(), name.to_string());
    changes
        .iter()
        .filter_map(|c| {
            Some(match c {
                vhost::DefinitionChange::PutExchange(m) => {
                    DefinitionChange::PutExchange(exchange_def(vhost, m))
                }
                vhost::DefinitionChange::DeleteExchange(name) => {
                    let (vhost, name) = named(name);
                    DefinitionChange::DeleteExchange { vhost, name }
                }
                vhost::DefinitionChange::PutQueue(m) => {
                    let Some(log_id) = new_queue_log else {
                        debug_assert!(false, "a durable queue is stored with its log");
                        return None;
                    };
                    DefinitionChange::PutQueue(queue_def(vhost, m, log_id))
                }
                vhost::DefinitionChange::DeleteQueue(name) => {
                    let (vhost, name) = named(name);
                    DefinitionChange::DeleteQueue { vhost, name }
                }
                vhost::DefinitionChange::PutBinding(b) => {
                    DefinitionChange::PutBinding(binding_def(vhost, b))
                }
                vhost::DefinitionChange::DeleteBinding(b) => {
                    DefinitionChange::DeleteBinding(binding_def(vhost, b))
                }
            })
        })
        .collect()
}

fn binding_def(vhost: &str, b: &vhost::Binding) -> BindingDef {
    let (kind, name) = match &b.destination {
        Destination::Queue(name) => ("queue", name),
        Destination::Exchange(name) => ("exchange", name),
    };
    BindingDef {
        vhost: vhost.to_string(),
        source: b.source.to_string(),
        destination_kind: kind.to_string(),
        destination: name.to_string(),
        routing_key: b.routing_key.to_string(),
        arguments: b.arguments.clone(),
    }
}

pub fn exchange_def(vhost: &str, m: &ExchangeMeta) -> ExchangeDef {
    ExchangeDef {
        vhost: vhost.to_string(),
        name: m.name.to_string(),
        kind: m.kind.as_str().to_string(),
        durable: true,
        auto_delete: m.auto_delete,
        internal: m.internal,
        arguments: m.arguments.clone(),
    }
}

pub fn exchange_meta(d: &ExchangeDef) -> Option<ExchangeMeta> {
    let Some(kind) = ExchangeType::parse(&d.kind) else {
        warn!(
            "stored exchange '{}' has unknown type '{}'; skipped",
            d.name, d.kind
        );
        return None;
    };
    Some(ExchangeMeta {
        name: short(&d.name)?,
        kind,
        durable: true,
        auto_delete: d.auto_delete,
        internal: d.internal,
        arguments: d.arguments.clone(),
    })
}

pub fn queue_def(vhost: &str, m: &QueueMeta, log_id: u64) -> QueueDef {
    QueueDef {
        vhost: vhost.to_string(),
        name: m.name.to_string(),
        auto_delete: m.auto_delete,
        arguments: m.arguments.clone(),
        log_id,
    }
}

pub fn queue_meta(d: &QueueDef) -> Option<QueueMeta> {
    Some(QueueMeta {
        name: short(&d.name)?,
        durable: true,
        exclusive_owner: None,
        auto_delete: d.auto_delete,
        arguments: d.arguments.clone(),
    })
}

pub fn short(s: &str) -> Option<ShortStr> {
    ShortStr::from_bytes(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

pub fn log_recovery(queue: &str, report: &warren_store::RecoveryReport) {
    info!(
        "recovered queue '{queue}': {} messages from {} segments in {:?}",
        report.messages, report.segments, report.duration
    );
    for d in &report.damaged {
        warn!("queue '{queue}': damaged log record: {d:?}");
    }
}
