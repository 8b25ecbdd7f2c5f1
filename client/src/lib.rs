//! The consumer side of the catchup gate.
//!
//! - [`GateClient`] follows one catch-up group's gate on the controller (a long-poll of
//!   `GET /v1/gates/{group}`), enforces its rate locally with a token bucket, and applies the
//!   policy's fallback when the controller stops renewing the decision.
//! - [`GatedConsumer`] wraps an rdkafka `StreamConsumer`: it takes permits per batch, pauses its
//!   assigned partitions while the gate says paused, re-applies the pause after every rebalance
//!   (clients are known to lose or keep pause state across rebalances), and never hands out a message
//!   while paused: a message fetched before the pause took effect is dropped and its partition seeked
//!   back, so it is delivered after the resume.
//!
//! # Fallback
//!
//! Once `expires_at` has passed without a renewal (the controller is down or cannot reach the
//! cluster), the consumer keeps the last decision for `hold` (the policy's
//! `throttle.fallback_hold`, default 15 minutes): a paused group stays paused, a throttled one keeps
//! its rate, an open one stays open. After that it resumes at the group's minimum rate (or keeps its
//! throttled rate, if higher) and doubles the rate every `ramp` (`throttle.fallback_ramp`, default
//! 5 minutes) until it runs open. So a controller restart changes nothing, a crash-looping
//! controller cannot halt ingestion for good, and full speed never returns at once onto a disk the
//! controller last saw near its ceiling.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;

pub use catchup_proto::decision::GateState;
/// The gate as the controller publishes it (`GET /v1/gates/{group}`), and the policy's fallback:
/// the API's own types.
pub use catchup_proto::gate::{FallbackHint, GateView};

/// What the consumer should do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Effective {
    /// No limit.
    Open,
    /// At most this many units per second.
    Throttled(f64),
    /// Nothing.
    Paused,
}

/// Applies the fallback: what `view` means at wall-clock time `now_ms`. `default_min_rate` is used
/// when the controller did not say what the group's minimum rate is.
pub fn effective(view: &GateView, now_ms: i64, default_min_rate: f64) -> Effective {
    let decided = match view.state {
        GateState::Paused => Effective::Paused,
        GateState::Throttled => Effective::Throttled(view.rate.unwrap_or(default_min_rate)),
        GateState::Open => Effective::Open,
    };
    let expired_for = (now_ms - view.expires_at.0) as f64 / 1000.0;
    let hold = if view.fallback.hold_secs > 0.0 {
        view.fallback.hold_secs
    } else {
        900.0
    };
    let ramp = if view.fallback.ramp_secs > 0.0 {
        view.fallback.ramp_secs
    } else {
        300.0
    };
    if expired_for <= hold || decided == Effective::Open {
        return decided;
    }
    let min = view.fallback.min_rate.unwrap_or(default_min_rate).max(1e-3);
    let start = match decided {
        Effective::Throttled(r) => r.max(min),
        _ => min,
    };
    let doublings = ((expired_for - hold) / ramp).floor();
    if doublings >= 30.0 {
        return Effective::Open;
    }
    let rate = start * 2f64.powf(doublings);
    // Back to open once the ramp has passed the last known full speed (ten times the minimum rate:
    // the minimum is a fraction of full speed, 10% by default).
    if rate >= min * 10.0 {
        Effective::Open
    } else {
        Effective::Throttled(rate)
    }
}

