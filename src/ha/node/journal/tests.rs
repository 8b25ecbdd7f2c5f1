//! The HA journal over a shared in-memory state log (records kept encoded, as the broker keeps
//! them): replay, fencing of a deposed leader's save (its alter never happens), and the one-way
//! import of a file journal.

use std::sync::{Arc, Mutex};

use super::*;
use crate::actuators::retention::journal::tests::{
    self as journal_tests, Model, TOPIC, policy, run,
};
use crate::actuators::retention::journal::{Journaled, RetentionError};
use crate::ha::state::Claim;
use crate::observation::JournalPhase;
use crate::store::Holder;

type Log = Arc<Mutex<Vec<(String, Option<Vec<u8>>)>>>;

/// One instance's view of the shared log; `leading` is what its membership believes.
struct Member {
    me: String,
    log: Log,
    leading: Mutex<Option<u64>>,
}

impl StateLog for Arc<Member> {
    fn me(&self) -> &str {
        &self.me
    }

    fn leading(&self) -> Option<u64> {
        *self.leading.lock().unwrap()
    }

    fn append(&self, record: &Record) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push((record.key(), record.value()));
        Ok(())
    }

    fn read_to_end(&self) -> Result<StateView, String> {
        let mut view = StateView::default();
        for (key, value) in self.log.lock().unwrap().iter() {
            view.apply(Record::decode(key, value.as_deref())?);
        }
        Ok(view)
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.log.lock().unwrap().len() as i64)
    }
}

fn member(log: &Log, me: &str) -> Arc<Member> {
    Arc::new(Member {
        me: me.into(),
        log: log.clone(),
        leading: Mutex::new(None),
    })
}

/// `m` wins the lock and claims the next epoch, as the node does.
fn lead(m: &Arc<Member>) -> u64 {
    let epoch = m.read_to_end().unwrap().next_epoch();
    m.append(&Record::Claim(Claim {
        epoch,
        leader: m.me.clone(),
        at: Timestamp(0),
    }))
    .unwrap();
    *m.leading.lock().unwrap() = Some(epoch);
    epoch
}

/// Lowers at 1 s, with copy-lag evidence.
fn lower(
    j: &Journaled<'_, Model, HaJournal<Arc<Member>>>,
    ms: i64,
) -> Result<crate::actuators::retention::journal::Applied, RetentionError> {
    journal_tests::lower(j, ms, Timestamp(1_000))
}

