//! The admin calls: `ListConsumerGroupOffsets` (committed offsets of a group), `ListOffsets`
//! (log-start or log-end offsets, one request per leader broker) and `IncrementalAlterConfigs` (one
//! key of one topic), on the plumbing they share: `begin` a call on a private queue, submit it,
//! `wait` for its result event, copy the answer out, free everything on every path.

use std::ffi::{CString, c_char};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka_sys as rd;

use super::{Owned, cstr, err_string};
use crate::actuators::retention::guard::{Approved, RetentionChange};

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
    let limit = timeout
        .saturating_mul(3)
        .saturating_add(Duration::from_secs(30))
        .min(Duration::from_secs(3600));
    let start = crate::clock::monotonic_now();
    while guard.event.is_null() && start.elapsed() < limit {
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

/// The C strings and librdkafka operation type of `op` on `key` of `topic`, or which one holds a NUL
/// byte.
fn alter_args(
    call: &'static str,
    approved: &Approved,
) -> Result<
    (
        CString,
        CString,
        rd::rd_kafka_AlterConfigOpType_t,
        Option<CString>,
    ),
    AdminError,
> {
    let (topic, change) = (approved.topic(), approved.change());
    let key = change.key().name();
    let nul = |what: &str| AdminError {
        call,
        reason: format!("{what} contains a NUL byte"),
    };
    let topic_c = CString::new(topic).map_err(|_| nul("topic"))?;
    let key_c = CString::new(key).map_err(|_| nul("key"))?;
    let (op_type, value_c) = match change {
        RetentionChange::Set { value: v, .. } => (
            rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
            Some(CString::new(v.as_str()).map_err(|_| nul("value"))?),
        ),
        RetentionChange::Delete { .. } => (
            rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
            None,
        ),
    };
    Ok((topic_c, key_c, op_type, value_c))
}

/// IncrementalAlterConfigs of the one managed key of one topic, as the retention guard approved it
/// at the last hop (an [`Approved`] change is the only thing this takes): every other config of the
/// topic is left exactly as it is (unlike the legacy AlterConfigs, which resets what it is not
/// given).
pub fn incremental_alter_topic(
    admin: &AdminClient<DefaultClientContext>,
    approved: &Approved,
    timeout: Duration,
) -> Result<(), AdminError> {
    const CALL: &str = "IncrementalAlterConfigs";
    let mut guard = begin(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        timeout,
    )?;
    let (topic_c, key_c, op_type, value_c) = alter_args(CALL, approved)?;
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
