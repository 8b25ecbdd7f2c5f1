//! The HTTP API (axum). Routes and their OpenAPI description are registered together
//! (`utoipa-axum`), so `/openapi.json` cannot drift from what is served.
//!
//! - Mutating endpoints need `Authorization: Bearer TOKEN` (compared in constant time); reads need
//!   it too when `api.auth_reads` is set; the gate endpoints consumers use never do.
//! - Every error is JSON `{"code": "...", "message": "..."}` with a stable code and a 4xx status;
//!   bodies are limited to `api.max_body`.
//! - Who acted is taken from the `X-Catchup-Actor` header (or `actor` in the body), `api` by default;
//!   every mutation is in the audit log with it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Mode;
use crate::gate::{Admission, GateError, GateView};
use crate::policy::{Override, OverrideAction, OverrideScope};
use crate::runtime::{Command, Controller, Status};
use crate::store::AuditRecord;
use crate::units::Dur;

/// An API error: HTTP status, stable code, human message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "state_unavailable",
            format!("the state directory failed: {e}"),
        )
    }
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> ApiError {
        match e {
            GateError::UnknownGroup(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_group", e.to_string())
            }
            GateError::TooMany { .. } => ApiError::invalid(e.to_string()),
        }
    }
}

/// A JSON body whose every rejection is an [`ApiError`].
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                e.body_text(),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_content_type",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than api.max_body",
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.body_text(),
            )),
        }
    }
}

type Ctl = State<Arc<Controller>>;

fn authorize(ctl: &Controller, headers: &HeaderMap, write: bool) -> Result<(), ApiError> {
    if !write && !ctl.config.api.auth_reads {
        return Ok(());
    }
    let Some(expected) = &ctl.token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no API token is configured (api.token_file or CATCHUP_API_TOKEN): this endpoint is disabled",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer TOKEN)",
        ))
    }
}

fn actor(headers: &HeaderMap, body: Option<&str>) -> String {
    body.filter(|a| !a.trim().is_empty())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get("x-catchup-actor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "api".to_string())
        .chars()
        .take(100)
        .collect()
}

fn require_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        Err(ApiError::invalid(
            "`reason` is required: say why, it goes into the audit log",
        ))
    } else {
        Ok(())
    }
}

fn parse_ttl(ttl: Option<&str>, default: Dur) -> Result<Dur, ApiError> {
    let d = match ttl {
        None => default,
        Some(t) => Dur::parse(t).map_err(|e| ApiError::invalid(format!("ttl: {e}")))?,
    };
    if d < Dur::from_secs(10) || d > Dur::from_hours(7 * 24) {
        return Err(ApiError::invalid(format!(
            "ttl = {d}: must be between 10s and 7d"
        )));
    }
    Ok(d)
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "up")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: ready after the first tick with fresh disk and lag data.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = ApiError, description = "not ready yet")))]
async fn readyz(State(ctl): Ctl) -> Result<Json<serde_json::Value>, ApiError> {
    if ctl.ready.load(std::sync::atomic::Ordering::Relaxed) {
        Ok(Json(serde_json::json!({"status": "ready"})))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "waiting for the first full tick with fresh sensor data",
        ))
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(ctl): Ctl, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&ctl, &headers, false)?;
    ctl.metrics.permits(&ctl.gates.counters());
    let mut resp = ctl.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(resp)
}

/// `GET /v1/status`: observation, decision with reasons, mode, overrides, managed topics.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = Status), (status = 401, body = ApiError)))]
async fn status(State(ctl): Ctl, headers: HeaderMap) -> Result<Json<Status>, ApiError> {
    authorize(&ctl, &headers, false)?;
    let mut s = ctl.status.read().unwrap_or_else(|e| e.into_inner()).clone();
    s.mode = ctl.mode();
    s.overrides = ctl.active_overrides();
    Ok(Json(s))
}

/// Body of pause and resume.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// One catch-up group; absent = every group.
    pub group: Option<String>,
    /// Why (required).
    pub reason: String,
    /// How long, e.g. "30m"; default 1h, between 10s and 7d.
    pub ttl: Option<String>,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
    /// Resume only: also force the group(s) open against the control law (an override with a TTL).
    #[serde(default)]
    pub force: bool,
}

