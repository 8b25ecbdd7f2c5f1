//! Kafka plumbing: connection settings, admin clients with their main queue served, topic-config
//! requests, and the librdkafka admin calls rust-rdkafka lacks ([`ffi`] holds the only unsafe code
//! of the project). What the answers mean is the sensors' and actuators' business.

mod connection;
pub mod ffi;
mod topics;

pub use connection::{AWS_MSK_IAM, Admin, Connection, TokenSlot};
pub use topics::{RawConfig, TopicAdmin};