/// The wall clock, in ms since the epoch: the controller's deadlines are wall-clock times.
#[allow(clippy::disallowed_methods)] // the client's one clock read; it has no clock module
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Errors of the gate client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The controller could not be reached or answered badly.
    #[error("gate {url}: {reason}")]
    Gate {
        /// The gate URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Kafka.
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// What is percent-encoded in a group name put into a URL path segment: everything but the
/// unreserved characters (RFC 3986).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

type Limiter = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;

struct Shared {
    view: Option<GateView>,
    /// The local bucket: its rate, its size and the limiter.
    bucket: Option<(f64, u32, Arc<Limiter>)>,
}

/// Follows one group's gate and enforces it locally.
#[derive(Clone)]
pub struct GateClient {
    shared: Arc<Mutex<Shared>>,
    changed: watch::Receiver<u64>,
    default_min_rate: f64,
}

impl GateClient {
    /// Follows `group`'s gate at `base_url` (e.g. `http://127.0.0.1:8080`) in a background task,
    /// without a token. `default_min_rate` is the rate to resume at after a pause if the controller
    /// never said. Until the first answer the consumer runs at `default_min_rate` (fail-safe: a
    /// consumer started while the controller is down never runs at full speed).
    pub fn spawn(base_url: &str, group: &str, default_min_rate: f64) -> GateClient {
        GateClient::spawn_with_token(base_url, group, default_min_rate, None)
    }

    /// [`GateClient::spawn`] with a consumer token (`Authorization: Bearer TOKEN`), which the
    /// controller requires once it has a consumer token configured.
    pub fn spawn_with_token(
        base_url: &str,
        group: &str,
        default_min_rate: f64,
        token: Option<String>,
    ) -> GateClient {
        let (tx, rx) = watch::channel(0u64);
        let shared = Arc::new(Mutex::new(Shared {
            view: None,
            bucket: None,
        }));
        let url = format!(
            "{}/v1/gates/{}",
            base_url.trim_end_matches('/'),
            percent_encoding::utf8_percent_encode(group, SEGMENT)
        );
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(70))
                .build()
                .unwrap_or_default();
            let mut version = 0u64;
            let mut backoff = Duration::from_millis(200);
            loop {
                let mut req = http.get(format!("{url}?after_version={version}&wait=30s"));
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let answer = req.send().await;
                match answer {
                    Ok(resp) if resp.status().is_success() => match resp.json::<GateView>().await {
                        Ok(view) => {
                            version = view.version;
                            task_shared.lock().unwrap_or_else(|e| e.into_inner()).view = Some(view);
                            tx.send_modify(|v| *v += 1);
                            backoff = Duration::from_millis(200);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(%url, error = %e, "gate answered with something else than a gate")
                        }
                    },
                    Ok(resp) => tracing::warn!(%url, status = %resp.status(), "gate refused"),
                    Err(e) => tracing::debug!(%url, error = %e, "gate unreachable"),
                }
                // Let waiters re-evaluate the fallback while the controller is away.
                tx.send_modify(|v| *v += 1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        GateClient {
            shared,
            changed: rx,
            default_min_rate,
        }
    }

    /// What the consumer should do now, fallback applied.
    pub fn effective(&self) -> Effective {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match &shared.view {
            Some(v) => effective(v, wall_ms(), self.default_min_rate),
            // No answer yet: the policy's fallback for an unknown gate, the minimum rate.
            None => Effective::Throttled(self.default_min_rate.max(1e-3)),
        }
    }

    /// The last gate seen.
    pub fn view(&self) -> Option<GateView> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .view
            .clone()
    }

    /// Waits until `permits` may be used: immediately when open, at the gate's rate when throttled,
    /// not at all while paused (it returns `false` after `max_wait` then).
    pub async fn acquire(&self, permits: u32, max_wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut changed = self.changed.clone();
        loop {
            let wait = match self.effective() {
                Effective::Open => return true,
                Effective::Paused => None,
                Effective::Throttled(rate) => {
                    let (burst, limiter) = self.bucket(rate);
                    let n = NonZeroU32::new(permits.max(1)).unwrap_or(NonZeroU32::MIN);
                    match limiter.check_n(n) {
                        Ok(Ok(())) => return true,
                        Ok(Err(not_until)) => {
                            Some(not_until.wait_time_from(DefaultClock::default().now()))
                        }
                        // More than the bucket holds: take them one bucketful at a time.
                        Err(_) => {
                            let mut left = permits;
                            while left > 0 {
                                let take = left.min(burst.max(1));
                                if !Box::pin(self.acquire(
                                    take,
                                    deadline.saturating_duration_since(tokio::time::Instant::now()),
                                ))
                                .await
                                {
                                    return false;
                                }
                                left -= take;
                            }
                            return true;
                        }
                    }
                }
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let sleep = wait.unwrap_or(Duration::from_secs(1)).min(deadline - now);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = changed.changed() => {}
            }
        }
    }

    /// The local bucket for `rate`, rebuilt (empty, like the controller's) when the rate changes.
    fn bucket(&self, rate: f64) -> (u32, Arc<Limiter>) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((r, b, l)) = &shared.bucket
            && (*r - rate).abs() < 1e-9
        {
            return (*b, l.clone());
        }
        let burst_cells = shared
            .view
            .as_ref()
            .and_then(|v| v.burst)
            .unwrap_or(rate)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32;
        let burst = NonZeroU32::new(burst_cells).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(1.0 / rate.max(1e-3)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let limiter = Arc::new(RateLimiter::direct(quota));
        let _ = limiter.check_n(burst);
        shared.bucket = Some((rate, burst_cells, limiter.clone()));
        (burst_cells, limiter)
    }
}

/// How long a wait for permits may last before the consumer pauses its assignment and keeps
/// polling to stay in its group (far below Kafka's default `max.poll.interval.ms` of 5 minutes).
pub const LONG_WAIT: Duration = Duration::from_secs(5);

/// Notes rebalances so the pause can be re-applied to newly assigned partitions.
#[derive(Default)]
pub struct RebalanceNotes {
    rebalanced: AtomicBool,
}

impl ClientContext for RebalanceNotes {}

impl ConsumerContext for RebalanceNotes {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_) | Rebalance::Revoke(_)) {
            self.rebalanced.store(true, Ordering::SeqCst);
        }
    }
}

