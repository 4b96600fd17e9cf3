//! The process's log: one subscriber for the binary (and the tests that check what it logs),
//! which keeps clients' malformed HTTP out of the error log.
//!
//! actix-http logs every request it cannot parse at ERROR ("stream error: request parse
//! error: ..."), one line per bad request: a fuzzer or a port scanner fills the log with
//! errors that are no fault of the server. Those lines are dropped here and counted instead;
//! [`spawn_summaries`] logs the count at WARN at most once a minute.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Malformed requests refused since the last summary.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How often at most the count of malformed requests is logged.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The subscriber: `filter` (an `EnvFilter` directive string such as `info` or
/// `twine_heatmap=debug`) over a text log to `writer`, with ANSI colors or not.
pub fn subscriber<W>(filter: &str, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(ClientProtocolErrors)
        .with(tracing_subscriber::EnvFilter::new(filter))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi),
        )
}

/// Drops actix-http's ERROR line for a request it could not parse, and counts it.
struct ClientProtocolErrors;

impl<S: Subscriber> Layer<S> for ClientProtocolErrors {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http::") {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        if message.0.contains("request parse error") {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// The `message` field of an event, as text.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Logs, at most once per [`SUMMARY_EVERY`] and only when there were any, how many malformed
/// requests were refused. Call inside the server's runtime.
pub fn spawn_summaries() {
    tokio::task::spawn_local(async {
        loop {
            tokio::time::sleep(SUMMARY_EVERY).await;
            log_summary();
        }
    });
}

/// Logs the count of malformed requests refused since the last call, if any.
pub fn log_summary() {
    let refused = REFUSED.swap(0, Ordering::Relaxed);
    if refused > 0 {
        tracing::warn!(
            refused,
            "malformed HTTP requests refused with 400 since the last count (clients' faults; not logged one by one)"
        );
    }
}
