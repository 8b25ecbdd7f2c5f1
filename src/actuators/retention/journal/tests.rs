//! The journal against a model of a topic's configs: settling rules, and a property test over
//! random interleavings of decisions, lost, late and timed-out writes, crashes and outside changes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;
use crate::observation::{BrokerCopyLag, ConfigSource, ConfigValue};
use crate::policy::TopicPolicy;
use crate::units::Dur;

pub(crate) const TOPIC: &str = "out";

/// How the next alter goes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Acknowledged.
    None,
    /// Never reaches the broker; the caller sees an error.
    Lost,
    /// Applied, but the acknowledgement is lost (a timeout, or a crash before it was read).
    Unacknowledged,
    /// Applied later (a delayed request), after the caller has seen an error.
    Late,
}

/// A topic's configs, and how its next write goes.
pub(crate) struct Model {
    configs: Mutex<BTreeMap<String, ConfigValue>>,
    fault: Mutex<Fault>,
    late: Mutex<Option<Option<String>>>,
}

fn set(configs: &mut BTreeMap<String, ConfigValue>, value: Option<&str>) {
    let entry = match value {
        Some(v) => ConfigValue {
            value: Some(v.to_string()),
            source: ConfigSource::Topic,
        },
        None => ConfigValue {
            value: Some("-2".into()),
            source: ConfigSource::Inherited,
        },
    };
    configs.insert("local.retention.ms".into(), entry);
}

impl Model {
    pub(crate) fn new(local: Option<&str>) -> Model {
        let mut configs = BTreeMap::new();
        let topic = |v: &str| ConfigValue {
            value: Some(v.into()),
            source: ConfigSource::Topic,
        };
        configs.insert("remote.storage.enable".into(), topic("true"));
        configs.insert("retention.ms".into(), topic("259200000"));
        configs.insert("cleanup.policy".into(), topic("delete"));
        set(&mut configs, local);
        Model {
            configs: Mutex::new(configs),
            fault: Mutex::new(Fault::None),
            late: Mutex::new(None),
        }
    }

    pub(crate) fn key(&self) -> ConfigValue {
        self.configs.lock().unwrap()["local.retention.ms"].clone()
    }

    /// A person sets the key (or deletes it with `None`).
    fn by_hand(&self, value: Option<&str>) {
        set(&mut self.configs.lock().unwrap(), value);
    }

    fn deliver_late(&self) {
        if let Some(v) = self.late.lock().unwrap().take() {
            set(&mut self.configs.lock().unwrap(), v.as_deref());
        }
    }
}

impl ConfigAdmin for Model {
    async fn describe(&self, topic: &str, now: Timestamp) -> Result<TopicConfigs, String> {
        self.deliver_late();
        Ok(TopicConfigs {
            topic: topic.into(),
            configs: self.configs.lock().unwrap().clone(),
            sampled_at: now,
        })
    }

    async fn alter(&self, approved: &Approved) -> Result<(), String> {
        let leaves = approved.change().leaves().map(str::to_string);
        let fault = std::mem::replace(&mut *self.fault.lock().unwrap(), Fault::None);
        match fault {
            Fault::None => {
                set(&mut self.configs.lock().unwrap(), leaves.as_deref());
                Ok(())
            }
            Fault::Lost => Err("connection reset".into()),
            Fault::Unacknowledged => {
                set(&mut self.configs.lock().unwrap(), leaves.as_deref());
                Err("request timed out".into())
            }
            Fault::Late => {
                *self.late.lock().unwrap() = Some(leaves);
                Err("request timed out".into())
            }
        }
    }
}

pub(crate) fn policy() -> Policy {
    let mut p = Policy::default();
    p.retention.topics.push(TopicPolicy {
        name: TOPIC.into(),
        floor: None,
    });
    p
}

pub(crate) fn run<F: std::future::Future>(f: F) -> F::Output {
    crate::sim::adapters::ready(f).expect("the model answers at once")
}

pub(crate) fn evidence(now: Timestamp) -> (Vec<i32>, Vec<BrokerCopyLag>) {
    (
        vec![1],
        vec![BrokerCopyLag {
            broker: 1,
            bytes: 0,
            sampled_at: now,
        }],
    )
}

