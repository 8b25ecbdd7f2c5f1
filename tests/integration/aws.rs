//! AWS parts against peers nobody here wrote: the MSK IAM token against AWS's own Python signer,
//! and MSK discovery against moto's MSK control plane over real HTTP.

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use catchup::aws::iam;

fn python_signer_check(region: &str, creds: &Credentials, token: &str) -> serde_json::Value {
    let script = super::root().join("tests/integration/python/msk_token.py");
    let out = Command::new("python3")
        .arg(script)
        .args([
            region,
            creds.access_key_id(),
            creds.secret_access_key(),
            creds.session_token().unwrap_or("-"),
            token,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the AWS signer cross-check failed (is aws-msk-iam-sasl-signer-python installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from msk_token.py")
}

#[test]
fn msk_iam_token_equals_what_aws_signer_makes() {
    let cases = [
        (
            "eu-west-1",
            Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            ),
        ),
        (
            "us-east-1",
            Credentials::new(
                "ASIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/session=".into()),
                None,
                "test",
            ),
        ),
    ];
    for (region, creds) in cases {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let ours = iam::token(&creds, region, at).unwrap();
        let check = python_signer_check(region, &creds, &ours.value);
        assert_eq!(
            check["agree"], true,
            "catchup's token differs from aws-msk-iam-sasl-signer-python's: {check:#}"
        );
        // Same signature, and both expire 900 s after signing.
        assert_eq!(
            check["ours"]["X-Amz-Signature"],
            check["theirs"]["X-Amz-Signature"]
        );
        assert_eq!(check["their_expiry_ms"], ours.expires_ms);
    }
}

/// moto's server on a free loopback port, stopped on drop.
struct Moto {
    child: std::process::Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    start_moto_with(None)
}

/// moto, answering ListNodes and GetBootstrapBrokers with `bootstrap` when given (our addition in
/// moto_server.py; see there).
fn start_moto_with(bootstrap: Option<&str>) -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new("python3");
    command
        .arg(super::root().join("tests/integration/python/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    match bootstrap {
        Some(b) => command.env("MOTO_MSK_BOOTSTRAP", b),
        None => command.env_remove("MOTO_MSK_BOOTSTRAP"),
    };
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (pip install 'moto[server]')");
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

fn msk_client(url: &str) -> aws_sdk_kafka::Client {
    aws_sdk_kafka::Client::from_conf(
        aws_sdk_kafka::Config::builder()
            .behavior_version(aws_sdk_kafka::config::BehaviorVersion::latest())
            .region(aws_sdk_kafka::config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(url)
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msk_discovery_reads_moto_s_control_plane_over_http() {
    use aws_sdk_kafka::types::{
        BrokerNodeGroupInfo, ClientAuthentication, EbsStorageInfo, EnhancedMonitoring, Iam, Sasl,
        StorageInfo, StorageMode,
    };
    use catchup::aws::msk::{MskAuth, MskConfig, broker_ids, describe, discover};

    let moto = start_moto();
    let client = msk_client(&moto.url);
    let nodes = |gib: i32| {
        BrokerNodeGroupInfo::builder()
            .client_subnets("subnet-0a")
            .client_subnets("subnet-0b")
            .client_subnets("subnet-0c")
            .instance_type("kafka.m7g.large")
            .storage_info(
                StorageInfo::builder()
                    .ebs_storage_info(EbsStorageInfo::builder().volume_size(gib).build())
                    .build(),
            )
            .build()
    };
    // A tiered cluster with PER_BROKER monitoring and IAM: everything the controller needs.
    let tiered = client
        .create_cluster()
        .cluster_name("ingest")
        .kafka_version("3.6.0")
        .number_of_broker_nodes(3)
        .broker_node_group_info(nodes(1000))
        .enhanced_monitoring(EnhancedMonitoring::PerBroker)
        .storage_mode(StorageMode::Tiered)
        .client_authentication(
            ClientAuthentication::builder()
                .sasl(
                    Sasl::builder()
                        .iam(Iam::builder().enabled(true).build())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("moto creates the cluster");
    // A local-storage cluster at the free monitoring level.
    let local = client
        .create_cluster()
        .cluster_name("legacy")
        .kafka_version("3.6.0")
        .number_of_broker_nodes(3)
        .broker_node_group_info(nodes(500))
        .enhanced_monitoring(EnhancedMonitoring::Default)
        .storage_mode(StorageMode::Local)
        .send()
        .await
        .unwrap();
    let config = |arn: &str| MskConfig {
        cluster_arn: arn.into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(moto.url.clone()),
        auth: MskAuth::Iam,
        rediscover: catchup::units::Dur::from_secs(600),
    };

    let found = describe(
        &client,
        &config(tiered.cluster_arn().unwrap()),
        catchup::units::Timestamp(0),
    )
    .await
    .expect("DescribeClusterV2 against moto");
    assert_eq!(found.name, "ingest");
    assert_eq!(found.cluster_type, "PROVISIONED");
    assert_eq!(found.storage_mode.as_deref(), Some("TIERED"));
    assert_eq!(found.monitoring.as_deref(), Some("PER_BROKER"));
    assert_eq!(found.volume_gib, Some(1000));
    assert_eq!(found.broker_count, Some(3));
    assert!(found.iam_enabled);
    assert!(found.copy_lag_published());
    // moto keeps clusters CREATING; that is said, as a warning that disables nothing.
    let said: Vec<String> = found
        .limitations()
        .iter()
        .map(|l| l.missing.clone())
        .collect();
    assert!(
        said.iter().any(|m| m.contains("CREATING, not ACTIVE")),
        "{said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|m| m.contains("TIERED") || m.contains("monitoring")),
        "{said:?}"
    );

    let legacy = describe(
        &client,
        &config(local.cluster_arn().unwrap()),
        catchup::units::Timestamp(0),
    )
    .await
    .unwrap();
    let limits = legacy.limitations();
    let disabled = |text: &str| {
        limits
            .iter()
            .find(|l| l.missing.contains(text))
            .map(|l| l.disables.clone())
            .unwrap_or_else(|| panic!("no limitation mentioning {text}: {limits:?}"))
    };
    assert_eq!(disabled("LOCAL, not TIERED"), vec!["lower_retention"]);
    assert_eq!(
        disabled("monitoring level is DEFAULT"),
        vec!["lower_retention"]
    );
    assert_eq!(disabled("IAM client authentication is off"), vec!["all"]);

    // moto 5.2 does not implement ListNodes or GetBootstrapBrokers (the SDK-mock tests in
    // catchup::aws::msk cover them): discovery says which call failed rather than guessing.
    let e = broker_ids(&client, tiered.cluster_arn().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.call, "ListNodes");
    let e = discover(
        &client,
        &config(tiered.cluster_arn().unwrap()),
        catchup::units::Timestamp(0),
    )
    .await
    .unwrap_err();
    assert_eq!(e.call, "ListNodes", "{e}");

    // An unknown cluster is an error naming the call, not a crash.
    let e = describe(
        &client,
        &config("arn:aws:kafka:us-east-1:123456789012:cluster/nope/0000"),
        catchup::units::Timestamp(0),
    )
    .await
    .unwrap_err();
    assert_eq!(e.call, "DescribeClusterV2", "{e}");
}

/// The whole `cluster.kind = "msk"` path as a user runs it: `catchup observe` discovers the cluster
/// through the MSK API (moto, with ListNodes and GetBootstrapBrokers answered by our addition),
/// connects to the discovered bootstrap servers (a real broker, tansu), reads lag there and disk
/// from a file, and prints the cluster and its limitations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_runs_discovery_then_reads_the_discovered_cluster() {
    use aws_sdk_kafka::types::{
        BrokerNodeGroupInfo, EbsStorageInfo, EnhancedMonitoring, StorageInfo, StorageMode,
    };
    let broker = catchup_testkit::Broker::start("msk-observe");
    catchup_testkit::create_topic(&broker.bootstrap, "events", 2, &[]).await;
    catchup_testkit::produce(&broker.bootstrap, "events", &[40, 60]).await;
    super::kafka::commit(&broker.bootstrap, "ingest", "events", &[(0, 10), (1, 20)]);

    let moto = start_moto_with(Some(&broker.bootstrap));
    let client = msk_client(&moto.url);
    let created = client
        .create_cluster()
        .cluster_name("ingest")
        .kafka_version("3.6.0")
        .number_of_broker_nodes(3)
        .broker_node_group_info(
            BrokerNodeGroupInfo::builder()
                .client_subnets("subnet-0a")
                .instance_type("kafka.m7g.large")
                .storage_info(
                    StorageInfo::builder()
                        .ebs_storage_info(EbsStorageInfo::builder().volume_size(1000).build())
                        .build(),
                )
                .build(),
        )
        .enhanced_monitoring(EnhancedMonitoring::Default)
        .storage_mode(StorageMode::Tiered)
        .send()
        .await
        .unwrap();
    let arn = created.cluster_arn().unwrap();

    let dir = std::env::temp_dir().join(format!("catchup-msk-observe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        "[[retention.topics]]\nname = \"events\"\n[[groups]]\nname = \"ingest\"\n",
    )
    .unwrap();
    let gib = 1u64 << 30;
    std::fs::write(
        dir.join("disk.json"),
        format!(
            r#"{{"brokers": [{{"broker": 1, "used_bytes": {}, "capacity_bytes": {}, "copy_lag_bytes": 0}}]}}"#,
            400 * gib,
            1000 * gib
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("catchup.toml"),
        format!(
            r#"
policy = "policy.toml"
state_dir = "state"
[cluster]
kind = "msk"
[cluster.msk]
cluster_arn = "{arn}"
endpoint_url = "{}"
auth = "plaintext"
[cluster.disk]
kind = "file"
path = "disk.json"
"#,
            moto.url
        ),
    )
    .unwrap();
    let run = |json: bool| {
        let config = dir.join("catchup.toml");
        let mut args = vec!["observe", "--config", config.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        Command::new(env!("CARGO_BIN_EXE_catchup"))
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let out = run(true);
    assert!(out.status.success(), "{}", super::stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msk = &v["cluster"]["msk"];
    assert_eq!(v["cluster"]["kind"], "msk");
    assert_eq!(msk["name"], "ingest");
    assert_eq!(msk["brokers"], serde_json::json!([1, 2, 3]));
    assert_eq!(msk["bootstrap"], broker.bootstrap.as_str());
    assert_eq!(msk["storage_mode"], "TIERED");
    // Lag from the discovered broker: (40 - 10) + (60 - 20).
    let group = &v["groups"][0];
    let lag: i64 = group["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_end"].as_i64().unwrap() - p["committed"].as_i64().unwrap())
        .sum();
    assert_eq!(lag, 70, "{group}");
    let limitations = v["limitations"].to_string();
    assert!(
        limitations.contains("CREATING, not ACTIVE"),
        "{limitations}"
    );
    assert!(
        limitations.contains("monitoring level is DEFAULT"),
        "{limitations}"
    );
    let text = super::stdout(&run(false));
    assert!(text.contains("limitations:"), "{text}");
    assert!(
        text.contains("RemoteCopyLagBytes needs PER_BROKER or higher")
            && text.contains("[disables lower_retention]"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
