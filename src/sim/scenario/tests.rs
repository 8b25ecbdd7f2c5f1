//! The format's extensions: backlog events, outages from the start, the two metric outage kinds,
//! skew on named brokers; their validation; and the shipped files meaning what they always meant.

use std::path::Path;

use super::*;
use crate::policy::Policy;
use crate::sim::cluster::{Cluster, broker_shares, warmup};
use crate::sim::{ControllerKind, Summary, bind_policy, optimal, simulate};
use crate::units::Timestamp;

/// Six brokers, one input written at 20 MB/s, one managed output; `extra` is appended.
fn base(extra: &str) -> String {
    format!(
        r#"name = "base"
duration = "12h"
[cluster]
brokers = 6
disk_capacity = "2TB"
upload_rate = "200MiB/s"
[[topics]]
name = "in"
partitions = 12
record_bytes = 1000
local_retention = "4h"
producer = {{ rate = "20MB/s" }}
[[topics]]
name = "out"
partitions = 60
record_bytes = 1000
local_retention = "4h"
managed = true
output_of = {{ group = "g", amplification = 1.0 }}
{extra}
"#
    )
}

fn parse(text: &str) -> Scenario {
    Scenario::parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(text: &str) -> String {
    Scenario::parse(Path::new("bad.toml"), text)
        .expect_err("invalid")
        .to_string()
}

const ONE_BACKLOG: &str =
    "[[groups]]\nname = \"g\"\ntopic = \"in\"\nmax_rate = 60000\nbacklog = \"2h\"\n";

#[test]
fn backlog_is_one_backlog_event_at_time_zero() {
    let short = parse(&base(ONE_BACKLOG));
    let long = parse(&base(
        "[[groups]]\nname = \"g\"\ntopic = \"in\"\nmax_rate = 60000\n\
         [[groups.backlogs]]\nat = \"0s\"\nsize = \"2h\"\n",
    ));
    assert_eq!(
        short.groups[0].backlog_events(),
        vec![(Dur(0), Dur::from_hours(2))]
    );
    assert_eq!(
        short.groups[0].backlog_events(),
        long.groups[0].backlog_events()
    );
    let run = |s: &Scenario| {
        let policy = bind_policy(&Policy::default(), s).unwrap();
        simulate(s, &policy, ControllerKind::Catchup)
            .unwrap()
            .summary
    };
    let (a, b) = (run(&short), run(&long));
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&Summary {
            scenario: a.scenario.clone(),
            ..b
        })
        .unwrap()
    );
}

#[test]
fn a_later_backlog_event_adds_lag_when_it_arrives_and_ends_the_catch_up_later() {
    let s = parse(&base(&format!(
        "{ONE_BACKLOG}[[groups.backlogs]]\nat = \"6h\"\nsize = \"3h\"\n"
    )));
    assert_eq!(s.backlog_times(), vec![Dur(0), Dur::from_hours(6)]);
    assert_eq!(s.groups[0].total_backlog(), Dur::from_hours(5));
    let mut c = Cluster::new(&s, Timestamp(0) - warmup(&s));
    while c.now() < Timestamp(0) {
        c.step(true);
    }
    c.inject_backlogs(&s, Dur(0));
    let first = c.group_lag("g").unwrap();
    // 2 h of 20 MB/s in 1 kB records.
    assert!((first - 2.0 * 3600.0 * 20_000.0).abs() < 100.0, "{first}");
    c.inject_backlogs(&s, Dur::from_hours(1));
    assert_eq!(c.group_lag("g").unwrap(), first, "nothing appears at 1h");
    c.inject_backlogs(&s, Dur::from_hours(6));
    let both = c.group_lag("g").unwrap();
    assert!((both - 5.0 * 3600.0 * 20_000.0).abs() < 100.0, "{both}");

    let policy = bind_policy(&Policy::default(), &s).unwrap();
    let out = simulate(&s, &policy, ControllerKind::None).unwrap().summary;
    let done = out.catchup_seconds.expect("drains");
    // At full speed (3x the production) 3 h of backlog takes 1.5 h after it arrives at 6 h.
    assert!(done > 6.0 * 3600.0 + 1.4 * 3600.0, "{out:?}");
    let bound = optimal::optimal_seconds(&s, &policy).unwrap();
    assert!(bound > 6.0 * 3600.0 && bound <= done, "{bound} vs {done}");
}

