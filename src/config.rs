//! The controller's configuration file (`catchup run --config FILE`), with environment overrides.
//!
//! The `///` comments are the reference (`docs/config.md` follows them). Every environment variable
//! overrides the file: `CATCHUP_MODE`, `CATCHUP_TICK`, `CATCHUP_POLICY`, `CATCHUP_STATE_DIR`,
//! `CATCHUP_API_LISTEN`, `CATCHUP_API_TOKEN` (the token itself), `CATCHUP_API_TOKEN_FILE`,
//! `CATCHUP_CONSUMER_TOKEN` (the consumer token), `CATCHUP_CONSUMER_TOKEN_FILE`,
//! `CATCHUP_API_AUTH_READS`, `CATCHUP_GATE_INSTANCES`, `CATCHUP_KAFKA_SASL_PASSWORD`; with `[ha]`, `CATCHUP_HA_INSTANCE` names the instance.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config_file::{self, FileError, Problem, Problems};
use crate::sensors::disk::DiskConfig;
use crate::units::Dur;

mod api;

pub use api::{ApiConfig, ApiLimits, Role, Token, TokenConfig, Tokens};

pub use catchup_proto::status::Mode;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `active`, `dry-run` or `observe`. Default `active`.
    #[serde(default)]
    pub mode: Mode,
    /// Control tick. Default 30s.
    #[serde(default = "default_tick")]
    pub tick: Dur,
    /// Each sensor read must answer within this (and within the tick), or it counts as failed for the
    /// tick and its last reading ages. Default 10s.
    #[serde(default = "default_sensor_timeout")]
    pub sensor_timeout: Dur,
    /// Policy file (relative paths are relative to this config file). Default: built-in defaults.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Where state, overrides and the audit log are kept. Required, except with `[ha]`, where it
    /// defaults to `catchup-INSTANCE` under the system's temporary directory (the shared state
    /// lives in the HA state topic).
    #[serde(default)]
    pub state_dir: PathBuf,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The consumer gate.
    #[serde(default)]
    pub gate: GateConfig,
    /// Where observations come from and actions go.
    pub cluster: ClusterConfig,
    /// Whether this instance changes `local.retention.ms` (and restores it). Exactly one instance
    /// per cluster may: with several (sidecars in every ingestion pod), set it `false` on all but
    /// one, which then owns retention; the others only gate. Default true.
    #[serde(default = "default_true")]
    pub retention_actions: bool,
    /// High availability (`[ha]`, docs/ha.md): with `ha.name` set, the instances of one deployment
    /// elect a leader through a Kafka group and only the leader reads the cluster sensors for
    /// decisions and writes topic configs. Default: none (a single instance, as before).
    #[serde(default)]
    pub ha: Option<crate::ha::HaConfig>,
}

fn default_true() -> bool {
    true
}

fn default_tick() -> Dur {
    Dur::from_secs(30)
}

fn default_sensor_timeout() -> Dur {
    Dur::from_secs(10)
}

/// How several controller instances share a group's rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// How many controller instances serve each group (one per consumer pod in sidecar mode); each
    /// hands out `rate / instances`. Default 1 (a standalone controller serving every consumer).
    pub instances: u32,
    /// `config` (default): divide by `instances`. `membership`: divide by the group's member count
    /// from Kafka (DescribeGroups), falling back to `instances` with a `gate_share_fallback` alert
    /// when the broker cannot say.
    pub share: ShareMode,
}

/// Where the number of instances sharing a group's rate comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareMode {
    /// `gate.instances`.
    #[default]
    Config,
    /// The group's member count.
    Membership,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            instances: 1,
            share: ShareMode::Config,
        }
    }
}

