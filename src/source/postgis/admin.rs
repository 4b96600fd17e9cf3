//! `twine-heatmap db init`: the project's schema and the data-version triggers of declared
//! tables, created by a role that may, so that servers need only read.

use super::import::{connect, ImportError};
use super::layer::TableLayout;
use super::{ensure_schema, ensure_version_trigger, DbError, SCHEMA_LOCK_KEY};

/// Creates (or migrates) the `twine` schema and installs the data-version trigger on every
/// table in `declared` (layer name, layout), in one transaction: all or nothing. A declared
/// table that does not exist stops it, naming the layer and the table.
pub async fn init(
    database_url: &str,
    declared: &[(String, TableLayout)],
) -> Result<Vec<String>, ImportError> {
    let mut client = connect(database_url).await?;
    let setup = |table: &str| {
        let table = table.to_string();
        move |source: DbError| ImportError::Setup { table, source }
    };
    let tx = client
        .transaction()
        .await
        .map_err(|e| setup("twine")(e.into()))?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"))
        .await
        .map_err(|e| setup("twine")(e.into()))?;
    ensure_schema(tx.client()).await.map_err(setup("twine"))?;
    let mut done = vec!["schema twine: ready".to_string()];
    for (layer, layout) in declared {
        let table = layout.table.key();
        let exists = tx
            .query_opt(
                "SELECT 1 WHERE to_regclass($1) IS NOT NULL",
                &[&layout.table.quoted()],
            )
            .await
            .map_err(|e| setup(&table)(e.into()))?;
        if exists.is_none() {
            return Err(ImportError::UnknownTable(format!(
                "{table} (layer {layer})"
            )));
        }
        ensure_version_trigger(tx.client(), &layout.table)
            .await
            .map_err(setup(&table))?;
        done.push(format!("layer {layer}: data-version trigger on {table}"));
    }
    tx.commit().await.map_err(|e| setup("twine")(e.into()))?;
    Ok(done)
}
