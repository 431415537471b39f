//! [`DefinitionStore`]: the durable exchanges, queues and bindings, so that a restarted broker
//! declares again what clients declared durable, and the policies. Changes are durable (fdatasynced) before
//! `apply` returns, since the broker sends `declare-ok` after it.
//!
//! # On disk
//!
//! Two files in the store's directory, both holding records (see `crate::record`) whose
//! payload is a transaction (see `codec`):
//!
//! - `definitions.log`: one record per `apply` call, change ids increasing by one. A torn
//!   tail (an `apply` that never returned) is cut off on open; damage before the tail makes
//!   `open` fail with [`StoreError::Corrupt`], since skipping a committed change could
//!   silently forget a queue and its messages.
//! - `definitions.snapshot`: the 8-byte magic `WRNDEFS1` then one record: the whole state as
//!   `put` changes, with the id of the last change it includes. Written as
//!   `definitions.snapshot.tmp`, fdatasynced, renamed over the old one, directory fsynced;
//!   only then is the log emptied. A crash between the rename and the emptying leaves log
//!   records the snapshot already holds: their ids are not above the snapshot's, so open
//!   skips them.
//!
//! Compaction runs after an `apply` once the log is at least [`COMPACT_MIN_LOG_BYTES`] and
//! larger than the snapshot. The state is held in RAM (it is what the broker declares).

mod codec;

use crate::fsio;
use crate::record::{put_record, scan, DamageKind, PayloadCheck};
use crate::StoreError;
use bytes::Bytes;
use codec::ChangeRef;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use warren_amqp::FieldTable;

const LOG_FILE: &str = "definitions.log";
const SNAPSHOT_FILE: &str = "definitions.snapshot";
const SNAPSHOT_TMP_FILE: &str = "definitions.snapshot.tmp";
const SNAPSHOT_MAGIC: &[u8; 8] = b"WRNDEFS1";

/// The log is compacted into the snapshot once it is at least this big (and bigger than the
/// snapshot): small enough that opening is quick, big enough that compaction is rare.
pub const COMPACT_MIN_LOG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: String,
    /// `direct`, `fanout`, `topic`, `headers`, or a plugin type name.
    pub kind: String,
    /// Always true when stored (only durable exchanges are).
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    pub vhost: String,
    pub name: String,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Directory name of its message log under the data dir (unique per queue incarnation).
    pub log_id: u64,
}

/// A policy as set (validated by the broker before it is stored). The store keeps its
/// priority and definition as the JSON text the broker gave, without reading them.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    /// `queues`, `exchanges` or `all`.
    pub apply_to: String,
    /// A JSON number.
    pub priority: String,
    /// A JSON object.
    pub definition: String,
}

/// A binding's identity is all of its fields, arguments included (as in RabbitMQ).
#[derive(Debug, Clone, PartialEq)]
pub struct BindingDef {
    pub vhost: String,
    pub source: String,
    /// `"queue"` or `"exchange"`.
    pub destination_kind: String,
    pub destination: String,
    pub routing_key: String,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefinitionChange {
    /// Declares or replaces the exchange with this vhost and name.
    PutExchange(ExchangeDef),
    /// Also drops every binding whose source or exchange destination it is.
    DeleteExchange {
        vhost: String,
        name: String,
    },
    /// Declares or replaces the queue with this vhost and name.
    PutQueue(QueueDef),
    /// Also drops every binding whose queue destination it is.
    DeleteQueue {
        vhost: String,
        name: String,
    },
    PutBinding(BindingDef),
    DeleteBinding(BindingDef),
    /// Sets or replaces the policy with this vhost and name.
    PutPolicy(PolicyDef),
    DeletePolicy {
        vhost: String,
        name: String,
    },
}

/// What the store holds, each list sorted by vhost then name (bindings by all fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions {
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
    pub policies: Vec<PolicyDef>,
}

type NameKey = (String, String);
type BindingKey = (String, String, String, String, String, Vec<u8>);

/// The current definitions, keyed for replacement and deletion.
#[derive(Debug, Default)]
struct State {
    exchanges: BTreeMap<NameKey, ExchangeDef>,
    queues: BTreeMap<NameKey, QueueDef>,
    bindings: BTreeMap<BindingKey, BindingDef>,
    policies: BTreeMap<NameKey, PolicyDef>,
}

fn binding_key(b: &BindingDef) -> BindingKey {
    (
        b.vhost.clone(),
        b.source.clone(),
        b.destination_kind.clone(),
        b.destination.clone(),
        b.routing_key.clone(),
        codec::table_bytes(&b.arguments),
    )
}

