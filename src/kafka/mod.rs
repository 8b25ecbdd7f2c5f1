//! The controller's hands on a real Kafka cluster: connection options, and the lag reader built on
//! librdkafka's admin API ([`ffi`] holds the only unsafe code of the project).

pub mod cluster;
pub mod ffi;
mod lag;
pub mod retention;
mod topics;

pub use lag::{AWS_MSK_IAM, Admin, Connection, LagReader, TokenSlot};
pub use topics::TopicAdmin;