/// The cluster the controller reads and acts on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
// One value per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ClusterConfig {
    /// The built-in simulator running a scenario, at `speed` times real time.
    Simulator {
        /// Scenario file.
        scenario: PathBuf,
        /// Simulated seconds per wall-clock second. Default 1.
        #[serde(default = "default_speed")]
        speed: f64,
    },
    /// A real Kafka cluster (`[cluster.kafka]`) with a disk source (`[cluster.disk]`).
    Kafka {
        /// Connection: `bootstrap_servers`, `security_protocol`, `sasl_mechanism`, `sasl_username`,
        /// `sasl_password` (or `CATCHUP_KAFKA_SASL_PASSWORD`), `ssl_ca_location`.
        kafka: crate::kafka::Connection,
        /// Where broker disk use and tiered-storage copy lag come from.
        disk: DiskConfig,
    },
    /// An AWS MSK cluster (`[cluster.msk]`), discovered through the MSK API; disk and copy lag from
    /// CloudWatch unless `[cluster.disk]` names another source; the Kafka connection from discovery
    /// unless `[cluster.kafka]` gives one.
    Msk {
        /// `cluster_arn`, optional `region`, `endpoint_url`, `auth`, `rediscover`.
        msk: crate::aws::msk::MskConfig,
        /// A connection that replaces the discovered one (bootstrap servers required), or adds the
        /// SCRAM user and password for `auth = "scram"`.
        #[serde(default)]
        kafka: Option<crate::kafka::Connection>,
        /// Disk source; default CloudWatch.
        #[serde(default)]
        disk: Option<DiskConfig>,
    },
}

fn default_speed() -> f64 {
    1.0
}

const SECTIONS: [&str; 10] = [
    "mode",
    "tick",
    "sensor_timeout",
    "policy",
    "state_dir",
    "api",
    "gate",
    "cluster",
    "retention_actions",
    "ha",
];

impl RunConfig {
    /// Loads a config file, applies the environment, resolves relative paths; reports every problem.
    pub fn load(file: &Path) -> Result<RunConfig, FileError> {
        let table = config_file::read_table(file)?;
        RunConfig::from_table(file, table, &|k| std::env::var(k).ok())
    }

    /// Like [`RunConfig::load`] with `env` standing in for the process environment.
    pub fn from_table(
        file: &Path,
        table: toml::Table,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, FileError> {
        let mut problems = Problems::default();
        let known = config_file::known_keys(table, &SECTIONS, &mut problems);
        let mut config =
            config_file::deserialize_at::<RunConfig>(toml::Value::Table(known), "", &mut problems);
        if let Some(c) = &mut config {
            c.apply_env(env, &mut problems);
            if c.state_dir.as_os_str().is_empty() {
                match &c.ha {
                    Some(ha) => {
                        c.state_dir = std::env::temp_dir()
                            .join(format!("catchup-{}", ha.instance_id(env)))
                    }
                    None => problems.0.push(Problem {
                        path: "state_dir".into(),
                        value: None,
                        message: "required field `state_dir` is missing; add it (it is optional only with [ha])".into(),
                    }),
                }
            }
            c.resolve(file.parent().unwrap_or(Path::new(".")));
            c.validate(&mut problems);
        }
        problems.into_result(file)?;
        config.ok_or_else(|| FileError {
            file: file.to_path_buf(),
            problems: vec![],
        })
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>, p: &mut Problems) {
        let mut set = |name: &str, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
            if let Some(v) = env(name)
                && let Err(why) = apply(&v)
            {
                p.0.push(Problem::field(format!("${name}"), format!("{v:?}"), why));
            }
        };
        set("CATCHUP_MODE", &mut |v| v.parse().map(|m| self.mode = m));
        set("CATCHUP_TICK", &mut |v| {
            Dur::parse(v).map(|d| self.tick = d)
        });
        set("CATCHUP_POLICY", &mut |v| {
            self.policy = Some(v.into());
            Ok(())
        });
        set("CATCHUP_STATE_DIR", &mut |v| {
            self.state_dir = v.into();
            Ok(())
        });
        set("CATCHUP_API_LISTEN", &mut |v| {
            v.parse()
                .map(|a| self.api.listen = a)
                .map_err(|_| "not an address: write e.g. 0.0.0.0:8080".to_string())
        });
        set("CATCHUP_API_TOKEN_FILE", &mut |v| {
            self.api.token_file = Some(v.into());
            Ok(())
        });
        set("CATCHUP_CONSUMER_TOKEN_FILE", &mut |v| {
            self.api.consumer_token_file = Some(v.into());
            Ok(())
        });
        set("CATCHUP_API_AUTH_READS", &mut |v| {
            v.parse()
                .map(|b| self.api.auth_reads = b)
                .map_err(|_| "write true or false".to_string())
        });
        set("CATCHUP_KAFKA_SASL_PASSWORD", &mut |v| {
            match &mut self.cluster {
                ClusterConfig::Kafka { kafka, .. } => kafka.sasl_password = Some(v.to_string()),
                ClusterConfig::Msk { kafka, .. } => {
                    kafka.get_or_insert_with(Default::default).sasl_password = Some(v.to_string())
                }
                ClusterConfig::Simulator { .. } => {}
            }
            Ok(())
        });
        set("CATCHUP_RETENTION_ACTIONS", &mut |v| {
            v.parse()
                .map(|b| self.retention_actions = b)
                .map_err(|_| "write true or false".to_string())
        });
        set("CATCHUP_GATE_INSTANCES", &mut |v| {
            v.parse()
                .map(|n| self.gate.instances = n)
                .map_err(|_| "write a positive whole number".to_string())
        });
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            // An empty path stays empty, so validation names it.
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.policy {
            fix(p);
        }
        fix(&mut self.state_dir);
        self.api.resolve(&fix);
        match &mut self.cluster {
            ClusterConfig::Simulator { scenario, .. } => fix(scenario),
            ClusterConfig::Kafka {
                disk: DiskConfig::File { path, .. },
                ..
            }
            | ClusterConfig::Msk {
                disk: Some(DiskConfig::File { path, .. }),
                ..
            } => fix(path),
            ClusterConfig::Kafka { .. } | ClusterConfig::Msk { .. } => {}
        }
    }

