//! The controller's mode, and restoring every managed topic now.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::auth::Operator;
use super::error::{ApiError, Body};
use super::{Ctl, parse_ttl, require_reason};
use crate::config::Mode;
use crate::runtime::Command;
use crate::units::Dur;

/// Body of a mode change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// `active`, `dry-run` or `observe`.
    pub mode: Mode,
    /// Why (required).
    pub reason: String,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
}

/// `PUT /v1/mode`: switch between active, dry-run and observe.
#[utoipa::path(put, path = "/v1/mode", request_body = ModeRequest, responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
pub(super) async fn set_mode(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<ModeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&req.reason)?;
    let before = ctl.set_mode(&who, req.mode, &req.reason)?;
    Ok(Json(
        serde_json::json!({"before": before, "mode": req.mode}),
    ))
}

/// Body of a restore.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Why (required).
    pub reason: String,
    /// How long to hold retention afterwards so the controller does not lower it again at once;
    /// default 1h.
    pub hold: Option<String>,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
}

/// What a restore did, per topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreResponse {
    /// Topic to outcome (`restored`, `already at its original`, `refused: ...`, `failed: ...`).
    pub topics: std::collections::BTreeMap<String, String>,
}

/// `POST /v1/restore`: bring every managed setting back to its original now, then hold it.
#[utoipa::path(post, path = "/v1/restore", request_body = RestoreRequest, responses((status = 200, body = RestoreResponse), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn restore(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<RestoreRequest>,
) -> Result<Json<RestoreResponse>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&req.reason)?;
    let hold = parse_ttl(req.hold.as_deref(), Dur::from_hours(1))?;
    let (reply, answer) = oneshot::channel();
    let cmd = Command::Restore {
        who,
        reason: req.reason,
        hold,
        reply,
    };
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loop_unavailable",
            "the control loop is not running",
        )
    };
    ctl.commands.send(cmd).await.map_err(|_| unavailable())?;
    let results = answer.await.map_err(|_| unavailable())?;
    Ok(Json(RestoreResponse {
        topics: results.into_iter().collect(),
    }))
}
