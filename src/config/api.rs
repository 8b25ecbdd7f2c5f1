//! The `[api]` section: where the API listens, who may call it (tokens and their roles) and the
//! limits that keep one client from starving the others (connections, timeouts, long-polls,
//! overrides, reasons, audit pages).
//!
//! # Tokens and roles
//!
//! Every token has a name and a role. The name is who acted in the audit log (a body's `actor` or
//! the `X-Catchup-Actor` header is only recorded after it, as `NAME:ACTOR`), so nobody can act as
//! `controller`.
//!
//! - `operator`: every write, the audit log, and the reads (status, overrides, metrics) when
//!   `auth_reads` is on (the chart's default); also the gate endpoints.
//! - `consumer`: the gate endpoints only (`GET /v1/gates/{group}` and `acquire`). Once any consumer
//!   token is configured, the gate endpoints refuse a request without a token (401).
//!
//! The single-token configuration of earlier versions keeps working: `token_file` (or
//! `CATCHUP_API_TOKEN`) is an operator token named `operator`; `consumer_token_file` (or
//! `CATCHUP_CONSUMER_TOKEN`) is a consumer token named `consumer`; `[[api.tokens]]` adds more, each
//! with its own name, role and file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config_file::Problems;
use crate::units::{Bytes, Dur};

/// The largest token file read (a token is one line).
const TOKEN_FILE_CAP: u64 = 4096;

/// HTTP API settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Listen address. Default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// File holding the operator token (named `operator`; `CATCHUP_API_TOKEN` wins). Without any
    /// operator token, mutating endpoints are refused.
    pub token_file: Option<PathBuf>,
    /// File holding the consumer token (named `consumer`; `CATCHUP_CONSUMER_TOKEN` wins). With any
    /// consumer token, the gate endpoints need a token.
    pub consumer_token_file: Option<PathBuf>,
    /// More tokens, each with a name (the actor in the audit log), a role and a file.
    pub tokens: Vec<TokenConfig>,
    /// Whether status, the overrides list and metrics need the operator token too (when one is
    /// configured). Default false (the Helm chart sets it true). The audit log always needs it.
    pub auth_reads: bool,
    /// Largest accepted request body. Default 64KiB.
    pub max_body: Bytes,
    /// Limits.
    pub limits: ApiLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_file: None,
            consumer_token_file: None,
            tokens: Vec::new(),
            auth_reads: false,
            max_body: Bytes(64 * 1024),
            limits: ApiLimits::default(),
        }
    }
}

/// One named token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who acts with it (the audit log's actor): letters, digits, `-`, `_`, `.`, at most 64.
    pub name: String,
    /// `operator` or `consumer`.
    pub role: Role,
    /// The file whose first line is the token (at least 16 characters).
    pub file: PathBuf,
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Operator,
    /// The gate endpoints only.
    Consumer,
}

/// Limits of the API, each with its default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiLimits {
    /// Open connections at most; more are closed as soon as they are accepted. Default 4096 (and
    /// never more than the process's open-file limit less 128, kept for the state directory and
    /// the cluster).
    pub max_connections: u32,
    /// A request's headers must arrive within this. Default 10s.
    pub header_timeout: Dur,
    /// A connection with no request in progress and no bytes moving for this long is closed.
    /// Default 60s.
    pub idle_timeout: Dur,
    /// Gate long-polls waiting at once; more are answered 503 with `Retry-After`. Default 2048.
    pub max_long_polls: u32,
    /// Overrides in force per scope (a group, a topic, or all groups). Default 16.
    pub max_overrides_per_scope: u32,
    /// Overrides in force in total. Default 256.
    pub max_overrides: u32,
    /// Longest reason accepted. Default 1KiB.
    pub max_reason: Bytes,
    /// Largest audit page answered (`GET /v1/audit`): records beyond it are left for the next
    /// page. Default 256KiB.
    pub audit_page: Bytes,
    /// The audit log (`audit.jsonl`) is rotated (to `audit.jsonl.N`) before it passes this.
    /// Default 32MiB.
    pub audit_file_size: Bytes,
    /// Rotated audit files kept; older ones are deleted. Default 8 (with the default size, at
    /// most 288MiB of audit log on the state volume).
    pub audit_files: u32,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_connections: 4096,
            header_timeout: Dur::from_secs(10),
            idle_timeout: Dur::from_secs(60),
            max_long_polls: 2048,
            max_overrides_per_scope: 16,
            max_overrides: 256,
            max_reason: Bytes(1024),
            audit_page: Bytes(256 * 1024),
            audit_file_size: Bytes(32 * 1024 * 1024),
            audit_files: 8,
        }
    }
}

