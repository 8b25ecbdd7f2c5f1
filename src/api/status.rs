//! Reads: liveness, readiness, metrics, status and the audit log.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Ctl;
use super::error::ApiError;
use crate::runtime::Status;
use catchup_proto::audit::AuditPage;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "up")))]
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: ready after the first tick with fresh disk and lag data.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = ApiError, description = "not ready yet")))]
pub(super) async fn readyz(State(ctl): Ctl) -> Result<Json<serde_json::Value>, ApiError> {
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
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "application/openmetrics-text")))]
pub(super) async fn metrics(State(ctl): Ctl) -> Result<Response, ApiError> {
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
pub(super) async fn status(State(ctl): Ctl) -> Result<Json<Status>, ApiError> {
    let mut s = ctl.status.read().unwrap_or_else(|e| e.into_inner()).clone();
    s.mode = ctl.mode();
    s.overrides = ctl.active_overrides();
    Ok(Json(s))
}

/// `GET /v1/audit?limit=50&before=ID`: every action, newest first, read from the end of the log;
/// a page holds at most `api.limits.audit_page` bytes of records (at least one).
#[utoipa::path(get, path = "/v1/audit", params(("limit" = Option<usize>, Query, description = "1..=1000, default 50", minimum = 1, maximum = 1000), ("before" = Option<u64>, Query, description = "only records with a smaller id")), responses((status = 200, body = AuditPage), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn audit(
    State(ctl): Ctl,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
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
                .ok()
                .filter(|b| i64::try_from(*b).is_ok())
                .ok_or_else(|| ApiError::invalid(format!("before = {v:?}: must be a record id")))?,
        ),
    };
    let max_bytes = ctl.config.api.limits.audit_page.0;
    let (records, more) = ctl
        .blocking(move |c| c.store.audit_page_sized(limit, before, max_bytes))
        .await?;
    let next_before = if more {
        records.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(AuditPage {
        records,
        next_before,
    }))
}