fn group_scope(ctl: &Controller, group: Option<&str>) -> Result<OverrideScope, ApiError> {
    match group {
        None => Ok(OverrideScope::AllGroups),
        Some(g) if ctl.policy.groups.iter().any(|p| p.name == g) => {
            Ok(OverrideScope::Group(g.to_string()))
        }
        Some(g) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!("{g:?} is not a catch-up group of the policy"),
        )),
    }
}

/// `POST /v1/pause`: pause a group (or all) until the TTL expires.
#[utoipa::path(post, path = "/v1/pause", request_body = PauseRequest, responses((status = 200, body = Object, description = "the override created"), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
async fn pause(
    State(ctl): Ctl,
    headers: HeaderMap,
    Body(req): Body<PauseRequest>,
) -> Result<Json<Override>, ApiError> {
    authorize(&ctl, &headers, true)?;
    require_reason(&req.reason)?;
    let scope = group_scope(&ctl, req.group.as_deref())?;
    let ttl = parse_ttl(req.ttl.as_deref(), Dur::from_hours(1))?;
    let o = ctl.add_override(
        scope,
        OverrideAction::Pause,
        req.reason,
        actor(&headers, req.actor.as_deref()),
        ttl,
    )?;
    Ok(Json(o))
}

/// What resume did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeResponse {
    /// Pause overrides removed.
    #[schema(value_type = Vec<Object>)]
    pub removed: Vec<Override>,
    /// The forcing override, with `force`.
    #[schema(value_type = Option<Object>)]
    pub forced: Option<Override>,
}

/// `POST /v1/resume`: remove manual pauses of a group (or all); with `force`, also hold it open.
#[utoipa::path(post, path = "/v1/resume", request_body = PauseRequest, responses((status = 200, body = ResumeResponse), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
async fn resume(
    State(ctl): Ctl,
    headers: HeaderMap,
    Body(req): Body<PauseRequest>,
) -> Result<Json<ResumeResponse>, ApiError> {
    authorize(&ctl, &headers, true)?;
    require_reason(&req.reason)?;
    let scope = group_scope(&ctl, req.group.as_deref())?;
    let who = actor(&headers, req.actor.as_deref());
    let pauses: Vec<String> = ctl
        .active_overrides()
        .into_iter()
        .filter(|o| {
            o.action == OverrideAction::Pause
                && (scope == OverrideScope::AllGroups || o.scope == scope)
        })
        .map(|o| o.id)
        .collect();
    let mut removed = Vec::new();
    for id in pauses {
        if let Some(o) = ctl.delete_override(&id, &who, &req.reason)? {
            removed.push(o);
        }
    }
    let forced = if req.force {
        let ttl = parse_ttl(req.ttl.as_deref(), Dur::from_hours(1))?;
        Some(ctl.add_override(scope, OverrideAction::Resume, req.reason, who, ttl)?)
    } else {
        None
    };
    Ok(Json(ResumeResponse { removed, forced }))
}

/// Body of override creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// `{"kind": "group", "name": "G"}`, `{"kind": "all_groups"}` or `{"kind": "topic", "name": "T"}`.
    #[schema(value_type = Object)]
    pub scope: OverrideScope,
    /// `{"action": "pause"}`, `{"action": "resume"}`, `{"action": "fixed_rate", "rate": 1000}` or
    /// `{"action": "hold_retention"}` (topics only).
    #[schema(value_type = Object)]
    pub action: OverrideAction,
    /// Why (required).
    pub reason: String,
    /// How long, e.g. "30m" (required: overrides always expire).
    pub ttl: String,
    /// Who (else the X-Catchup-Actor header).
    pub actor: Option<String>,
}

