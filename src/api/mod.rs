//! The HTTP API (axum). Routes and their OpenAPI description are registered together
//! (`utoipa-axum`), so `/openapi.json` cannot drift from what is served.
//!
//! - [`auth`]: every route's token is checked before anything else about the request (operator
//!   and consumer roles, compared in constant time);
//! - [`server`]: connections, capped, with header and idle timeouts;
//! - [`error`]: every error is JSON `{"code": "...", "message": "..."}` with a stable code and a 4xx
//!   status; bodies are limited to `api.max_body`.
//! - [`status`] (health, status, audit, metrics), [`overrides`] (pause, resume, overrides),
//!   [`control`] (mode, restore) and [`gates`] (what consumers call): the handlers.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
pub mod control;
mod doc;
pub mod error;
pub mod gates;
pub mod overrides;
pub mod server;
pub mod status;

pub use error::{ApiError, Body};

use crate::policy::OverrideScope;
use crate::runtime::Controller;
use crate::units::Dur;

type Ctl = State<Arc<Controller>>;

fn require_reason(ctl: &Controller, reason: &str) -> Result<(), ApiError> {
    let max = ctl.config.api.limits.max_reason;
    if reason.len() as u64 > max.0 {
        return Err(ApiError::invalid(format!(
            "`reason` is {} bytes: at most {max} (api.limits.max_reason)",
            reason.len()
        )));
    }
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
    if d < Dur::from_secs(10) || d > crate::ha::state::MAX_OVERRIDE_TTL {
        return Err(ApiError::invalid(format!(
            "ttl = {d}: must be between 10s and 7d"
        )));
    }
    Ok(d)
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
        .routes(routes!(status::healthz))
        .routes(routes!(status::readyz))
        .routes(routes!(status::metrics))
        .routes(routes!(status::status))
        .routes(routes!(overrides::pause))
        .routes(routes!(overrides::resume))
        .routes(routes!(
            overrides::list_overrides,
            overrides::create_override
        ))
        .routes(routes!(overrides::delete_override))
        .routes(routes!(status::audit))
        .routes(routes!(control::set_mode))
        .routes(routes!(control::restore))
        .routes(routes!(control::adopt))
        .routes(routes!(gates::get_gate))
        .routes(routes!(gates::acquire))
        .with_state(ctl.clone())
        .split_for_parts();
    let mut openapi = openapi;
    doc::secure(&mut openapi, &ctl);
    doc::exact_override_request(&mut openapi);
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
        .route_layer(axum::middleware::from_fn_with_state(ctl, auth::check))
        .layer(DefaultBodyLimit::max(max_body))
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctl: Arc<Controller>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ctl.config.api.limits.clone();
    server::serve(listener, router(ctl), &limits, shutdown).await
}
