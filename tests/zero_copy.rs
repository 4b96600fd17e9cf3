//! Memory-tier tiles sent with `sendfile` from the shared tile file (`cache::shm`): they
//! arrive byte for byte, and a tile evicted (its pages freed and the range reused by another
//! tile) while its answer still sits unread in the socket arrives intact.
//!
//! One test in this file on purpose: the sendfile byte counter is per process, and another
//! test running beside it would move it.

mod common;

use common::wire::pipeline;
use common::{metric, TestServer};
use std::time::Duration;
use twine_heatmap::app::ServeArgs;

fn server(cache_memory: &str) -> TestServer {
    TestServer::from_args(&ServeArgs {
        cache_memory: Some(cache_memory.into()),
        ..ServeArgs::default()
    })
}

/// A counter's value.
fn count(server: &TestServer, name: &str) -> u64 {
    metric(server, name) as u64
}

const SENT: &str = "twine_http_sendfile_bytes_total";

#[test]
fn memory_tiles_go_out_with_sendfile_and_survive_eviction_in_flight() {
    // The reference: no memory tier, so every answer is rendered and written from the heap.
    let reference = server("0");

    // A large tile: the miss is written from the heap, the memory hit with sendfile.
    let cached = server("64MB");
    let path = "/tiles/demo/3/4/2.png";
    let miss = cached.get(path);
    assert_eq!(miss.header("x-cache"), Some("miss"));
    assert!(miss.body.len() > 8192, "{} bytes", miss.body.len());
    let before = count(&cached, SENT);
    let hit = cached.get(path);
    assert_eq!(hit.header("x-cache"), Some("hit-memory"));
    assert!(hit.body == miss.body, "the sendfile answer differs");
    assert!(hit.body == reference.get(path).body);
    assert_eq!(count(&cached, SENT) - before, hit.body.len() as u64);
    assert!(count(&cached, "twine_cache_shm_bytes") >= hit.body.len() as u64);

    // A small tile (here the empty one) stays on the heap: no sendfile.
    let small = "/tiles/demo/8/0/120.png";
    cached.get(small);
    let before = count(&cached, SENT);
    let small_hit = cached.get(small);
    assert_eq!(small_hit.header("x-cache"), Some("hit-memory"));
    assert!(
        small_hit.body.len() < 4096,
        "{} bytes",
        small_hit.body.len()
    );
    assert_eq!(count(&cached, SENT), before);

    // Eviction in flight: a budget of a few tiles, and each of 96 tiles asked twice in a row
    // on one connection (a miss, then a memory hit sent with sendfile) without reading.
    // Later tiles evict earlier ones, whose freed ranges new tiles reuse, while the earlier
    // answers still sit in the socket buffers.
    let tight = server("150000");
    let paths: Vec<String> = (0..96)
        .map(|i| format!("/tiles/demo/4/{}/{}.png", i % 16, 2 + i / 16))
        .flat_map(|path| [path.clone(), path])
        .collect();
    let before = count(&tight, SENT);
    let requests: Vec<(&str, &str)> = paths.iter().map(|p| ("GET", p.as_str())).collect();
    let bodies: Vec<Vec<u8>> = pipeline(&tight, &requests, Duration::from_secs(3))
        .into_iter()
        .map(|answer| answer.body)
        .collect();
    let sent = count(&tight, SENT) - before;
    for (path, body) in paths.iter().zip(&bodies) {
        assert!(*body == reference.get(path).body, "{path}: body differs");
    }
    let large_hits: u64 = bodies
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|b| b.len() >= 4096)
        .map(|b| b.len() as u64)
        .sum();
    assert!(large_hits > 500_000, "{large_hits} bytes of large hits");
    assert_eq!(sent, large_hits, "every large hit went out with sendfile");
    assert!(count(&tight, "twine_cache_evictions_total{tier=\"memory\"}") > 80);
    assert!(count(&tight, "twine_cache_bytes{tier=\"memory\"}") <= 150_000);
}
