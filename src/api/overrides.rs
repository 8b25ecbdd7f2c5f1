//! Manual overrides: pause, resume, and overrides of any kind, each with a reason and a TTL.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::auth::Operator;
use super::error::{ApiError, Body};
use super::{Ctl, group_scope, parse_ttl, require_reason};
use crate::policy::{Override, OverrideAction, OverrideScope};
use crate::runtime::ChangeError;
use crate::runtime::controller::ResumeMark;
use crate::units::Dur;
use catchup_proto::requests::{OverrideRequest, PauseRequest, ResumeResponse};

/// `POST /v1/pause`: pause a group (or all) until the TTL expires.
#[utoipa::path(post, path = "/v1/pause", request_body = PauseRequest, responses((status = 200, body = Object, description = "the override created"), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError, description = "too many overrides in force"), (status = 503, body = ApiError)))]
pub(super) async fn pause(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<PauseRequest>,
) -> Result<Json<Override>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&ctl, &req.reason)?;
    let scope = group_scope(&ctl, req.group.as_deref())?;
    let ttl = parse_ttl(req.ttl.as_deref(), Dur::from_hours(1))?;
    let reason = req.reason;
    let o = ctl
        .blocking(move |c| c.add_override(&who, scope, OverrideAction::Pause, reason, ttl))
        .await?;
    ctl.changed();
    Ok(Json(o))
}

/// `POST /v1/resume`: remove manual pauses of a group (or all); with `force`, also hold it open.
#[utoipa::path(post, path = "/v1/resume", request_body = PauseRequest, responses((status = 200, body = ResumeResponse), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError, description = "too many overrides in force"), (status = 503, body = ApiError)))]
pub(super) async fn resume(
    State(ctl): Ctl,
    op: Operator,
    Body(req): Body<PauseRequest>,
) -> Result<Json<ResumeResponse>, ApiError> {
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&ctl, &req.reason)?;
    let scope = group_scope(&ctl, req.group.as_deref())?;
    let pauses: Vec<String> = ctl
        .active_overrides()
        .into_iter()
        .filter(|o| {
            o.action == OverrideAction::Pause
                && (scope == OverrideScope::AllGroups || o.scope == scope)
        })
        .map(|o| o.id)
        .collect();
    // A ttl is checked even without `force`: a request that cannot be right changes nothing.
    let ttl = parse_ttl(req.ttl.as_deref(), Dur::from_hours(1))?;
    let force_ttl = req.force.then_some(ttl);
    let reason = req.reason;
    let mark = ResumeMark {
        instance: String::new(),
        scope: scope.clone(),
        at: ctl.clock.now(),
        actor: who.actor().to_string(),
        reason: reason.clone(),
    };
    let (removed, forced) = ctl
        .blocking(move |c| {
            let mut removed = Vec::new();
            for id in pauses {
                if let Some(o) = c.delete_override(&who, &id, &reason)? {
                    removed.push(o);
                }
            }
            let forced = match force_ttl {
                Some(ttl) => {
                    Some(c.add_override(&who, scope, OverrideAction::Resume, reason, ttl)?)
                }
                None => None,
            };
            Ok::<_, ChangeError>((removed, forced))
        })
        .await?;
    // In an HA deployment the other instances remove the pauses made on them (shared at once).
    if let Some(outbox) = ctl.fleet.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        outbox.resumes.push(mark);
    }
    ctl.changed();
    Ok(Json(ResumeResponse { removed, forced }))
}

/// `GET /v1/overrides`: overrides in force.
#[utoipa::path(get, path = "/v1/overrides", responses((status = 200, body = Vec<Object>), (status = 401, body = ApiError)))]
pub(super) async fn list_overrides(State(ctl): Ctl) -> Result<Json<Vec<Override>>, ApiError> {
    Ok(Json(ctl.active_overrides()))
}

