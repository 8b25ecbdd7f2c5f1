//! The connections: accepted up to `api.limits.max_connections` (more are closed at once, so the
//! process keeps file descriptors for its state directory and the cluster), each served by hyper's
//! HTTP/1, and closed when a request's headers take longer than `api.limits.header_timeout` from
//! their first byte, or once idle: no request in progress and no byte moving for
//! `api.limits.idle_timeout`. A long-poll in progress is not idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::config::ApiLimits;

/// Descriptors kept free below the open-file limit for everything but connections.
const FD_RESERVE: u64 = 128;

/// Serves `app` on `listener` until `shutdown` completes; connections then finish the request in
/// progress (at most 5 s more).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ApiLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = connection_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(max));
    let (closing, closed) = watch::channel(false);
    let header_timeout = Duration::from_millis(limits.header_timeout.0);
    let idle_timeout = Duration::from_millis(limits.idle_timeout.0);
    let mut refused = 0u64;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory: wait for connections to close rather than spin.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                warn!(
                    refused,
                    max_connections = max,
                    "connection refused: api.limits.max_connections open already"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            connection(stream, app, header_timeout, idle_timeout, closed).await;
            drop(slot);
        });
    }
    let _ = closing.send(true);
    drop(listener);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(all)).await;
    Ok(())
}

/// `configured`, but never more than the open-file limit allows with [`FD_RESERVE`] kept free.
fn connection_cap(configured: u32) -> usize {
    let cap = match open_file_limit() {
        Some(limit) if limit > FD_RESERVE * 2 && u64::from(configured) > limit - FD_RESERVE => {
            let cap = limit - FD_RESERVE;
            warn!(
                configured,
                open_file_limit = limit,
                cap,
                "api.limits.max_connections is above the open-file limit: lowered"
            );
            cap
        }
        _ => u64::from(configured),
    };
    usize::try_from(cap).unwrap_or(usize::MAX).max(1)
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Last activity (ms since the connection started), requests in progress, and since when the
/// headers of the next request have been arriving (ms + 1; 0 while none are).
#[derive(Default)]
struct Activity {
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    headers_since: AtomicU64,
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    header_timeout: Duration,
    idle_timeout: Duration,
    mut closed: watch::Receiver<bool>,
) {
    let start = tokio::time::Instant::now();
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
        start,
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let guard = InFlight::new(activity.clone(), start);
            async move {
                let resp = app.oneshot(req.map(axum::body::Body::new)).await;
                drop(guard);
                resp
            }
        })
    };
    // hyper's own header timeout would also run while a kept-alive connection waits for its next
    // request, making it the idle timeout: the header timeout here starts at the request's first
    // byte instead.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let check = (idle_timeout.min(header_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(error = %e, "connection ended");
                }
                return;
            }
            () = tokio::time::sleep(check) => {
                let now = start.elapsed();
                let since = |ms: u64| now.saturating_sub(Duration::from_millis(ms));
                if activity.in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                let idle_for = since(activity.last_ms.load(Ordering::Relaxed));
                if idle_for >= idle_timeout {
                    debug!(?idle_for, "idle connection closed");
                    return;
                }
                let headers = activity.headers_since.load(Ordering::Relaxed);
                if headers > 0 && since(headers - 1) >= header_timeout {
                    debug!("connection closed: its request headers did not arrive in time");
                    return;
                }
            }
            changed = closed.changed(), if !closing => {
                closing = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Counts a request in progress while alive.
struct InFlight {
    activity: Arc<Activity>,
    start: tokio::time::Instant,
}

impl InFlight {
    fn new(activity: Arc<Activity>, start: tokio::time::Instant) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.headers_since.store(0, Ordering::Relaxed);
        InFlight { activity, start }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        touch(&self.activity, self.start);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn touch(activity: &Activity, start: tokio::time::Instant) {
    activity
        .last_ms
        .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
}

/// A stream that notes when bytes last moved.
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
    start: tokio::time::Instant,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            touch(&self.activity, self.start);
            let a = &self.activity;
            if a.in_flight.load(Ordering::Relaxed) == 0
                && a.headers_since.load(Ordering::Relaxed) == 0
            {
                let ms = self.start.elapsed().as_millis() as u64;
                a.headers_since.store(ms + 1, Ordering::Relaxed);
            }
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            touch(&self.activity, self.start);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
