//! Prometheus metrics of one server, in its own `prometheus` registry, served at `/metrics`.
//!
//! Each server owns a private [`Registry`] rather than the crate's global default, so the
//! tests that run several servers in one process count each server's requests apart.

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Latency bucket bounds in seconds, of both histograms: dashboards compute quantiles from
/// these exact bounds, so changing them breaks their history.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The route labels of `twine_request_seconds` (what `http::route_name` gives).
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

/// Every metric the server exports. The counters and histograms that requests touch are
/// resolved children (an atomic add each), never looked up by label on the request path.
pub struct Metrics {
    registry: Registry,
    pub tiles_rendered: IntCounter,
    pub hits_memory: IntCounter,
    pub hits_disk: IntCounter,
    pub misses: IntCounter,
    /// `twine_cache_writes_skipped_total{tier="disk"}`: rendered tiles not written to disk
    /// because the writes in flight were at their bound (a stalled disk).
    pub disk_writes_skipped: IntCounter,
    pub not_modified: IntCounter,
    pub db_queries: IntCounter,
    /// Queries answered from a layer's bin pyramid (also counted in `db_queries`), by layer.
    pub pyramid_queries: IntCounterVec,
    /// Queries that look for a density reference in the points (also counted in
    /// `db_queries`): none where a pyramid or the count grid gives it.
    pub reference_queries: IntCounter,
    pub db_query_seconds: Histogram,
    request_seconds: HistogramVec,
    /// `request_seconds`'s child of each route of [`ROUTES`], in that order, made at the
    /// route's first request: a route appears in `/metrics` once requested (as it always
    /// has), and every later request finds its histogram without the vector's lock.
    routes: [OnceLock<Histogram>; ROUTES.len()],
    /// The metrics whose values other parts own, copied in at each scrape.
    scraped: Mutex<Scraped>,
    /// Registered at the first scrape that has a database pool: a server without a
    /// database exports no pool gauges.
    pool: OnceLock<PoolGauges>,
}

/// Metrics set from [`Gauges`] at scrape time. Behind a lock because a counter can only be
/// increased: two concurrent scrapes must not both add the same difference.
struct Scraped {
    memory_bytes: IntGauge,
    disk_bytes: IntGauge,
    memory_evictions: IntCounter,
    disk_evictions: IntCounter,
    /// `twine_cache_rejected_files_total{reason}`: a child per reason once a scrape brings it.
    disk_rejected: IntCounterVec,
}

struct PoolGauges {
    size: IntGauge,
    available: IntGauge,
    waiting: IntGauge,
}

/// Gauges read at scrape time from the parts that own them.
#[derive(Default)]
pub struct Gauges {
    pub memory_bytes: u64,
    pub memory_evictions: u64,
    pub disk_bytes: u64,
    pub disk_evictions: u64,
    /// Files the disk tier dropped rather than read, by reason (label, total so far).
    pub disk_rejected: Vec<(&'static str, u64)>,
    pub pool: Option<(usize, usize, usize)>,
}

/// The message of every registration `expect`: names and labels are fixed strings, so a
/// failure is a programming error found by any test that builds a server.
const FIXED: &str = "metric names and labels are fixed, valid and unique";

fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry.register(Box::new(metric.clone())).expect(FIXED);
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect(FIXED))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect(FIXED))
}

/// A metric by cache tier (`vec`, labelled `tier` only), registered: its `memory` and `disk`
/// children, resolved once so the request path never looks a label up.
fn by_tier<T: MetricVecBuilder + 'static>(
    registry: &Registry,
    vec: prometheus::Result<MetricVec<T>>,
) -> (T::M, T::M) {
    let vec = register(registry, vec.expect(FIXED));
    (
        vec.with_label_values(&["memory"]),
        vec.with_label_values(&["disk"]),
    )
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(BUCKETS.to_vec())
}

