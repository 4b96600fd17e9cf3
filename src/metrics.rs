//! Prometheus metrics: counters and latency histograms kept in atomics, rendered as text at
//! `/metrics`. One instance per server (tests run several servers in one process).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram (cumulative buckets, sum, count).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    /// Sum in microseconds, so it fits an integer atomic.
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Every metric the server exports.
#[derive(Default)]
pub struct Metrics {
    pub tiles_rendered: AtomicU64,
    pub hits_memory: AtomicU64,
    pub hits_disk: AtomicU64,
    pub misses: AtomicU64,
    pub not_modified: AtomicU64,
    pub db_queries: AtomicU64,
    /// Queries answered from a layer's bin pyramid (also counted in `db_queries`).
    pub pyramid_queries: AtomicU64,
    pub db_query_seconds: Histogram,
    /// Request latency by route, in the order of [`ROUTES`]: a fixed set, so every request
    /// finds its histogram without a lock.
    routes: [Histogram; ROUTES.len()],
}

/// The route labels of `twine_request_seconds` (what `http::route_name` gives), in the
/// order they are rendered.
pub const ROUTES: [&str; 9] = [
    "health",
    "layers",
    "metrics",
    "other",
    "overlay",
    "points_bbox",
    "points_tile",
    "tile",
    "tilejson",
];

/// Gauges read at scrape time from the parts that own them.
#[derive(Default)]
pub struct Gauges {
    pub memory_bytes: u64,
    pub memory_evictions: u64,
    pub disk_bytes: u64,
    pub disk_evictions: u64,
    pub pool: Option<(usize, usize, usize)>,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records one request of `route` (one of [`ROUTES`]) that took `seconds`.
    pub fn observe_route(&self, route: &str, seconds: f64) {
        if let Some(i) = ROUTES.iter().position(|r| *r == route) {
            self.routes[i].observe(seconds);
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "twine_tiles_rendered_total",
            "Tiles and overlays rendered.",
            Self::get(&self.tiles_rendered),
        );
        let _ = writeln!(out, "# HELP twine_cache_hits_total Tiles answered from a cache tier.\n# TYPE twine_cache_hits_total counter");
        let _ = writeln!(
            out,
            "twine_cache_hits_total{{tier=\"memory\"}} {}",
            Self::get(&self.hits_memory)
        );
        let _ = writeln!(
            out,
            "twine_cache_hits_total{{tier=\"disk\"}} {}",
            Self::get(&self.hits_disk)
        );
        counter(
            &mut out,
            "twine_cache_misses_total",
            "Tiles found in no cache tier.",
            Self::get(&self.misses),
        );
        counter(
            &mut out,
            "twine_not_modified_total",
            "304 answers to If-None-Match.",
            Self::get(&self.not_modified),
        );
        let _ = writeln!(
            out,
            "# HELP twine_cache_bytes Bytes held by a cache tier.\n# TYPE twine_cache_bytes gauge"
        );
        let _ = writeln!(
            out,
            "twine_cache_bytes{{tier=\"memory\"}} {}",
            gauges.memory_bytes
        );
        let _ = writeln!(
            out,
            "twine_cache_bytes{{tier=\"disk\"}} {}",
            gauges.disk_bytes
        );
        let _ = writeln!(out, "# HELP twine_cache_evictions_total Tiles evicted from a cache tier.\n# TYPE twine_cache_evictions_total counter");
        let _ = writeln!(
            out,
            "twine_cache_evictions_total{{tier=\"memory\"}} {}",
            gauges.memory_evictions
        );
        let _ = writeln!(
            out,
            "twine_cache_evictions_total{{tier=\"disk\"}} {}",
            gauges.disk_evictions
        );
        counter(
            &mut out,
            "twine_db_queries_total",
            "Point queries sent to PostGIS.",
            Self::get(&self.db_queries),
        );
        counter(
            &mut out,
            "twine_db_pyramid_queries_total",
            "PostGIS queries answered from a layer's precomputed bin pyramid.",
            Self::get(&self.pyramid_queries),
        );
        let _ = writeln!(out, "# HELP twine_db_query_seconds PostGIS query latency.\n# TYPE twine_db_query_seconds histogram");
        self.db_query_seconds
            .render(&mut out, "twine_db_query_seconds", "");
        if let Some((size, available, waiting)) = gauges.pool {
            let _ = writeln!(out, "# HELP twine_db_pool_size Open database connections.\n# TYPE twine_db_pool_size gauge\ntwine_db_pool_size {size}");
            let _ = writeln!(out, "# HELP twine_db_pool_available Idle database connections.\n# TYPE twine_db_pool_available gauge\ntwine_db_pool_available {available}");
            let _ = writeln!(out, "# HELP twine_db_pool_waiting Requests waiting for a connection.\n# TYPE twine_db_pool_waiting gauge\ntwine_db_pool_waiting {waiting}");
        }
        let _ = writeln!(out, "# HELP twine_request_seconds Request latency by route.\n# TYPE twine_request_seconds histogram");
        // Only the routes that have been requested, as before a route's first request.
        for (route, histogram) in ROUTES.iter().zip(&self.routes) {
            if histogram.count.load(Ordering::Relaxed) == 0 {
                continue;
            }
            histogram.render(
                &mut out,
                "twine_request_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.tiles_rendered);
        m.observe_route("tile", 0.003);
        m.observe_route("tile", 2.0);
        let text = m.render(&Gauges {
            memory_bytes: 42,
            ..Gauges::default()
        });
        assert!(text.contains("twine_tiles_rendered_total 1"));
        assert!(text.contains("twine_cache_bytes{tier=\"memory\"} 42"));
        assert!(text.contains("twine_request_seconds_bucket{route=\"tile\",le=\"0.005\"} 1"));
        assert!(text.contains("twine_request_seconds_count{route=\"tile\"} 2"));
    }
}