impl ApiConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.max_body.0 >= 1024 && self.max_body.0 <= 16 * 1024 * 1024,
            "api.max_body",
            self.max_body,
            "must be between 1KiB and 16MiB",
        );
        let l = &self.limits;
        p.check(
            (16..=1_000_000).contains(&l.max_connections),
            "api.limits.max_connections",
            l.max_connections,
            "must be between 16 and 1000000",
        );
        p.check(
            l.header_timeout >= Dur::from_millis(100) && l.header_timeout <= Dur::from_secs(300),
            "api.limits.header_timeout",
            l.header_timeout,
            "must be between 100ms and 5m",
        );
        p.check(
            l.idle_timeout >= Dur::from_secs(1) && l.idle_timeout <= Dur::from_hours(1),
            "api.limits.idle_timeout",
            l.idle_timeout,
            "must be between 1s and 1h",
        );
        p.check(
            l.max_long_polls >= 1 && l.max_long_polls < l.max_connections,
            "api.limits.max_long_polls",
            l.max_long_polls,
            "must be at least 1 and below max_connections (room for the other requests)",
        );
        p.check(
            (1..=10_000).contains(&l.max_overrides_per_scope),
            "api.limits.max_overrides_per_scope",
            l.max_overrides_per_scope,
            "must be between 1 and 10000",
        );
        p.check(
            l.max_overrides >= l.max_overrides_per_scope && l.max_overrides <= 100_000,
            "api.limits.max_overrides",
            l.max_overrides,
            "must be at least max_overrides_per_scope and at most 100000",
        );
        p.check(
            l.max_reason.0 >= 16 && l.max_reason.0 <= 64 * 1024,
            "api.limits.max_reason",
            l.max_reason,
            "must be between 16B and 64KiB",
        );
        p.check(
            l.audit_page.0 >= 4096 && l.audit_page.0 <= 64 * 1024 * 1024,
            "api.limits.audit_page",
            l.audit_page,
            "must be between 4KiB and 64MiB",
        );
        p.check(
            l.audit_file_size.0 >= 64 * 1024 && l.audit_file_size.0 <= 4 * 1024 * 1024 * 1024,
            "api.limits.audit_file_size",
            l.audit_file_size,
            "must be between 64KiB and 4GiB",
        );
        p.check(
            (1..=1000).contains(&l.audit_files),
            "api.limits.audit_files",
            l.audit_files,
            "must be between 1 and 1000",
        );
        for (i, t) in self.tokens.iter().enumerate() {
            p.check(
                valid_name(&t.name),
                format!("api.tokens[{i}].name"),
                format!("{:?}", t.name),
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
    }

    pub(super) fn resolve(&mut self, fix: &dyn Fn(&mut PathBuf)) {
        if let Some(p) = &mut self.token_file {
            fix(p);
        }
        if let Some(p) = &mut self.consumer_token_file {
            fix(p);
        }
        for t in &mut self.tokens {
            fix(&mut t.file);
        }
    }

    /// Every token: `CATCHUP_API_TOKEN` (else `token_file`) as `operator`,
    /// `CATCHUP_CONSUMER_TOKEN` (else `consumer_token_file`) as `consumer`, then `tokens`.
    pub fn load_tokens(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Tokens, String> {
        let mut all = Vec::new();
        let sources = [
            (
                "CATCHUP_API_TOKEN",
                "api.token_file",
                &self.token_file,
                "operator",
                Role::Operator,
            ),
            (
                "CATCHUP_CONSUMER_TOKEN",
                "api.consumer_token_file",
                &self.consumer_token_file,
                "consumer",
                Role::Consumer,
            ),
        ];
        for (var, key, file, name, role) in sources {
            let secret = match env(var).filter(|t| !t.trim().is_empty()) {
                Some(t) => Some(t.trim().to_string()),
                None => match file {
                    Some(f) => Some(read_token(key, f)?),
                    None => None,
                },
            };
            if let Some(secret) = secret {
                all.push(Token::new(name, role, secret));
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let secret = read_token(&format!("api.tokens[{i}].file"), &t.file)?;
            all.push(Token::new(&t.name, t.role, secret));
        }
        for (i, a) in all.iter().enumerate() {
            if all[..i].iter().any(|b| b.name == a.name) {
                return Err(format!("two API tokens are named {:?}", a.name));
            }
            if all[..i].iter().any(|b| b.secret == a.secret) {
                return Err(format!(
                    "API tokens {:?} and another have the same secret: give each its own",
                    a.name
                ));
            }
        }
        Ok(Tokens(all))
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn read_token(key: &str, file: &Path) -> Result<String, String> {
    let text = crate::config_file::read_capped(file, TOKEN_FILE_CAP)
        .map_err(|e| format!("{key} {}: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(format!(
            "{key} {}: the token must be at least 16 characters",
            file.display()
        ));
    }
    Ok(token)
}

/// One token: its name, role and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Who acts with it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The secret (never printed).
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}, {:?})", self.name, self.role)
    }
}

impl Token {
    /// A token named `name` with `role`.
    pub fn new(name: &str, role: Role, secret: impl Into<String>) -> Token {
        Token {
            name: name.to_string(),
            role,
            secret: secret.into(),
        }
    }
}

/// Every token the API accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens(pub Vec<Token>);

impl Tokens {
    /// Only an operator token named `operator` (the single-token configuration), or none.
    pub fn operator(secret: Option<String>) -> Tokens {
        Tokens(
            secret
                .map(|s| Token::new("operator", Role::Operator, s))
                .into_iter()
                .collect(),
        )
    }

    /// With a consumer token named `consumer` added.
    pub fn with_consumer(mut self, secret: impl Into<String>) -> Tokens {
        self.0.push(Token::new("consumer", Role::Consumer, secret));
        self
    }

    /// Whether a token of `role` is configured.
    pub fn has(&self, role: Role) -> bool {
        self.0.iter().any(|t| t.role == role)
    }

    /// The token `given` is, compared in constant time against every token (no early return, so
    /// the time does not tell which one nearly matched).
    pub fn find(&self, given: &str) -> Option<&Token> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for t in &self.0 {
            if bool::from(given.as_bytes().ct_eq(t.secret.as_bytes())) {
                found = Some(t);
            }
        }
        found
    }
}

impl From<Option<String>> for Tokens {
    fn from(secret: Option<String>) -> Tokens {
        Tokens::operator(secret)
    }
}