impl State {
    fn apply(&mut self, change: &DefinitionChange) {
        match change {
            DefinitionChange::PutExchange(e) => {
                self.exchanges
                    .insert((e.vhost.clone(), e.name.clone()), e.clone());
            }
            DefinitionChange::DeleteExchange { vhost, name } => {
                self.exchanges.remove(&(vhost.clone(), name.clone()));
                self.bindings.retain(|_, b| {
                    !(b.vhost == *vhost
                        && (b.source == *name
                            || (b.destination_kind == "exchange" && b.destination == *name)))
                });
            }
            DefinitionChange::PutQueue(q) => {
                self.queues
                    .insert((q.vhost.clone(), q.name.clone()), q.clone());
            }
            DefinitionChange::DeleteQueue { vhost, name } => {
                self.queues.remove(&(vhost.clone(), name.clone()));
                self.bindings.retain(|_, b| {
                    !(b.vhost == *vhost && b.destination_kind == "queue" && b.destination == *name)
                });
            }
            DefinitionChange::PutBinding(b) => {
                self.bindings.insert(binding_key(b), b.clone());
            }
            DefinitionChange::DeleteBinding(b) => {
                self.bindings.remove(&binding_key(b));
            }
            DefinitionChange::PutPolicy(p) => {
                self.policies
                    .insert((p.vhost.clone(), p.name.clone()), p.clone());
            }
            DefinitionChange::DeletePolicy { vhost, name } => {
                self.policies.remove(&(vhost.clone(), name.clone()));
            }
        }
    }

    fn to_definitions(&self) -> Definitions {
        Definitions {
            exchanges: self.exchanges.values().cloned().collect(),
            queues: self.queues.values().cloned().collect(),
            bindings: self.bindings.values().cloned().collect(),
            policies: self.policies.values().cloned().collect(),
        }
    }

    fn len(&self) -> usize {
        self.exchanges.len() + self.queues.len() + self.bindings.len() + self.policies.len()
    }

    fn puts(&self) -> impl ExactSizeIterator<Item = ChangeRef<'_>> {
        let puts: Vec<ChangeRef<'_>> = (self.exchanges.values().map(ChangeRef::PutExchange))
            .chain(self.queues.values().map(ChangeRef::PutQueue))
            .chain(self.bindings.values().map(ChangeRef::PutBinding))
            .chain(self.policies.values().map(ChangeRef::PutPolicy))
            .collect();
        debug_assert_eq!(puts.len(), self.len());
        puts.into_iter()
    }
}

/// The durable definitions. See the module docs.
#[derive(Debug)]
pub struct DefinitionStore {
    dir: PathBuf,
    log: File,
    log_bytes: u64,
    snapshot_bytes: u64,
    last_change_id: u64,
    state: State,
    /// Set by a failed write or fsync (see [`StoreError::Failed`]).
    failed: Option<String>,
}

impl DefinitionStore {
    /// Opens (creating) the store at `dir` and returns what it holds.
    pub fn open(dir: &Path) -> Result<(DefinitionStore, Definitions), StoreError> {
        fsio::create_dir_durable(dir)?;
        fsio::remove_file(&dir.join(SNAPSHOT_TMP_FILE))?;
        let mut state = State::default();
        let (snapshot_id, snapshot_bytes) = read_snapshot(&dir.join(SNAPSHOT_FILE), &mut state)?;

        let log_path = dir.join(LOG_FILE);
        let (log, created) = fsio::open_append(&log_path)?;
        if created {
            fsio::sync_dir(dir)?;
        }
        let buf = fsio::read(&log_path)?;
        let mut txs = Transactions::default();
        let scanned = scan(&buf, &mut txs);
        if let Some(d) = scanned.damage.first() {
            return Err(corrupt(&log_path, d.offset, d.kind));
        }
        let mut log_bytes = buf.len() as u64;
        if let Some((offset, kind)) = scanned.tail {
            tracing::warn!(file = %log_path.display(), offset, bytes = buf.len() - offset, what = %kind, "cutting off torn tail of the definitions log (an apply that never returned)");
            fsio::truncate(&log_path, offset as u64)?;
            log_bytes = offset as u64;
        }
        let mut last_change_id = snapshot_id;
        for (offset, id, changes) in txs.0 {
            if id <= snapshot_id {
                continue; // Already in the snapshot (compaction stopped before emptying the log).
            }
            if id != last_change_id + 1 {
                let what = format!("change id {id} follows {last_change_id}: a change is missing");
                return Err(StoreError::Corrupt {
                    path: log_path,
                    offset: offset as u64,
                    what,
                });
            }
            changes.iter().for_each(|c| state.apply(c));
            last_change_id = id;
        }
        let definitions = state.to_definitions();
        let store = DefinitionStore {
            dir: dir.to_path_buf(),
            log,
            log_bytes,
            snapshot_bytes,
            last_change_id,
            state,
            failed: None,
        };
        Ok((store, definitions))
    }

