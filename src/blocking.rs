//! Blocking work (fsync of the state directory, librdkafka's synchronous admin calls) called from
//! async code: run where it does not stall the async workers.

/// Runs `f` off the async workers when called on a multi-threaded tokio runtime (the service's),
/// so a slow fsync or a broker that takes its time does not hold up the API; anywhere else (the
/// simulator, single-threaded tests, plain threads) runs it in place.
pub fn off_async<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_in_place_outside_a_runtime() {
        assert_eq!(off_async(|| 7), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn other_tasks_go_on_while_it_blocks() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        // With one worker, a plain blocking call here would stop the ticker for 200 ms.
        off_async(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert!(
            during > 10,
            "the ticker ran {during} times while off_async blocked"
        );
    }

    #[tokio::test]
    async fn runs_in_place_on_a_single_threaded_runtime() {
        assert_eq!(off_async(|| 8), 8);
    }
}
