//! Time: the only module that reads the system clocks.
//!
//! The control law never reads a clock (time is an argument of [`decide`](crate::policy::decide));
//! everything else asks this module, so the simulator can substitute its accelerated clock and a
//! test its paused one. `.clippy.toml` bans `Instant::now` and `SystemTime::now` everywhere else.

use std::time::{Instant, SystemTime};

use crate::units::Timestamp;

/// The controller's notion of time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
    /// `t` as a wall-clock time (for deadlines consumers compare with their own clocks). Identity
    /// on the real clock; the simulator's accelerated clock maps it back to real time.
    fn to_wall(&self, t: Timestamp) -> Timestamp {
        t
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        wall_now()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_now() -> Timestamp {
    let d = system_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The system's wall clock (for signatures and SDK calls that take a `SystemTime`).
#[allow(clippy::disallowed_methods)]
pub fn system_now() -> SystemTime {
    SystemTime::now()
}

/// The monotonic clock (for durations and deadlines within this process).
#[allow(clippy::disallowed_methods)]
pub fn monotonic_now() -> Instant {
    Instant::now()
}