/// A consumer that obeys its group's gate.
pub struct GatedConsumer {
    consumer: StreamConsumer<RebalanceNotes>,
    gate: GateClient,
    paused: bool,
    /// Messages dropped because they arrived while paused (they are delivered again after resume).
    pub dropped_while_paused: u64,
}

impl GatedConsumer {
    /// Builds the consumer from `config` (which must name `group.id` and `bootstrap.servers`) and
    /// subscribes to `topics`. Offsets are stored only for messages handed out
    /// (`enable.auto.offset.store=false`), so a message dropped during a pause is never committed.
    pub fn new(
        mut config: ClientConfig,
        topics: &[&str],
        gate: GateClient,
    ) -> Result<GatedConsumer, ClientError> {
        config.set("enable.auto.offset.store", "false");
        let consumer: StreamConsumer<RebalanceNotes> =
            config.create_with_context(RebalanceNotes::default())?;
        consumer.subscribe(topics)?;
        Ok(GatedConsumer {
            consumer,
            gate,
            paused: false,
            dropped_while_paused: 0,
        })
    }

    /// The underlying consumer (to commit, inspect the assignment, ...).
    pub fn consumer(&self) -> &StreamConsumer<RebalanceNotes> {
        &self.consumer
    }

    /// The gate this consumer obeys.
    pub fn gate(&self) -> &GateClient {
        &self.gate
    }

