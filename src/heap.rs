//! Keeps the heap's resident size near its live data: one malloc arena per core, and freed
//! pages handed back to the OS once a second.
//!
//! glibc's malloc gives each thread that contends for the heap an arena of its own (up to
//! eight per core) and keeps what is freed there for reuse, giving back only an arena's top.
//! A tile server frees a render's buffers (points, sums, pixels, PNG) on whichever of its
//! threads drew it, and actix's workers and the blocking pools make a dozen threads: under a
//! flood of distinct tiles ten arenas held 11-12 MiB each of mostly free pages, and RSS grew
//! 173-187 MiB past a 32 MB memory tier (benches/key-explosion.sh). Renders run one per core
//! (`service::render`), so one arena per core serves them without contention, and
//! `malloc_trim(0)` returns the free pages inside every arena (`MADV_DONTNEED`), not just the
//! tops: together, 74 MiB of growth. The figures are in benches/README.md.

/// Caps glibc's arenas at one per core, unless the environment sets `MALLOC_ARENA_MAX` (which
/// glibc reads itself, and which then wins). Call before the server's threads start: arenas
/// already made stay.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(arenas) = arena_limit(std::env::var_os("MALLOC_ARENA_MAX").is_some(), cores()) {
        // SAFETY: mallopt only sets glibc's own tunables; it has no memory preconditions.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Starts the thread that trims the heap once a second (once per process; later calls do
/// nothing). A no-op where the allocator is not glibc's.
pub fn spawn_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("heap-trim".into())
                .spawn(|| loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    // SAFETY: malloc_trim takes glibc's own arena locks; no preconditions.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the heap trimmer; RSS may grow past the cache budgets");
            }
        });
    }
}

/// The arena cap to set: none when the environment chose one, else one per core (at least 2,
/// glibc's main arena and one more, so a thread never waits for the main one).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn arena_limit(environment_sets_it: bool, cores: usize) -> Option<i32> {
    (!environment_sets_it).then(|| i32::try_from(cores.max(2)).unwrap_or(i32::MAX))
}

#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arena_per_core_unless_the_environment_says() {
        assert_eq!(arena_limit(false, 2), Some(2));
        assert_eq!(arena_limit(false, 1), Some(2));
        assert_eq!(arena_limit(false, 64), Some(64));
        assert_eq!(arena_limit(true, 8), None);
    }
}