pub(crate) fn lower<A: ConfigAdmin, S: JournalStore>(
    j: &Journaled<'_, A, S>,
    ms: i64,
    now: Timestamp,
) -> Result<Applied, RetentionError> {
    let (brokers, lag) = evidence(now);
    let e = Evidence {
        brokers: &brokers,
        copy_lag: &lag,
        now,
    };
    run(j.apply(TOPIC, &RetentionTarget::Lowered { ms }, "test", &e, now))
}

pub(crate) fn restore<A: ConfigAdmin, S: JournalStore>(
    j: &Journaled<'_, A, S>,
    now: Timestamp,
) -> Result<Applied, RetentionError> {
    let e = Evidence {
        brokers: &[],
        copy_lag: &[],
        now,
    };
    run(j.apply(TOPIC, &RetentionTarget::Original, "test", &e, now))
}

fn settle<S: JournalStore>(
    j: &Journaled<'_, Model, S>,
    model: &Model,
    now: Timestamp,
) -> Vec<(String, Finding)> {
    let configs = run(model.describe(TOPIC, now)).unwrap();
    j.settle(&[configs], now)
        .unwrap()
        .found
        .into_iter()
        .map(|(topic, _, f)| (topic, f))
        .collect()
}

fn phase(store: &MemoryJournal) -> JournalPhase {
    store.load().unwrap().topics[TOPIC].phase
}

#[test]
fn a_write_that_timed_out_but_landed_is_ours_not_drift() {
    let (model, store, p) = (
        Model::new(Some("14400000")),
        MemoryJournal::default(),
        policy(),
    );
    let j = Journaled::new(&model, &store, &p);
    *model.fault.lock().unwrap() = Fault::Unacknowledged;
    assert!(matches!(
        lower(&j, 7_200_000, Timestamp(0)),
        Err(RetentionError::Cluster { .. })
    ));
    assert_eq!(phase(&store), JournalPhase::Intent);
    let found = settle(&j, &model, Timestamp(60_000));
    assert!(
        found.iter().any(|(_, f)| matches!(f, Finding::Landed(_))),
        "{found:?}"
    );
    assert_eq!(phase(&store), JournalPhase::Verified);
    restore(&j, Timestamp(120_000)).unwrap();
    assert_eq!(model.key().value.as_deref(), Some("14400000"));
    assert_eq!(phase(&store), JournalPhase::Restored);
}

#[test]
fn a_late_write_landing_after_a_newer_one_is_still_ours() {
    let (model, store, p) = (
        Model::new(Some("14400000")),
        MemoryJournal::default(),
        policy(),
    );
    let j = Journaled::new(&model, &store, &p);
    *model.fault.lock().unwrap() = Fault::Late;
    assert!(lower(&j, 7_200_000, Timestamp(0)).is_err());
    // The next write is acknowledged; then the delayed one lands on top of it.
    lower(&j, 3_600_000, Timestamp(600)).unwrap();
    model.deliver_late();
    let found = settle(&j, &model, Timestamp(60_000));
    assert!(
        !found.iter().any(|(_, f)| matches!(f, Finding::Drift(_))),
        "{found:?}"
    );
    restore(&j, Timestamp(120_000)).unwrap();
    assert_eq!(model.key().value.as_deref(), Some("14400000"));
}

#[test]
fn a_person_changing_the_key_is_drift_and_never_overwritten_until_adopted() {
    let (model, store, p) = (Model::new(None), MemoryJournal::default(), policy());
    let j = Journaled::new(&model, &store, &p);
    lower(&j, 7_200_000, Timestamp(0)).unwrap();
    model.by_hand(Some("10800000"));
    let found = settle(&j, &model, Timestamp(1_000));
    assert!(
        found
            .iter()
            .any(|(_, f)| matches!(f, Finding::Drift(w) if w.contains("adopt"))),
        "{found:?}"
    );
    assert!(matches!(
        restore(&j, Timestamp(2_000)),
        Err(RetentionError::Refused { .. })
    ));
    assert!(lower(&j, 3_600_000, Timestamp(3_000)).is_err());
    assert_eq!(
        model.key().value.as_deref(),
        Some("10800000"),
        "the person's value stands"
    );
    let adopted = run(j.adopt(TOPIC, "the 3h is on purpose", Timestamp(4_000))).unwrap();
    assert_eq!(adopted.before.source, ConfigSource::Inherited);
    assert_eq!(adopted.after.value.as_deref(), Some("10800000"));
    assert_eq!(phase(&store), JournalPhase::Restored);
    // From here the person's value is the original.
    lower(&j, 3_600_000, Timestamp(5_000)).unwrap();
    restore(&j, Timestamp(6_000)).unwrap();
    assert_eq!(model.key().value.as_deref(), Some("10800000"));
}

