use super::*;

fn view_with_leader_heard_at(at_ms: i64) -> StateView {
    let mut view = StateView::default();
    view.apply(Record::Claim(Claim {
        epoch: 1,
        leader: "a".into(),
        at: Timestamp(0),
    }));
    view.apply(Record::Heartbeat(Heartbeat {
        instance: "a".into(),
        at: Timestamp(at_ms),
    }));
    view
}

#[test]
fn a_follower_rejoins_after_a_session_and_two_heartbeats_only_when_the_group_did_not_rebalance() {
    // Session 8 s: heartbeat interval 800 ms, so the early re-entry comes after 9.6 s of silence.
    let session = Duration::from_secs(8);
    let view = view_with_leader_heard_at(10_000);
    let at = |silent_ms: i64| Timestamp(10_000 + silent_ms);
    assert_eq!(rejoin_reason(&view, "b", at(9_600), session, true), None);
    let (leader, why) = rejoin_reason(&view, "b", at(9_601), session, true).expect("rejoin");
    assert_eq!(leader, "a");
    assert!(why.contains("not rebalanced"), "{why}");
    // The group rebalanced since the leader was last heard: the coordinator is handing the lock
    // on by itself (Apache Kafka), so wait for its claim until two session timeouts.
    assert_eq!(rejoin_reason(&view, "b", at(9_601), session, false), None);
    assert_eq!(rejoin_reason(&view, "b", at(16_000), session, false), None);
    let (_, why) = rejoin_reason(&view, "b", at(16_001), session, false).expect("rejoin");
    assert!(why.contains("two session timeouts"), "{why}");
}

#[test]
fn the_leader_itself_and_a_heard_leader_never_cause_a_rejoin() {
    let session = Duration::from_secs(10);
    let view = view_with_leader_heard_at(10_000);
    assert_eq!(
        rejoin_reason(&view, "a", Timestamp(100_000), session, true),
        None
    );
    assert_eq!(
        rejoin_reason(&view, "b", Timestamp(11_000), session, true),
        None
    );
    assert_eq!(
        rejoin_reason(
            &StateView::default(),
            "b",
            Timestamp(100_000),
            session,
            true
        ),
        None,
        "no leader yet: the election alone decides"
    );
}
