//! The per-request counter and latency histogram, with their handles kept per thread.
//!
//! `metrics::counter!` with labels builds a key, hashes it and looks it up in the
//! recorder's registry on every call: about 4 % of a worker's CPU on `GET /api/health`.
//! The label sets are few (route patterns × methods × statuses), so each worker thread
//! keeps the handles it has used; past [`MAX_CACHED`] label sets it stops caching and
//! asks the registry, as before, so the cache cannot grow with what clients send.

use std::cell::RefCell;
use std::collections::HashMap;

use metrics::{Counter, Histogram};

/// Label sets one thread keeps handles for. Routes are patterns (bounded by the route
/// table), methods are bounded by `method_label`, statuses by what the service answers.
const MAX_CACHED: usize = 512;

type Labels = (&'static str, &'static str, u16);

thread_local! {
    static HANDLES: RefCell<HashMap<Labels, (Counter, Histogram)>> = RefCell::new(HashMap::new());
}

/// Counts one request and records its latency, labelled by method, route pattern and
/// status (the counter) and by method and route (the histogram).
pub(crate) fn record(method: &'static str, route: &'static str, status: u16, seconds: f64) {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let key = (method, route, status);
        if let Some((counter, histogram)) = handles.get(&key) {
            counter.increment(1);
            histogram.record(seconds);
            return;
        }
        let (method, route, status) = key;
        let counter = metrics::counter!(
            "http_requests_total",
            "method" => method,
            "route" => route,
            "status" => status.to_string()
        );
        let histogram = metrics::histogram!(
            "http_request_duration_seconds",
            "method" => method,
            "route" => route
        );
        counter.increment(1);
        histogram.record(seconds);
        if handles.len() < MAX_CACHED {
            handles.insert((method, route, status), (counter, histogram));
        }
    });
}
