//! The gate consumers obey: what they read (`GET /v1/gates/{group}`) and how they take permits
//! (`POST /v1/gates/{group}/acquire`).

use serde::{Deserialize, Serialize};

use crate::decision::{GateState, RateUnit};
use crate::units::Timestamp;

/// What a consumer reads: the desired state of its group's gate, for this controller instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateView {
    /// Consumer group.
    pub group: String,
    /// The gate's state.
    pub state: GateState,
    /// Rate for this instance, per second (throttled only).
    pub rate: Option<f64>,
    /// Burst for this instance (throttled only).
    pub burst: Option<f64>,
    /// `records` or `bytes` (throttled only).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub unit: Option<RateUnit>,
    /// Bumped on every change of state, rate or burst.
    pub version: u64,
    /// After this, without a renewal, consumers fall back to their configured default. Milliseconds
    /// since the Unix epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub expires_at: Timestamp,
    /// Why the gate is as it is.
    pub reasons: Vec<String>,
    /// What consumers do once `expires_at` has passed without a renewal.
    pub fallback: FallbackHint,
}

/// The policy's fallback, as consumers apply it (see `throttle.fallback_hold` in docs/policy.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FallbackHint {
    /// Keep the last decision this long after it expired, seconds.
    pub hold_secs: f64,
    /// Then double the rate every this many seconds until open.
    pub ramp_secs: f64,
    /// The rate to resume at after a pause (this instance's share), per second; `None` when not known
    /// yet (consumers then use their own configured minimum).
    pub min_rate: Option<f64>,
}

/// The most permits one request may ask for (an open gate grants at most this many; a throttled
/// one at most its burst).
pub const MAX_PERMITS: u32 = 1_000_000;

/// Body of a permit request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    /// Permits (records or bytes, per the gate's unit): from 1 to 1,000,000, and at most the gate's
    /// burst when throttled.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000, format = Int64))]
    #[serde(deserialize_with = "whole_number")]
    pub permits: u32,
    /// Longest time to wait for them, e.g. "100ms" (max 30s); default 0 (answer at once).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{1,6}(ms|s|m|h|d)$"))]
    pub max_wait: Option<String>,
}

/// A whole number written as JSON allows (`24131` or `24131.0`), within `u32`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number of permits")))
}

/// Answer to a permit request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcquireResponse {
    /// Whether the permits were granted.
    pub granted: bool,
    /// When denied: try again after this many milliseconds (for a pause: long-poll the gate).
    pub retry_after_ms: Option<u64>,
    /// The gate's state.
    pub state: GateState,
    /// The gate's version.
    pub version: u64,
}
