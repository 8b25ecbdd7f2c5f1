//! `cargo bench --bench control`: the figures of the control core.
//!
//! 1. Every shipped scenario under `catchup`, `none` and `runbook`, side by side (deterministic).
//! 2. Simulator speed: 48 h of cluster time (warm-up included) for 6 brokers x 200 partitions each,
//!    with the catchup controller in the loop; min and median wall time over several runs.
//! 3. `decide` on 1,000 partitions x 10 groups; min and median over many calls.

// Tests, benchmarks and examples measure and wait in real time; the clock ban is for the
// controller's code.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::{Duration, Instant};

use catchup::policy::{ControllerState, GroupPolicy, Policy, RateUnit, TopicPolicy, decide};
use catchup::sensors::{GroupOffsets, Observation, PartitionOffsets};
use catchup::sim::{self, ControllerKind, Scenario};
use catchup::units::{Dur, Timestamp};

/// `cargo bench --bench control [-- scenarios|simulator|decide]`: every section, or the one named.
fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("scenarios") {
        scenarios();
    }
    if run("simulator") {
        simulator_speed();
    }
    if run("decide") {
        decide_speed();
    }
}

fn scenarios() {
    println!("== shipped scenarios, default policy (ceiling 85%) ==");
    println!(
        "{:<16} {:<8} {:>9} {:>8} {:>12} {:>10} {:>10} {:>10} {:>8} {:>9} {:>12} {:>8} {:>6}",
        "scenario",
        "control",
        "peak disk",
        "failed",
        "above ceil",
        "catch-up",
        "optimal",
        "hindsight",
        "ratio",
        "time lag",
        "input lost",
        "restored",
        "writes"
    );
    let mut files: Vec<_> = std::fs::read_dir("scenarios")
        .expect("scenarios/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
    {
        let scenario = Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
        let policy =
            sim::bind_policy(&Policy::default(), &scenario).unwrap_or_else(|e| panic!("{e}"));
        let hindsight = sim::hindsight::hindsight_seconds(&scenario, &policy).expect("simulates");
        for kind in [
            ControllerKind::Catchup,
            ControllerKind::None,
            ControllerKind::Runbook,
        ] {
            let s = sim::simulate(&scenario, &policy, kind)
                .expect("simulates")
                .summary;
            let hours =
                |v: Option<f64>| v.map_or("never".into(), |s| format!("{:.2}h", s / 3600.0));
            let ratio = s
                .ratio_to_optimal
                .map_or("-".into(), |r| format!("{r:.3}x"));
            // A catch-up that filled brokers is not a catch-up a real cluster would have survived.
            let ratio = if s.brokers_failed > 0 {
                format!("({ratio})")
            } else {
                ratio
            };
            println!(
                "{:<16} {:<8} {:>8.1}% {:>8} {:>11.0}m {:>10} {:>10} {:>10} {:>8} {:>8.1}h {:>12} {:>8} {:>6}",
                s.scenario,
                kind.to_string(),
                s.peak_disk_percent,
                s.brokers_failed,
                s.seconds_above_ceiling / 60.0,
                hours(s.catchup_seconds),
                hours(s.optimal_seconds),
                hours(hindsight),
                ratio,
                s.max_time_lag_seconds / 3600.0,
                s.input_records_lost,
                if s.restored { "yes" } else { "NO" },
                s.retention_changes
            );
        }
    }
    println!(
        "(a ratio in parentheses belongs to a run that failed brokers; time lag: the largest age of \
         an unconsumed input record; input lost: records deleted by the input topic's retention \
         before the group read them; writes: retention config writes, every managed topic)\n"
    );
}

fn simulator_speed() {
    let base = std::fs::read_to_string("scenarios/2025-11-replay.toml").expect("replay scenario");
    // 6 brokers x 200 partitions each = 1,200 partitions: 400 input + 500 + 300 output.
    let text = base
        .replace("duration = \"24h\"", "duration = \"40h\"")
        .replacen("partitions = 120", "partitions = 400", 1)
        .replacen("partitions = 120", "partitions = 500", 1)
        .replacen("partitions = 60", "partitions = 300", 1);
    let scenario = Scenario::parse(Path::new("bench.toml"), &text).expect("bench scenario");
    let partitions: usize = scenario.topics.iter().map(|t| t.partitions).sum();
    let policy = sim::bind_policy(&Policy::default(), &scenario).expect("fits");
    let mut times = Vec::new();
    let mut simulated = 0.0;
    for _ in 0..5 {
        let start = Instant::now();
        let outcome =
            sim::simulate(&scenario, &policy, ControllerKind::Catchup).expect("simulates");
        times.push(start.elapsed());
        simulated = outcome.summary.simulated_seconds / 3600.0;
    }
    let (min, median) = min_median(&mut times);
    println!(
        "== simulator: {} brokers x {} partitions, {simulated:.0} h of cluster time (warm-up included), catchup in the loop ==",
        scenario.cluster.brokers, partitions
    );
    println!(
        "wall time: min {:.3} s, median {:.3} s over {} runs; {:.0} simulated hours per wall-clock second (median)\n",
        min.as_secs_f64(),
        median.as_secs_f64(),
        times.len(),
        simulated / median.as_secs_f64()
    );
}

fn decide_speed() {
    let mut policy = Policy::default();
    let now = Timestamp(1_000_000_000_000);
    let mut obs = Observation::test();
    for b in 1..=6 {
        obs = obs
            .with_disk(b, 60.0, now - Dur::from_mins(2))
            .with_copy_lag(b, 0, now - Dur::from_mins(2));
    }
    for g in 0..10 {
        let name = format!("group-{g}");
        policy.groups.push(GroupPolicy {
            name: name.clone(),
            unit: RateUnit::Records,
            max_rate: None,
            min_rate: None,
            lag_threshold: None,
            priority: Default::default(),
            exempt: false,
        });
        obs.groups.push(GroupOffsets {
            group: name,
            partitions: (0..1000)
                .map(|p| PartitionOffsets {
                    topic: format!("input-{g}"),
                    partition: p,
                    committed: Some(1_000_000),
                    log_end: 1_000_000 + i64::from(p),
                    log_start: None,
                    next_record: None,
                })
                .collect(),
            sampled_at: now,
            unavailable: Vec::new(),
        });
    }
    for t in 0..4 {
        let name = format!("output-{t}");
        policy.retention.topics.push(TopicPolicy {
            name: name.clone(),
            floor: None,
        });
        obs = obs.with_topic(&name, Some(4 * 3_600_000), 7 * 86_400_000, now);
    }
    // Warm the state with a history of disk samples, as a running controller has.
    let mut state = ControllerState::default();
    for m in (0..30).rev() {
        let mut o = obs.clone();
        for d in &mut o.disks {
            d.sampled_at = now - Dur::from_mins(m + 2);
        }
        state = decide(&o, &policy, &state, &[], now - Dur::from_mins(m)).1;
    }
    let mut times = Vec::new();
    for _ in 0..2000 {
        let start = Instant::now();
        let (decision, next) = decide(&obs, &policy, &state, &[], now);
        times.push(start.elapsed());
        std::hint::black_box((decision, next));
    }
    let (min, median) = min_median(&mut times);
    println!("== decide: 10 groups x 1,000 partitions, 6 brokers, 4 managed topics ==");
    println!(
        "min {:.1} us, median {:.1} us over {} calls",
        min.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6,
        times.len()
    );
}

fn min_median(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}
