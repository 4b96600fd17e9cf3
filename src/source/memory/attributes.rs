//! The time and category values of a memory store's points, as separate arrays indexed by
//! the point's place in the store (structure of arrays: the points drawn stay as small as
//! they are, so unfiltered renders read no more memory than before).

use crate::source::attributes::{
    AttributeFilter, AttributeSchema, AttributeSummary, CategorySummary, TimeSummary,
};
use std::collections::HashMap;

/// Stored for a point without a time.
const NO_TIME: i64 = i64::MIN;

/// One category column, dictionary-encoded: each point's value is a code into `values`.
/// The empty value (an empty CSV field, a missing or null property) is a value of its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CategoryColumn {
    pub name: String,
    values: Vec<String>,
    codes: Vec<u32>,
}

impl CategoryColumn {
    /// The distinct values, by code.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// The code of the value of the point at store index `i`.
    pub fn code(&self, i: usize) -> Option<u32> {
        self.codes.get(i).copied()
    }

    /// Each distinct value with its number of points.
    pub fn counts(&self) -> Vec<(&str, u64)> {
        let mut counts = vec![0u64; self.values.len()];
        for &code in &self.codes {
            counts[code as usize] += 1;
        }
        self.values.iter().map(String::as_str).zip(counts).collect()
    }
}

/// The attributes of every point of a store, in the store's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    schema: AttributeSchema,
    /// Milliseconds since the epoch, [`NO_TIME`] for none; empty when no time is declared.
    times: Vec<i64>,
    categories: Vec<CategoryColumn>,
}

impl Attributes {
    pub fn schema(&self) -> &AttributeSchema {
        &self.schema
    }

    pub fn categories(&self) -> &[CategoryColumn] {
        &self.categories
    }

    /// Whether the layer declares a time column.
    pub fn has_time(&self) -> bool {
        self.schema.time.is_some()
    }

    /// The earliest and latest time of any point, if any has one.
    pub fn time_extent(&self) -> Option<(i64, i64)> {
        let mut times = self.times.iter().copied().filter(|&t| t != NO_TIME);
        let first = times.next()?;
        Some(times.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
    }

    /// The time of the point at index `i` (None: it has none, or no time is declared).
    pub fn time_at(&self, i: usize) -> Option<i64> {
        self.times.get(i).copied().filter(|&t| t != NO_TIME)
    }

    /// The value of category column `column` (in declaration order) of the point at index
    /// `i`; the empty value when it has none.
    pub fn category_at(&self, column: usize, i: usize) -> &str {
        self.categories
            .get(column)
            .and_then(|c| c.codes.get(i).and_then(|&code| c.values.get(code as usize)))
            .map_or("", String::as_str)
    }

    /// What TileJSON says of them.
    pub fn summary(&self) -> AttributeSummary {
        let time =
            self.schema.time.as_ref().map(|column| {
                TimeSummary::new(column, self.time_extent(), self.schema.time_bucket)
            });
        let categories = self
            .categories
            .iter()
            .map(|c| {
                let counts = c.counts().into_iter().map(|(v, n)| (v.to_owned(), n));
                CategorySummary::new(&c.name, counts.collect())
            })
            .collect();
        AttributeSummary { time, categories }
    }

    /// The attributes in a new order: entry `i` is the old entry `order[i]`.
    pub fn permuted(&self, order: &[u32]) -> Attributes {
        let pick = |codes: &[u32]| order.iter().map(|&i| codes[i as usize]).collect();
        Attributes {
            schema: self.schema.clone(),
            times: if self.times.is_empty() {
                Vec::new()
            } else {
                order.iter().map(|&i| self.times[i as usize]).collect()
            },
            categories: self
                .categories
                .iter()
                .map(|c| CategoryColumn {
                    name: c.name.clone(),
                    values: c.values.clone(),
                    codes: pick(&c.codes),
                })
                .collect(),
        }
    }

    /// `filter` against this store's dictionaries: a value no point has matches nothing.
    pub fn select<'a>(&'a self, filter: &'a AttributeFilter) -> Selection<'a> {
        let columns = filter
            .categories
            .iter()
            .map(|(name, wanted)| {
                let column = self.categories.iter().find(|c| &c.name == name);
                let accepted = column.map_or_else(Vec::new, |c| {
                    c.values.iter().map(|v| wanted.contains(v)).collect()
                });
                (column.map_or(&[][..], |c| &c.codes[..]), accepted)
            })
            .collect();
        Selection {
            filter,
            times: &self.times,
            columns,
        }
    }
}

/// A filter compiled against a store: which store indices pass.
pub struct Selection<'a> {
    filter: &'a AttributeFilter,
    times: &'a [i64],
    /// Per filtered column: its codes, and whether each code is accepted.
    columns: Vec<(&'a [u32], Vec<bool>)>,
}

impl Selection<'_> {
    /// Whether the point at store index `i` passes.
    pub fn keeps(&self, i: usize) -> bool {
        let time = self.times.get(i).copied().filter(|&t| t != NO_TIME);
        self.filter.keeps_time(time)
            && self.columns.iter().all(|(codes, accepted)| {
                codes
                    .get(i)
                    .is_some_and(|&c| accepted.get(c as usize).copied().unwrap_or(false))
            })
    }
}

