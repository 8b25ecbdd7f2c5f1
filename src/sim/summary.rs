//! What a run measured: the [`Summary`] figures and the [`Series`] curves, recorded step by step
//! while the scenario runs, and the human-readable table of the figures.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cluster::Cluster;
use super::controllers::ControllerKind;
use super::optimal::optimal_bound;
use super::scenario::Scenario;
use crate::policy::{Gate, Policy};
use crate::units::{Dur, Timestamp};

/// What happened in one run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Controller.
    pub controller: ControllerKind,
    /// The policy's ceiling.
    pub ceiling_percent: f64,
    /// Highest disk use of any broker at any time.
    pub peak_disk_percent: f64,
    /// Highest disk use per broker (ids 1..=N in order).
    pub peak_disk_percent_per_broker: Vec<f64>,
    /// Time during which some broker was above the ceiling.
    pub seconds_above_ceiling: f64,
    /// Brokers whose disk filled (each counts as 100% in the peaks and as above the ceiling from
    /// then on).
    pub brokers_failed: usize,
    /// Of those, the ones that filled during the warm-up, before catch-up started: the producers
    /// alone overfill them, so no controller can keep them under the ceiling.
    pub failed_during_warmup: usize,
    /// From catch-up start until every group's lag was below its drain threshold after the last
    /// backlog event; `None` if never.
    pub catchup_seconds: Option<f64>,
    /// The optimal bound (see `sim::optimal`); `None` when the scenario is infeasible.
    pub optimal_seconds: Option<f64>,
    /// Why there is no optimal bound: the producers alone overfill a broker (or did during the
    /// warm-up), or nothing drains in time.
    pub infeasible_reason: Option<String>,
    /// The hindsight reference (see `sim::hindsight`), when computed (`simulate --hindsight`);
    /// `None` also when no constant fraction stays under the ceiling.
    pub hindsight_seconds: Option<f64>,
    /// `catchup_seconds / optimal_seconds`.
    pub ratio_to_optimal: Option<f64>,
    /// Time during which some catch-up group was paused.
    pub seconds_paused: f64,
    /// Time during which some catch-up group was throttled.
    pub seconds_throttled: f64,
    /// Config writes that changed a topic's local retention (lowering and restoring).
    pub retention_changes: usize,
    /// Of those, the ones that raised or restored it.
    pub retention_restores: usize,
    /// Smallest local retention each managed topic had, seconds.
    pub min_local_retention_seconds: BTreeMap<String, f64>,
    /// True when every topic's `local.retention.ms` and `retention.ms` (value and source) end as
    /// they began.
    pub restored: bool,
    /// Input records deleted by retention before their group consumed them (all groups).
    pub input_records_lost: u64,
    /// The largest time lag of any group (age of its oldest unconsumed record), sampled once a
    /// simulated minute.
    pub max_time_lag_seconds: f64,
    /// The largest time lag of any `live`-lane group (absent when the policy has none), sampled
    /// once a simulated minute; compare with the policy's `throttle.max_live_lag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_live_lag_seconds: Option<f64>,
    /// The largest time lag of each group, sampled once a simulated minute.
    pub group_max_time_lag_seconds: BTreeMap<String, f64>,
    /// The tightest input deadline margin: the least, over the run and the groups, of the input
    /// topic's `retention.ms` less the group's time lag (negative: records were deleted unread);
    /// `None` when no input topic deletes by age.
    pub min_input_margin_seconds: Option<f64>,
    /// Simulated seconds, including the warm-up before catch-up starts.
    pub simulated_seconds: f64,
}

/// Time series sampled once a minute, for plots.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// Hours since catch-up start.
    pub hours: Vec<f64>,
    /// True disk percent per broker.
    pub disk: Vec<Vec<f64>>,
    /// Total lag of all groups, records.
    pub lag: Vec<f64>,
    /// Total consume rate, records/s.
    pub rate: Vec<f64>,
    /// Local retention per managed topic, hours.
    pub retention: BTreeMap<String, Vec<f64>>,
}

