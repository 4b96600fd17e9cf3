//! In-process cost of a tile request answered from the memory tier: the app's middleware,
//! which answers memory hits before routing (parameters, cache key, LRU lookup), and the
//! response's headers, without sockets or HTTP/1 encoding (benches/load.sh measures those,
//! with wrk).
//!
//! - `memory_hit/plain`: the 85 tiles of zooms 0-3 of the demo layer, no query string;
//! - `memory_hit/styled`: the same tiles with `?style=smooth&radius=30&scheme=fire`.
//!
//! Run with `cargo bench --bench http_hit`.

use actix_web::test;
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::{Duration, Instant};
use twine_heatmap::cache::{memory::MemoryCache, TileCache};
use twine_heatmap::http::{self, AppState};
use twine_heatmap::layer::{Layer, Registry};
use twine_heatmap::source::{load::demo_points, memory::MemoryStore};

/// Every tile of zooms 0..=3, with `query` appended.
fn tile_paths(query: &str) -> Vec<String> {
    (0..=3u32)
        .flat_map(|z| (0..1u32 << z).flat_map(move |x| (0..1u32 << z).map(move |y| (z, x, y))))
        .map(|(z, x, y)| format!("/tiles/demo/{z}/{x}/{y}.png{query}"))
        .collect()
}

fn demo_state() -> AppState {
    let layers = Registry::default();
    let points = demo_points().expect("the embedded demo layer loads");
    layers
        .insert(Layer::new(
            "demo",
            Arc::new(MemoryStore::new(points, Some("GeoNames".into()))),
        ))
        .expect("one layer");
    let mut state = AppState::new(layers);
    state.cache = Arc::new(TileCache::new(Some(MemoryCache::new(256 << 20)), None));
    state
}

fn memory_hit(c: &mut Criterion) {
    let runner = actix_web::rt::System::new();
    let app = runner.block_on(test::init_service(http::app(demo_state())));
    let mut group = c.benchmark_group("memory_hit");
    group.measurement_time(Duration::from_secs(5));
    for (name, query) in [
        ("plain", ""),
        ("styled", "?style=smooth&radius=30&scheme=fire"),
    ] {
        let paths = tile_paths(query);
        // One pass renders the tiles into the memory tier; then every request is a hit.
        runner.block_on(async {
            for path in &paths {
                let res =
                    test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
                assert!(res.status().is_success(), "{path}: {}", res.status());
            }
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runner.block_on(async {
                    let started = Instant::now();
                    for i in 0..iters {
                        let path = &paths[(i as usize) % paths.len()];
                        let res = test::call_service(
                            &app,
                            test::TestRequest::get().uri(path).to_request(),
                        )
                        .await;
                        debug_assert_eq!(
                            res.headers().get("x-cache").map(|v| v.as_bytes()),
                            Some(&b"hit-memory"[..])
                        );
                        criterion::black_box(res);
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, memory_hit);
criterion_main!(benches);
