//! A catch-up consumer that obeys the catchup gate.
//!
//!     cargo run -p catchup-client --example gated_consumer -- \
//!         BOOTSTRAP GROUP TOPIC [GATE_URL]
//!
//! e.g. `... -- 127.0.0.1:9092 ingestion events http://127.0.0.1:8080`. It prints how many records it
//! was allowed to process each second and the gate it sees; processing is where your pipeline goes.

// Tests, benchmarks and examples measure and wait in real time; the clock ban is for the
// controller's code.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use catchup_client::{GateClient, GatedConsumer};
use rdkafka::ClientConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, group, topic, rest @ ..] = args.as_slice() else {
        eprintln!("usage: gated_consumer BOOTSTRAP GROUP TOPIC [GATE_URL]");
        std::process::exit(2);
    };
    let gate_url = rest.first().map_or("http://127.0.0.1:8080", String::as_str);
    // Resume at 1,000 records/s after a pause if the controller never said what the minimum is.
    let gate = GateClient::spawn(gate_url, group, 1_000.0);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest");
    let mut consumer = GatedConsumer::new(config, &[topic], gate)?;
    let mut processed = 0usize;
    let mut since = Instant::now();
    loop {
        let batch = consumer.next_batch(500, Duration::from_millis(500)).await?;
        processed += batch.len(); // your processing here
        if since.elapsed() >= Duration::from_secs(1) {
            let gate = consumer
                .gate()
                .view()
                .map_or("no answer yet".to_string(), |v| {
                    format!("{} (v{})", v.state, v.version)
                });
            println!(
                "{processed} records in {:.1}s; gate {gate}; effective {:?}",
                since.elapsed().as_secs_f64(),
                consumer.gate().effective()
            );
            processed = 0;
            since = Instant::now();
        }
    }
}
