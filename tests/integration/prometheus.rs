//! The Prometheus disk source against a real Prometheus scraping a real node exporter (Debian's
//! packages), both started here on free loopback ports.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catchup::sensors::DiskSensor;
use catchup::sensors::disk::prometheus::{PrometheusConfig, PrometheusDiskSource};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn(program: &str, args: &[&str]) -> Process {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}; scripts/test.sh installs it (apt-get install prometheus prometheus-node-exporter)"));
    Process(child)
}

/// The exporter's own value of `metric` for the root filesystem.
fn exporter_value(port: u16, metric: &str) -> f64 {
    let text = http::get_metrics(port);
    text.lines()
        .find(|l| l.starts_with(metric) && l.contains("mountpoint=\"/\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metric} for / not exported"))
}

mod http {
    /// GET the exporter's metrics page over a plain TCP socket (no extra client in this test).
    pub fn get_metrics(port: u16) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("exporter");
        write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_what_the_exporter_reports_and_goes_stale_when_it_stops() {
    let dir = std::env::temp_dir().join(format!("catchup-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (exporter_port, prom_port) = (free_port(), free_port());
    let exporter_addr = format!("127.0.0.1:{exporter_port}");
    let mut exporter = Some(spawn(
        "prometheus-node-exporter",
        &[&format!("--web.listen-address={exporter_addr}")],
    ));
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{exporter_addr}']\n"),
    )
    .unwrap();
    let _prometheus = spawn(
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
    );
    let source = PrometheusDiskSource::new(
        PrometheusConfig {
            url: format!("http://127.0.0.1:{prom_port}"),
            used_bytes_query: r#"node_filesystem_size_bytes{mountpoint="/"} - node_filesystem_avail_bytes{mountpoint="/"}"#.into(),
            capacity_bytes_query: r#"node_filesystem_size_bytes{mountpoint="/"}"#.into(),
            broker_label: "instance".into(),
            brokers: BTreeMap::from([(exporter_addr.clone(), 1)]),
            scrape_interval: catchup::units::Dur::from_secs(60),
            delay: catchup::units::Dur(0),
        },
        Duration::from_secs(2),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let disks = loop {
        match source.read_disks().await {
            Ok(d) if !d.is_empty() => break d,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no data from prometheus: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(disks.len(), 1);
    let d = &disks[0];
    assert_eq!(d.broker, 1);
    let size = exporter_value(exporter_port, "node_filesystem_size_bytes");
    let avail = exporter_value(exporter_port, "node_filesystem_avail_bytes");
    assert_eq!(
        d.capacity_bytes as f64, size,
        "capacity as the exporter reports it"
    );
    let used = size - avail;
    assert!(
        (d.used_bytes as f64 - used).abs() <= 256.0 * 1024.0 * 1024.0,
        "used {} vs exporter {used}: within what one scrape interval can change",
        d.used_bytes
    );
    let age = catchup::clock::wall_now().0 - d.sampled_at.0;
    assert!(
        (0..=5_000).contains(&age),
        "the sample time is the scrape's: {age} ms old"
    );

    // The exporter stops: Prometheus marks the series stale and the source says it has no data.
    exporter.take();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match source.read_disks().await {
            Err(e) => {
                assert!(e.to_string().contains("no series"), "{e}");
                break;
            }
            Ok(d) => {
                assert!(
                    Instant::now() < deadline,
                    "still reporting {d:?} after the exporter stopped"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
