use super::*;

fn claim(epoch: u64, leader: &str) -> Record {
    Record::Claim(Claim {
        epoch,
        leader: leader.into(),
        at: Timestamp(epoch as i64),
    })
}

fn round_trip(r: Record) -> Record {
    Record::decode(&r.key(), r.value().as_deref()).unwrap()
}

#[test]
fn records_round_trip_through_key_and_value() {
    for r in [
        claim(3, "a"),
        Record::Heartbeat(Heartbeat {
            instance: "pod-1".into(),
            at: Timestamp(5),
        }),
        Record::Decision(SharedDecision {
            epoch: 2,
            leader: "a".into(),
            at: Timestamp(9),
            groups: [("ingest".to_string(), serde_json::json!({"rate": 10.0}))].into(),
        }),
        Record::Other {
            key: "mode".into(),
            value: Some(serde_json::json!("observe")),
        },
        Record::Other {
            key: "override/7".into(),
            value: None,
        },
    ] {
        assert_eq!(round_trip(r.clone()), r);
    }
    let err = Record::decode("epoch", Some(b"{nope")).unwrap_err();
    assert!(err.contains("state topic record \"epoch\""), "{err}");
}

#[test]
fn a_leader_acts_only_while_the_newest_claim_is_its_own() {
    let mut v = StateView::default();
    assert!(!v.may_act("a", 1), "no claim at all: nobody acts");
    assert_eq!(v.next_epoch(), 1);
    v.apply(claim(1, "a"));
    assert!(v.may_act("a", 1));
    assert!(
        !v.may_act("b", 1),
        "another instance never acts in a's epoch"
    );
    assert!(!v.may_act("a", 2), "an epoch not claimed is not held");
    v.apply(claim(2, "b"));
    assert!(!v.may_act("a", 1), "a newer epoch deposes a");
    assert!(v.may_act("b", 2));
    assert_eq!(v.next_epoch(), 3);
}

#[test]
fn of_two_claims_of_one_epoch_the_later_record_wins() {
    let mut v = StateView::default();
    v.apply(claim(4, "a"));
    v.apply(claim(4, "b"));
    assert!(!v.may_act("a", 4));
    assert!(v.may_act("b", 4));
}

#[test]
fn a_late_claim_of_a_deposed_leader_fences_everyone_until_a_new_claim() {
    let mut v = StateView::default();
    v.apply(claim(5, "b"));
    // A deposed leader's stale write lands after b's claim with a lower epoch: b is no longer the
    // newest claim, so b stops acting, and nobody acts in epoch 3.
    v.apply(claim(3, "a"));
    assert!(!v.may_act("b", 5));
    assert!(!v.may_act("a", 3), "3 is below the highest epoch seen");
    assert_eq!(v.next_epoch(), 6, "the next claim goes above both");
}

#[test]
fn older_decisions_do_not_replace_newer_ones_and_members_are_counted_by_freshness() {
    let mut v = StateView::default();
    let d = |epoch| {
        Record::Decision(SharedDecision {
            epoch,
            leader: "x".into(),
            at: Timestamp(0),
            groups: BTreeMap::new(),
        })
    };
    v.apply(d(3));
    v.apply(d(2));
    assert_eq!(v.decision.as_ref().map(|d| d.epoch), Some(3));
    for (id, at) in [("a", 100_000), ("b", 95_000), ("c", 80_000)] {
        v.apply(Record::Heartbeat(Heartbeat {
            instance: id.into(),
            at: Timestamp(at),
        }));
    }
    let session = Dur::from_secs(10);
    assert_eq!(
        v.live_members("a", Timestamp(100_000), session),
        2,
        "a and b"
    );
    assert_eq!(
        v.live_members("me", Timestamp(100_000), session),
        3,
        "a, b and me"
    );
}