/// Summary and series of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Figures.
    pub summary: Summary,
    /// Curves.
    pub series: Series,
    /// The controller's actions with their reasons, one line each (the engine only).
    pub timeline: Vec<String>,
}

impl Summary {
    /// Human-readable table.
    pub fn render(&self) -> String {
        let opt = |v: Option<f64>| {
            v.map_or("never".to_string(), |s| {
                Dur::from_secs(s.round() as u64).to_string()
            })
        };
        let mut out = String::new();
        out.push_str(&format!("scenario:            {}\n", self.scenario));
        out.push_str(&format!("controller:          {}\n", self.controller));
        out.push_str(&format!(
            "ceiling:             {:.1}%\n",
            self.ceiling_percent
        ));
        out.push_str(&format!(
            "peak disk:           {:.1}% (per broker: {})\n",
            self.peak_disk_percent,
            self.peak_disk_percent_per_broker
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{}={p:.1}%", i + 1))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        out.push_str(&format!(
            "time above ceiling:  {}\n",
            Dur((self.seconds_above_ceiling * 1000.0) as u64)
        ));
        out.push_str(&format!(
            "brokers failed:      {}{}\n",
            self.brokers_failed,
            if self.brokers_failed > 0 {
                " (a real cluster would have stopped serving: the catch-up below did not happen)"
            } else {
                ""
            }
        ));
        if self.failed_during_warmup > 0 {
            out.push_str(&format!(
                "  failed during warm-up: {} (the producers alone overfill them)\n",
                self.failed_during_warmup
            ));
        }
        out.push_str(&format!(
            "catch-up duration:   {}\n",
            opt(self.catchup_seconds)
        ));
        out.push_str(&format!(
            "optimal bound:       {}\n",
            opt(self.optimal_seconds)
        ));
        if let Some(h) = self.hindsight_seconds {
            out.push_str(&format!("hindsight schedule:  {}\n", opt(Some(h))));
        }
        if let Some(why) = &self.infeasible_reason {
            out.push_str(&format!("  infeasible:        {why}\n"));
        }
        out.push_str(&format!(
            "ratio to optimal:    {}\n",
            self.ratio_to_optimal
                .map_or("-".to_string(), |r| format!("{r:.3}x"))
        ));
        out.push_str(&format!(
            "time paused:         {}\n",
            Dur((self.seconds_paused * 1000.0) as u64)
        ));
        out.push_str(&format!(
            "time throttled:      {}\n",
            Dur((self.seconds_throttled * 1000.0) as u64)
        ));
        out.push_str(&format!(
            "retention changes:   {} ({} lowering, {} restoring)\n",
            self.retention_changes,
            self.retention_changes - self.retention_restores,
            self.retention_restores
        ));
        for (t, s) in &self.min_local_retention_seconds {
            out.push_str(&format!(
                "  lowest local retention of {t}: {}\n",
                Dur((s * 1000.0) as u64)
            ));
        }
        out.push_str(&format!(
            "max time lag:        {}\n",
            Dur::from_secs(self.max_time_lag_seconds.round() as u64)
        ));
        if let Some(l) = self.max_live_lag_seconds {
            out.push_str(&format!(
                "max live lag:        {}\n",
                Dur::from_secs(l.round() as u64)
            ));
        }
        if let Some(m) = self.min_input_margin_seconds {
            out.push_str(&format!(
                "tightest deadline:   {}{}\n",
                if m < 0.0 { "-" } else { "" },
                Dur::from_secs(m.abs().round() as u64)
            ));
        }
        out.push_str(&format!(
            "input records lost:  {}{}\n",
            self.input_records_lost,
            if self.input_records_lost > 0 {
                " (deleted by the input topic's retention before the group read them)"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "restored:            {}\n",
            if self.restored {
                "yes, every setting is back to its original"
            } else {
                "NO"
            }
        ));
        out
    }
}

/// Fills a [`Summary`] and a [`Series`] while a run steps, from catch-up start on.
pub(super) struct Recorder<'a> {
    policy: &'a Policy,
    managed: Vec<String>,
    /// Broker count.
    n: usize,
    /// Step length, seconds.
    dt: f64,
    next_sample: Timestamp,
    /// The last backlog event: the catch-up ends at the first drain after it.
    last_backlog: Timestamp,
    summary: Summary,
    series: Series,
}

