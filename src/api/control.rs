//! The controller's mode, and restoring every managed topic now.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::auth::Operator;
use super::error::{ApiError, Body};
use super::{Ctl, parse_ttl, require_reason};
use crate::runtime::Command;
use crate::runtime::controller::ModeMark;
use crate::units::Dur;
use catchup_proto::requests::{
    AdoptRequest, AdoptResponse, ModeRequest, ModeResponse, RestoreRequest, RestoreResponse,
};

/// `PUT /v1/mode`: switch between active, dry-run and observe.
#[utoipa::path(put, path = "/v1/mode", request_body = ModeRequest, responses((status = 200, body = ModeResponse), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn set_mode(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<ModeRequest>,
) -> Result<Json<ModeResponse>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&ctl, &req.reason)?;
    let (mode, reason) = (req.mode, req.reason);
    let mark = ModeMark {
        instance: String::new(),
        mode,
        at: ctl.clock.now(),
        actor: who.actor().to_string(),
        reason: reason.clone(),
    };
    let before = ctl
        .blocking(move |c| c.set_mode(&who, mode, &reason))
        .await?;
    // In an HA deployment every other instance takes the mode (shared at once).
    if let Some(outbox) = ctl.fleet.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        outbox.mode = Some(mark);
    }
    ctl.changed();
    Ok(Json(ModeResponse { before, mode }))
}

/// `POST /v1/restore`: bring every managed setting back to its original now, then hold it.
#[utoipa::path(post, path = "/v1/restore", request_body = RestoreRequest, responses((status = 200, body = RestoreResponse), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn restore(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<RestoreRequest>,
) -> Result<Json<RestoreResponse>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&ctl, &req.reason)?;
    let hold = parse_ttl(req.hold.as_deref(), Dur::from_hours(1))?;
    let (reply, answer) = oneshot::channel();
    if let Some(t) = req.topic.as_deref().filter(|t| !ctl.policy.manages(t)) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_topic",
            format!("{t:?} is not a managed topic of the policy"),
        ));
    }
    let cmd = Command::Restore {
        who,
        reason: req.reason,
        hold,
        topic: req.topic,
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

/// `POST /v1/retention/adopt`: take a managed topic's value now as its original (a person decided
/// it), closing its journal entry and clearing drift, so the controller acts on the topic again.
#[utoipa::path(post, path = "/v1/retention/adopt", request_body = AdoptRequest, responses((status = 200, body = AdoptResponse), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError, description = "nothing to adopt"), (status = 503, body = ApiError), (status = 504, body = ApiError, description = "HA: forwarded to the leader, no answer in time (outcome unknown)")))]
pub(super) async fn adopt(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<AdoptRequest>,
) -> Result<Json<AdoptResponse>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&ctl, &req.reason)?;
    if !ctl.policy.manages(&req.topic) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_topic",
            format!("{:?} is not a managed topic of the policy", req.topic),
        ));
    }
    let (reply, answer) = oneshot::channel();
    let cmd = Command::Adopt {
        who,
        topic: req.topic.clone(),
        reason: req.reason,
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
    match answer.await.map_err(|_| unavailable())? {
        Ok((before, after)) => Ok(Json(AdoptResponse {
            topic: req.topic,
            before,
            after,
        })),
        // Forwarded by a follower (HA): not forwarded at all, or no answer from the leader in
        // time (the outcome is then unknown, not a refusal).
        Err(why) if why.starts_with(crate::runtime::NOT_FORWARDED) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_forwarded",
            why,
        )),
        Err(why) if why.starts_with(crate::runtime::NO_ANSWER) => {
            Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "no_answer", why))
        }
        Err(why) => Err(ApiError::new(StatusCode::CONFLICT, "not_adopted", why)),
    }
}