/// `GET /v1/overrides`: overrides in force.
#[utoipa::path(get, path = "/v1/overrides", responses((status = 200, body = Vec<Object>), (status = 401, body = ApiError)))]
async fn list_overrides(
    State(ctl): Ctl,
    headers: HeaderMap,
) -> Result<Json<Vec<Override>>, ApiError> {
    authorize(&ctl, &headers, false)?;
    Ok(Json(ctl.active_overrides()))
}

/// `POST /v1/overrides`: create an override with a TTL.
#[utoipa::path(post, path = "/v1/overrides", request_body = OverrideRequest, responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
async fn create_override(
    State(ctl): Ctl,
    headers: HeaderMap,
    Body(req): Body<OverrideRequest>,
) -> Result<Json<Override>, ApiError> {
    authorize(&ctl, &headers, true)?;
    require_reason(&req.reason)?;
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
                && !(rate.is_finite() && *rate > 0.0)
            {
                return Err(ApiError::invalid(format!(
                    "rate = {rate}: must be a positive number per second"
                )));
            }
        }
    }
    let o = ctl.add_override(
        req.scope,
        req.action,
        req.reason,
        actor(&headers, req.actor.as_deref()),
        ttl,
    )?;
    Ok(Json(o))
}

/// `DELETE /v1/overrides/{id}?reason=...`: remove an override.
#[utoipa::path(delete, path = "/v1/overrides/{id}", params(("id" = String, Path, description = "override id"), ("reason" = String, Query, description = "why (required)")), responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
async fn delete_override(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Override>, ApiError> {
    authorize(&ctl, &headers, true)?;
    let reason = q.get("reason").cloned().unwrap_or_default();
    require_reason(&reason)?;
    match ctl.delete_override(
        &id,
        &actor(&headers, q.get("actor").map(String::as_str)),
        &reason,
    )? {
        Some(o) => Ok(Json(o)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_override",
            format!("no override with id {id:?}"),
        )),
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<u64>,
}

/// `GET /v1/audit?limit=50&before=ID`: every action, newest first.
#[utoipa::path(get, path = "/v1/audit", params(("limit" = Option<usize>, Query, description = "1..=1000, default 50"), ("before" = Option<u64>, Query, description = "only records with a smaller id")), responses((status = 200, body = AuditPage), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn audit(
    State(ctl): Ctl,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    authorize(&ctl, &headers, false)?;
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(format!("limit = {v:?}: must be a number from 1 to 1000"))
            })?,
    };
    let before = match q.get("before") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("before = {v:?}: must be a record id")))?,
        ),
    };
    let records = ctl.store.audit_page(limit, before)?;
    let next_before = if records.len() == limit {
        records.last().map(|r| r.id).filter(|id| *id > 1)
    } else {
        None
    };
    Ok(Json(AuditPage {
        records,
        next_before,
    }))
}

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
async fn set_mode(
    State(ctl): Ctl,
    headers: HeaderMap,
    Body(req): Body<ModeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&ctl, &headers, true)?;
    require_reason(&req.reason)?;
    let before = ctl.set_mode(
        req.mode,
        &actor(&headers, req.actor.as_deref()),
        &req.reason,
    )?;
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
async fn restore(
    State(ctl): Ctl,
    headers: HeaderMap,
    Body(req): Body<RestoreRequest>,
) -> Result<Json<RestoreResponse>, ApiError> {
    authorize(&ctl, &headers, true)?;
    require_reason(&req.reason)?;
    let hold = parse_ttl(req.hold.as_deref(), Dur::from_hours(1))?;
    let (reply, answer) = oneshot::channel();
    let cmd = Command::Restore {
        actor: actor(&headers, req.actor.as_deref()),
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

/// `GET /v1/gates/{group}?after_version=N&wait=30s`: the gate's desired state; with `after_version`,
/// waits up to `wait` (max 60s) for a newer version.
#[utoipa::path(get, path = "/v1/gates/{group}", params(("group" = String, Path, description = "consumer group"), ("after_version" = Option<u64>, Query, description = "return once the version is greater"), ("wait" = Option<String>, Query, description = "long-poll time, e.g. 30s (max 60s)")), responses((status = 200, body = GateView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn get_gate(
    State(ctl): Ctl,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<GateView>, ApiError> {
    let after = match q.get("after_version") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::invalid(format!("after_version = {v:?}: must be a version number"))
        })?),
    };
    let wait = match q.get("wait") {
        None => Dur::from_secs(30),
        Some(w) => Dur::parse(w)
            .map_err(|e| ApiError::invalid(format!("wait: {e}")))?
            .min(Dur::from_secs(60)),
    };
    let mut rx = ctl.gates.subscribe(&group)?;
    if let Some(after) = after {
        let deadline = tokio::time::sleep(Duration::from_millis(wait.0));
        tokio::pin!(deadline);
        while *rx.borrow_and_update() <= after {
            tokio::select! {
                _ = &mut deadline => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
        }
    }
    Ok(Json(ctl.gates.view(&group)?))
}