/// Restores at 2 s.
fn restore(
    j: &Journaled<'_, Model, HaJournal<Arc<Member>>>,
) -> Result<crate::actuators::retention::journal::Applied, RetentionError> {
    journal_tests::restore(j, Timestamp(2_000))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-hajournal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_new_leader_restores_the_original_the_old_leader_recorded() {
    let log = Log::default();
    let (a, b) = (member(&log, "a"), member(&log, "b"));
    let model = Model::new(Some("14400000"));
    let p = policy();
    lead(&a);
    let ja = HaJournal::new(a.clone(), None);
    lower(&Journaled::new(&model, &ja, &p), 3_600_000).unwrap();
    assert_eq!(model.key().value.as_deref(), Some("3600000"));
    // a goes away; b leads and replays the topic: the original is a's.
    *a.leading.lock().unwrap() = None;
    lead(&b);
    let jb = HaJournal::new(b.clone(), None);
    let replayed = jb.load().unwrap();
    let entry = &replayed.topics[TOPIC];
    assert_eq!(entry.original.value.as_deref(), Some("14400000"));
    assert_ne!(entry.phase, JournalPhase::Restored);
    restore(&Journaled::new(&model, &jb, &p)).unwrap();
    assert_eq!(
        model.key().value.as_deref(),
        Some("14400000"),
        "exactly the original"
    );
    assert_eq!(
        jb.load().unwrap().topics[TOPIC].phase,
        JournalPhase::Restored
    );
}

#[test]
fn a_deposed_leader_s_save_fails_and_its_alter_never_happens() {
    let log = Log::default();
    let (a, b) = (member(&log, "a"), member(&log, "b"));
    let model = Model::new(Some("14400000"));
    let p = policy();
    lead(&a);
    let ja = HaJournal::new(a.clone(), None);
    // b claims a newer epoch while a still believes it leads.
    lead(&b);
    let err = lower(&Journaled::new(&model, &ja, &p), 3_600_000).unwrap_err();
    assert!(err.to_string().contains("deposed"), "{err}");
    assert_eq!(
        model.key().value.as_deref(),
        Some("14400000"),
        "no alter without a saved intent"
    );
    // Its late record is ignored by every reader: b's replay holds nothing of it.
    let view = b.read_to_end().unwrap();
    assert_eq!(view.deposed_journals, 1);
    assert!(view.journal.is_none());
    // An instance that does not lead writes nothing at all.
    *a.leading.lock().unwrap() = None;
    let before = log.lock().unwrap().len();
    let err = lower(&Journaled::new(&model, &ja, &p), 3_600_000).unwrap_err();
    assert!(err.to_string().contains("does not lead"), "{err}");
    assert_eq!(log.lock().unwrap().len(), before);
    assert_eq!(model.key().value.as_deref(), Some("14400000"));
}

#[test]
fn a_file_journal_is_imported_once_when_the_topic_holds_none() {
    let dir = temp_dir("import");
    let store = Arc::new(StateDir::open(&dir, Holder::this_process("test")).unwrap());
    let model = Model::new(Some("14400000"));
    let p = policy();
    // A single instance lowered the topic with its file journal.
    lower_with_file(&model, &store, &p);
    let log = Log::default();
    let a = member(&log, "a");
    let ja = HaJournal::new(a.clone(), Some(store.clone()));
    assert!(ja.take_notes().is_empty());
    let epoch = lead(&a);
    let journal = ja.load().unwrap();
    assert_eq!(
        journal.topics[TOPIC].original.value.as_deref(),
        Some("14400000")
    );
    assert!(!dir.join(JOURNAL).exists(), "the file was renamed");
    assert!(dir.join(format!("{JOURNAL}.imported")).exists());
    let notes = ja.take_notes();
    assert!(
        matches!(&notes[..], [JournalNote::Imported { epoch: e, topics, .. }] if *e == epoch && topics == &vec![TOPIC.to_string()]),
        "{notes:?}"
    );
    assert_eq!(
        a.read_to_end().unwrap().journal.map(|j| j.journal),
        Some(journal),
        "in the topic"
    );
    // The next leader replays the topic and restores the file's original.
    let b = member(&log, "b");
    *a.leading.lock().unwrap() = None;
    lead(&b);
    let jb = HaJournal::new(b.clone(), None);
    restore(&Journaled::new(&model, &jb, &p)).unwrap();
    assert_eq!(model.key().value.as_deref(), Some("14400000"));
    assert!(ja.conflict().is_none());
}

#[test]
fn a_file_journal_that_differs_from_the_topic_s_is_left_alone_and_reported() {
    let dir = temp_dir("conflict");
    let store = Arc::new(StateDir::open(&dir, Holder::this_process("test")).unwrap());
    let model = Model::new(Some("14400000"));
    let p = policy();
    let log = Log::default();
    let a = member(&log, "a");
    lead(&a);
    // The fleet lowered the topic (its journal in the topic) ...
    let ja = HaJournal::new(a.clone(), None);
    lower(&Journaled::new(&model, &ja, &p), 3_600_000).unwrap();
    // ... and an old file journal sits in b's state directory, with another original.
    let other = Model::new(Some("28800000"));
    lower_with_file(&other, &store, &p);
    let file_before = std::fs::read(dir.join(JOURNAL)).unwrap();
    let b = member(&log, "b");
    *a.leading.lock().unwrap() = None;
    let epoch = lead(&b);
    let jb = HaJournal::new(b.clone(), Some(store));
    let journal = jb.load().unwrap();
    assert_eq!(
        journal.topics[TOPIC].original.value.as_deref(),
        Some("14400000"),
        "the topic's journal is the record"
    );
    assert_eq!(std::fs::read(dir.join(JOURNAL)).unwrap(), file_before);
    assert!(jb.conflict().is_some_and(|c| c.contains("differs")));
    assert!(matches!(
        &jb.take_notes()[..],
        [JournalNote::Conflict { epoch: e, .. }] if *e == epoch
    ));
}

fn lower_with_file(model: &Model, store: &Arc<StateDir>, p: &crate::policy::Policy) {
    let j = Journaled::new(model, store.as_ref(), p);
    journal_tests::lower(&j, 3_600_000, Timestamp(500)).unwrap();
}

/// A cluster whose next alter first lets `before_alter` run (another instance acting meanwhile).
struct Overlapping<'a> {
    model: &'a Model,
    before_alter: Box<dyn Fn() + Send + Sync + 'a>,
}

impl crate::actuators::retention::journal::ConfigAdmin for Overlapping<'_> {
    async fn describe(
        &self,
        topic: &str,
        now: Timestamp,
    ) -> Result<crate::observation::TopicConfigs, String> {
        self.model.describe(topic, now).await
    }

    async fn alter(
        &self,
        approved: &crate::actuators::retention::guard::Approved,
    ) -> Result<(), String> {
        (self.before_alter)();
        self.model.alter(approved).await
    }
}

#[test]
fn a_leader_deposed_between_its_intent_and_its_alter_loses_no_original() {
    use crate::actuators::retention::journal::ConfigAdmin as _;
    let log = Log::default();
    let (a, b) = (member(&log, "a"), member(&log, "b"));
    let model = Model::new(Some("14400000"));
    let p = policy();
    lead(&a);
    let ja = HaJournal::new(a.clone(), None);
    // a's intent is saved while it leads; b claims the next epoch before a's alter is sent.
    let cluster = Overlapping {
        model: &model,
        before_alter: Box::new(|| {
            lead(&b);
        }),
    };
    let j = Journaled::new(&cluster, &ja, &p);
    let landed = journal_tests::lower(&j, 3_600_000, Timestamp(1_000));
    // Its later saves are refused (deposed), but the alter had been sent and acknowledged: it is
    // reported as done (audited as applied in a's epoch), not as failed.
    assert!(
        landed.as_ref().is_ok_and(|a| a.change.is_some()),
        "{landed:?}"
    );
    assert_eq!(model.key().value.as_deref(), Some("3600000"));
    // b replays a's intent: the value is the controller's own pending write, not drift, and the
    // original comes back exactly.
    let jb = HaJournal::new(b.clone(), None);
    let configs = run(model.describe(TOPIC, Timestamp(1_500))).unwrap();
    let settled = Journaled::new(&model, &jb, &p)
        .settle(&[configs], Timestamp(1_500))
        .unwrap();
    let entry = &jb.load().unwrap().topics[TOPIC];
    assert_ne!(entry.phase, JournalPhase::Drifted, "{settled:?}");
    assert_eq!(entry.original.value.as_deref(), Some("14400000"));
    restore(&Journaled::new(&model, &jb, &p)).unwrap();
    assert_eq!(model.key().value.as_deref(), Some("14400000"));
}
