//! The only unsafe code of catchup: librdkafka admin calls that rust-rdkafka's safe API lacks,
//! behind a small safe wrapper.
//!
//! Why FFI: config changes must be IncrementalAlterConfigs of one key — rust-rdkafka only offers the
//! legacy AlterConfigs, which resets every other dynamic config of the topic — and lag must be read in batches — one `ListConsumerGroupOffsets` (OffsetFetch) per group and
//! one `ListOffsets` per leader broker — and rust-rdkafka exposes neither admin call. Its consumer-side
//! alternatives need one client instance per group (`committed_offsets`) or one request per partition
//! (`fetch_watermarks`). librdkafka has both admin calls; rdkafka-sys binds them; this module wraps
//! them with owned inputs and outputs so no raw pointer escapes.
//!
//! Every call: build the request, submit it on a private queue, block on that queue for the result
//! event (callers run this off the async executor), copy the result into Rust values, and free
//! everything librdkafka allocated on every path.
//!
//! [`MainQueuePump`] serves a client's main queue, which rust-rdkafka's `AdminClient` never polls:
//! without it librdkafka's log lines pile up there unread for the life of the process (one per
//! failed connection attempt during an outage), and an OAUTHBEARER token refresh request (MSK IAM)
//! is never answered, so the client never authenticates.
//!
//! `admin` holds the three admin calls and the plumbing they share; `queue` the main-queue pump with
//! its log lines and token refreshes. The `allow` below covers both: unsafe code stays inside this
//! module and its children.

#![allow(unsafe_code)]

mod admin;
mod queue;

use std::ffi::{CStr, c_char};

use rdkafka_sys as rd;

pub use admin::{
    AdminError, End, PartitionAnswer, committed_offsets, incremental_alter_topic, list_offsets,
};
pub use queue::{BearerToken, MainQueuePump, TokenSource};

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka returns NUL-terminated strings that live at least as long as the object they
    // were read from; we copy them before that object is freed.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn err_string(err: rd::rd_kafka_resp_err_t) -> Option<String> {
    if err as i32 == 0 {
        return None;
    }
    // SAFETY: rd_kafka_err2str returns a static string for every error code.
    Some(cstr(unsafe { rd::rd_kafka_err2str(err) }))
}

/// One librdkafka object and its destructor: destroyed exactly once, when dropped, on every path.
/// Only ever built from a non-null pointer just returned by the matching constructor.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from the constructor matching `self.1` (see the type's note) and
        // nothing else destroys it.
        unsafe { (self.1)(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use rdkafka::admin::AdminClient;
    use rdkafka::client::DefaultClientContext;

    #[test]
    fn error_codes_become_text_and_success_is_none() {
        assert_eq!(
            err_string(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR),
            None
        );
        let text =
            err_string(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART).unwrap();
        assert!(text.to_lowercase().contains("unknown topic"), "{text}");
        assert_eq!(cstr(std::ptr::null()), "");
    }

    #[test]
    fn an_unreachable_cluster_is_an_error_not_a_hang_or_a_crash() {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .expect("client");
        let err = list_offsets(
            &admin,
            &[("t".into(), 0)],
            End::Latest,
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert_eq!(err.call, "ListOffsets");
        let err = committed_offsets(&admin, "g", Duration::from_millis(500)).unwrap_err();
        assert_eq!(err.call, "ListConsumerGroupOffsets");
        assert!(
            list_offsets(&admin, &[], End::Latest, Duration::from_millis(10))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_pump_answers_token_refreshes_and_again_before_expiry() {
        use std::sync::Mutex;
        let calls = Arc::new(Mutex::new(Vec::<i64>::new()));
        let seen = calls.clone();
        let source: TokenSource = Arc::new(move || {
            let now = crate::clock::wall_now().0;
            seen.lock().unwrap().push(now);
            // A 6-second token: librdkafka must ask again at 80% of that (its refresh timer ticks
            // once a second), before it expires.
            Ok(BearerToken {
                value: "token".into(),
                principal: "catchup".into(),
                expires_ms: now + 6_000,
            })
        });
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "OAUTHBEARER")
            .create()
            .expect("client");
        let pump = MainQueuePump::start(&admin, Some(source));
        std::thread::sleep(Duration::from_millis(6_500));
        drop(pump);
        let calls = calls.lock().unwrap().clone();
        assert!(calls.len() >= 2, "refreshes: {calls:?}");
        let gap = calls[1] - calls[0];
        assert!(
            (4_000..6_000).contains(&gap),
            "second token asked for {gap} ms after the first; the first expires after 6000 ms"
        );
    }

    #[test]
    fn a_failing_token_source_is_retried_not_fatal() {
        use std::sync::atomic::AtomicUsize;
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let source: TokenSource = Arc::new(move || {
            seen.fetch_add(1, Ordering::Relaxed);
            Err("no credentials".into())
        });
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "OAUTHBEARER")
            .create()
            .expect("client");
        let pump = MainQueuePump::start(&admin, Some(source));
        std::thread::sleep(Duration::from_millis(1_000));
        drop(pump);
        assert!(calls.load(Ordering::Relaxed) >= 1);
        // The client is still usable: a call fails cleanly instead of crashing.
        assert!(committed_offsets(&admin, "g", Duration::from_millis(300)).is_err());
    }
}
