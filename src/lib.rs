//! twine-heatmap: a heatmap tile server. Seamless heatmap PNG tiles in three styles, bounds-
//! sized overlays and raw points, from layers held in memory (points files, the demo layer)
//! or in PostGIS (imported layers and tables the config declares), behind a memory and a
//! disk tile cache.
//!
//! The binary's entry is [`cli`] (clap definitions and dispatch); each command lives in
//! [`commands`], and [`app`] assembles the server's state from flags, environment and config.

pub mod app;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod heap;
pub mod http;
pub mod layer;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod render;
pub mod service;
pub mod source;
pub mod style;
pub mod synth;
pub mod tile;
