//! High availability on Kafka's own coordination (docs/ha.md): the instances of one deployment
//! (`[ha] name`) elect a leader through a Kafka consumer group, and keep what they share in a
//! compacted catchup-owned topic.
//!
//! - [`config`]: the `[ha]` table;
//! - [`election`]: the lock, partition 0 of a single-partition coordination topic assigned by the
//!   group;
//! - [`state`]: the state topic's records and the fencing rule, as data (pure);
//! - [`state_topic`]: creating catchup's topics, reading the state topic to its end, writing it;
//! - [`node`]: one instance's membership ([`Ha`]): heartbeats, epoch claims, the fencing check,
//!   and the retention journal kept in the state topic ([`HaJournal`]).
//!
//! The control loop uses [`Ha`] through `Runtime::with_ha` (`src/runtime/ha.rs`).

pub mod config;
pub mod election;
pub mod node;
pub mod state;
pub mod state_topic;

pub use config::HaConfig;
pub use node::{Ha, HaJournal, JournalNote};
