//! The time and category columns `import --time COLUMN --category COLUMN` keeps: checked
//! before any file is read, added to the layer's table (timestamptz, text) and recorded in
//! `twine.layers` so that `serve` lets requests filter on them, and written with each row.

use super::copy::{encode_text, encode_time};
use super::ImportError;
use crate::source::attributes::AttributeSchema;
use crate::source::memory::attributes::Attributes;
use crate::source::postgis::attributes::AttributeColumns;
use crate::source::postgis::{DbError, Ident, TableName};
use tokio_postgres::Transaction;

/// Columns every imported table has, which attribute columns may not be called.
const OWN_COLUMNS: [&str; 3] = ["seq", "weight", "geom"];

/// The columns of the files an import keeps, by the names they have in the files (CSV
/// header, GeoJSON property) and then in the table.
#[derive(Debug, Clone, Default)]
pub(super) struct KeptColumns(pub(super) AttributeColumns);

impl KeptColumns {
    /// Checks the names: SQL identifiers, none of the table's own columns, each once.
    pub(super) fn new(time: Option<&str>, categories: &[String]) -> Result<Self, ImportError> {
        let mut seen: Vec<String> = Vec::new();
        let mut check = |flag: &'static str, name: &str| {
            let refuse = |reason: String| ImportError::Column {
                flag,
                name: name.chars().take(80).collect(),
                reason,
            };
            let ident = Ident::new(name).map_err(|e| refuse(e.to_string()))?;
            if OWN_COLUMNS.contains(&name) {
                return Err(refuse(
                    "the layer's table has a column of that name (seq, weight and geom are taken)"
                        .into(),
                ));
            }
            if seen.iter().any(|s| s == name) {
                return Err(refuse("it is named twice by --time and --category".into()));
            }
            seen.push(name.to_owned());
            Ok(ident)
        };
        let time = time.map(|t| check("--time", t)).transpose()?;
        let categories = categories
            .iter()
            .map(|c| check("--category", c))
            .collect::<Result<_, _>>()?;
        Ok(KeptColumns(AttributeColumns {
            time,
            categories,
            time_bucket: None,
        }))
    }

    /// What the loader is to keep of each file.
    pub(super) fn schema(&self) -> AttributeSchema {
        self.0.schema().unwrap_or_default()
    }

    /// How many fields each row has beyond seq, weight and geom.
    pub(super) fn len(&self) -> usize {
        usize::from(self.0.time.is_some()) + self.0.categories.len()
    }

    /// `, "time", "kind"`: the kept columns in COPY's column list.
    pub(super) fn copy_list(&self) -> String {
        self.0
            .time
            .iter()
            .chain(&self.0.categories)
            .map(|c| format!(", {}", c.quoted()))
            .collect()
    }

    /// Appends the kept fields of the point at index `i` of its file (in `attributes`, which
    /// the loader kept for [`Self::schema`]) to a COPY row.
    pub(super) fn encode(&self, buf: &mut Vec<u8>, attributes: Option<&Attributes>, i: usize) {
        if self.0.time.is_some() {
            encode_time(buf, attributes.and_then(|a| a.time_at(i)));
        }
        for column in 0..self.0.categories.len() {
            encode_text(buf, attributes.map_or("", |a| a.category_at(column, i)));
        }
    }
}

/// Adds the kept columns to the layer's table if missing, checks their types, and records
/// them in `twine.layers` (inside the import's transaction, after the layer's row exists):
/// the layer's time column stays the one first kept, and categories accumulate. Rows of
/// files imported without a column have no time there (NULL) or the empty category.
pub(super) async fn prepare_columns(
    tx: &Transaction<'_>,
    layer: &str,
    table: &TableName,
    kept: &KeptColumns,
) -> Result<(), DbError> {
    if kept.len() == 0 {
        return Ok(());
    }
    let row = tx
        .query_one(
            "SELECT time_column, category_columns FROM twine.layers WHERE name = $1 FOR UPDATE",
            &[&layer],
        )
        .await?;
    let (recorded_time, mut categories): (Option<String>, Vec<String>) =
        (row.try_get(0)?, row.try_get(1)?);
    let conflict = |what: String| {
        DbError::Other(format!(
            "layer {layer}: {what}; import with the same columns, or into another layer"
        ))
    };
    if let (Some(recorded), Some(time)) = (&recorded_time, &kept.0.time) {
        if recorded != time.as_str() {
            return Err(conflict(format!(
                "its times are in column {recorded}, not {}",
                time.as_str()
            )));
        }
    }
    for column in &kept.0.categories {
        if recorded_time.as_deref() == Some(column.as_str()) {
            return Err(conflict(format!(
                "{} is its time column, not a category",
                column.as_str()
            )));
        }
    }
    if let Some(time) = &kept.0.time {
        if categories.iter().any(|c| c == time.as_str()) {
            return Err(conflict(format!(
                "{} is one of its category columns, not its time",
                time.as_str()
            )));
        }
    }
    for column in &kept.0.categories {
        if !categories.iter().any(|c| c == column.as_str()) {
            categories.push(column.as_str().to_owned());
        }
    }
    // Columns already there are checked; only missing ones are added: ALTER TABLE locks out
    // readers (running servers) until the import commits, so it runs only when needed.
    let wanted = kept
        .0
        .time
        .iter()
        .map(|t| (t, "timestamptz", "timestamp with time zone"))
        .chain(kept.0.categories.iter().map(|c| (c, "text", "text")));
    let mut additions = Vec::new();
    for (column, sql_type, written) in wanted {
        let found: Option<String> = tx
            .query_opt(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
                &[&table.quoted(), &column.as_str()],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        match found {
            None => additions.push(format!("ADD COLUMN {} {sql_type}", column.quoted())),
            Some(found) if found != written => {
                return Err(conflict(format!(
                    "column {} of {} is {found}, not {written}",
                    column.as_str(),
                    table.key()
                )))
            }
            Some(_) => {}
        }
    }
    if !additions.is_empty() {
        tx.batch_execute(&format!(
            "ALTER TABLE {} {}",
            table.quoted(),
            additions.join(", ")
        ))
        .await?;
    }
    let time = recorded_time.or_else(|| kept.0.time.as_ref().map(|t| t.as_str().to_owned()));
    tx.execute(
        "UPDATE twine.layers SET time_column = $2, category_columns = $3 WHERE name = $1",
        &[&layer, &time, &categories],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_columns_are_identifiers_not_the_tables_own_and_named_once() {
        let kept = KeptColumns::new(Some("when"), &["kind".into(), "size".into()]).expect("ok");
        assert_eq!(kept.len(), 3);
        assert_eq!(kept.copy_list(), ", \"when\", \"kind\", \"size\"");
        assert_eq!(kept.schema().categories, vec!["kind", "size"]);
        for (time, categories, flag) in [
            (Some("a b"), vec![], "--time"),
            (Some("geom"), vec![], "--time"),
            (None, vec!["weight".to_owned()], "--category"),
            (Some("t"), vec!["t".to_owned()], "--category"),
            (None, vec!["k".to_owned(), "k".to_owned()], "--category"),
            (None, vec!["x\"; drop table t; --".to_owned()], "--category"),
        ] {
            let e = KeptColumns::new(time, &categories).expect_err("refused");
            assert!(e.to_string().starts_with(flag), "{e}");
        }
    }
}