impl<'a> Recorder<'a> {
    /// Nothing recorded yet; `simulated` is the whole run, warm-up included.
    pub(super) fn new(
        scenario: &Scenario,
        policy: &'a Policy,
        kind: ControllerKind,
        simulated: Dur,
    ) -> Self {
        let n = scenario.cluster.brokers;
        let dt = scenario.step.secs_f64();
        let next_sample = Timestamp(0);
        let last_backlog =
            Timestamp(0) + scenario.backlog_times().last().copied().unwrap_or_default();
        let series = Series {
            disk: vec![Vec::new(); n],
            ..Series::default()
        };
        let managed = policy.managed_topics();
        let summary = Summary {
            scenario: scenario.name.clone(),
            controller: kind,
            ceiling_percent: policy.disk.ceiling_percent,
            peak_disk_percent: 0.0,
            peak_disk_percent_per_broker: vec![0.0; n],
            seconds_above_ceiling: 0.0,
            brokers_failed: 0,
            failed_during_warmup: 0,
            catchup_seconds: None,
            optimal_seconds: optimal_bound(scenario, policy).ok(),
            infeasible_reason: optimal_bound(scenario, policy).err(),
            hindsight_seconds: None,
            ratio_to_optimal: None,
            seconds_paused: 0.0,
            seconds_throttled: 0.0,
            retention_changes: 0,
            retention_restores: 0,
            min_local_retention_seconds: BTreeMap::new(),
            restored: false,
            input_records_lost: 0,
            max_time_lag_seconds: 0.0,
            max_live_lag_seconds: None,
            group_max_time_lag_seconds: BTreeMap::new(),
            min_input_margin_seconds: None,
            simulated_seconds: simulated.secs_f64(),
        };
        Recorder {
            policy,
            managed,
            n,
            dt,
            next_sample,
            last_backlog,
            summary,
            series,
        }
    }

    /// Records the cluster as it is after one step: peaks, time above the ceiling, paused and
    /// throttled, lowest retention, catch-up end; and a sample of the curves once a minute.
    pub(super) fn step(&mut self, c: &Cluster) {
        let (policy, summary, n, dt) = (self.policy, &mut self.summary, self.n, self.dt);
        let now = c.now();
        let mut above = false;
        for b in 0..n {
            let failed = c.failed_at(b).is_some();
            let d = if failed {
                100.0
            } else {
                c.disk_percent(b).min(100.0)
            };
            let peak = &mut summary.peak_disk_percent_per_broker[b];
            *peak = peak.max(d);
            above |= failed || d > policy.disk.ceiling_percent;
        }
        if above {
            summary.seconds_above_ceiling += dt;
        }
        let gates: Vec<&str> = policy
            .groups
            .iter()
            .filter_map(|g| c.gate(&g.name))
            .map(Gate::name)
            .collect();
        if gates.contains(&"paused") {
            summary.seconds_paused += dt;
        } else if gates.contains(&"throttled") {
            summary.seconds_throttled += dt;
        }
        for t in &self.managed {
            if let Some(ms) = c.effective_local_retention(t) {
                let min = summary
                    .min_local_retention_seconds
                    .entry(t.clone())
                    .or_insert(f64::INFINITY);
                *min = min.min(ms as f64 / 1000.0);
            }
        }
        let lag: f64 = policy
            .groups
            .iter()
            .filter_map(|g| c.group_lag(&g.name))
            .sum();
        if summary.catchup_seconds.is_none()
            && now > self.last_backlog
            && policy.groups.iter().all(|g| {
                c.group_lag(&g.name)
                    .is_some_and(|l| l < policy.lag_threshold(g) as f64)
            })
        {
            summary.catchup_seconds = Some(now.secs_f64());
        }
        if now >= self.next_sample {
            self.next_sample = now + Dur::from_mins(1);
            self.sample(c, now, lag);
        }
    }

