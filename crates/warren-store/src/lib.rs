//! Warren's durability: what survives a restart.
//!
//! - [`QueueLog`]: one durable queue's messages, in append-only segment files with a side
//!   file of acks and delivery marks per segment; group-committed `sync`; recovery that cuts
//!   torn tails and reports damage with file and offset.
//! - [`DefinitionStore`]: durable exchanges, queues and bindings, as an append-only change
//!   log compacted into a snapshot.
//! - [`ExchangeDirs`]: data directories of durable exchanges whose type keeps state (delayed
//!   messages, deduplication caches), each tied to its exchange by an owner file.
//!
//! Every file is a sequence of CRC32C-checked records. Each on-disk structure is described
//! once, in the module that reads and writes it: `record` (framing), `segment` (messages),
//! `acks` (acks and delivery marks), `definitions` (definitions log and snapshot). The
//! crate's README gives the design, the RAM budget and the measured recovery speed.
//!
//! Architecture invariant: no tokio and no async here. The store does plain blocking std
//! file I/O; the server calls it from its own tasks or threads. It never interprets message
//! contents (properties are stored as the raw bytes the publisher sent).

mod acks;
mod definitions;
mod error;
mod exchange_dirs;
mod fsio;
mod queue_log;
mod record;
mod recovery;
mod segment;
mod spill;

pub use definitions::{
    BindingDef, DefinitionChange, DefinitionStore, Definitions, ExchangeDef, PolicyDef, QueueDef,
    COMPACT_MIN_LOG_BYTES,
};
pub use error::StoreError;
pub use exchange_dirs::ExchangeDirs;
pub use queue_log::{QueueLog, QueueLogConfig, StoredMessage, ACTIVE_RECLAIM_MIN_BYTES};
pub use record::DamageKind;
pub use recovery::{Damage, RecoveredMessage, RecoveryReport};
pub use spill::Spill;