    /// The time each sensor gets in a tick: `sensor_timeout`, but never more than the tick.
    pub fn effective_sensor_timeout(&self) -> Dur {
        self.sensor_timeout.min(self.tick)
    }

    fn validate(&self, p: &mut Problems) {
        p.check(
            self.tick >= Dur::from_secs(1) && self.tick <= Dur::from_hours(1),
            "tick",
            self.tick,
            "must be between 1s and 1h",
        );
        p.check(
            // The default (10s) is cut to a shorter tick; one set by hand must fit in it.
            self.sensor_timeout >= Dur::from_millis(100)
                && (self.sensor_timeout < self.tick
                    || self.sensor_timeout == default_sensor_timeout()),
            "sensor_timeout",
            self.sensor_timeout,
            "must be at least 100ms and shorter than the tick",
        );
        p.check(
            !self.state_dir.as_os_str().is_empty(),
            "state_dir",
            "\"\"",
            "required: the directory for state, overrides and the audit log",
        );
        p.check(
            (1..=10_000).contains(&self.gate.instances),
            "gate.instances",
            self.gate.instances,
            "must be between 1 and 10000",
        );
        self.api.validate(p);
        if let Some(ha) = &self.ha {
            ha.validate(p);
            p.check(
                !matches!(self.cluster, ClusterConfig::Simulator { .. }),
                "ha.name",
                format!("{:?}", ha.name),
                "needs a real cluster (cluster.kind = \"kafka\" or \"msk\"): the election and the state live in Kafka; remove [ha] for the simulator",
            );
        }
        match &self.cluster {
            ClusterConfig::Simulator { speed, .. } => {
                p.check(
                    speed.is_finite() && *speed >= 0.1 && *speed <= 10_000.0,
                    "cluster.speed",
                    speed,
                    "must be between 0.1 and 10000",
                );
            }
            ClusterConfig::Kafka { kafka, disk } => {
                p.check(
                    !kafka.bootstrap_servers.trim().is_empty(),
                    "cluster.kafka.bootstrap_servers",
                    "\"\"",
                    "required: host:port[,host:port...]",
                );
                p.check(
                    !matches!(disk, DiskConfig::Cloudwatch(_)),
                    "cluster.disk.kind",
                    "\"cloudwatch\"",
                    "needs cluster.kind = \"msk\": MSK discovery gives the cluster name, brokers and volume size",
                );
            }
            ClusterConfig::Msk { msk, disk, .. } => {
                p.check(
                    msk.region().is_some(),
                    "cluster.msk.cluster_arn",
                    format!("{:?}", msk.cluster_arn),
                    "must be an MSK cluster ARN (arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID), or set cluster.msk.region",
                );
                p.check(
                    msk.rediscover >= Dur::from_secs(60),
                    "cluster.msk.rediscover",
                    msk.rediscover,
                    "must be at least 1m",
                );
                if let Some(DiskConfig::Cloudwatch(c)) = disk {
                    p.check(
                        c.period >= Dur::from_secs(60) && c.period.0 % 60_000 == 0,
                        "cluster.disk.period",
                        c.period,
                        "must be a whole number of minutes (MSK publishes once a minute)",
                    );
                    p.check(
                        c.lookback >= c.period,
                        "cluster.disk.lookback",
                        c.lookback,
                        "must be at least the period",
                    );
                }
            }
        }
    }

