//! The consumer gate: one token bucket per catch-up group, which consumers obey.
//!
//! Consumers either take permits here (`POST /v1/gates/{group}/acquire`) or read the gate's state
//! (`GET /v1/gates/{group}`, long-polled) and enforce the rate locally. The bucket is `governor`'s
//! GCRA limiter, generic over its clock so tests run on a fake one.
//!
//! - **Rate changes without an extra burst.** A limiter's quota is fixed, so a new rate means a new
//!   limiter; a fresh one would hold a full bucket, letting a burst through at every change. The new
//!   limiter is therefore drained before it is published: after a change, permits accrue at the new
//!   rate from zero.
//! - **Sharing.** With `gate.share = "membership"` each instance divides by the group's member count
//!   (from Kafka's DescribeGroups), falling back to `gate.instances` when the broker cannot say.
//!   With `gate.instances = N` (one controller per consumer pod), each instance hands out
//!   `rate / N` with a burst of `burst / N` (at least 1), so the group as a whole gets its rate.
//! - **Versions.** Every change of state, rate or burst bumps the group's version; renewing the
//!   decision only moves `expires_at`. Long-pollers wake on a version change. Versions never go
//!   back across restarts: each run of the controller starts above the last (see
//!   `Controller::new`, which persists the run's number first).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::watch;

pub use catchup_proto::gate::{FallbackHint, GateView};

use crate::policy::{Gate, GateState, GroupDecision};
use crate::units::Timestamp;

/// The answer to a permit request.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Take them.
    Granted,
    /// Not now: try again after this long.
    Wait(Duration),
    /// The group is paused: wait for a new version (long-poll the gate).
    Paused,
}

/// Why a permit request is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// No such catch-up group.
    #[error("no catch-up group named {0:?}")]
    UnknownGroup(String),
    /// More permits than the bucket can ever hold.
    #[error(
        "{asked} permits exceed the gate's burst of {burst}: ask for at most {burst} at a time"
    )]
    TooMany {
        /// Asked for.
        asked: u32,
        /// The bucket size.
        burst: u32,
    },
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A gate state as the hot path stores it (an atomic byte, so a permit check takes no view lock).
fn state_byte(state: GateState) -> u8 {
    match state {
        GateState::Open => 0,
        GateState::Throttled => 1,
        GateState::Paused => 2,
    }
}

fn state_of_byte(byte: u8) -> GateState {
    match byte {
        0 => GateState::Open,
        2 => GateState::Paused,
        _ => GateState::Throttled,
    }
}

struct GroupGate<C: Clock> {
    view: RwLock<GateView>,
    /// The state (see [`state_byte`]), mirrored from `view` so a permit check takes no view lock.
    kind: std::sync::atomic::AtomicU8,
    /// How many instances share this group's rate (`gate.instances`, or the group's member count).
    share: std::sync::atomic::AtomicU32,
    limiter: RwLock<Option<Arc<Limiter<C>>>>,
    version: watch::Sender<u64>,
    granted: AtomicU64,
    denied: AtomicU64,
}

/// Every group's gate.
pub struct GateBoard<C: Clock = DefaultClock> {
    groups: RwLock<BTreeMap<String, Arc<GroupGate<C>>>>,
    clock: C,
    instances: u32,
    /// The version a newly registered gate starts at.
    first_version: u64,
}

impl GateBoard<DefaultClock> {
    /// A board on the real clock shared by `instances` controller instances.
    pub fn new(instances: u32) -> Self {
        GateBoard::with_clock(DefaultClock::default(), instances)
    }
}

impl<C: Clock + Clone> GateBoard<C> {
    /// A board on `clock`.
    pub fn with_clock(clock: C, instances: u32) -> Self {
        GateBoard {
            groups: RwLock::new(BTreeMap::new()),
            clock,
            instances: instances.max(1),
            first_version: 1,
        }
    }

    /// Gates registered from now on start at version `first` (above any version an earlier run
    /// of the controller handed out, so a consumer's `after_version` is never ahead of the gate).
    pub fn starting_at(mut self, first: u64) -> Self {
        self.first_version = first.max(1);
        self
    }

    /// Registers `groups` (open until the first decision). Idempotent.
    pub fn register(&self, groups: &[String], now: Timestamp) {
        let mut map = self.groups.write().unwrap_or_else(|e| e.into_inner());
        for g in groups {
            map.entry(g.clone()).or_insert_with(|| {
                Arc::new(GroupGate {
                    view: RwLock::new(GateView {
                        group: g.clone(),
                        state: GateState::Open,
                        rate: None,
                        burst: None,
                        unit: None,
                        version: self.first_version,
                        expires_at: now,
                        reasons: vec!["no decision yet".into()],
                        fallback: FallbackHint::default(),
                    }),
                    limiter: RwLock::new(None),
                    kind: std::sync::atomic::AtomicU8::new(state_byte(GateState::Open)),
                    share: std::sync::atomic::AtomicU32::new(self.instances),
                    version: watch::channel(self.first_version).0,
                    granted: AtomicU64::new(0),
                    denied: AtomicU64::new(0),
                })
            });
        }
    }