/// Collects attributes point by point as a file is read: the values of the current row or
/// feature are set, then given to each of its points.
#[derive(Debug, Default)]
pub struct AttributesBuilder {
    attributes: Attributes,
    lookup: Vec<HashMap<String, u32>>,
    current_time: i64,
    current_codes: Vec<u32>,
}

impl AttributesBuilder {
    pub fn new(schema: &AttributeSchema) -> AttributesBuilder {
        AttributesBuilder {
            attributes: Attributes {
                schema: schema.clone(),
                times: Vec::new(),
                categories: schema
                    .categories
                    .iter()
                    .map(|name| CategoryColumn {
                        name: name.clone(),
                        ..CategoryColumn::default()
                    })
                    .collect(),
            },
            lookup: vec![HashMap::new(); schema.categories.len()],
            current_time: NO_TIME,
            current_codes: vec![0; schema.categories.len()],
        }
    }

    /// The current row's time (`None`: it has none).
    pub fn set_time(&mut self, time: Option<i64>) {
        self.current_time = time.unwrap_or(NO_TIME);
    }

    /// The current row's value of category column `column` (in declaration order).
    pub fn set_category(&mut self, column: usize, value: &str) {
        let (Some(lookup), Some(category)) = (
            self.lookup.get_mut(column),
            self.attributes.categories.get_mut(column),
        ) else {
            return;
        };
        let code = match lookup.get(value) {
            Some(&code) => code,
            None => {
                let code = category.values.len() as u32;
                category.values.push(value.to_owned());
                lookup.insert(value.to_owned(), code);
                code
            }
        };
        self.current_codes[column] = code;
    }

    /// Gives the current row's values to one more point.
    pub fn push_point(&mut self) {
        if self.attributes.schema.time.is_some() {
            self.attributes.times.push(self.current_time);
        }
        for (column, &code) in self
            .attributes
            .categories
            .iter_mut()
            .zip(&self.current_codes)
        {
            column.codes.push(code);
        }
    }

    pub fn finish(self) -> Attributes {
        self.attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_or_within_a_column_and_and_across_columns() {
        let schema = AttributeSchema {
            time: Some("t".into()),
            categories: vec!["kind".into(), "size".into()],
            time_bucket: None,
        };
        let mut b = AttributesBuilder::new(&schema);
        for (t, kind, size) in [
            (Some(5), "a", "s"),
            (None, "b", "s"),
            (Some(15), "", "l"),
            (Some(25), "a", "l"),
        ] {
            b.set_time(t);
            b.set_category(0, kind);
            b.set_category(1, size);
            b.push_point();
        }
        let attrs = b.finish();
        assert_eq!(attrs.time_extent(), Some((5, 25)));
        let keep = |f: &AttributeFilter| -> Vec<usize> {
            let s = attrs.select(f);
            (0..4).filter(|&i| s.keeps(i)).collect()
        };
        let cats = |c: &[(&str, &[&str])]| AttributeFilter {
            categories: c
                .iter()
                .map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..AttributeFilter::default()
        };
        assert_eq!(keep(&AttributeFilter::default()), vec![0, 1, 2, 3]);
        assert_eq!(keep(&cats(&[("kind", &["a", ""])])), vec![0, 2, 3]);
        assert_eq!(keep(&cats(&[("kind", &["a"]), ("size", &["l"])])), vec![3]);
        assert_eq!(keep(&cats(&[("kind", &["zzz"])])), Vec::<usize>::new());
        let window = AttributeFilter {
            from: Some(5),
            to: Some(25),
            ..AttributeFilter::default()
        };
        assert_eq!(keep(&window), vec![0, 2]);
        let moved = attrs.permuted(&[3, 2, 1, 0]);
        let s = moved.select(&window);
        assert_eq!(
            (0..4).filter(|&i| s.keeps(i)).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(
            attrs.categories()[0].counts(),
            vec![("a", 2), ("b", 1), ("", 1)]
        );
    }
}