    /// Up to `max` messages, waiting at most `timeout` for the first; permits for the batch are taken
    /// before it is returned. While the gate is paused this returns an empty batch after `timeout`.
    pub async fn next_batch(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<OwnedMessage>, ClientError> {
        if self.gate.effective() == Effective::Paused {
            self.hold_paused(timeout).await?;
            return Ok(Vec::new());
        }
        if self.paused {
            let assignment = self.consumer.assignment()?;
            self.consumer.resume(&assignment)?;
            self.paused = false;
        }
        let mut batch = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while batch.len() < max {
            let left = if batch.is_empty() {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                Duration::from_millis(1)
            };
            match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return Ok(batch);
        }
        let permits = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        if !self.wait_for_permits(permits).await? || self.gate.effective() == Effective::Paused {
            // Paused while waiting: hand nothing out; rewind so the batch is delivered after the resume.
            self.rewind(&batch)?;
            self.dropped_while_paused += batch.len() as u64;
            return Ok(Vec::new());
        }
        for m in &batch {
            self.consumer
                .store_offset(m.topic(), m.partition(), m.offset() + 1)?;
        }
        Ok(batch)
    }

    /// Waits for `permits` while staying in the group (once the wait passes [`LONG_WAIT`]): the assignment is paused and the consumer
    /// keeps polling (a wait longer than `max.poll.interval.ms` would otherwise get it evicted, and
    /// it would hand out messages of partitions it no longer owns). Anything that still arrives is
    /// rewound. `false` when the gate paused meanwhile.
    async fn wait_for_permits(&mut self, permits: u32) -> Result<bool, ClientError> {
        let gate = self.gate.clone();
        let acquire = gate.acquire(permits, Duration::from_secs(3600));
        tokio::pin!(acquire);
        let mut paused_here = false;
        let started = tokio::time::Instant::now();
        let granted = loop {
            tokio::select! {
                ok = &mut acquire => break ok,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if self.gate.effective() == Effective::Paused {
                        break false;
                    }
                    // Short waits (the throttle's ordinary pacing) leave the fetch pipeline alone:
                    // pausing and rewinding it costs throughput. Only a wait that could approach
                    // max.poll.interval.ms pauses the assignment and polls.
                    if started.elapsed() < LONG_WAIT {
                        continue;
                    }
                    if !paused_here || self.consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
                        let assignment = self.consumer.assignment()?;
                        self.consumer.pause(&assignment)?;
                        paused_here = true;
                    }
                    if let Ok(m) = tokio::time::timeout(Duration::from_millis(1), self.consumer.recv()).await {
                        let m = m?;
                        self.dropped_while_paused += 1;
                        self.rewind_one(&m)?;
                    }
                }
            }
        };
        if paused_here && !self.paused {
            let assignment = self.consumer.assignment()?;
            self.consumer.resume(&assignment)?;
        }
        Ok(granted)
    }

    /// While paused: keep the assignment paused (again after every rebalance), keep polling so the
    /// group membership stays alive, and rewind anything that still arrives.
    async fn hold_paused(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let rebalanced = self
            .consumer
            .context()
            .rebalanced
            .swap(false, Ordering::SeqCst);
        if !self.paused || rebalanced {
            let assignment = self.consumer.assignment()?;
            self.consumer.pause(&assignment)?;
            self.paused = true;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while let Some(left) = deadline
            .checked_duration_since(tokio::time::Instant::now())
            .filter(|d| !d.is_zero())
        {
            match tokio::time::timeout(left.min(Duration::from_millis(200)), self.consumer.recv())
                .await
            {
                Ok(Ok(m)) => {
                    self.dropped_while_paused += 1;
                    self.rewind_one(&m)?;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {}
            }
            if self
                .consumer
                .context()
                .rebalanced
                .swap(false, Ordering::SeqCst)
            {
                let assignment = self.consumer.assignment()?;
                self.consumer.pause(&assignment)?;
            }
            if self.gate.effective() != Effective::Paused {
                break;
            }
        }
        Ok(())
    }

    fn rewind(&self, batch: &[OwnedMessage]) -> Result<(), ClientError> {
        let mut first: Vec<(&str, i32, i64)> = Vec::new();
        for m in batch {
            if !first
                .iter()
                .any(|(t, p, _)| *t == m.topic() && *p == m.partition())
            {
                first.push((m.topic(), m.partition(), m.offset()));
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in first {
            tpl.add_partition_offset(t, p, Offset::Offset(o))?;
        }
        self.consumer.seek_partitions(tpl, Duration::from_secs(5))?;
        Ok(())
    }

    fn rewind_one(&self, m: &BorrowedMessage<'_>) -> Result<(), ClientError> {
        self.consumer.seek(
            m.topic(),
            m.partition(),
            Offset::Offset(m.offset()),
            Duration::from_secs(5),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str, rate: Option<f64>) -> GateView {
        GateView {
            group: "g".into(),
            state: GateState::ALL
                .into_iter()
                .find(|s| *s == state)
                .expect("a gate state"),
            rate,
            burst: rate,
            unit: None,
            version: 1,
            expires_at: catchup_proto::units::Timestamp(1_000_000),
            reasons: Vec::new(),
            fallback: FallbackHint {
                hold_secs: 900.0,
                ramp_secs: 300.0,
                min_rate: Some(100.0),
            },
        }
    }

    #[test]
    fn a_fresh_decision_is_obeyed() {
        assert_eq!(
            effective(&view("paused", None), 999_000, 1.0),
            Effective::Paused
        );
        assert_eq!(
            effective(&view("throttled", Some(500.0)), 999_000, 1.0),
            Effective::Throttled(500.0)
        );
        assert_eq!(
            effective(&view("open", None), 999_000, 1.0),
            Effective::Open
        );
    }

    #[test]
    fn an_expired_decision_is_held_then_ramped_up_never_jumping_to_full_speed() {
        let t = |secs: i64| 1_000_000 + secs * 1000;
        // Held for 15 minutes.
        assert_eq!(
            effective(&view("paused", None), t(899), 1.0),
            Effective::Paused
        );
        assert_eq!(
            effective(&view("throttled", Some(500.0)), t(899), 1.0),
            Effective::Throttled(500.0)
        );
        // A pause resumes at the minimum rate and doubles every 5 minutes, then opens.
        assert_eq!(
            effective(&view("paused", None), t(901), 1.0),
            Effective::Throttled(100.0)
        );
        assert_eq!(
            effective(&view("paused", None), t(900 + 301), 1.0),
            Effective::Throttled(200.0)
        );
        assert_eq!(
            effective(&view("paused", None), t(900 + 3 * 300 + 1), 1.0),
            Effective::Throttled(800.0)
        );
        assert_eq!(
            effective(&view("paused", None), t(900 + 4 * 300 + 1), 1.0),
            Effective::Open
        );
        // A throttle keeps its rate as the starting point.
        assert_eq!(
            effective(&view("throttled", Some(500.0)), t(901), 1.0),
            Effective::Throttled(500.0)
        );
        // Open stays open.
        assert_eq!(
            effective(&view("open", None), t(100_000), 1.0),
            Effective::Open
        );
    }

    #[tokio::test]
    async fn before_the_first_answer_the_consumer_runs_at_its_minimum_rate() {
        // Nothing listens there: the controller is down.
        let gate = GateClient::spawn("http://127.0.0.1:9", "a group/with?odd#chars", 50.0);
        assert_eq!(gate.effective(), Effective::Throttled(50.0));
    }

    #[test]
    fn group_names_are_percent_encoded() {
        let encoded = percent_encoding::utf8_percent_encode("a/b?c#d e", SEGMENT).to_string();
        assert_eq!(encoded, "a%2Fb%3Fc%23d%20e");
    }
}
