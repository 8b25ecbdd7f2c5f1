//! Bodies of the operator endpoints: pause and resume, overrides, mode and restore, and the
//! error every endpoint answers with.

use serde::{Deserialize, Serialize};

use crate::decision::{Override, OverrideAction, OverrideScope};
use crate::observation::OriginalRetention;
use crate::status::Mode;

/// Body of pause and resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// One catch-up group; absent = every group.
    pub group: Option<String>,
    /// Why (required).
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 1024))]
    pub reason: String,
    /// How long, e.g. "30m"; default 1h, between 10s and 7d.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^([1-9][0-9]s|[1-9][0-9]{0,3}m|[1-9][0-9]?h|[1-7]d)$")
    )]
    pub ttl: Option<String>,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
    /// Resume only: also force the group(s) open against the control law (an override with a TTL).
    #[serde(default)]
    pub force: bool,
}

/// What resume did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResumeResponse {
    /// Pause overrides removed.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub removed: Vec<Override>,
    /// The forcing override, with `force`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub forced: Option<Override>,
}

/// Body of override creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// `{"kind": "group", "name": "G"}`, `{"kind": "all_groups"}` or `{"kind": "topic", "name": "T"}`.
    pub scope: OverrideScope,
    /// `{"action": "pause"}`, `{"action": "resume"}`, `{"action": "fixed_rate", "rate": 1000}` or
    /// `{"action": "hold_retention"}` (topics only).
    pub action: OverrideAction,
    /// Why (required).
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 1024))]
    pub reason: String,
    /// How long, e.g. "30m", between 10s and 7d (required: overrides always expire).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^([1-9][0-9]s|[1-9][0-9]{0,3}m|[1-9][0-9]?h|[1-7]d)$")
    )]
    pub ttl: String,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
}

/// Body of a mode change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// `active`, `dry-run` or `observe`.
    pub mode: Mode,
    /// Why (required).
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 1024))]
    pub reason: String,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
}

/// What a mode change did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModeResponse {
    /// The mode before.
    pub before: Mode,
    /// The mode now.
    pub mode: Mode,
}

/// Body of a restore.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Why (required).
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 1024))]
    pub reason: String,
    /// How long to hold retention afterwards so the controller does not lower it again at once;
    /// default 1h, between 10s and 7d.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^([1-9][0-9]s|[1-9][0-9]{0,3}m|[1-9][0-9]?h|[1-7]d)$")
    )]
    pub hold: Option<String>,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
    /// Only this managed topic (default: every managed topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// What a restore did, per topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreResponse {
    /// Topic to outcome (`restored`, `already at its original`, `refused: ...`, `failed: ...`).
    pub topics: std::collections::BTreeMap<String, String>,
}

/// Body of an adopt: take a managed topic's value now as its original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdoptRequest {
    /// The managed topic.
    pub topic: String,
    /// Why (required): a person decided this value.
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 1024))]
    pub reason: String,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
}

/// What an adopt did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdoptResponse {
    /// The topic.
    pub topic: String,
    /// The original the journal held.
    pub before: OriginalRetention,
    /// The new original: the topic's value now.
    pub after: OriginalRetention,
}

/// The body of every error answer: a stable machine-readable code and a human message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unauthorized` or `unknown_group`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}