#[test]
fn another_config_changing_is_recorded_not_drift() {
    let (model, store, p) = (
        Model::new(Some("14400000")),
        MemoryJournal::default(),
        policy(),
    );
    let j = Journaled::new(&model, &store, &p);
    lower(&j, 7_200_000, Timestamp(0)).unwrap();
    model.configs.lock().unwrap().insert(
        "retention.ms".into(),
        ConfigValue {
            value: Some("604800000".into()),
            source: ConfigSource::Topic,
        },
    );
    let found = settle(&j, &model, Timestamp(1_000));
    assert!(
        found
            .iter()
            .any(|(_, f)| matches!(f, Finding::OutsideChange(w) if w.contains("retention.ms"))),
        "{found:?}"
    );
    assert_eq!(phase(&store), JournalPhase::Verified);
    restore(&j, Timestamp(2_000)).unwrap();
    assert_eq!(
        model.key().value.as_deref(),
        Some("14400000"),
        "restored exactly despite retention.ms raised by hand"
    );
}

#[test]
fn a_write_that_never_lands_is_forgotten_after_its_window() {
    let (model, store, p) = (
        Model::new(Some("14400000")),
        MemoryJournal::default(),
        policy(),
    );
    let j = Journaled::new(&model, &store, &p);
    *model.fault.lock().unwrap() = Fault::Lost;
    assert!(lower(&j, 7_200_000, Timestamp(0)).is_err());
    settle(&j, &model, Timestamp(60_000));
    assert_eq!(
        phase(&store),
        JournalPhase::Intent,
        "within its window it may still land"
    );
    let found = settle(&j, &model, Timestamp(0) + PENDING_FOR + Dur::from_secs(1));
    assert!(
        found.iter().any(|(_, f)| matches!(f, Finding::Expired(_))),
        "{found:?}"
    );
    assert_eq!(phase(&store), JournalPhase::Restored);
}

#[test]
fn a_version_1_journal_reads_with_its_open_write_pending() {
    let v1 = r#"{"version":1,"topics":{"out":{"original":{"value":"14400000","source":"topic","effective_ms":14400000},
        "snapshot":{},"change":{"op":"set","key":"local.retention.ms","value":"7200000"},"phase":"intent",
        "last_value":"14400000","at":5,"reason":"r"}}}"#;
    let j: Journal = serde_json::from_str::<Journal>(v1).unwrap().upgrade();
    assert_eq!(j.version, VERSION);
    assert_eq!(
        j.topics["out"].pending,
        vec![Pending {
            value: Some("7200000".into()),
            since: Timestamp(5)
        }]
    );
}

