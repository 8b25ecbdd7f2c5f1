//! Lanes on the simulator: a live group beside a catch-up group on the same brokers keeps its lag
//! under the policy's `max_live_lag` while the disks stay under the ceiling; the same scenario
//! without the `live` lane holds the live group back with the backlog (the check can fail).

use crate::simulation::summary as run;

const SCENARIO: &str = "scenarios/live-beside-backlog.toml";

#[test]
fn a_live_group_keeps_its_lag_under_max_live_lag_while_the_backlog_takes_the_cuts() {
    let max_live_lag = catchup::policy::Policy::default()
        .throttle
        .max_live_lag
        .secs_f64();
    let ours = run(SCENARIO, "catchup");
    let live = ours["max_live_lag_seconds"].as_f64().expect("a live group");
    assert!(live <= max_live_lag, "live lag {live} s > {max_live_lag} s");
    assert_eq!(ours["seconds_above_ceiling"].as_f64(), Some(0.0), "{ours}");
    assert_eq!(ours["brokers_failed"].as_u64(), Some(0));
    assert!(
        ours["seconds_throttled"].as_f64().unwrap() > 3600.0,
        "the disk needed the throttle: {ours}"
    );
    let ratio = ours["ratio_to_optimal"].as_f64().expect("drained");
    assert!(ratio <= 1.10, "catch-up {ratio}x the optimal bound");
    assert_eq!(ours["restored"], true);

    // The runbook pauses everything, live traffic included.
    let runbook = run(SCENARIO, "runbook");
    let held = runbook["group_max_time_lag_seconds"]["live"]
        .as_f64()
        .unwrap();
    assert!(
        held > max_live_lag,
        "the runbook holds live traffic too: {held} s"
    );

    // Without the lane, the live group is throttled with the backlog.
    let text = std::fs::read_to_string(super::root().join(SCENARIO)).unwrap();
    let flat = text.replace("priority = \"live\"\n", "");
    assert_ne!(flat, text);
    let dir = std::env::temp_dir().join(format!("catchup-lanes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flat.toml");
    std::fs::write(&path, flat).unwrap();
    let flat = run(path.to_str().unwrap(), "catchup");
    let behind = flat["group_max_time_lag_seconds"]["live"].as_f64().unwrap();
    assert!(
        behind > max_live_lag,
        "one lane: the live group is held with the backlog ({behind} s)"
    );
    eprintln!("live lag: {live} s with lanes, {behind} s without, {held} s under the runbook");
}