    /// One point of every curve, and the groups' time lag against their input deadlines.
    fn sample(&mut self, c: &Cluster, now: Timestamp, lag: f64) {
        let (policy, series) = (self.policy, &mut self.series);
        for g in &policy.groups {
            let Some((age, retention)) = c.group_time_lag(&g.name) else {
                continue;
            };
            let summary = &mut self.summary;
            summary.max_time_lag_seconds = summary.max_time_lag_seconds.max(age as f64 / 1000.0);
            let own = summary
                .group_max_time_lag_seconds
                .entry(g.name.clone())
                .or_insert(0.0);
            *own = own.max(age as f64 / 1000.0);
            if g.priority == crate::policy::Priority::Live {
                let live = summary.max_live_lag_seconds.get_or_insert(0.0);
                *live = live.max(age as f64 / 1000.0);
            }
            if let Some(r) = retention {
                let margin = (r - age) as f64 / 1000.0;
                summary.min_input_margin_seconds = Some(
                    summary
                        .min_input_margin_seconds
                        .map_or(margin, |m| m.min(margin)),
                );
            }
        }
        series.hours.push(now.secs_f64() / 3600.0);
        for b in 0..self.n {
            series.disk[b].push(c.disk_percent(b).min(100.0));
        }
        series.lag.push(lag);
        series.rate.push(
            policy
                .groups
                .iter()
                .filter_map(|g| c.group_rate(&g.name))
                .sum(),
        );
        for t in &self.managed {
            let h = c
                .effective_local_retention(t)
                .map_or(f64::NAN, |ms| ms as f64 / 3_600_000.0);
            series.retention.entry(t.clone()).or_default().push(h);
        }
    }

    /// The figures of the cluster as the run left it: `changes` is the controller's (lowering,
    /// restoring) writes, `restored` whether every topic's local retention ends as it began.
    pub(super) fn finish(
        mut self,
        c: &Cluster,
        changes: (usize, usize),
        restored: bool,
        timeline: Vec<String>,
    ) -> Outcome {
        let summary = &mut self.summary;
        summary.peak_disk_percent = summary
            .peak_disk_percent_per_broker
            .iter()
            .copied()
            .fold(0.0, f64::max);
        summary.brokers_failed = (0..self.n).filter(|&b| c.failed_at(b).is_some()).count();
        summary.failed_during_warmup = (0..self.n)
            .filter(|&b| c.failed_at(b).is_some_and(|t| t < Timestamp(0)))
            .count();
        if summary.failed_during_warmup > 0 {
            summary.optimal_seconds = None;
            summary.infeasible_reason = Some(format!(
                "{} broker(s) failed during the warm-up at normal load, before catch-up started",
                summary.failed_during_warmup
            ));
        }
        summary.ratio_to_optimal = summary
            .catchup_seconds
            .zip(summary.optimal_seconds)
            .map(|(a, o)| a / o);
        let (lowered, restored_writes) = changes;
        summary.retention_changes = lowered + restored_writes;
        summary.retention_restores = restored_writes;
        summary.restored = restored;
        summary.input_records_lost = self
            .policy
            .groups
            .iter()
            .filter_map(|g| c.group_records_lost(&g.name))
            .sum::<f64>()
            .floor() as u64;
        Outcome {
            summary: self.summary,
            series: self.series,
            timeline,
        }
    }
}
