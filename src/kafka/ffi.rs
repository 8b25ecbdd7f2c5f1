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

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka_sys as rd;

/// One partition's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionAnswer {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset (librdkafka's -1001 "invalid" when none).
    pub offset: i64,
    /// librdkafka's error for this partition, if any.
    pub error: Option<String>,
}

/// An admin call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {reason}")]
pub struct AdminError {
    /// Which call.
    pub call: &'static str,
    /// What librdkafka said.
    pub reason: String,
}

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

/// Frees the queue, options and event of one call on every path.
struct CallGuard {
    queue: *mut rd::rd_kafka_queue_t,
    options: *mut rd::rd_kafka_AdminOptions_t,
    event: *mut rd::rd_kafka_event_t,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        // SAFETY: each pointer was returned by the matching librdkafka constructor (or is null) and is
        // destroyed exactly once, here.
        unsafe {
            if !self.event.is_null() {
                rd::rd_kafka_event_destroy(self.event);
            }
            if !self.options.is_null() {
                rd::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.queue.is_null() {
                rd::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

fn begin(
    admin: &AdminClient<DefaultClientContext>,
    op: rd::rd_kafka_admin_op_t,
    timeout: Duration,
) -> Result<CallGuard, AdminError> {
    let rk = admin.inner().native_ptr();
    // SAFETY: `rk` is the live handle owned by `admin`, which outlives this call.
    let queue = unsafe { rd::rd_kafka_queue_new(rk) };
    // SAFETY: as above; the options are destroyed by the guard.
    let options = unsafe { rd::rd_kafka_AdminOptions_new(rk, op) };
    let guard = CallGuard {
        queue,
        options,
        event: std::ptr::null_mut(),
    };
    if queue.is_null() || options.is_null() {
        return Err(AdminError {
            call: "admin",
            reason: "librdkafka could not allocate a queue or options".into(),
        });
    }
    let mut errstr = [0 as c_char; 256];
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `options` is valid; `errstr` is a writable buffer of the size passed.
    let err = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if let Some(e) = err_string(err) {
        return Err(AdminError {
            call: "admin options",
            reason: format!("{e}: {}", cstr(errstr.as_ptr())),
        });
    }
    Ok(guard)
}

fn wait(
    guard: &mut CallGuard,
    call: &'static str,
    expected: i32,
    timeout: Duration,
) -> Result<(), AdminError> {
    // librdkafka always delivers a result event for an admin request (an error one once the request
    // timeout passes), and the queue must outlive the request: destroying it while the request is in
    // flight trips librdkafka's own assertions. So wait for the event well past the request timeout;
    // in the pathological case that none comes, leak the queue rather than free it under librdkafka.
    let limit = timeout * 3 + Duration::from_secs(30);
    let deadline = crate::clock::monotonic_now() + limit;
    while guard.event.is_null() && crate::clock::monotonic_now() < deadline {
        // SAFETY: the queue is valid until the guard drops; the event is owned by the guard from here on.
        guard.event = unsafe { rd::rd_kafka_queue_poll(guard.queue, 1000) };
    }
    if guard.event.is_null() {
        guard.queue = std::ptr::null_mut();
        return Err(AdminError {
            call,
            reason: format!("no answer within {limit:?}"),
        });
    }
    // SAFETY: the event is valid.
    let kind = unsafe { rd::rd_kafka_event_type(guard.event) };
    if kind != expected {
        return Err(AdminError {
            call,
            reason: format!("unexpected event type {kind}"),
        });
    }
    // SAFETY: the event is valid.
    let err = unsafe { rd::rd_kafka_event_error(guard.event) };
    if let Some(e) = err_string(err) {
        // SAFETY: the event is valid; the string lives as long as the event.
        let detail = cstr(unsafe { rd::rd_kafka_event_error_string(guard.event) });
        return Err(AdminError {
            call,
            reason: format!("{e}: {detail}"),
        });
    }
    Ok(())
}

/// Copies a librdkafka topic-partition list.
///
/// # Safety
/// `list` must point to a valid list that stays alive for the duration of the call.
unsafe fn copy_list(list: *const rd::rd_kafka_topic_partition_list_t) -> Vec<PartitionAnswer> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `list` is valid; `elems` holds `cnt` initialized entries.
    let (elems, cnt) = unsafe { ((*list).elems, (*list).cnt) };
    (0..usize::try_from(cnt).unwrap_or(0))
        .map(|i| {
            // SAFETY: `i < cnt`, so the entry is within the array.
            let p = unsafe { &*elems.add(i) };
            PartitionAnswer {
                topic: cstr(p.topic),
                partition: p.partition,
                offset: p.offset,
                error: err_string(p.err),
            }
        })
        .collect()
}

/// The committed offsets of `group` on every partition it has committed on (one OffsetFetch).
pub fn committed_offsets(
    admin: &AdminClient<DefaultClientContext>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<PartitionAnswer>, AdminError> {
    const CALL: &str = "ListConsumerGroupOffsets";
    let mut guard = begin(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        timeout,
    )?;
    let group_c = CString::new(group).map_err(|_| AdminError {
        call: CALL,
        reason: "group id contains a NUL byte".into(),
    })?;
    // SAFETY: `group_c` is a valid C string; a null partition list asks for every committed partition.
    let mut request =
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_new(group_c.as_ptr(), std::ptr::null()) };
    if request.is_null() {
        return Err(AdminError {
            call: CALL,
            reason: "librdkafka could not allocate the request".into(),
        });
    }
    // SAFETY: one valid request; librdkafka copies what it needs, so the request is destroyed right
    // after submission; options and queue are valid.
    unsafe {
        rd::rd_kafka_ListConsumerGroupOffsets(
            admin.inner().native_ptr(),
            &mut request,
            1,
            guard.options,
            guard.queue,
        );
        rd::rd_kafka_ListConsumerGroupOffsets_destroy(request);
    }
    wait(
        &mut guard,
        CALL,
        rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
        timeout,
    )?;
    // SAFETY: the event is a ListConsumerGroupOffsets result (checked in `wait`).
    let result = unsafe { rd::rd_kafka_event_ListConsumerGroupOffsets_result(guard.event) };
    let mut n = 0usize;
    // SAFETY: `result` is valid while the event lives; `n` receives the array length.
    let groups = unsafe { rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n) };
    let mut out = Vec::new();
    for i in 0..n {
        // SAFETY: `i < n` entries of a valid array of group results.
        let g = unsafe { *groups.add(i) };
        // SAFETY: `g` is a valid group result.
        let error = unsafe { rd::rd_kafka_group_result_error(g) };
        if !error.is_null() {
            // SAFETY: `error` is a valid error object owned by the result.
            let reason = cstr(unsafe { rd::rd_kafka_error_string(error) });
            return Err(AdminError { call: CALL, reason });
        }
        // SAFETY: `g` is valid; its partition list lives as long as the event.
        out.extend(unsafe { copy_list(rd::rd_kafka_group_result_partitions(g)) });
    }
    Ok(out)
}

/// Which end of each partition to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The log-start offset.
    Earliest,
    /// The log-end offset (high watermark).
    Latest,
}

/// The log-start or log-end offsets of `partitions`, in one ListOffsets request per leader broker.
pub fn list_offsets(
    admin: &AdminClient<DefaultClientContext>,
    partitions: &[(String, i32)],
    end: End,
    timeout: Duration,
) -> Result<Vec<PartitionAnswer>, AdminError> {
    const CALL: &str = "ListOffsets";
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut guard = begin(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS,
        timeout,
    )?;
    let spec = match end {
        End::Earliest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_EARLIEST as i64,
        End::Latest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_LATEST as i64,
    };
    // SAFETY: a new list, destroyed below on every path.
    let list = unsafe {
        rd::rd_kafka_topic_partition_list_new(i32::try_from(partitions.len()).unwrap_or(i32::MAX))
    };
    if list.is_null() {
        return Err(AdminError {
            call: CALL,
            reason: "librdkafka could not allocate the partition list".into(),
        });
    }
    let list = Owned(list, rd::rd_kafka_topic_partition_list_destroy);
    for (topic, partition) in partitions {
        let topic_c = CString::new(topic.as_str()).map_err(|_| AdminError {
            call: CALL,
            reason: format!("topic {topic:?} contains a NUL byte"),
        })?;
        // SAFETY: the list is valid; librdkafka copies the topic name; the returned entry is owned by
        // the list and stays valid until the next add.
        let entry =
            unsafe { rd::rd_kafka_topic_partition_list_add(list.0, topic_c.as_ptr(), *partition) };
        if entry.is_null() {
            return Err(AdminError {
                call: CALL,
                reason: "librdkafka could not add a partition".into(),
            });
        }
        // SAFETY: `entry` points to the element just added.
        unsafe { (*entry).offset = spec };
    }
    // SAFETY: all arguments valid; librdkafka copies the list.
    unsafe {
        rd::rd_kafka_ListOffsets(
            admin.inner().native_ptr(),
            list.0,
            guard.options,
            guard.queue,
        )
    };
    wait(
        &mut guard,
        CALL,
        rd::RD_KAFKA_EVENT_LISTOFFSETS_RESULT,
        timeout,
    )?;
    // SAFETY: the event is a ListOffsets result (checked in `wait`).
    let result = unsafe { rd::rd_kafka_event_ListOffsets_result(guard.event) };
    let mut n = 0usize;
    // SAFETY: `result` is valid while the event lives.
    let infos = unsafe { rd::rd_kafka_ListOffsets_result_infos(result, &mut n) };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: `i < n` entries of a valid array; each info's partition lives as long as the event.
        let p = unsafe { &*rd::rd_kafka_ListOffsetsResultInfo_topic_partition(*infos.add(i)) };
        out.push(PartitionAnswer {
            topic: cstr(p.topic),
            partition: p.partition,
            offset: p.offset,
            error: err_string(p.err),
        });
    }
    Ok(out)
}

