//! The OpenAPI document's security: derived from [`super::auth::access`], the function the auth
//! middleware enforces, and from this controller's tokens and `api.auth_reads`, so the document
//! says exactly what the running API asks for. Every route that can refuse a token documents 401
//! (and 403 where a consumer token is refused); every route with a body documents 413 and 415.

use axum::http::Method;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

use super::auth::access;
use crate::config::Role;
use crate::runtime::Controller;
use crate::runtime::controller::Access;

/// The override request as the handler takes it: a group scope (one group or all) with pause,
/// resume or a fixed rate, or a topic scope with `hold_retention`; built from the generated
/// schemas of scope and action so it stays in step with them.
pub fn exact_override_request(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let get = |name: &str| {
        components
            .schemas
            .get(name)
            .and_then(|s| serde_json::to_value(s).ok())
    };
    let (Some(request), Some(scope), Some(action)) = (
        get("OverrideRequest"),
        get("OverrideScope"),
        get("OverrideAction"),
    ) else {
        return;
    };
    let pick = |v: &serde_json::Value, which: &[usize]| {
        let all = v["oneOf"].as_array().cloned().unwrap_or_default();
        // Nothing but the variant's own fields: `{"kind": "all_groups", "name": ""}` is refused.
        let chosen: Vec<serde_json::Value> = which
            .iter()
            .filter_map(|i| all.get(*i).cloned())
            .map(|mut v| {
                v["additionalProperties"] = serde_json::Value::Bool(false);
                v
            })
            .collect();
        serde_json::json!({ "oneOf": chosen })
    };
    let shape = |scope: serde_json::Value, action: serde_json::Value, what: &str| {
        let mut r = request.clone();
        r["properties"]["scope"] = scope;
        r["properties"]["action"] = action;
        r["description"] = serde_json::Value::String(what.into());
        r
    };
    let exact = serde_json::json!({
        "description": request["description"],
        "oneOf": [
            shape(pick(&scope, &[0, 1]), pick(&action, &[0, 1, 2]), "A group (or every group): pause, resume or a fixed rate."),
            shape(pick(&scope, &[2]), pick(&action, &[3]), "A managed topic: hold its retention."),
        ]
    });
    if let Ok(schema) = serde_json::from_value(exact) {
        components
            .schemas
            .insert("OverrideRequest".to_string(), schema);
    }
}

/// Adds the security schemes and each operation's requirement and auth answers.
pub fn secure(doc: &mut OpenApi, ctl: &Controller) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, what) in [
        (
            "operator",
            "an operator token: every write, the audit log, reads with api.auth_reads",
        ),
        ("consumer", "a consumer token: the gate endpoints only"),
    ] {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(what))
            .build();
        components.add_security_scheme(name, SecurityScheme::Http(scheme));
    }
    let has_consumer = ctl.tokens_have(Role::Consumer);
    let has_operator = ctl.tokens_have(Role::Operator);
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op.as_mut() else { continue };
            let operator = SecurityRequirement::new("operator", Vec::<String>::new());
            let consumer = SecurityRequirement::new("consumer", Vec::<String>::new());
            let anyone = SecurityRequirement::default();
            let (security, refuses, forbids) = match access(&method, path) {
                Access::Public => (vec![anyone], false, false),
                Access::Gate if has_consumer => (vec![consumer, operator], true, false),
                Access::Gate => (vec![anyone, consumer, operator], false, false),
                Access::Read if has_operator && ctl.config.api.auth_reads => {
                    (vec![operator], true, true)
                }
                Access::Read => (vec![anyone, operator], false, false),
                Access::Audit if has_operator => (vec![operator], true, true),
                Access::Audit => (vec![anyone], false, false),
                Access::Write => (vec![operator], true, true),
            };
            op.security = Some(security);
            if refuses {
                answer(op, "401", "missing or wrong bearer token");
            }
            if forbids {
                answer(
                    op,
                    "403",
                    "a consumer token: this endpoint needs an operator token",
                );
            }
            if op.request_body.is_some() {
                answer(op, "413", "the body is larger than api.max_body");
                answer(op, "415", "the body is not sent as application/json");
            }
        }
    }
}

fn answer(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build()
                .into()
        });
}
