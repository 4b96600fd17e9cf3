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
pub mod service;
pub mod source;
pub mod style;
pub mod synth;
pub mod tile;
