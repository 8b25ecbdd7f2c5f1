//! Who may call what. A handler that changes anything takes [`Operator`]: it checks the bearer
//! token before the body is read and yields the [`Authorized`] proof that every mutation of the
//! controller requires, so a write route cannot exist without the check. Reads take [`Reader`]
//! (the token only with `api.auth_reads`); the gate endpoints consumers use take neither.
//!
//! Who acted is taken from the `X-Catchup-Actor` header (or `actor` in the body), `api` by default;
//! every mutation is in the audit log with it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::runtime::Controller;
use crate::runtime::controller::Authorized;

/// A request that passed the operator-token check.
pub struct Operator {
    headers: HeaderMap,
    bearer: Option<String>,
}

impl Operator {
    /// The proof for a mutation, acting as `actor` from the body, else the `X-Catchup-Actor`
    /// header, else `api`.
    pub fn authorized(
        &self,
        ctl: &Controller,
        body_actor: Option<&str>,
    ) -> Result<Authorized, ApiError> {
        Ok(ctl.authorize(self.bearer.as_deref(), actor(&self.headers, body_actor))?)
    }
}

impl FromRequestParts<Arc<Controller>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctl: &Arc<Controller>,
    ) -> Result<Self, ApiError> {
        let bearer = bearer(&parts.headers);
        ctl.check_token(bearer.as_deref(), true)?;
        Ok(Operator {
            headers: parts.headers.clone(),
            bearer,
        })
    }
}

/// A request allowed to read status, overrides, audit and metrics.
pub struct Reader;

impl FromRequestParts<Arc<Controller>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctl: &Arc<Controller>,
    ) -> Result<Self, ApiError> {
        ctl.check_token(bearer(&parts.headers).as_deref(), false)?;
        Ok(Reader)
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
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
