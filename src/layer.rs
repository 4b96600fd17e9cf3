//! Layers: a named point source plus what is derived from its whole data set (the density
//! style's per-zoom reference), computed once and remembered.

use crate::http::params::StyleRequest;
use crate::render::{DensityParams, Style, Viewport};
use crate::source::{LayerInfo, PointSource, SourceError};
use lru::LruCache;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// One layer served under `/tiles/{name}/...`.
pub struct Layer {
    pub name: String,
    pub source: Arc<dyn PointSource>,
    /// Density references by (cell size in world units, as bits): a handful of zooms and
    /// radii in practice; bounded because overlays may ask for arbitrary scales.
    density_refs: Mutex<LruCache<u64, f64>>,
}

impl Layer {
    pub fn new(name: impl Into<String>, source: Arc<dyn PointSource>) -> Layer {
        Layer {
            name: name.into(),
            source,
            density_refs: Mutex::new(LruCache::new(NonZeroUsize::MIN.saturating_add(255))),
        }
    }

    pub fn info(&self) -> LayerInfo {
        self.source.info()
    }

    /// Resolves a requested style against this layer for one viewport: density without an
    /// explicit `max` takes the layer's reference for the viewport's scale.
    pub async fn resolve_style(
        &self,
        request: &StyleRequest,
        vp: &Viewport,
    ) -> Result<Style, SourceError> {
        Ok(match request {
            StyleRequest::Smooth(p) => Style::Smooth(*p),
            StyleRequest::Dots(p) => Style::Dots(*p),
            StyleRequest::Density { radius, scale, max } => {
                let max = match max {
                    Some(m) => *m,
                    None => {
                        let cell = *radius as f64 * vp.pixel_ratio / vp.scale_x;
                        self.density_reference(cell).await?
                    }
                };
                Style::Density(DensityParams {
                    radius: *radius,
                    scale: *scale,
                    max,
                })
            }
        })
    }

    /// The largest weight in any `cell`-sized square of the layer, at least 1 so that a
    /// sparse layer is not stretched to full color by a single light point.
    async fn density_reference(&self, cell: f64) -> Result<f64, SourceError> {
        let key = cell.to_bits();
        if let Some(v) = self.lock_refs().get(&key) {
            return Ok(*v);
        }
        let value = self.source.max_cell_weight(cell).await?.max(1.0);
        self.lock_refs().put(key, value);
        Ok(value)
    }

    fn lock_refs(&self) -> std::sync::MutexGuard<'_, LruCache<u64, f64>> {
        // A panic while holding this lock cannot leave the cache inconsistent (single
        // get/put calls), so a poisoned lock is still safe to use.
        self.density_refs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// All layers by name.
#[derive(Default, Clone)]
pub struct Layers(BTreeMap<String, Arc<Layer>>);

impl Layers {
    pub fn insert(&mut self, layer: Layer) -> Result<(), String> {
        if self.0.contains_key(&layer.name) {
            return Err(format!("two layers are named {:?}", layer.name));
        }
        self.0.insert(layer.name.clone(), Arc::new(layer));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Layer>> {
        self.0.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Layer>> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Layer names become URL path segments: 1 to 64 ASCII letters, digits, `_` or `-`.
pub fn valid_layer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
