//! The bound against physics worked out by hand, and against runs of the simulator.

use std::path::Path;

use super::optimal_seconds;
use crate::policy::Policy;
use crate::sim::{ControllerKind, Scenario, bind_policy, simulate};

/// Three brokers holding every partition (replication factor 3), so every broker takes every
/// byte; no daily cycle, so the producers' lowest rate is `rate * (1 - noise)`.
fn stalled(stall: &str) -> String {
    format!(
        r#"name = "stalled"
seed = 7
duration = "24h"
[cluster]
brokers = 3
disk_capacity = "1TB"
static_used = "0B"
upload_rate = "200MiB/s"
[[topics]]
name = "in"
partitions = 12
record_bytes = 1000
local_retention = "2h"
producer = {{ rate = "20MB/s", diurnal_amplitude = 0.0, noise = 0.05 }}
[[topics]]
name = "out"
partitions = 12
record_bytes = 1000
local_retention = "2h"
managed = true
output_of = {{ group = "g", amplification = 1.0 }}
[[groups]]
name = "g"
topic = "in"
max_rate = 100000
backlog = "8h"
{stall}"#
    )
}

const STALL: &str = "[[events]]\nkind = \"copy_stall\"\nat = \"0s\"\nuntil = \"6h\"\n";

/// While every broker's copy is stalled nothing written since the stall began is deleted (what was
/// uploaded before still ages out), so at the end of the 6 h stall the disks hold all 6 h the
/// producers wrote (more than the input's 2 h window) and every output byte consumed in it: at most
/// `ceiling - 6 h of input` of output, 1000 bytes per record on every broker (600 GB disks: the
/// backlog's output does not fit in the stall). The rest of the backlog and of what is produced
/// meanwhile can only be consumed at full speed after the stall. The bound without the stall
/// misses this by more than 6 h.
#[test]
fn a_copy_stall_holds_the_bound_back_by_what_the_disks_can_keep_meanwhile() {
    let small = |text: String| text.replace("disk_capacity = \"1TB\"", "disk_capacity = \"600GB\"");
    let s = Scenario::parse(Path::new("stalled.toml"), &small(stalled(STALL))).expect("valid");
    let p = bind_policy(&Policy::default(), &s).expect("binds");
    let lowest = 20e6 * 0.95;
    let room = 0.85 * 600e9 - lowest * 6.0 * 3600.0;
    let in_stall = room / 1000.0;
    let (backlog, produced, max) = (20_000.0 * 8.0 * 3600.0, lowest / 1000.0, 100_000.0);
    let threshold = p.drain.lag_threshold as f64;
    // backlog - threshold + produced * T = in_stall + max * (T - 6 h)
    let by_hand = (backlog - threshold - in_stall + max * 6.0 * 3600.0) / (max - produced);
    let bound = optimal_seconds(&s, &p).expect("feasible");
    assert!(bound >= by_hand - 1.0, "{bound} < {by_hand}");
    assert!(by_hand > 6.0 * 3600.0, "drains after the stall: {by_hand}");
    let unstalled = Scenario::parse(Path::new("free.toml"), &small(stalled(""))).expect("valid");
    let free = optimal_seconds(&unstalled, &p).expect("feasible");
    assert!(bound > free + 6.0 * 3600.0, "{free} {bound}");
    // Still a lower bound: no run that stays under the ceiling drains faster.
    no_safe_run_beats(
        &s,
        &p,
        bound,
        &[
            ControllerKind::Catchup,
            ControllerKind::None,
            ControllerKind::Runbook,
        ],
    );
}

/// No run of `kinds` that stays under the ceiling drains faster than `bound`.
fn no_safe_run_beats(s: &Scenario, p: &Policy, bound: f64, kinds: &[ControllerKind]) {
    for &kind in kinds {
        let run = simulate(s, p, kind).expect("simulates").summary;
        let safe = run.brokers_failed == 0 && run.seconds_above_ceiling == 0.0;
        if let (true, Some(t)) = (safe, run.catchup_seconds) {
            assert!(
                t >= bound - 1.0,
                "{kind} drained safely in {t}s, under {bound}s"
            );
        }
    }
}

/// From time 0, the first window of `F` also holds what the warm-up wrote before 0, and no window
/// takes more than full speed for its length: at 3x the production and amplification 4, the
/// outputs' 1 h floor window can take `H` only in part, so the bound is above what the old
/// `H * (T / F + 1)` allowed (which let the first window take a whole `H` at once).
#[test]
fn each_window_takes_at_most_full_speed_and_the_first_also_holds_the_warm_up() {
    let text = stalled("")
        .replace("amplification = 1.0", "amplification = 4.0")
        .replace("max_rate = 100000", "max_rate = 60000");
    let s = Scenario::parse(Path::new("windows.toml"), &text).expect("valid");
    let p = bind_policy(&Policy::default(), &s).expect("binds");
    let bound = optimal_seconds(&s, &p).expect("feasible");
    let lowest = 20e6 * 0.95;
    let h = 0.85 * 1e12 - lowest * 2.0 * 3600.0;
    // Bytes per record on every broker: 4000; full speed writes 240 MB/s to each.
    let need = |t: f64| (20_000.0 * 8.0 * 3600.0 - 100_000.0 + lowest / 1000.0 * t) * 4000.0;
    let old_cap = |t: f64| h * (t / 3600.0 + 1.0);
    let old = (1..200_000)
        .map(f64::from)
        .find(|&t| need(t) <= old_cap(t) && need(t) <= 240e6 * t)
        .expect("drains");
    assert!(bound > old + 600.0, "bound {bound}, old bound {old}");
    no_safe_run_beats(
        &s,
        &p,
        bound,
        &[ControllerKind::Catchup, ControllerKind::Runbook],
    );
}