/// Body of a permit request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    /// Permits (records or bytes, per the gate's unit); at least 1.
    pub permits: u32,
    /// Longest time to wait for them, e.g. "100ms" (max 30s); default 0 (answer at once).
    pub max_wait: Option<String>,
}

/// Answer to a permit request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcquireResponse {
    /// Whether the permits were granted.
    pub granted: bool,
    /// When denied: try again after this many milliseconds (for a pause: long-poll the gate).
    pub retry_after_ms: Option<u64>,
    /// `open`, `throttled` or `paused`.
    pub state: String,
    /// The gate's version.
    pub version: u64,
}

/// `POST /v1/gates/{group}/acquire`: take permits, waiting up to `max_wait`; 200 granted, 429 denied
/// with `Retry-After`.
#[utoipa::path(post, path = "/v1/gates/{group}/acquire", params(("group" = String, Path, description = "consumer group")), request_body = AcquireRequest, responses((status = 200, body = AcquireResponse), (status = 429, body = AcquireResponse, description = "denied; Retry-After set"), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn acquire(
    State(ctl): Ctl,
    Path(group): Path<String>,
    Body(req): Body<AcquireRequest>,
) -> Result<Response, ApiError> {
    let permits = NonZeroU32::new(req.permits)
        .ok_or_else(|| ApiError::invalid("permits must be at least 1"))?;
    let max_wait = match req.max_wait.as_deref() {
        None => Dur(0),
        Some(w) => Dur::parse(w)
            .map_err(|e| ApiError::invalid(format!("max_wait: {e}")))?
            .min(Dur::from_secs(30)),
    };
    let deadline = Instant::now() + Duration::from_millis(max_wait.0);
    loop {
        let admission = ctl.gates.try_acquire(&group, permits)?;
        let (state, version) = ctl.gates.state(&group)?;
        let (granted, retry) = match admission {
            Admission::Granted => (true, None),
            Admission::Wait(d) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if d <= left {
                    tokio::time::sleep(d).await;
                    continue;
                }
                (false, Some(d))
            }
            Admission::Paused => (false, Some(Duration::from_secs(1))),
        };
        let body = AcquireResponse {
            granted,
            retry_after_ms: retry.map(|d| d.as_millis().max(1) as u64),
            state: state.to_string(),
            version,
        };
        if granted {
            return Ok(Json(body).into_response());
        }
        let secs = retry.map_or(1, |d| d.as_secs_f64().ceil().max(1.0) as u64);
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "catchup",
        description = "Kafka backlog catch-up controller API"
    ),
    components(schemas(ApiError))
)]
struct ApiDoc;

/// The router with every route, the body limit and JSON fallbacks.
pub fn router(ctl: Arc<Controller>) -> Router {
    let max_body = ctl.config.api.max_body.0 as usize;
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(status))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(list_overrides, create_override))
        .routes(routes!(delete_override))
        .routes(routes!(audit))
        .routes(routes!(set_mode))
        .routes(routes!(restore))
        .routes(routes!(get_gate))
        .routes(routes!(acquire))
        .with_state(ctl)
        .split_for_parts();
    let openapi = Arc::new(openapi);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { Json((*openapi).clone()) }),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctl: Arc<Controller>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(ctl))
        .with_graceful_shutdown(shutdown)
        .await
}
