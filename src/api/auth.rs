//! Who may call what. Every matched route passes [`check`] first, a middleware that runs before
//! any extractor: a request without the token its route needs is answered 401 (403 for a token of
//! the wrong role) before its path, query or body is looked at, so nothing about the request's
//! shape is told to a caller without the token.
//!
//! Routes and their [`Access`]: health, readiness and the OpenAPI document are public; the gate
//! endpoints need a consumer (or operator) token once any consumer token is configured; status,
//! the overrides list and metrics need the operator token with `api.auth_reads` (the chart's default); the
//! audit log always needs it when one is configured; every mutation needs it.
//!
//! A handler that changes anything takes [`Operator`], which yields the [`Authorized`] proof every
//! mutation of the controller requires. Who acted is the token's name; a body's `actor` or the
//! `X-Catchup-Actor` header is recorded after it (`operator:alice`), never instead of it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::runtime::Controller;
use crate::runtime::controller::{Access, Authorized, Caller};

/// What the route `path` (as declared, e.g. `/v1/gates/{group}`) with `method` needs.
pub fn access(method: &Method, path: &str) -> Access {
    match (method, path) {
        (_, "/healthz" | "/readyz" | "/openapi.json") => Access::Public,
        (_, p) if p.starts_with("/v1/gates/") => Access::Gate,
        (&Method::GET, "/v1/audit") => Access::Audit,
        (&Method::GET | &Method::HEAD, _) => Access::Read,
        _ => Access::Write,
    }
}

/// The middleware: checks the bearer token for the matched route and keeps the [`Caller`] in the
/// request's extensions for [`Operator`].
pub async fn check(State(ctl): State<Arc<Controller>>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let need = access(req.method(), &path);
    match ctl.authenticate(bearer(req.headers()), need) {
        Ok(caller) => {
            if let Some(c) = caller {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A request that passed the operator-token check.
pub struct Operator {
    headers: HeaderMap,
    caller: Option<Caller>,
}

impl Operator {
    /// The proof for a mutation, acting as the token's name, with `actor` from the body (else the
    /// `X-Catchup-Actor` header) recorded after it.
    pub fn authorized(
        &self,
        ctl: &Controller,
        body_actor: Option<&str>,
    ) -> Result<Authorized, ApiError> {
        let claimed = body_actor.filter(|a| !a.trim().is_empty()).or_else(|| {
            self.headers
                .get("x-catchup-actor")
                .and_then(|v| v.to_str().ok())
        });
        Ok(ctl.authorize(self.caller.as_ref(), claimed)?)
    }
}

impl FromRequestParts<Arc<Controller>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctl: &Arc<Controller>,
    ) -> Result<Self, ApiError> {
        let caller = parts.extensions.get::<Caller>().cloned();
        // The middleware checked already; checked again so a route cannot skip it.
        ctl.authorize(caller.as_ref(), None)?;
        Ok(Operator {
            headers: parts.headers.clone(),
            caller,
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}
