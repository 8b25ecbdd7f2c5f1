//! `cargo bench --bench cloudwatch`: GetMetricData calls per control tick of the CloudWatch disk
//! and copy-lag source, by cluster size, counted at the SDK (aws-smithy-mocks answers every query
//! with datapoints; no network). A tick reads disk and copy lag concurrently, as the runtime does.
//! Target: one call per tick for a 30-broker cluster.

// Tests, benchmarks and examples measure and wait in real time; the clock ban is for the
// controller's code.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{MetricDataResult, StatusCode};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use catchup::sensors::disk::cloudwatch::{CloudWatchConfig, CloudWatchSource, Target};
use catchup::sensors::{CopyLagSensor, DiskSensor};

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:>8} {:>8} {:>16} {:>18} {:>14}",
        "brokers", "queries", "calls/tick", "calls/next tick*", "ms/tick (min)"
    );
    for brokers in [3, 6, 30, 100, 250, 251, 500, 1000] {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let rule = mock!(Client::get_metric_data).then_compute_output(move |r| {
            let mut out = GetMetricDataOutput::builder();
            for q in r.metric_data_queries() {
                out = out.metric_data_results(
                    MetricDataResult::builder()
                        .id(q.id().unwrap_or_default())
                        .status_code(StatusCode::Complete)
                        .timestamps(DateTime::from_secs(now - 60))
                        .values(50.0)
                        .timestamps(DateTime::from_secs(now - 120))
                        .values(49.0)
                        .build(),
                );
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let target = Target {
            cluster_name: "ingest".into(),
            brokers: (1..=brokers).collect(),
            volume_bytes: 1 << 40,
            copy_lag: true,
            copy_lag_missing: None,
        };
        let mut times = Vec::new();
        let mut first = 0;
        let mut next = 0;
        for run in 0..5 {
            // A new source per run: every measured tick fetches.
            let source =
                CloudWatchSource::new(client.clone(), CloudWatchConfig::default(), target.clone());
            let t = Instant::now();
            let (d, c) =
                rt.block_on(async { tokio::join!(source.read_disks(), source.read_copy_lag()) });
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(d.unwrap().len(), brokers as usize);
            let c = c.unwrap();
            assert!(c.failed.is_empty(), "{:?}", c.failed);
            assert_eq!(c.read.len(), brokers as usize);
            if run == 0 {
                first = source.calls();
                // A tick within `refresh` (default 20s) reuses the answer.
                let cached = CloudWatchSource::new(
                    client.clone(),
                    CloudWatchConfig::default(),
                    target.clone(),
                );
                let tick = || {
                    rt.block_on(async {
                        let (d, c) = tokio::join!(cached.read_disks(), cached.read_copy_lag());
                        assert!(d.is_ok() && c.is_ok());
                    })
                };
                tick();
                let before = cached.calls();
                tick();
                next = cached.calls() - before;
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{brokers:>8} {:>8} {first:>16} {next:>18} {:>14.2}",
            brokers * 2,
            times[0]
        );
    }
    println!("* a second tick within `refresh` (default 20s) of the first");
}