#[test]
fn outages_from_the_start_cover_the_warm_up_and_each_metric_goes_silent_on_its_own() {
    let visible = |events: &str| {
        let s = parse(&base(&format!("{ONE_BACKLOG}{events}")));
        let mut c = Cluster::new(&s, Timestamp(0) - warmup(&s));
        while c.now() < Timestamp(0) + Dur::from_mins(30) {
            c.step(c.now() < Timestamp(0));
        }
        (c.visible_disk(0).is_some(), c.visible_copy_lag(0).is_some())
    };
    let at = |kind: &str, start: &str| {
        format!("[[events]]\nkind = \"{kind}\"\n{start}\nuntil = \"1h\"\n")
    };
    assert_eq!(visible(""), (true, true));
    assert_eq!(
        visible(&at("metrics_outage", "from_start = true")),
        (false, false)
    );
    assert_eq!(
        visible(&at("disk_metric_outage", "from_start = true")),
        (false, true)
    );
    assert_eq!(
        visible(&at("copy_lag_metric_outage", "from_start = true")),
        (true, false)
    );
    // `at = "0s"` starts at catch-up start: the warm-up's datapoints are still visible.
    assert_eq!(visible(&at("metrics_outage", "at = \"0s\"")), (true, true));
}

#[test]
fn skew_on_named_brokers_heats_only_them() {
    let skewed = |skew: &str| {
        let text = base(ONE_BACKLOG).replace(
            "managed = true\n",
            &format!("managed = true\nskew = {{ {skew}, weight = 3.0 }}\n"),
        );
        broker_shares(&parse(&text), 1)
    };
    let named = skewed("brokers = [2]");
    let ring = skewed("broker = 2");
    assert!((named.iter().sum::<f64>() - 3.0).abs() < 1e-9);
    let others: Vec<f64> = named
        .iter()
        .enumerate()
        .filter(|(b, _)| *b != 1)
        .map(|(_, s)| *s)
        .collect();
    let (lo, hi) = others
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), s| (l.min(*s), h.max(*s)));
    assert!(named[1] > 1.2 * hi, "{named:?}");
    assert!(
        hi - lo < 1e-9,
        "the other brokers share the heat evenly: {named:?}"
    );
    // The ring form heats the named broker's ring neighbours above the average (0.5) too, while
    // every broker but the named one sits below it with `brokers`.
    assert!(ring[0] > 0.55 && ring[2] > 0.55, "{ring:?}");
    assert!(hi < 0.5, "{named:?}");
}

#[test]
fn every_problem_of_the_new_fields_is_reported_at_once() {
    let text = base(
        "[[groups]]\nname = \"g\"\ntopic = \"in\"\nmax_rate = 60000\nbacklog = \"1h\"\n\
         [[groups.backlogs]]\nat = \"0s\"\nsize = \"0s\"\n\
         [[groups.backlogs]]\nat = \"13h\"\nsize = \"8d\"\n\
         [[groups]]\nname = \"h\"\ntopic = \"in\"\nmax_rate = 60000\n\
         [[events]]\nkind = \"disk_metric_outage\"\nuntil = \"1h\"\nbrokers = [7]\n\
         [[events]]\nkind = \"copy_stall\"\nat = \"1h\"\nfrom_start = true\nuntil = \"2h\"\n",
    )
    .replace(
        "managed = true\n",
        "managed = true\nskew = { brokers = [1, 9], weight = 2.0 }\n",
    );
    let err = problems(&text);
    for want in [
        "groups[0].backlogs = 0s: `backlog` is already the backlog at 0s",
        "groups[0].backlogs[0].size = 0s: must be positive",
        "groups[0].backlogs[1].at = 13h: must be before the end of the run",
        "groups[0].backlogs[1].size = 8d: a backlog after 0s must be shorter than its input's retention",
        "groups[1].backlog = -: missing",
        "events[0].at = -: missing",
        "events[0].brokers = 7: unknown broker",
        "events[1].at = 1h: give `at` or `from_start = true`, not both",
        "topics[1].skew.brokers = 9: unknown broker",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
    let both = base(ONE_BACKLOG).replace(
        "managed = true\n",
        "managed = true\nskew = { broker = 1, brokers = [1], weight = 2.0 }\n",
    );
    assert!(problems(&both).contains("topics[1].skew = -: give exactly one of"));
}

/// Every shipped file keeps its meaning: one backlog at 0s per group, events that start at a time,
/// skew of the replica-ring kind. (Their summaries were compared byte for byte with
/// `simulate --json` before and after the format grew.)
#[test]
fn shipped_scenarios_keep_their_meaning() {
    for entry in std::fs::read_dir("scenarios").expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("backlogs") || text.contains("from_start") || text.contains("brokers = [")
        {
            continue; // a scenario written for the new fields
        }
        for g in &s.groups {
            assert_eq!(g.backlog_events().len(), 1, "{}", path.display());
            assert_eq!(g.backlog_events()[0].0, Dur(0), "{}", path.display());
        }
        assert!(
            s.events.iter().all(|e| e.start().is_some()),
            "{}",
            path.display()
        );
        assert!(
            s.topics
                .iter()
                .filter_map(|t| t.skew.as_ref())
                .all(|k| k.broker.is_some() && k.brokers.is_empty()),
            "{}",
            path.display()
        );
    }
}
