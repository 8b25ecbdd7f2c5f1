//! The gate endpoints consumers use: read the gate (long-poll on its version) and take permits.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Ctl;
use super::error::{ApiError, Body};
use crate::actuators::gate::{Admission, GateView};
use crate::units::Dur;
use catchup_proto::gate::{AcquireRequest, AcquireResponse, MAX_PERMITS};

/// `GET /v1/gates/{group}?after_version=N&wait=30s`: the gate's desired state; with `after_version`,
/// waits up to `wait` (max 60s) for a newer version.
#[utoipa::path(get, path = "/v1/gates/{group}", params(("group" = String, Path, description = "consumer group"), ("after_version" = Option<u64>, Query, description = "return once the version is greater"), ("wait" = Option<String>, Query, description = "long-poll time, e.g. 30s (max 60s)", pattern = r"^[0-9]{1,6}(ms|s|m|h|d)$")), responses((status = 200, body = GateView), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError, description = "every long-poll slot is taken; Retry-After set")))]
pub(super) async fn get_gate(
    State(ctl): Ctl,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
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
    // Only a poll that will wait takes a slot; one whose answer is ready does not.
    let _slot = match after {
        Some(after) if *rx.borrow() <= after => match ctl.long_polls.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => return Ok(busy()),
        },
        _ => None,
    };
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
    Ok(Json(ctl.gates.view(&group)?).into_response())
}

/// 503 with `Retry-After`: every long-poll slot is taken.
fn busy() -> Response {
    let mut resp = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_long_polls",
        "api.limits.max_long_polls long-polls are waiting already: retry after a second",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// `POST /v1/gates/{group}/acquire`: take permits, waiting up to `max_wait`; 200 granted, 429 denied
/// with `Retry-After`.
#[utoipa::path(post, path = "/v1/gates/{group}/acquire", params(("group" = String, Path, description = "consumer group")), request_body = AcquireRequest, responses((status = 200, body = AcquireResponse), (status = 429, body = AcquireResponse, description = "denied; Retry-After set"), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn acquire(
    State(ctl): Ctl,
    Path(group): Path<String>,
    Body(req): Body<AcquireRequest>,
) -> Result<Response, ApiError> {
    let permits = NonZeroU32::new(req.permits)
        .filter(|p| p.get() <= MAX_PERMITS)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "permits = {}: must be from 1 to {MAX_PERMITS} (and at most the gate's burst when throttled)",
                req.permits
            ))
        })?;
    let max_wait = match req.max_wait.as_deref() {
        None => Dur(0),
        Some(w) => Dur::parse(w)
            .map_err(|e| ApiError::invalid(format!("max_wait: {e}")))?
            .min(Dur::from_secs(30)),
    };
    let deadline = crate::clock::monotonic_now() + Duration::from_millis(max_wait.0);
    loop {
        let admission = ctl.gates.try_acquire(&group, permits)?;
        let (state, version) = ctl.gates.state(&group)?;
        let (granted, retry) = match admission {
            Admission::Granted => (true, None),
            Admission::Wait(d) => {
                let left = deadline.saturating_duration_since(crate::clock::monotonic_now());
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
            state,
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
