//! The summary's failure accounting, the scenario's ranges, and the optimal bound's infeasibility.

use std::path::Path;

use super::*;
use crate::policy::Policy;

/// A small cluster whose producers write `rate` bytes/s into a 4 h local window on 2 TB disks.
fn small(rate: &str, duration: &str) -> String {
    format!(
        r#"name = "small"
duration = "{duration}"
[cluster]
brokers = 3
disk_capacity = "2TB"
upload_rate = "200MiB/s"
[[topics]]
name = "in"
partitions = 6
record_bytes = 1000
local_retention = "4h"
producer = {{ rate = "{rate}" }}
[[topics]]
name = "out"
partitions = 6
record_bytes = 1000
local_retention = "4h"
managed = true
output_of = {{ group = "g", amplification = 1.0 }}
[[groups]]
name = "g"
topic = "in"
max_rate = 100000
backlog = "1h"
"#
    )
}

#[test]
fn every_out_of_range_number_is_reported_at_once() {
    let text = small("20MB/s", "100000d")
        .replace("max_rate = 100000", "max_rate = 1e300")
        .replace(
            "managed = true\n",
            "managed = true\nskew = { broker = 1, weight = inf }\n",
        )
        .replace("amplification = 1.0", "amplification = nan");
    let err = Scenario::parse(Path::new("bad.toml"), &text)
        .expect_err("out of range")
        .to_string();
    for field in [
        "duration = 100000d: must be between 10m and 30d",
        "groups[0].max_rate",
        "topics[1].skew.weight = inf",
        "topics[1].output_of.amplification = NaN",
    ] {
        assert!(err.contains(field), "{field} missing from:\n{err}");
    }
}

#[test]
fn every_malformed_section_is_reported_at_once() {
    let text = small("20MB/s", "1d")
        .replace("brokers = 3", "brokers = \"three\"")
        .replace("upload_rate = \"200MiB/s\"", "upload_rate = nan")
        .replace("max_rate = 100000", "max_rate = \"fast\"")
        .replace(
            "record_bytes = 1000\nlocal_retention = \"4h\"\nproducer",
            "record_bytes = \"big\"\nlocal_retention = \"4h\"\nproducer",
        );
    let err = Scenario::parse(Path::new("bad.toml"), &text)
        .expect_err("malformed")
        .to_string();
    for field in [
        "cluster.brokers",
        "groups[0].max_rate",
        "topics[0].record_bytes",
    ] {
        assert!(err.contains(field), "{field} missing from:\n{err}");
    }
}

#[test]
fn brokers_the_producers_alone_fill_fail_in_the_warm_up_and_count_at_100_percent() {
    // 3 brokers × 2 TB, 4 h of 400 MB/s with RF 3 is 5.76 TB per broker: full before catch-up.
    let scenario = Scenario::parse(Path::new("full.toml"), &small("400MB/s", "2h")).unwrap();
    let policy = bind_policy(&Policy::default(), &scenario).unwrap();
    let out = simulate(&scenario, &policy, ControllerKind::None).unwrap();
    let s = &out.summary;
    assert_eq!(s.brokers_failed, 3, "{s:?}");
    assert_eq!(s.failed_during_warmup, 3, "{s:?}");
    assert_eq!(s.peak_disk_percent, 100.0);
    assert!(s.peak_disk_percent_per_broker.iter().all(|p| *p == 100.0));
    assert_eq!(s.seconds_above_ceiling, scenario.duration.secs_f64());
    assert_eq!(s.optimal_seconds, None);
    assert!(
        s.infeasible_reason
            .as_deref()
            .is_some_and(|r| r.contains("fill broker") || r.contains("warm-up")),
        "{s:?}"
    );
    assert!(
        out.series
            .disk
            .iter()
            .all(|d| d.iter().all(|p| *p == 100.0))
    );
}