/// `POST /v1/overrides`: create an override with a TTL.
#[utoipa::path(post, path = "/v1/overrides", request_body = OverrideRequest, responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError, description = "too many overrides in force"), (status = 503, body = ApiError)))]
pub(super) async fn create_override(
    State(ctl): Ctl,
    op: Operator,
    Body(raw): Body<serde_json::Value>,
) -> Result<Json<Override>, ApiError> {
    // serde lets unknown fields through in a unit variant of an internally tagged enum
    // (`{"action": "pause", "rate": 5}`): refused here, as the schema says.
    let action_keys = raw["action"].as_object().map(|a| a.keys().count());
    let req: OverrideRequest = serde_json::from_value(raw)
        .map_err(|e| ApiError::invalid(format!("not an override request: {e}")))?;
    let wanted = match req.action {
        OverrideAction::FixedRate { .. } => 2,
        _ => 1,
    };
    if action_keys != Some(wanted) {
        return Err(ApiError::invalid(
            "action: unknown fields (pause, resume and hold_retention take only `action`; fixed_rate takes `action` and `rate`)",
        ));
    }
    let who = op.authorized(&ctl, req.actor.as_deref())?;
    require_reason(&ctl, &req.reason)?;
    let ttl = parse_ttl(Some(&req.ttl), Dur::from_hours(1))?;
    match (&req.scope, &req.action) {
        (OverrideScope::Topic(t), OverrideAction::HoldRetention) => {
            if !ctl.policy.manages(t) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_topic",
                    format!("{t:?} is not a managed topic of the policy"),
                ));
            }
        }
        (OverrideScope::Topic(_), _) | (_, OverrideAction::HoldRetention) => {
            return Err(ApiError::invalid(
                "hold_retention applies to a topic, and a topic takes only hold_retention",
            ));
        }
        (scope, action) => {
            if let OverrideScope::Group(g) = scope {
                group_scope(&ctl, Some(g))?;
            }
            if let OverrideAction::FixedRate { rate } = action
                && !(rate.is_finite() && *rate > 0.0 && *rate <= 1e15)
            {
                return Err(ApiError::invalid(format!(
                    "rate = {rate}: must be a positive number per second, at most 1e15"
                )));
            }
        }
    }
    let o = ctl
        .blocking(move |c| c.add_override(&who, req.scope, req.action, req.reason, ttl))
        .await?;
    ctl.changed();
    Ok(Json(o))
}

/// `DELETE /v1/overrides/{id}?reason=...`: remove an override (in HA, one made on any instance).
#[utoipa::path(delete, path = "/v1/overrides/{id}", params(("id" = String, Path, description = "override id"), ("reason" = String, Query, description = "why (required)", pattern = r"\S", max_length = 1024)), responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError, description = "HA: the id names overrides made on several instances"), (status = 503, body = ApiError)))]
pub(super) async fn delete_override(
    State(ctl): Ctl,
    op: Operator,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Override>, ApiError> {
    let who = op.authorized(&ctl, q.get("actor").map(String::as_str))?;
    let reason = q.get("reason").cloned().unwrap_or_default();
    require_reason(&ctl, &reason)?;
    let deleted = ctl
        .blocking({
            let (id, who, reason) = (id.clone(), who.clone(), reason.clone());
            move |c| c.delete_override(&who, &id, &reason)
        })
        .await?;
    ctl.changed();
    if let Some(o) = deleted {
        return Ok(Json(o));
    }
    match ctl.ha.get() {
        Some(ha) => delete_on_fleet(&ctl, ha, who, &id, reason).await,
        None => Err(unknown_override(&id)),
    }
}

fn unknown_override(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_override",
        format!("no override with id {id:?}"),
    )
}

/// An override made on another instance of the HA deployment: the delete is shared through the
/// state topic (every instance stops applying it when it reads it; its owner removes it), and
/// audited here. Answered once the delete is in the state topic.
async fn delete_on_fleet(
    ctl: &std::sync::Arc<crate::runtime::Controller>,
    ha: &crate::ha::Ha,
    who: crate::runtime::controller::Authorized,
    id: &str,
    reason: String,
) -> Result<Json<Override>, ApiError> {
    let now = ctl.clock.now();
    let found: Vec<_> = ha
        .fleet_overrides_by_owner(now)
        .into_iter()
        .filter(|f| f.made.id == id && f.owner != ha.instance())
        .collect();
    let f = match found.as_slice() {
        [] => return Err(unknown_override(id)),
        [one] => one.clone(),
        many => {
            let owners: Vec<&str> = many.iter().map(|f| f.owner.as_str()).collect();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ambiguous_override",
                format!(
                    "overrides with id {id:?} were made on {}: send the delete to the instance that made the one you mean",
                    owners.join(", ")
                ),
            ));
        }
    };
    let mark = crate::ha::node::OverrideDelete {
        owner: f.owner.clone(),
        id: id.to_string(),
        instance: ha.instance().to_string(),
        actor: who.actor().to_string(),
        reason,
        at: now,
        expires_at: f.made.expires_at,
    };
    ha.share_delete(&mark).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_shared",
            format!(
                "override {id:?} was made on {}, and the delete could not be shared with the fleet (nothing changed): {e}",
                f.owner
            ),
        )
    })?;
    let audited = {
        let (o, mark) = (f.made.clone(), mark.clone());
        ctl.blocking(move |c| c.audit_fleet_delete(&who, &o, &mark))
            .await
    };
    if let Err(e) = audited {
        tracing::warn!(error = %e, id, "a fleet-wide override delete could not be audited here (its owner audits it too)");
    }
    ctl.share_now.notify_one();
    ctl.changed();
    Ok(Json(f.made))
}
