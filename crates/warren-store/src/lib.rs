//! Warren's durability: what survives a restart.
//!
//! - [`MessageLog`]: an append-only, seq-addressed log of messages in segment files: append,
//!   read by seq or forward from a position, group-committed sync, and whole segments
//!   dropped from it (reclaimed once every reader settled them, or by retention). Recovery
//!   cuts torn tails and reports damage with file and offset.
//! - [`LogReader`]: one reader's settled positions over a log: acks and delivery marks, in a
//!   side file per segment. A log may have any number of readers (a stream's consumers).
//! - [`QueueLog`]: one durable queue's messages: one log and one reader, in one directory.
//! - [`DefinitionStore`]: durable exchanges, queues and bindings, as an append-only change
//!   log compacted into a snapshot.
//! - [`ExchangeDirs`]: data directories of durable exchanges whose type keeps state (delayed
//!   messages, deduplication caches), each tied to its exchange by an owner file.
//! - [`Spill`]: scratch files for messages paged out of memory that have no other copy.
//!
//! Every file is a sequence of CRC32C-checked records. Each on-disk structure is described
//! once, in the module that reads and writes it: `record` (framing), `segment` (messages),
//! `acks` (a reader's acks and delivery marks), `definitions` (definitions log and
//! snapshot). The crate's README gives the design, the RAM budget and the measured recovery
//! speed.
//!
//! Architecture invariant: no tokio and no async here. The store does plain blocking std
//! file I/O; the server calls it from its own tasks or threads. It never interprets message
//! contents (properties are stored as the raw bytes the publisher sent).

mod acks;
mod definitions;
mod error;
mod exchange_dirs;
mod fsio;
mod log_read;
mod message_log;
mod queue_log;
mod reader;
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
pub use message_log::{
    LogConfig, MessageLog, SegmentInfo, StoredMessage, ACTIVE_RECLAIM_MIN_BYTES,
};
pub use queue_log::{QueueLog, QueueLogConfig};
pub use reader::LogReader;
pub use record::DamageKind;
pub use recovery::{Damage, RecoveredMessage, RecoveryReport};
pub use spill::Spill;
