//! The audit log as the API serves it (`GET /v1/audit`).

use serde::{Deserialize, Serialize};

use crate::units::Timestamp;

/// One audit record: who did what, why, and what it changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Increasing id (the pagination cursor).
    pub id: u64,
    /// When.
    pub at: Timestamp,
    /// Who: `controller` for automatic actions, the API caller's actor otherwise.
    pub actor: String,
    /// What kind: `gate`, `retention`, `override.create`, `override.delete`, `mode`, `restore`, ...
    pub action: String,
    /// What it applies to (group, topic, `*`).
    pub target: String,
    /// Why.
    pub reason: String,
    /// State before.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub before: serde_json::Value,
    /// State after.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub after: serde_json::Value,
    /// `applied`, `dry-run`, `refused: ...` or `failed: ...`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub outcome: Outcome,
    /// In an HA deployment, the epoch the writing instance was in: its own while it leads (every
    /// retention action is the leader's), the leader's it follows otherwise. Absent without HA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// How an action ended. Written as one string: `applied`, `dry-run`, `refused: WHY` or
/// `failed: WHY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Applied,
    /// Decided and recorded; nothing changed (dry-run mode).
    DryRun,
    /// Not done: a rule forbids it.
    Refused(String),
    /// Tried and failed.
    Failed(String),
}

/// The kind of an [`Outcome`], without its reason (the `outcome` label of `catchup_actions_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// `applied`.
    Applied,
    /// `dry_run`.
    DryRun,
    /// `refused`.
    Refused,
    /// `failed`.
    Failed,
}

impl OutcomeKind {
    /// `applied`, `dry_run`, `refused` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Applied => "applied",
            OutcomeKind::DryRun => "dry_run",
            OutcomeKind::Refused => "refused",
            OutcomeKind::Failed => "failed",
        }
    }
}

impl Outcome {
    /// The kind, without the reason.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Applied => OutcomeKind::Applied,
            Outcome::DryRun => OutcomeKind::DryRun,
            Outcome::Refused(_) => OutcomeKind::Refused,
            Outcome::Failed(_) => OutcomeKind::Failed,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied => f.write_str("applied"),
            Outcome::DryRun => f.write_str("dry-run"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Outcome, String> {
        match s {
            "applied" => Ok(Outcome::Applied),
            "dry-run" => Ok(Outcome::DryRun),
            _ => {
                if let Some(why) = s.strip_prefix("refused: ") {
                    Ok(Outcome::Refused(why.to_string()))
                } else if let Some(why) = s.strip_prefix("failed: ") {
                    Ok(Outcome::Failed(why.to_string()))
                } else {
                    Err(format!(
                        "{s:?} is not an outcome: applied, dry-run, refused: WHY or failed: WHY"
                    ))
                }
            }
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A page of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_one_string_each_way() {
        for (o, text) in [
            (Outcome::Applied, "applied"),
            (Outcome::DryRun, "dry-run"),
            (
                Outcome::Refused("below the floor".into()),
                "refused: below the floor",
            ),
            (Outcome::Failed("timed out".into()), "failed: timed out"),
        ] {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert!(serde_json::from_str::<Outcome>("\"maybe\"").is_err());
        assert_eq!(Outcome::DryRun.kind().as_str(), "dry_run");
    }
}