/// Raises `counter` to `total`, a count kept by its owner (never lowered: a counter that
/// went down would read as a restart).
fn follow(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// A count as a gauge's `i64`, saturated (byte counts never come near `i64::MAX`).
fn gauge_value(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let (hits_memory, hits_disk) = by_tier(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "twine_cache_hits_total",
                    "Tiles answered from a cache tier.",
                ),
                &["tier"],
            ),
        );
        let (memory_bytes, disk_bytes) = by_tier(
            &r,
            IntGaugeVec::new(
                Opts::new("twine_cache_bytes", "Bytes held by a cache tier."),
                &["tier"],
            ),
        );
        let (memory_evictions, disk_evictions) = by_tier(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "twine_cache_evictions_total",
                    "Tiles evicted from a cache tier.",
                ),
                &["tier"],
            ),
        );
        let disk_rejected = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "twine_cache_rejected_files_total",
                    "Files in the disk cache folder dropped rather than read, by reason: \
                     symlink, not_regular (a FIFO, socket, device or folder), too_large, corrupt.",
                ),
                &["reason"],
            )
            .expect(FIXED),
        );
        let disk_writes_skipped = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "twine_cache_writes_skipped_total",
                    "Rendered tiles not written to a cache tier because too many writes to it \
                     were in flight (a stalled disk); they are rendered again when next asked for.",
                ),
                &["tier"],
            )
            .expect(FIXED),
        )
        .with_label_values(&["disk"]);
        let scraped = Scraped {
            memory_bytes,
            disk_bytes,
            memory_evictions,
            disk_evictions,
            disk_rejected,
        };
        Metrics {
            tiles_rendered: counter(
                &r,
                "twine_tiles_rendered_total",
                "Tiles and overlays rendered.",
            ),
            hits_memory,
            hits_disk,
            misses: counter(
                &r,
                "twine_cache_misses_total",
                "Tiles found in no cache tier.",
            ),
            disk_writes_skipped,
            not_modified: counter(
                &r,
                "twine_not_modified_total",
                "304 answers to If-None-Match.",
            ),
            db_queries: counter(
                &r,
                "twine_db_queries_total",
                "Point queries sent to PostGIS.",
            ),
            pyramid_queries: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "twine_db_pyramid_queries_total",
                        "PostGIS queries answered from a layer's precomputed bin pyramid, by layer.",
                    ),
                    &["layer"],
                )
                .expect(FIXED),
            ),
            reference_queries: counter(
                &r,
                "twine_db_reference_queries_total",
                "PostGIS queries that search a layer's points for the density style's reference.",
            ),
            db_query_seconds: register(
                &r,
                Histogram::with_opts(latency("twine_db_query_seconds", "PostGIS query latency."))
                    .expect(FIXED),
            ),
            request_seconds: register(
                &r,
                HistogramVec::new(
                    latency("twine_request_seconds", "Request latency by route."),
                    &["route"],
                )
                .expect(FIXED),
            ),
            routes: Default::default(),
            scraped: Mutex::new(scraped),
            pool: OnceLock::new(),
            registry: r,
        }
    }

    /// Records one request of `route` (one of [`ROUTES`]) that took `seconds`.
    pub fn observe_route(&self, route: &str, seconds: f64) {
        if let Some(i) = ROUTES.iter().position(|r| *r == route) {
            self.routes[i]
                .get_or_init(|| self.request_seconds.with_label_values(&[ROUTES[i]]))
                .observe(seconds);
        }
    }

    /// Prometheus text exposition format, with `gauges` as the values of the metrics that
    /// other parts own.
    pub fn render(&self, gauges: &Gauges) -> Result<String, prometheus::Error> {
        {
            // A panic while the lock was held left only plain numbers behind: go on.
            let s = self.scraped.lock().unwrap_or_else(PoisonError::into_inner);
            s.memory_bytes.set(gauge_value(gauges.memory_bytes));
            s.disk_bytes.set(gauge_value(gauges.disk_bytes));
            follow(&s.memory_evictions, gauges.memory_evictions);
            follow(&s.disk_evictions, gauges.disk_evictions);
            for &(reason, total) in &gauges.disk_rejected {
                follow(&s.disk_rejected.with_label_values(&[reason]), total);
            }
        }
        if let Some((size, available, waiting)) = gauges.pool {
            let pool = self.pool.get_or_init(|| PoolGauges {
                size: gauge(
                    &self.registry,
                    "twine_db_pool_size",
                    "Open database connections.",
                ),
                available: gauge(
                    &self.registry,
                    "twine_db_pool_available",
                    "Idle database connections.",
                ),
                waiting: gauge(
                    &self.registry,
                    "twine_db_pool_waiting",
                    "Requests waiting for a connection.",
                ),
            });
            pool.size.set(gauge_value(size));
            pool.available.set(gauge_value(available));
            pool.waiting.set(gauge_value(waiting));
        }
        // Fails only on a malformed family, which the fixed names above rule out; the error
        // is returned rather than the families written so far, which may end mid-family.
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.tiles_rendered.inc();
        m.observe_route("tile", 0.003);
        m.observe_route("tile", 2.0);
        let text = m
            .render(&Gauges {
                memory_bytes: 42,
                ..Gauges::default()
            })
            .expect("encodes");
        assert!(text.contains("twine_tiles_rendered_total 1\n"));
        assert!(text.contains("twine_cache_bytes{tier=\"memory\"} 42\n"));
        assert!(text.contains("twine_request_seconds_bucket{route=\"tile\",le=\"0.005\"} 1\n"));
        assert!(text.contains("twine_request_seconds_bucket{route=\"tile\",le=\"5\"} 2\n"));
        assert!(text.contains("twine_request_seconds_count{route=\"tile\"} 2\n"));
        // A route appears at its first request; no database, no pool gauges.
        assert!(!text.contains("route=\"health\""));
        assert!(!text.contains("twine_db_pool"));
    }

    #[test]
    fn scraped_counters_follow_their_owners_totals() {
        let m = Metrics::default();
        let scrape = |evictions, pool| {
            m.render(&Gauges {
                memory_evictions: evictions,
                pool,
                ..Gauges::default()
            })
            .expect("encodes")
        };
        scrape(5, None);
        let text = m
            .render(&Gauges {
                memory_evictions: 7,
                disk_rejected: vec![("symlink", 2), ("corrupt", 0)],
                pool: Some((4, 3, 1)),
                ..Gauges::default()
            })
            .expect("encodes");
        assert!(text.contains("twine_cache_rejected_files_total{reason=\"symlink\"} 2\n"));
        assert!(text.contains("twine_cache_rejected_files_total{reason=\"corrupt\"} 0\n"));
        assert!(text.contains("twine_cache_evictions_total{tier=\"memory\"} 7\n"));
        assert!(text.contains("twine_db_pool_size 4\n"));
        assert!(text.contains("twine_db_pool_waiting 1\n"));
        // A total that went down (it cannot, but) leaves the counter where it was.
        let text = scrape(6, Some((4, 4, 0)));
        assert!(text.contains("twine_cache_evictions_total{tier=\"memory\"} 7\n"));
        assert!(text.contains("twine_db_pool_available 4\n"));
    }

    #[test]
    fn servers_count_apart() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.misses.inc();
        assert!(a
            .render(&Gauges::default())
            .expect("encodes")
            .contains("twine_cache_misses_total 1\n"));
        assert!(b
            .render(&Gauges::default())
            .expect("encodes")
            .contains("twine_cache_misses_total 0\n"));
    }
}