    /// Applies `changes` as one transaction, durably (fdatasynced) before returning: after a
    /// crash either all of them are there or none.
    pub fn apply(&mut self, changes: &[DefinitionChange]) -> Result<(), StoreError> {
        StoreError::unless_failed(&self.failed, &self.dir)?;
        if changes.is_empty() {
            return Ok(());
        }
        let id = self.last_change_id + 1;
        let mut record = Vec::new();
        put_record(&mut record, |p| {
            codec::encode_transaction(p, id, changes.iter().map(ChangeRef::from))
        });
        let log_path = self.dir.join(LOG_FILE);
        let written = self
            .log
            .write_all(&record)
            .map_err(|e| StoreError::io("write", &log_path, e))
            .and_then(|()| fsio::sync_data(&self.log, &log_path));
        if let Err(e) = written {
            tracing::error!(file = %log_path.display(), error = %e, "definitions log write failed; the store refuses writes until reopened");
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.log_bytes += record.len() as u64;
        self.last_change_id = id;
        changes.iter().for_each(|c| self.state.apply(c));
        if self.log_bytes >= COMPACT_MIN_LOG_BYTES && self.log_bytes > self.snapshot_bytes {
            // The changes are durable already; a failed compaction only leaves a longer log.
            if let Err(e) = self.compact() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "definitions compaction failed; will retry after the next change");
            }
        }
        Ok(())
    }

    /// The definitions as they stand.
    pub fn definitions(&self) -> Definitions {
        self.state.to_definitions()
    }

    /// Bytes in the change log (what the next open replays on top of the snapshot).
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Writes the whole state as a new snapshot and empties the log (see the module docs).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let mut out = SNAPSHOT_MAGIC.to_vec();
        put_record(&mut out, |p| {
            codec::encode_transaction(p, self.last_change_id, self.state.puts())
        });
        let tmp = self.dir.join(SNAPSHOT_TMP_FILE);
        let path = self.dir.join(SNAPSHOT_FILE);
        let mut file = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        fsio::write_all(&mut file, &tmp, &out)?;
        fsio::sync_data(&file, &tmp)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &tmp, e))?;
        fsio::sync_dir(&self.dir)?;
        self.snapshot_bytes = out.len() as u64;
        let log_path = self.dir.join(LOG_FILE);
        self.log
            .set_len(0)
            .map_err(|e| StoreError::io("truncate", &log_path, e))?;
        fsio::sync_data(&self.log, &log_path)?;
        self.log_bytes = 0;
        tracing::debug!(dir = %self.dir.display(), definitions = self.state.len(), snapshot_bytes = self.snapshot_bytes, "definitions compacted");
        Ok(())
    }
}

fn corrupt(path: &Path, offset: usize, kind: DamageKind) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        what: kind.to_string(),
    }
}

/// Loads the snapshot into `state`; returns its change id and size (0, 0 if there is none).
fn read_snapshot(path: &Path, state: &mut State) -> Result<(u64, u64), StoreError> {
    if !path.exists() {
        return Ok((0, 0));
    }
    let buf = fsio::read(path)?;
    if !buf.starts_with(SNAPSHOT_MAGIC) {
        return Err(corrupt(path, 0, DamageKind::BadHeader));
    }
    let body = &buf[SNAPSHOT_MAGIC.len()..];
    let mut txs = Transactions::default();
    let scanned = scan(body, &mut txs);
    // Written whole and renamed into place: any damage at all is real corruption.
    let bad = scanned
        .damage
        .first()
        .map(|d| (d.offset, d.kind))
        .or(scanned.tail);
    if let Some((offset, kind)) = bad {
        return Err(corrupt(path, SNAPSHOT_MAGIC.len() + offset, kind));
    }
    let [(_, id, changes)] = <[_; 1]>::try_from(txs.0).map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: SNAPSHOT_MAGIC.len() as u64,
        what: "a snapshot holds exactly one record".into(),
    })?;
    changes.iter().for_each(|c| state.apply(c));
    Ok((id, buf.len() as u64))
}

/// Decoded transactions of a log or snapshot, with their offsets.
#[derive(Default)]
struct Transactions(Vec<(usize, u64, Vec<DefinitionChange>)>);

impl PayloadCheck for Transactions {
    const MIN_PAYLOAD_BYTES: usize = codec::MIN_TRANSACTION_BYTES;

    fn check(&self, payload: &[u8]) -> Result<(), DamageKind> {
        codec::decode_transaction(&Bytes::copy_from_slice(payload))
            .map(|_| ())
            .map_err(DamageKind::BadPayload)
    }

    fn accept(&mut self, offset: usize, payload: &[u8]) {
        match codec::decode_transaction(&Bytes::copy_from_slice(payload)) {
            Ok((id, changes)) => self.0.push((offset, id, changes)),
            Err(_) => debug_assert!(false, "accept after a failed check"),
        }
    }
}