    /// Every API token (see the `api` module for the names and roles): `CATCHUP_API_TOKEN` and
    /// `CATCHUP_CONSUMER_TOKEN` win over their files.
    pub fn api_tokens(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Tokens, String> {
        self.api.load_tokens(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<RunConfig, FileError> {
        let table = config_file::parse_table(Path::new("/etc/catchup/c.toml"), text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RunConfig::from_table(Path::new("/etc/catchup/c.toml"), table, &move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    const MINIMAL: &str =
        "state_dir = \"state\"\n[cluster]\nkind = \"simulator\"\nscenario = \"s.toml\"\n";

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.mode, Mode::Active);
        assert_eq!(c.tick, Dur::from_secs(30));
        assert_eq!(c.state_dir, PathBuf::from("/etc/catchup/state"));
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.cluster,
            ClusterConfig::Simulator {
                scenario: "/etc/catchup/s.toml".into(),
                speed: 1.0
            }
        );
    }

    #[test]
    fn environment_overrides_the_file_and_bad_values_are_named() {
        let c = parse(
            MINIMAL,
            &[
                ("CATCHUP_MODE", "dry-run"),
                ("CATCHUP_TICK", "5s"),
                ("CATCHUP_API_LISTEN", "0.0.0.0:9000"),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.mode, c.tick, c.api.listen.port()),
            (Mode::DryRun, Dur::from_secs(5), 9000)
        );
        let err = parse(
            MINIMAL,
            &[("CATCHUP_MODE", "yolo"), ("CATCHUP_GATE_INSTANCES", "many")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("$CATCHUP_MODE = \"yolo\": \"yolo\" is not a mode"),
            "{err}"
        );
        assert!(err.contains("$CATCHUP_GATE_INSTANCES = \"many\""), "{err}");
    }

    #[test]
    fn unknown_and_missing_fields_are_reported() {
        let err = parse("colour = 1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("colour: unknown field"), "{err}");
        let err = parse("[cluster]\nkind = \"simulator\"\nscenario = \"s\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("state_dir"), "{err}");
    }

    #[test]
    fn the_shipped_examples_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for name in ["catchup.toml", "msk-cloudwatch.toml", "msk-prometheus.toml"] {
            let c = RunConfig::load(&root.join("examples").join(name))
                .unwrap_or_else(|e| panic!("examples/{name}: {e}"));
            if let ClusterConfig::Msk { msk, disk, .. } = &c.cluster {
                assert_eq!(msk.region().as_deref(), Some("eu-west-1"), "{name}");
                assert!(disk.is_some(), "{name}");
            }
        }
    }

    #[test]
    fn msk_settings_are_checked() {
        let base = "state_dir = \"s\"\n[cluster]\nkind = \"msk\"\n[cluster.msk]\n";
        let c = parse(
            &format!("{base}cluster_arn = \"arn:aws:kafka:us-east-1:1:cluster/a/b\"\n"),
            &[],
        )
        .unwrap();
        let ClusterConfig::Msk { msk, kafka, disk } = c.cluster else {
            panic!("not msk")
        };
        assert_eq!(msk.auth, crate::aws::msk::MskAuth::Iam);
        assert_eq!(
            (kafka, disk),
            (None, None),
            "discovery and CloudWatch by default"
        );
        let err = parse(
            &format!("{base}cluster_arn = \"ingest\"\nauth = \"kerberos\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("kerberos"), "{err}");
        let err = parse(
            &format!("{base}cluster_arn = \"ingest\"\n[cluster.disk]\nkind = \"cloudwatch\"\nperiod = \"90s\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cluster.msk.cluster_arn = \"ingest\""),
            "{err}"
        );
        assert!(err.contains("cluster.disk.period = 1m30s"), "{err}");
        let err = parse(
            "state_dir = \"s\"\n[cluster]\nkind = \"kafka\"\n[cluster.kafka]\nbootstrap_servers = \"b:9092\"\n[cluster.disk]\nkind = \"cloudwatch\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs cluster.kind = \"msk\""), "{err}");
    }

    #[test]
    fn the_ha_table_turns_ha_on_with_documented_defaults() {
        let kafka = "state_dir = \"s\"\n[cluster]\nkind = \"kafka\"\n[cluster.kafka]\nbootstrap_servers = \"b:9092\"\n[cluster.disk]\nkind = \"file\"\npath = \"d.json\"\n";
        assert_eq!(parse(kafka, &[]).unwrap().ha, None, "no [ha]: HA off");
        let c = parse(&format!("{kafka}[ha]\nname = \"fleet\"\n"), &[]).unwrap();
        let ha = c.ha.expect("[ha] with a name turns HA on");
        assert_eq!(ha.group(), "__catchup-fleet");
        assert_eq!(ha.coordination_topic(), "__catchup-fleet-coordination");
        assert_eq!(ha.state_topic(), "__catchup-fleet-state");
        assert_eq!(ha.session_timeout, Dur::from_secs(8));
        assert_eq!(ha.state_fetch_wait, Dur(100));
        let env = |k: &str| (k == "CATCHUP_HA_INSTANCE").then(|| "pod-7".to_string());
        assert_eq!(ha.instance_id(&env), "pod-7");
        assert_eq!(
            c.state_dir,
            PathBuf::from("/etc/catchup/s"),
            "a state_dir given is kept"
        );
        let no_dir = kafka.replace("state_dir = \"s\"\n", "");
        let err = parse(&no_dir, &[]).unwrap_err().to_string();
        assert!(
            err.contains("state_dir: required field `state_dir` is missing"),
            "{err}"
        );
        let c = parse(
            &format!("{no_dir}[ha]\nname = \"fleet\"\n"),
            &[("CATCHUP_HA_INSTANCE", "pod-3")],
        )
        .unwrap();
        assert_eq!(c.state_dir, std::env::temp_dir().join("catchup-pod-3"));

        let err = parse(&format!("{kafka}[ha]\nsession_timeout = \"10s\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ha: required field `name` is missing"),
            "{err}"
        );
        let err = parse(
            &format!(
                "{kafka}[ha]\nname = \"a b\"\nstate_topic = \"mine\"\nsession_timeout = \"2s\"\nstate_fetch_wait = \"5s\"\n"
            ),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ha.name = \"a b\": must be 1 to 100 letters"),
            "{err}"
        );
        assert!(
            err.contains("ha.state_topic = \"mine\": must start with \"__catchup-\""),
            "{err}"
        );
        assert!(
            err.contains("ha.session_timeout = 2s: must be between 6s and 5m"),
            "{err}"
        );
        assert!(
            err.contains("ha.state_fetch_wait = 5s: must be between 10ms and 1s"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}[ha]\nname = \"fleet\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ha.name = \"fleet\": needs a real cluster"),
            "{err}"
        );
    }
}
