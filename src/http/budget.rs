//! Bounds the work of overlays and raw points in flight: the pixels of overlays rendered at
//! once, so that concurrent large `/heatmap.png` requests cannot exhaust the server's memory,
//! and the `/points` answers made at once, so that they cannot take every core from tiles.
//!
//! A 4096 × 4096 overlay needs over 100 MB while it renders (the density style's grids); a few
//! hundred of them at once, each on its own blocking thread, would take tens of gigabytes.
//! Tiles (256 or 512 px) are not counted: their renders are small and bounded by the
//! blocking pool.

use super::error::ApiError;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Pixels per permit: overlays are counted in blocks of 64 × 64 px.
const PIXELS_PER_PERMIT: u64 = 64 * 64;

/// The default budget: two overlays of the largest size (4096 × 4096) at once, about 230 MB
/// of render buffers at worst, or many smaller ones.
pub const DEFAULT_OVERLAY_PIXELS: u64 = 2 * 4096 * 4096;

/// How long an overlay waits for room before it is answered 503 with `Retry-After`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Room for overlay pixels in flight.
#[derive(Debug)]
pub struct RenderBudget {
    permits: Semaphore,
    total: u32,
    wait: Duration,
}

impl RenderBudget {
    /// A budget of `pixels` in flight; a request waits at most `wait` for room.
    pub fn new(pixels: u64, wait: Duration) -> RenderBudget {
        let total = u32::try_from(pixels.div_ceil(PIXELS_PER_PERMIT).max(1)).unwrap_or(u32::MAX);
        RenderBudget {
            permits: Semaphore::new(total as usize),
            total,
            wait,
        }
    }

    /// Room for an image of `pixels`, held until the returned permit is dropped. An image
    /// larger than the whole budget takes all of it, so it renders alone rather than never.
    pub async fn reserve(&self, pixels: u64) -> Result<SemaphorePermit<'_>, ApiError> {
        let wanted = u32::try_from(pixels.div_ceil(PIXELS_PER_PERMIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        acquire(&self.permits, wanted, self.wait, || {
            format!(
                "other large overlays are rendering (at most {} pixels at once); retry shortly, or ask for a smaller width and height",
                u64::from(self.total) * PIXELS_PER_PERMIT
            )
        })
        .await
    }
}

/// `wanted` permits of `permits`, waiting at most `wait`; else a 503 whose detail is `busy`.
async fn acquire(
    permits: &Semaphore,
    wanted: u32,
    wait: Duration,
    busy: impl FnOnce() -> String,
) -> Result<SemaphorePermit<'_>, ApiError> {
    match tokio::time::timeout(wait, permits.acquire_many(wanted)).await {
        Ok(Ok(permit)) => Ok(permit),
        // The semaphore is never closed; treat it like a full budget all the same.
        Ok(Err(_)) | Err(_) => Err(ApiError::Busy { detail: busy() }),
    }
}

/// Room for `/points` answers made at once. Each selects up to `points.max_limit` points
/// (200,000 by default) and writes them as JSON, tens of milliseconds of one core: unbounded,
/// a flood of them would leave no core for tiles.
#[derive(Debug)]
pub struct PointsBudget {
    permits: Semaphore,
    total: u32,
    wait: Duration,
}

impl PointsBudget {
    /// Room for `concurrent` answers at once (at least 1); a request waits at most `wait`.
    pub fn new(concurrent: u32, wait: Duration) -> PointsBudget {
        let total = concurrent.max(1);
        PointsBudget {
            permits: Semaphore::new(total as usize),
            total,
            wait,
        }
    }

    /// Room for one answer, held until the returned permit is dropped.
    pub async fn reserve(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        acquire(&self.permits, 1, self.wait, || {
            format!(
                "other point requests are being answered (at most {} at once); retry shortly, or ask for a smaller limit or area",
                self.total
            )
        })
        .await
    }
}

/// The default number of `/points` answers made at once: half the cores (at least one), so
/// that the other half stays free for tiles however many points requests come.
pub fn default_points_concurrency() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores / 2).unwrap_or(u32::MAX).max(1)
}

impl Default for PointsBudget {
    fn default() -> PointsBudget {
        PointsBudget::new(default_points_concurrency(), DEFAULT_WAIT)
    }
}

impl Default for RenderBudget {
    fn default() -> RenderBudget {
        RenderBudget::new(DEFAULT_OVERLAY_PIXELS, DEFAULT_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_full_budget_refuses_until_room_is_freed() {
        let budget = RenderBudget::new(4096 * 4096, Duration::ZERO);
        let big = budget.reserve(4096 * 4096).await.expect("room for one");
        assert!(matches!(
            budget.reserve(256 * 256).await,
            Err(ApiError::Busy { .. })
        ));
        drop(big);
        let a = budget.reserve(2048 * 4096).await.expect("half");
        let b = budget.reserve(2048 * 4096).await.expect("the other half");
        assert!(budget.reserve(1).await.is_err());
        drop((a, b));
        // Larger than the budget: takes all of it instead of never fitting.
        let all = budget.reserve(u64::MAX).await.expect("alone");
        assert!(budget.reserve(1).await.is_err());
        drop(all);
        assert!(budget.reserve(1).await.is_ok());
    }

    #[actix_web::test]
    async fn the_points_budget_refuses_past_its_bound() {
        let budget = PointsBudget::new(2, Duration::ZERO);
        let a = budget.reserve().await.expect("first");
        let b = budget.reserve().await.expect("second");
        assert!(matches!(budget.reserve().await, Err(ApiError::Busy { .. })));
        drop(a);
        assert!(budget.reserve().await.is_ok());
        drop(b);
        // Zero is taken as one: the route never refuses everything.
        let one = PointsBudget::new(0, Duration::ZERO);
        let held = one.reserve().await.expect("one");
        assert!(one.reserve().await.is_err());
        drop(held);
    }
}
