//! What in the state topic is of no use any more. The leader tombstones it (the compacted topic
//! then drops it), so the topic does not grow with every resume, forwarded restore, delete and
//! pod name the deployment ever had.

use super::{
    ADOPT_PREFIX, ADOPTED_PREFIX, MEMBER_PREFIX, OVERRIDE_DELETE_PREFIX, OVERRIDES_PREFIX,
    RESTORE_PREFIX, RESTORED_PREFIX, RESUME_PREFIX, StateView,
};
use crate::units::{Dur, Timestamp};

/// The longest TTL the API gives an override. A resume shared with the fleet matters only to
/// pauses made before it, which are all expired this long after it.
pub const MAX_OVERRIDE_TTL: Dur = Dur::from_hours(7 * 24);
/// How long a forwarded restore or adopt and its answer are kept: the asker waits a minute at most, and a
/// leader carries out none older than that.
pub const FORWARD_KEEP: Dur = Dur::from_mins(10);
/// How long an instance that no longer beats keeps its heartbeat and its overrides list (once
/// every override in it has expired): a pod name of a past rollout.
pub const GONE_AFTER: Dur = Dur::from_hours(24);

/// The keys of `view` that are of no use at `now`:
/// - `resume/ID/AT_MS` older than [`MAX_OVERRIDE_TTL`];
/// - forwarded restores and adopts and their answers (`restore/`, `restored/`, `adopt/`,
///   `adopted/`, each `ID/AT_MS`) older than [`FORWARD_KEEP`];
/// - `override-delete/OWNER/ID` past the deleted override's expiry;
/// - `member/ID` of an instance silent for [`GONE_AFTER`], and its `overrides/ID` once every
///   override in it has expired.
///
/// The claim, the decision, the mode and the retention journal are never stale.
pub fn stale_keys(view: &StateView, now: Timestamp) -> Vec<String> {
    let older_than = |at: i64, keep: Dur| now.0.saturating_sub(at) > keep.0 as i64;
    let gone = |instance: &str| {
        view.heartbeats
            .get(instance)
            .is_none_or(|at| older_than(at.0, GONE_AFTER))
    };
    let key_ms = |key: &str| {
        key.rsplit_once('/')
            .and_then(|(_, ms)| ms.parse::<i64>().ok())
    };
    let mut out = Vec::new();
    for (key, value) in &view.other {
        let stale = if key.starts_with(RESUME_PREFIX) {
            key_ms(key).is_some_and(|at| older_than(at, MAX_OVERRIDE_TTL))
        } else if [
            RESTORE_PREFIX,
            RESTORED_PREFIX,
            ADOPT_PREFIX,
            ADOPTED_PREFIX,
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            key_ms(key).is_some_and(|at| older_than(at, FORWARD_KEEP))
        } else if key.starts_with(OVERRIDE_DELETE_PREFIX) {
            value["expires_at"].as_i64().is_some_and(|at| at <= now.0)
        } else if let Some(owner) = key.strip_prefix(OVERRIDES_PREFIX) {
            let all_expired = value.as_array().is_some_and(|list| {
                list.iter()
                    .all(|o| o["expires_at"].as_i64().is_some_and(|at| at <= now.0))
            });
            all_expired && gone(owner)
        } else {
            false
        };
        if stale {
            out.push(key.clone());
        }
    }
    for (instance, at) in &view.heartbeats {
        if older_than(at.0, GONE_AFTER) {
            out.push(format!("{MEMBER_PREFIX}{instance}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Claim, Heartbeat, Record};
    use super::*;
    use serde_json::json;

    const H: i64 = 3_600_000;

    fn other(view: &mut StateView, key: &str, value: serde_json::Value) {
        view.apply(Record::Other {
            key: key.into(),
            value: Some(value),
        });
    }

    #[test]
    fn marks_past_their_use_and_departed_instances_are_stale_and_nothing_else() {
        let now = Timestamp(30 * 24 * H);
        let mut view = StateView::default();
        view.apply(Record::Claim(Claim {
            epoch: 3,
            leader: "a".into(),
            at: Timestamp(0),
        }));
        for (who, at) in [("a", now.0 - 1_000), ("old", now.0 - 25 * H)] {
            view.apply(Record::Heartbeat(Heartbeat {
                instance: who.into(),
                at: Timestamp(at),
            }));
        }
        let week = 7 * 24 * H;
        other(
            &mut view,
            &format!("adopted/b/{}", now.0 - 600_001),
            json!({}),
        );
        other(
            &mut view,
            &format!("resume/a/{}", now.0 - week - 1),
            json!({}),
        );
        other(&mut view, &format!("resume/a/{}", now.0 - week), json!({}));
        other(
            &mut view,
            &format!("restore/b/{}", now.0 - 600_001),
            json!({}),
        );
        other(
            &mut view,
            &format!("restored/b/{}", now.0 - 600_001),
            json!([]),
        );
        other(
            &mut view,
            &format!("restore/b/{}", now.0 - 1_000),
            json!({}),
        );
        other(
            &mut view,
            "override-delete/a/ovr-1@a",
            json!({"expires_at": now.0}),
        );
        other(
            &mut view,
            "override-delete/a/ovr-2@a",
            json!({"expires_at": now.0 + 1}),
        );
        let expired = json!([{"id": "ovr-1@old", "expires_at": now.0 - 1}]);
        let live = json!([{"id": "ovr-2@old", "expires_at": now.0 + H}]);
        other(&mut view, "overrides/old", expired.clone());
        other(&mut view, "overrides/a", json!([]));
        other(&mut view, "overrides/never-beat", live);
        other(&mut view, "mode", json!({"mode": "active"}));
        let mut stale = stale_keys(&view, now);
        stale.sort();
        assert_eq!(
            stale,
            vec![
                format!("adopted/b/{}", now.0 - 600_001),
                "member/old".to_string(),
                "override-delete/a/ovr-1@a".into(),
                "overrides/old".into(),
                format!("restore/b/{}", now.0 - 600_001),
                format!("restored/b/{}", now.0 - 600_001),
                format!("resume/a/{}", now.0 - week - 1),
            ]
        );

        // Tombstoned, they are gone from every view that reads them, heartbeats included.
        for key in stale {
            view.apply(Record::Other { key, value: None });
        }
        assert!(stale_keys(&view, now).is_empty());
        assert!(!view.heartbeats.contains_key("old"));
        assert_eq!(view.live_members("a", now, Dur::from_secs(10)), 1);
        assert!(
            view.other.contains_key("overrides/never-beat"),
            "overrides in force stay"
        );
    }
}
