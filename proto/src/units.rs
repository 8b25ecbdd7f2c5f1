//! Time, duration and size types shared by policies, scenarios, the engine and the simulator.
//!
//! Everything is integer milliseconds or bytes underneath so that the engine and the simulator are
//! exactly reproducible; the text forms (`"4h"`, `"1h30m"`, `"2TiB"`, `"150MiB/s"`) are what people write
//! in policy and scenario files.

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A point in time: milliseconds since the Unix epoch (or since the start of a simulation).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch, as a float (for rates and regressions).
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The time as UTC in RFC 3339 (`2025-11-14T15:02:00Z`), for people.
    pub fn rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Dur {
        Dur(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl Add<Dur> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Dur) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.0).unwrap_or(i64::MAX)),
        )
    }
}

impl Sub<Dur> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Dur) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.0).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    /// Simulated times are shown as an offset from the start (`T+5h2m`); wall-clock times in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.unsigned_abs() < 10 * 365 * 86_400_000 {
            let sign = if self.0 < 0 { "-" } else { "+" };
            write!(f, "T{sign}{}", Dur(self.0.unsigned_abs()))
        } else {
            f.write_str(&self.rfc3339())
        }
    }
}

/// A duration in milliseconds, written in files as `"90s"`, `"5m"`, `"4h"`, `"1h30m"`, `"2d"` or `"250ms"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub u64);

impl Dur {
    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Dur {
        Dur(ms)
    }

    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Dur {
        Dur(s * 1000)
    }

    /// A duration of `m` minutes.
    pub const fn from_mins(m: u64) -> Dur {
        Dur(m * 60_000)
    }

    /// A duration of `h` hours.
    pub const fn from_hours(h: u64) -> Dur {
        Dur(h * 3_600_000)
    }

    /// Milliseconds.
    pub fn millis(self) -> u64 {
        self.0
    }

    /// Seconds as a float.
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Parses `"1h30m"`-style text; see the type documentation.
    pub fn parse(text: &str) -> Result<Dur, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err(
                "empty duration: write a number with a unit, e.g. \"30s\", \"5m\", \"4h\"".into(),
            );
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "\"{text}\" is not a duration: expected a number at \"{rest}\" (e.g. \"30s\", \"5m\", \"4h\", \"1h30m\")"
                ));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("\"{text}\": number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => {
                    return Err(format!(
                        "\"{text}\" has no unit: write e.g. \"{number}s\" or \"{number}m\" (units: ms, s, m, h, d)"
                    ));
                }
                other => {
                    return Err(format!(
                        "\"{text}\" has an unknown unit \"{other}\" (units: ms, s, m, h, d)"
                    ));
                }
            };
            total = number
                .checked_mul(scale)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("\"{text}\": duration too large"))?;
        }
        Ok(Dur(total))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return write!(f, "0s");
        }
        if !ms.is_multiple_of(1000) {
            return if ms < 1000 {
                write!(f, "{ms}ms")
            } else {
                write!(f, "{:.1}s", ms as f64 / 1000.0)
            };
        }
        let mut s = ms / 1000;
        let d = s / 86_400;
        s %= 86_400;
        let h = s / 3600;
        s %= 3600;
        let m = s / 60;
        s %= 60;
        let mut out = String::new();
        if d > 0 {
            out.push_str(&format!("{d}d"));
        }
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if s > 0 {
            out.push_str(&format!("{s}s"));
        }
        f.write_str(&out)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Dur {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "a duration such as \"30s\", \"5m\", \"4h\" or \"1h30m\"",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Dur {}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\", \"5m\", \"4h\" or \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{v} has no unit: write e.g. \"{v}s\" or \"{v}m\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{v} has no unit: write e.g. \"{v}s\" or \"{v}m\""
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{v} has no unit: write e.g. \"90s\" or \"5m\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte count, written in files as a number or with a unit: `"500MB"`, `"1GiB"`, `"2TiB"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses sizes with decimal (kB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB) units; a bare number is bytes.
    pub fn parse(text: &str) -> Result<Bytes, String> {
        let s = text.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let value: f64 = num.parse().map_err(|_| {
            format!("\"{text}\" is not a size: write a number with a unit, e.g. \"500MB\", \"1GiB\", \"2TiB\"")
        })?;
        let scale: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "kB" | "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "\"{text}\" has an unknown size unit \"{other}\" (units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                ));
            }
        };
        let bytes = value * scale;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!("\"{text}\" is too large"));
        }
        Ok(Bytes(bytes.round() as u64))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0 as f64))
    }
}

/// Formats a byte count with a binary unit, e.g. `1.5 GiB`.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 1048576, \"500MB\" or \"2TiB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                Bytes::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("{v}: a size cannot be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A throughput in bytes per second, written `"150MiB/s"` (or `"150MiB"`, per second implied).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct ByteRate(pub f64);

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteRate, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteRate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a throughput such as \"60MB/s\" or \"150MiB/s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteRate, E> {
                let body = v.trim().strip_suffix("/s").unwrap_or(v);
                Bytes::parse(body)
                    .map(|b| ByteRate(b.0 as f64))
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteRate, E> {
                Ok(ByteRate(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteRate, E> {
                if v < 0 {
                    Err(E::custom(format!("{v}: a throughput cannot be negative")))
                } else {
                    Ok(ByteRate(v as f64))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(Dur::parse("4h").unwrap(), Dur::from_hours(4));
        assert_eq!(Dur::parse("1h30m").unwrap(), Dur::from_mins(90));
        assert_eq!(Dur::parse("250ms").unwrap(), Dur(250));
        assert_eq!(Dur::parse("2d").unwrap(), Dur::from_hours(48));
        assert_eq!(Dur::from_mins(90).to_string(), "1h30m");
        assert_eq!(Dur(0).to_string(), "0s");
        assert!(Dur::parse("5").unwrap_err().contains("no unit"));
        assert!(Dur::parse("5w").unwrap_err().contains("unknown unit"));
        assert!(Dur::parse("h").unwrap_err().contains("expected a number"));
        assert!(Dur::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_763_132_520_000).rfc3339(),
            "2025-11-14T15:02:00Z"
        );
        assert_eq!(Timestamp(951_782_400_000).rfc3339(), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(Bytes::parse("1GiB").unwrap(), Bytes(1 << 30));
        assert_eq!(Bytes::parse("500MB").unwrap(), Bytes(500_000_000));
        assert_eq!(Bytes::parse("1.5TB").unwrap(), Bytes(1_500_000_000_000));
        assert_eq!(Bytes::parse("42").unwrap(), Bytes(42));
        assert!(Bytes::parse("1 parsec").is_err());
        assert!(Bytes::parse("lots").is_err());
    }
}
