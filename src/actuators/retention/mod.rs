//! Topic retention: the guard that every config change must pass ([`guard`]; [`extend`] for the
//! one exception, raising an input topic's `retention.ms`) and the crash-safe write-ahead journal
//! that changes a real cluster through them ([`journal`]); the runbook's commands go through both
//! ([`runbook`]).

pub mod extend;
pub mod guard;
pub mod journal;
pub mod runbook;

pub use guard::{ALLOWED_KEYS, DENIED_KEYS, RetentionChange, RetentionRefusal, key_allowed, plan};
