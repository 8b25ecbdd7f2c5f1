//! Serving a client's main queue: librdkafka's log lines go to `tracing`, error events are logged,
//! and OAUTHBEARER token refresh requests (MSK IAM) are answered from a token source.

use std::ffi::{CString, c_char};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka_sys as rd;

use super::{cstr, err_string};

/// An OAUTHBEARER token for librdkafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerToken {
    /// The token.
    pub value: String,
    /// The principal librdkafka reports it for (logs only; the broker derives its own).
    pub principal: String,
    /// When it expires, ms since the Unix epoch; librdkafka asks for a new one at 80% of the lifetime.
    pub expires_ms: i64,
}

/// Makes OAUTHBEARER tokens on request (blocking; called on the pump's thread).
pub type TokenSource = Arc<dyn Fn() -> Result<BearerToken, String> + Send + Sync>;

/// A client handle that may cross to the pump thread.
struct ClientPtr(*mut rd::rd_kafka_t);

// SAFETY: librdkafka client handles are thread-safe for the calls the pump makes (queue poll, set
// token); the pump is joined before the client it serves is destroyed (see `MainQueuePump`).
unsafe impl Send for ClientPtr {}

/// Serves a client's main queue on a thread of its own until dropped: log lines go to `tracing`,
/// error events are logged, OAUTHBEARER refresh requests are answered from the token source.
///
/// Must be dropped before the client it serves: keep it in a field declared before the client.
pub struct MainQueuePump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MainQueuePump {
    /// Starts serving `admin`'s main queue.
    pub fn start(
        admin: &AdminClient<DefaultClientContext>,
        tokens: Option<TokenSource>,
    ) -> MainQueuePump {
        let stop = Arc::new(AtomicBool::new(false));
        let client = ClientPtr(admin.inner().native_ptr());
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rdkafka-main-queue".into())
            .spawn(move || serve_main_queue(client, &flag, tokens.as_ref()))
            .ok();
        MainQueuePump { stop, thread }
    }
}

impl Drop for MainQueuePump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_main_queue(client: ClientPtr, stop: &AtomicBool, tokens: Option<&TokenSource>) {
    let rk = client.0;
    // SAFETY: `rk` is a live client (the pump is joined before it is destroyed); the queue handle is
    // released below.
    let queue = unsafe { rd::rd_kafka_queue_get_main(rk) };
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `queue` is the live main queue; the event returned (or null) is destroyed below.
        let event = unsafe { rd::rd_kafka_queue_poll(queue, 200) };
        if event.is_null() {
            continue;
        }
        // SAFETY: `event` is a live event until destroyed at the end of this iteration.
        match unsafe { rd::rd_kafka_event_type(event) } {
            rd::RD_KAFKA_EVENT_LOG => log_event(event),
            rd::RD_KAFKA_EVENT_ERROR => {
                // SAFETY: as above; the string lives as long as the event and is copied.
                let reason = cstr(unsafe { rd::rd_kafka_event_error_string(event) });
                tracing::warn!(target: "librdkafka", "{reason}");
            }
            rd::RD_KAFKA_EVENT_OAUTHBEARER_TOKEN_REFRESH => refresh_token(rk, tokens),
            _ => {}
        }
        // SAFETY: destroyed exactly once.
        unsafe { rd::rd_kafka_event_destroy(event) };
    }
    // SAFETY: releases the reference `rd_kafka_queue_get_main` took.
    unsafe { rd::rd_kafka_queue_destroy(queue) };
}

fn log_event(event: *mut rd::rd_kafka_event_t) {
    let (mut fac, mut text, mut level) = (std::ptr::null(), std::ptr::null(), 0);
    // SAFETY: `event` is a live log event; the out-pointers point at locals; the strings live as
    // long as the event and are copied before it is destroyed.
    if unsafe { rd::rd_kafka_event_log(event, &mut fac, &mut text, &mut level) } != 0 {
        return;
    }
    let (fac, text) = (cstr(fac), cstr(text));
    // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug.
    match level {
        0..=3 => tracing::error!(target: "librdkafka", facility = %fac, "{text}"),
        4 => tracing::warn!(target: "librdkafka", facility = %fac, "{text}"),
        5 | 6 => tracing::info!(target: "librdkafka", facility = %fac, "{text}"),
        _ => tracing::debug!(target: "librdkafka", facility = %fac, "{text}"),
    }
}

fn refresh_token(rk: *mut rd::rd_kafka_t, tokens: Option<&TokenSource>) {
    let result = match tokens {
        Some(source) => source(),
        None => Err("sasl.mechanism is OAUTHBEARER but no token source is configured (use sasl_mechanism = \"AWS_MSK_IAM\" for MSK IAM)".into()),
    };
    let failure = match result {
        Ok(token) => match set_token(rk, &token) {
            Ok(()) => {
                tracing::debug!(expires_ms = token.expires_ms, "OAUTHBEARER token set");
                return;
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    tracing::warn!(reason = %failure, "OAUTHBEARER token refresh failed; librdkafka retries in 10 s");
    let reason = CString::new(failure.replace('\0', " ")).unwrap_or_default();
    // SAFETY: `rk` is live; `reason` outlives the call.
    unsafe { rd::rd_kafka_oauthbearer_set_token_failure(rk, reason.as_ptr()) };
}

fn set_token(rk: *mut rd::rd_kafka_t, token: &BearerToken) -> Result<(), String> {
    let value = CString::new(token.value.as_str()).map_err(|e| e.to_string())?;
    let principal = CString::new(token.principal.as_str()).map_err(|e| e.to_string())?;
    let mut errstr = [0 as c_char; 512];
    // SAFETY: `rk` is live; every string outlives the call; no extensions (null, 0); `errstr` is a
    // writable buffer of the length passed.
    let err = unsafe {
        rd::rd_kafka_oauthbearer_set_token(
            rk,
            value.as_ptr(),
            token.expires_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    match err_string(err) {
        None => Ok(()),
        Some(e) => Err(format!("{e}: {}", cstr(errstr.as_ptr()))),
    }
}