/// One thing that happens to the topic.
#[derive(Clone, Debug)]
enum Step {
    /// The controller lowers to this many minutes (a multiple of ten: people use other values).
    Lower(i64),
    /// The controller restores.
    Restore,
    /// The controller settles the journal (a tick).
    Settle,
    /// The next write goes wrong this way.
    Fault(Fault),
    /// A person sets the key to this many minutes (not a multiple of ten), or deletes it.
    ByHand(Option<i64>),
    /// A person changes another config.
    Other,
    /// Time passes.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (6i64..=24).prop_map(|m| Step::Lower(m * 10)),
        2 => Just(Step::Restore),
        3 => Just(Step::Settle),
        2 => prop_oneof![
            Just(Fault::Lost),
            Just(Fault::Unacknowledged),
            Just(Fault::Late)
        ]
        .prop_map(Step::Fault),
        1 => prop_oneof![Just(None), (7i64..=239).prop_filter("not ours", |m| m % 10 != 0).prop_map(Some)]
            .prop_map(Step::ByHand),
        1 => Just(Step::Other),
        1 => (1u64..=20).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the interleaving of decisions, lost, late and unacknowledged writes (what a crash
    /// mid-request leaves) and outside changes, after a final restore the topic holds the last
    /// value that was not the controller's (the value before it acted, or a person's), exactly:
    /// or the journal says it is drifted, and the person's value stands.
    #[test]
    fn the_original_comes_back_or_the_journal_says_why_not(
        initial in prop_oneof![Just(None), Just(Some(240i64))],
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let initial = initial.map(|m| (m * 60_000).to_string());
        let (model, store, p) = (Model::new(initial.as_deref()), MemoryJournal::default(), policy());
        let j = Journaled::new(&model, &store, &p);
        let mut truth = model.key();
        let mut now = Timestamp(0);
        for s in steps {
            now = now + Dur::from_secs(30);
            match s {
                Step::Lower(m) => { let _ = lower(&j, m * 60_000, now); }
                Step::Restore => { let _ = restore(&j, now); }
                Step::Settle => { settle(&j, &model, now); }
                Step::Fault(f) => *model.fault.lock().unwrap() = f,
                // A person acts on what they see: not while a delayed request of ours is in flight.
                Step::ByHand(v) if model.late.lock().unwrap().is_none() => {
                    let v = v.map(|m| (m * 60_000).to_string());
                    model.by_hand(v.as_deref());
                    truth = model.key();
                }
                Step::ByHand(_) => {}
                Step::Other => {
                    model.configs.lock().unwrap().insert("segment.ms".into(), ConfigValue {
                        value: Some(now.0.to_string()),
                        source: ConfigSource::Topic,
                    });
                }
                Step::Wait(m) => now = now + Dur::from_mins(m),
            }
        }
        *model.fault.lock().unwrap() = Fault::None;
        model.deliver_late();
        now = now + Dur::from_secs(30);
        settle(&j, &model, now);
        let _ = restore(&j, now + Dur::from_secs(30));
        let journal = store.load().unwrap();
        let drifted = journal.topics.get(TOPIC).is_some_and(|e| e.phase == JournalPhase::Drifted);
        if drifted {
            prop_assert_eq!(model.key(), truth, "drifted: the person's value stands");
        } else {
            prop_assert_eq!(model.key(), truth, "restored exactly: value and source");
        }
    }
}

/// A journal whose saves fail once `saves` of them have succeeded (a disk that fills, or in HA a
/// leader deposed between its intent and its alter's record).
struct FailingAfter {
    inner: MemoryJournal,
    saves: Mutex<u32>,
}

impl JournalStore for FailingAfter {
    fn load(&self) -> Result<Journal, StoreError> {
        self.inner.load()
    }

    fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        let mut left = self.saves.lock().unwrap();
        if *left == 0 {
            return Err(StoreError::Io {
                path: "journal".into(),
                source: std::io::Error::other("no space left on device"),
            });
        }
        *left -= 1;
        self.inner.save(journal)
    }
}

#[test]
fn an_alter_that_landed_is_reported_done_even_when_the_journal_cannot_record_it() {
    let (model, p) = (Model::new(Some("14400000")), policy());
    let store = FailingAfter {
        inner: MemoryJournal::default(),
        saves: Mutex::new(1),
    };
    let j = Journaled::new(&model, &store, &p);
    let done = lower(&j, 7_200_000, Timestamp(0)).expect("the alter landed: not a failure");
    assert!(done.change.is_some(), "{done:?}");
    assert_eq!(model.key().value.as_deref(), Some("7200000"));
    // The intent (the one save that succeeded) keeps the original and the pending value.
    assert_eq!(phase(&store.inner), JournalPhase::Intent);
    // The journal works again: the next read settles the write as the controller's own.
    *store.saves.lock().unwrap() = u32::MAX;
    let found = settle(&j, &model, Timestamp(60_000));
    assert!(
        found.iter().any(|(_, f)| matches!(f, Finding::Landed(_))),
        "{found:?}"
    );
    assert_eq!(phase(&store.inner), JournalPhase::Verified);
    assert_eq!(
        store.inner.load().unwrap().topics[TOPIC]
            .original
            .value
            .as_deref(),
        Some("14400000"),
        "the original is kept"
    );
}