fn journal(epoch: u64, leader: &str, original: &str) -> Record {
    use crate::actuators::retention::guard::RetentionChange;
    use crate::actuators::retention::journal::{Entry, Journal};
    use crate::observation::{ConfigSource, JournalPhase, OriginalRetention};
    let mut j = Journal::new();
    j.topics.insert(
        "out".into(),
        Entry {
            key: Default::default(),
            original: OriginalRetention {
                value: Some(original.into()),
                source: ConfigSource::Topic,
                effective_ms: None,
            },
            snapshot: Default::default(),
            change: RetentionChange::Set {
                key: Default::default(),
                value: "3600000".into(),
            },
            phase: JournalPhase::Verified,
            last_value: Some("3600000".into()),
            pending: vec![],
            at: Timestamp(epoch as i64),
            reason: "test".into(),
        },
    );
    Record::Journal(SharedJournal {
        epoch,
        leader: leader.into(),
        at: Timestamp(epoch as i64),
        journal: j,
    })
}

fn replayed_original(records: Vec<Record>) -> Option<String> {
    let mut v = StateView::default();
    for r in records {
        v.apply(round_trip(r));
    }
    v.journal
        .and_then(|j| j.journal.topics["out"].original.value.clone())
}

#[test]
fn a_new_leader_replays_the_newest_journal_of_the_highest_epoch() {
    assert_eq!(replayed_original(vec![]), None);
    assert_eq!(
        replayed_original(vec![
            claim(1, "a"),
            journal(1, "a", "one"),
            journal(1, "a", "two"),
        ]),
        Some("two".into()),
        "the newest record of an epoch"
    );
    assert_eq!(
        replayed_original(vec![
            claim(1, "a"),
            journal(1, "a", "one"),
            claim(2, "b"),
            journal(2, "b", "two"),
            claim(3, "c"),
        ]),
        Some("two".into()),
        "a leader that has not saved yet replays its predecessor's"
    );
    // Compaction keeps each key's newest record in place: the highest epoch still wins.
    assert_eq!(
        replayed_original(vec![journal(2, "b", "two"), journal(1, "a", "late")]),
        Some("two".into())
    );
}

#[test]
fn a_deposed_leader_s_late_journal_is_ignored() {
    let mut v = StateView::default();
    for r in [
        claim(1, "a"),
        journal(1, "a", "good"),
        claim(2, "b"),
        journal(1, "a", "late"),
    ] {
        v.apply(r);
    }
    assert_eq!(v.deposed_journals, 1);
    assert_eq!(
        v.journal.unwrap().journal.topics["out"].original.value,
        Some("good".into())
    );
    // Two racing claimants of one epoch: only the newest claimant's journal counts.
    let mut v = StateView::default();
    for r in [claim(2, "a"), claim(2, "b"), journal(2, "a", "loser")] {
        v.apply(r);
    }
    assert!(v.journal.is_none());
    assert_eq!(v.deposed_journals, 1);
    let err = Record::decode("journal/3", journal(2, "a", "x").value().as_deref()).unwrap_err();
    assert!(err.contains("epoch 2"), "{err}");
}

#[test]
fn a_leader_is_silent_only_after_no_heartbeat_and_no_claim_for_the_whole_silence() {
    let mut view = StateView::default();
    let silence = Dur::from_secs(20);
    let beat = |instance: &str, at: i64| {
        Record::Heartbeat(Heartbeat {
            instance: instance.into(),
            at: Timestamp(at),
        })
    };
    assert_eq!(
        view.silent_leader("b", Timestamp(100_000), silence),
        None,
        "no leader yet"
    );
    view.apply(Record::Claim(Claim {
        epoch: 1,
        leader: "a".into(),
        at: Timestamp(1_000),
    }));
    view.apply(beat("a", 10_000));
    assert_eq!(
        view.silent_leader("b", Timestamp(30_000), silence),
        None,
        "heard 20 s ago"
    );
    assert_eq!(
        view.silent_leader("b", Timestamp(30_001), silence),
        Some("a")
    );
    assert_eq!(
        view.silent_leader("a", Timestamp(90_000), silence),
        None,
        "never itself"
    );
    // A newer claim resets the silence even before the new leader's first heartbeat (its old
    // heartbeat from before it led is older than the claim).
    view.apply(beat("c", 5_000));
    view.apply(Record::Claim(Claim {
        epoch: 2,
        leader: "c".into(),
        at: Timestamp(40_000),
    }));
    assert_eq!(view.silent_leader("b", Timestamp(50_000), silence), None);
    assert_eq!(
        view.silent_leader("b", Timestamp(60_001), silence),
        Some("c")
    );
}
