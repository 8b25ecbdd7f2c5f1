//! Test support shared by catchup's test suites: a tansu 0.6.0 broker (SQLite engine) in a temporary
//! directory on a free loopback port, stopped and cleaned up on drop, and restartable on the same
//! port and database.

// Test support waits in real time; the clock ban is for the controller's code.
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A running tansu broker.
pub struct Broker {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    port: u16,
    dir: PathBuf,
    advertised: Option<String>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        // A failing test keeps the database and tansu's log to look at.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// tansu's log file in `dir` (appended to across restarts), or nowhere when it cannot be opened.
fn log(dir: &std::path::Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// The tansu binary: `$TANSU`, else `~/.cargo/bin/tansu`, else `tansu` on the PATH.
pub fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return PathBuf::from(p);
    }
    let cargo_bin =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        cargo_bin
    } else {
        PathBuf::from("tansu")
    }
}

impl Broker {
    /// Starts a broker with a fresh database; `name` keeps concurrent tests apart.
    pub fn start(name: &str) -> Broker {
        Broker::start_advertising(name, None)
    }

    /// Starts a broker that advertises `advertised` (`host:port`) in metadata instead of its own
    /// address: for a TLS or proxy front, to which every client is then sent.
    pub fn start_advertising(name: &str, advertised: Option<&str>) -> Broker {
        let dir = std::env::temp_dir().join(format!("catchup-tansu-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("broker dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut b = Broker {
            child: None,
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            dir,
            advertised: advertised.map(|a| format!("tcp://{a}")),
        };
        b.restart();
        b
    }

    /// Kills the broker (like a crash); the database stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port and database, waiting until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = self.advertised.clone().unwrap_or_else(|| url.clone());
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(&self.dir)
            // Kept beside the database for failures (`RUST_LOG` sets what tansu writes).
            .stdout(log(&self.dir))
            .stderr(log(&self.dir))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({}): {e}; scripts/test.sh installs it",
                    tansu().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.bootstrap
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Creates `topic` with `partitions` partitions and the given topic configs.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin
        .create_topics(&[new], &options)
        .await
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// Produces `per_partition[i]` records to partition `i`, batched by librdkafka.
pub async fn produce(bootstrap: &str, topic: &str, per_partition: &[usize]) {
    let records = per_partition
        .iter()
        .enumerate()
        .flat_map(|(p, n)| std::iter::repeat_n(Some(p as i32), *n));
    send(bootstrap, topic, records).await;
}

/// Produces `count` records, spread over the partitions by the default partitioner.
pub async fn produce_spread(bootstrap: &str, topic: &str, count: usize) {
    send(bootstrap, topic, std::iter::repeat_n(None, count)).await;
}

async fn send(bootstrap: &str, topic: &str, partitions: impl Iterator<Item = Option<i32>>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    // Enqueue everything (multi-record batches), then wait for every delivery.
    let mut deliveries = Vec::new();
    for (i, partition) in partitions.enumerate() {
        let key = i.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload("payload");
        if let Some(p) = partition {
            record = record.partition(p);
        }
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueued"),
        );
    }
    for d in deliveries {
        d.await
            .expect("not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        not(feature = "external"),
        ignore = "needs the tansu broker: run with --features external"
    )]
    fn a_broker_starts_stops_and_restarts_on_the_same_port() {
        let mut b = Broker::start("testkit");
        assert!(std::net::TcpStream::connect(&b.bootstrap).is_ok());
        b.stop();
        assert!(
            std::net::TcpStream::connect(&b.bootstrap).is_err(),
            "stopped"
        );
        b.restart();
        assert!(
            std::net::TcpStream::connect(&b.bootstrap).is_ok(),
            "listening again"
        );
        let dir = b.dir.clone();
        drop(b);
        assert!(!dir.exists(), "cleaned up");
    }
}