    fn group(&self, group: &str) -> Result<Arc<GroupGate<C>>, GateError> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .cloned()
            .ok_or_else(|| GateError::UnknownGroup(group.to_string()))
    }

    /// Publishes a decision for `group`; returns whether the gate changed (its version was bumped).
    pub fn publish(&self, group: &str, decision: &GroupDecision) -> Result<bool, GateError> {
        self.publish_gate(
            group,
            &decision.gate,
            decision.expires_at,
            &decision.reasons,
        )
    }

    /// Publishes `gate` for `group`, valid until `expires_at`.
    pub fn publish_gate(
        &self,
        group: &str,
        gate: &Gate,
        expires_at: Timestamp,
        reasons: &[String],
    ) -> Result<bool, GateError> {
        let g = self.group(group)?;
        let n = f64::from(g.share.load(Ordering::Relaxed).max(1));
        let state = gate.state();
        let (rate, burst, unit) = match gate {
            Gate::Open | Gate::Paused => (None, None, None),
            Gate::Throttled { rate, burst, unit } => {
                (Some(rate / n), Some((burst / n).max(1.0)), Some(*unit))
            }
        };
        let mut view = g.view.write().unwrap_or_else(|e| e.into_inner());
        let changed =
            view.state != state || view.rate != rate || view.burst != burst || view.unit != unit;
        view.expires_at = expires_at;
        view.reasons = reasons.to_vec();
        if changed {
            let limiter = match (rate, burst) {
                (Some(rate), Some(burst)) => Some(Arc::new(self.drained_limiter(rate, burst))),
                _ => None,
            };
            *g.limiter.write().unwrap_or_else(|e| e.into_inner()) = limiter;
            g.kind.store(state_byte(state), Ordering::Release);
            view.state = state;
            view.rate = rate;
            view.burst = burst;
            view.unit = unit;
            view.version += 1;
            g.version.send_replace(view.version);
        }
        Ok(changed)
    }

    /// A limiter for `rate` per second with a bucket of `burst`, already empty.
    fn drained_limiter(&self, rate: f64, burst: f64) -> Limiter<C> {
        let burst = NonZeroU32::new(burst.round().clamp(1.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64((1.0 / rate.max(1e-3)).min(86_400.0))
            .max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, self.clock.clone());
        let _ = limiter.check_n(burst);
        limiter
    }

    /// Sets what consumers of `group` do when their decision expires (`min_rate` is for the whole
    /// group; each instance's share is published).
    pub fn set_fallback(&self, group: &str, mut hint: FallbackHint) -> Result<(), GateError> {
        let g = self.group(group)?;
        let n = f64::from(g.share.load(Ordering::Relaxed).max(1));
        hint.min_rate = hint.min_rate.map(|r| r / n);
        g.view.write().unwrap_or_else(|e| e.into_inner()).fallback = hint;
        Ok(())
    }

    /// Sets how many instances share `group`'s rate (its member count); `None` goes back to the
    /// configured `gate.instances`. Takes effect at the next publish.
    pub fn set_share(&self, group: &str, members: Option<u32>) -> Result<(), GateError> {
        let g = self.group(group)?;
        g.share
            .store(members.unwrap_or(self.instances).max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Asks for `permits` from `group`'s bucket, without waiting.
    pub fn try_acquire(&self, group: &str, permits: NonZeroU32) -> Result<Admission, GateError> {
        let g = self.group(group)?;
        let state = g.view.read().unwrap_or_else(|e| e.into_inner()).state;
        let admission = match state {
            GateState::Paused => Admission::Paused,
            GateState::Open => Admission::Granted,
            GateState::Throttled => {
                let limiter = g.limiter.read().unwrap_or_else(|e| e.into_inner()).clone();
                match limiter {
                    None => Admission::Granted,
                    Some(l) => match l.check_n(permits) {
                        Ok(Ok(())) => Admission::Granted,
                        Ok(Err(not_until)) => {
                            Admission::Wait(not_until.wait_time_from(self.clock.now()))
                        }
                        Err(e) => {
                            let burst = g
                                .view
                                .read()
                                .unwrap_or_else(|e| e.into_inner())
                                .burst
                                .unwrap_or(1.0) as u32;
                            let _ = e;
                            return Err(GateError::TooMany {
                                asked: permits.get(),
                                burst,
                            });
                        }
                    },
                }
            }
        };
        match admission {
            Admission::Granted => g
                .granted
                .fetch_add(u64::from(permits.get()), Ordering::Relaxed),
            _ => g
                .denied
                .fetch_add(u64::from(permits.get()), Ordering::Relaxed),
        };
        Ok(admission)
    }

    /// The state and version of `group`'s gate, cheaply.
    pub fn state(&self, group: &str) -> Result<(GateState, u64), GateError> {
        let g = self.group(group)?;
        Ok((
            state_of_byte(g.kind.load(Ordering::Acquire)),
            *g.version.borrow(),
        ))
    }

    /// The gate of `group` as consumers see it.
    pub fn view(&self, group: &str) -> Result<GateView, GateError> {
        Ok(self
            .group(group)?
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    /// Every group's gate.
    pub fn views(&self) -> Vec<GateView> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups
            .values()
            .map(|g| g.view.read().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// A receiver that changes when `group`'s version does (for long-polls).
    pub fn subscribe(&self, group: &str) -> Result<watch::Receiver<u64>, GateError> {
        Ok(self.group(group)?.version.subscribe())
    }

    /// Permits granted and denied so far, per group.
    pub fn counters(&self) -> Vec<(String, u64, u64)> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups
            .iter()
            .map(|(name, g)| {
                (
                    name.clone(),
                    g.granted.load(Ordering::Relaxed),
                    g.denied.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::policy::RateUnit;

    fn board(instances: u32) -> (GateBoard<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let b = GateBoard::with_clock(clock.clone(), instances);
        b.register(&["g".to_string()], Timestamp(0));
        (b, clock)
    }

    fn throttle(b: &GateBoard<FakeRelativeClock>, rate: f64, burst: f64) -> bool {
        b.publish_gate(
            "g",
            &Gate::Throttled {
                rate,
                burst,
                unit: RateUnit::Records,
            },
            Timestamp(60_000),
            &[],
        )
        .unwrap()
    }

    fn n(k: u32) -> NonZeroU32 {
        NonZeroU32::new(k).unwrap()
    }

    /// Permits granted one at a time over `secs` seconds, asking every millisecond.
    fn drain(b: &GateBoard<FakeRelativeClock>, clock: &FakeRelativeClock, secs: u64) -> u64 {
        let mut granted = 0;
        for _ in 0..secs * 1000 {
            while b.try_acquire("g", n(1)).unwrap() == Admission::Granted {
                granted += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        granted
    }

    #[test]
    fn open_grants_paused_refuses_unknown_is_an_error() {
        let (b, _) = board(1);
        assert_eq!(
            b.try_acquire("g", n(1_000_000)).unwrap(),
            Admission::Granted
        );
        b.publish_gate("g", &Gate::Paused, Timestamp(1), &[])
            .unwrap();
        assert_eq!(b.try_acquire("g", n(1)).unwrap(), Admission::Paused);
        assert_eq!(
            b.try_acquire("nope", n(1)),
            Err(GateError::UnknownGroup("nope".into()))
        );
    }

    #[test]
    fn throttled_rate_and_burst_hold_on_a_fake_clock() {
        let (b, clock) = board(1);
        throttle(&b, 100.0, 10.0);
        // The bucket starts empty: 100/s for 10 s is 1000 permits, no initial burst.
        let granted = drain(&b, &clock, 10);
        assert!((999..=1001).contains(&granted), "{granted}");
        // After idling, at most the burst is available at once.
        clock.advance(Duration::from_secs(5));
        let mut burst = 0;
        while b.try_acquire("g", n(1)).unwrap() == Admission::Granted {
            burst += 1;
        }
        assert_eq!(burst, 10);
        match b.try_acquire("g", n(1)).unwrap() {
            Admission::Wait(d) => assert!(d <= Duration::from_millis(10), "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            b.try_acquire("g", n(11)),
            Err(GateError::TooMany {
                asked: 11,
                burst: 10
            })
        );
    }

    #[test]
    fn a_rate_change_lets_no_extra_burst_through() {
        let (b, clock) = board(1);
        throttle(&b, 100.0, 100.0);
        clock.advance(Duration::from_secs(10)); // bucket full: 100 permits waiting
        assert!(throttle(&b, 200.0, 200.0), "a new rate is a change");
        // Right after the swap nothing is available: the old bucket's 100 are gone, the new starts empty.
        assert!(matches!(
            b.try_acquire("g", n(1)).unwrap(),
            Admission::Wait(_)
        ));
        let granted = drain(&b, &clock, 5);
        assert!((999..=1001).contains(&granted), "200/s for 5 s: {granted}");
        // Renewing the same decision is not a change and does not reset the bucket.
        let version = b.view("g").unwrap().version;
        assert!(!throttle(&b, 200.0, 200.0));
        assert_eq!(b.view("g").unwrap().version, version);
    }

    #[test]
    fn instances_share_the_rate() {
        let (b, clock) = board(4);
        throttle(&b, 400.0, 40.0);
        let v = b.view("g").unwrap();
        assert_eq!((v.rate, v.burst), (Some(100.0), Some(10.0)));
        let granted = drain(&b, &clock, 10);
        assert!((999..=1001).contains(&granted), "{granted}");
        b.set_share("g", Some(2)).unwrap();
        throttle(&b, 400.0, 40.0);
        assert_eq!(
            b.view("g").unwrap().rate,
            Some(200.0),
            "two members: half each"
        );
        b.set_share("g", None).unwrap();
        throttle(&b, 400.0, 40.0);
        assert_eq!(
            b.view("g").unwrap().rate,
            Some(100.0),
            "back to the configured four"
        );
    }

    #[test]
    fn versions_wake_long_pollers() {
        let (b, _) = board(1);
        let mut rx = b.subscribe("g").unwrap();
        let before = *rx.borrow_and_update();
        b.publish_gate("g", &Gate::Paused, Timestamp(1), &[])
            .unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), before + 1);
    }
}