/// One incremental config operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterOp {
    /// SET the key to this value on the resource.
    Set(String),
    /// DELETE the key from the resource (it inherits again).
    Delete,
}

/// IncrementalAlterConfigs of one key of one topic: every other config of the topic is left exactly
/// as it is (unlike the legacy AlterConfigs, which resets what it is not given).
pub fn incremental_alter_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    key: &str,
    op: &AlterOp,
    timeout: Duration,
) -> Result<(), AdminError> {
    const CALL: &str = "IncrementalAlterConfigs";
    let mut guard = begin(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        timeout,
    )?;
    let nul = |what: &str| AdminError {
        call: CALL,
        reason: format!("{what} contains a NUL byte"),
    };
    let topic_c = CString::new(topic).map_err(|_| nul("topic"))?;
    let key_c = CString::new(key).map_err(|_| nul("key"))?;
    let (op_type, value_c) = match op {
        AlterOp::Set(v) => (
            rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
            Some(CString::new(v.as_str()).map_err(|_| nul("value"))?),
        ),
        AlterOp::Delete => (
            rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
            None,
        ),
    };
    // SAFETY: a valid C string; the resource is destroyed below on every path.
    let mut resource = unsafe {
        rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            topic_c.as_ptr(),
        )
    };
    if resource.is_null() {
        return Err(AdminError {
            call: CALL,
            reason: "librdkafka could not allocate the resource".into(),
        });
    }
    let _resource_guard = Owned(resource, rd::rd_kafka_ConfigResource_destroy);
    let value_ptr = value_c.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: valid resource and C strings (a null value is allowed for DELETE); librdkafka copies them.
    let error = unsafe {
        rd::rd_kafka_ConfigResource_add_incremental_config(
            resource,
            key_c.as_ptr(),
            op_type,
            value_ptr,
        )
    };
    if !error.is_null() {
        // SAFETY: a valid error object we own; read, then destroy it once.
        let reason = cstr(unsafe { rd::rd_kafka_error_string(error) });
        unsafe { rd::rd_kafka_error_destroy(error) };
        return Err(AdminError { call: CALL, reason });
    }
    // SAFETY: one valid resource; librdkafka copies what it needs; options and queue are valid.
    unsafe {
        rd::rd_kafka_IncrementalAlterConfigs(
            admin.inner().native_ptr(),
            &mut resource,
            1,
            guard.options,
            guard.queue,
        )
    };
    wait(
        &mut guard,
        CALL,
        rd::RD_KAFKA_EVENT_INCREMENTALALTERCONFIGS_RESULT,
        timeout,
    )?;
    // SAFETY: the event is an IncrementalAlterConfigs result (checked in `wait`).
    let result = unsafe { rd::rd_kafka_event_IncrementalAlterConfigs_result(guard.event) };
    let mut n = 0usize;
    // SAFETY: `result` is valid while the event lives.
    let resources =
        unsafe { rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut n) };
    for i in 0..n {
        // SAFETY: `i < n` entries of a valid array.
        let r = unsafe { *resources.add(i) };
        // SAFETY: `r` is a valid resource result.
        let err = unsafe { rd::rd_kafka_ConfigResource_error(r) };
        if let Some(e) = err_string(err) {
            // SAFETY: as above; the string lives as long as the event.
            let detail = cstr(unsafe { rd::rd_kafka_ConfigResource_error_string(r) });
            return Err(AdminError {
                call: CALL,
                reason: format!("{e}: {detail}"),
            });
        }
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
