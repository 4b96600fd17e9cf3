//! twine-heatmap: a heatmap tile server. Seamless heatmap PNG tiles in three styles from
//! points held in memory (PostGIS to come), with raw points for client-side heatmaps.

pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod layer;
pub mod metrics;
pub mod progress;
pub mod render;
pub mod source;
pub mod synth;
pub mod tile;
