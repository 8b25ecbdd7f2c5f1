//! High availability on Kafka's own coordination (docs/ha.md): the instances of one deployment
//! (`[ha] name`) elect a leader through a Kafka consumer group, and keep what they share in a
//! compacted catchup-owned topic.
//!
//! - [`config`]: the `[ha]` table;
//! - [`election`]: the lock, partition 0 of a single-partition coordination topic assigned by the
//!   group;
//! - [`state`]: the state topic's records and the fencing rule, as data (pure);
//! - [`state_topic`]: creating catchup's topics, reading the state topic to its end, writing it;
//! - [`node`]: one instance's membership ([`Ha`]): heartbeats, epoch claims, the fencing check.
//!
//! The control loop uses [`Ha`] through `Runtime::with_ha` (`src/runtime/ha.rs`).

pub mod config;
pub mod election;
pub mod node;
pub mod state;
pub mod state_topic;

pub use config::HaConfig;
pub use node::Ha;

/// Why no instance of an HA deployment changes retention yet: the retention journal still lives in
/// each instance's state directory, so a new leader on another pod could not know the originals an
/// old one recorded (DESIGN.md invariant 9). Status lists it; restore and adopt answer with it.
pub const RETENTION_OFF: &str = "retention actions are off in HA mode until the retention journal lives in the HA state topic (issue #17): a new leader could not know the originals an old one recorded";
