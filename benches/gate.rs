//! `cargo bench --bench gate`: in-process permit checks per second on one thread, for an open gate
//! and for a throttled one whose rate is high enough to grant every check; min and median of 7 runs.

// Tests, benchmarks and examples measure and wait in real time; the clock ban is for the
// controller's code.
#![allow(clippy::disallowed_methods)]

use std::num::NonZeroU32;
use std::time::Instant;

use catchup::actuators::gate::{Admission, GateBoard};
use catchup::policy::{Gate, RateUnit};
use catchup::units::Timestamp;

fn main() {
    const CHECKS: u64 = 5_000_000;
    let one = NonZeroU32::MIN;
    for (label, gate) in [
        ("open", Gate::Open),
        (
            "throttled (1e12/s)",
            Gate::Throttled {
                rate: 1e12,
                burst: 1e9,
                unit: RateUnit::Records,
            },
        ),
    ] {
        let board = GateBoard::new(1);
        board.register(&["g".to_string()], Timestamp(0));
        board
            .publish_gate("g", &gate, Timestamp(i64::MAX), &[])
            .expect("registered");
        let mut rates = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            let mut granted = 0u64;
            for _ in 0..CHECKS {
                if board.try_acquire("g", one) == Ok(Admission::Granted) {
                    granted += 1;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(
                granted, CHECKS,
                "every check must be granted for the figure to mean anything"
            );
            rates.push(CHECKS as f64 / secs);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "gate {label}: {:.2} M checks/s median, {:.2} M/s min (7 runs of {CHECKS}, one thread)",
            rates[3] / 1e6,
            rates[0] / 1e6
        );
    }
}
