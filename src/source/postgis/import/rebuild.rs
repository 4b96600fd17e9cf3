//! `twine-heatmap pyramid`: rebuilds the bin pyramid of an imported layer, or of a table the
//! config declares, from the table's current rows.

use super::report::PyramidReport;
use super::{build_pyramid_of, connect, imported_timed_points, ImportError, Target};
use crate::source::postgis::layer::imported_inner_all;
use crate::source::postgis::pyramid::Built;
use crate::source::postgis::table_sql::TableLayout;
use crate::source::postgis::time_pyramid::TimedPoints;
use crate::source::postgis::{
    ensure_schema, ensure_version_trigger, DbError, TableName, SCHEMA_LOCK_KEY,
};
use crate::source::valid_layer_name;
use std::time::Instant;
use tokio_postgres::{Client, Transaction};

/// `twine-heatmap pyramid` for a layer the config declares over an existing table (any
/// SRID): builds its bin pyramid from the table's points as the server reads them, and
/// installs the table's data-version trigger, so the server draws dense zooms from the
/// pyramid while the table stays at the version it was built from.
pub async fn rebuild_declared_pyramid(
    database_url: &str,
    layer: &str,
    layout: &TableLayout,
    aggregate_above: u64,
) -> Result<(), ImportError> {
    if !valid_layer_name(layer) {
        return Err(ImportError::LayerName {
            name: layer.chars().take(80).collect(),
            reason: "use 1 to 64 ASCII letters, digits, '_' or '-'",
        });
    }
    let table = &layout.table;
    let mut client = connect(database_url).await?;
    let started = Instant::now();
    let rebuild_error = |source| ImportError::Rebuild {
        table: table.key(),
        source,
    };
    let exists = client
        .query_opt(
            "SELECT 1 WHERE to_regclass($1) IS NOT NULL",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| rebuild_error(e.into()))?;
    if exists.is_none() {
        return Err(ImportError::UnknownTable(table.key()));
    }
    let built = rebuild_in_transaction(&mut client, layer, table, Some(layout), aggregate_above)
        .await
        .map_err(rebuild_error)?;
    eprintln!(
        "{}",
        PyramidReport {
            layer,
            built,
            elapsed: started.elapsed(),
        }
    );
    Ok(())
}

/// Both `pyramid` commands' work, in one transaction: the schema (a database imported into
/// by an older version lacks the pyramid's objects), the data-version trigger of a declared
/// table (without it a later write would not be seen, and the pyramid would hide it), writers
/// held off and the version bumped, then the pyramid of the table's points as the server
/// reads them: `declared`'s for a table the config declares, else an imported table's.
async fn rebuild_in_transaction(
    client: &mut Client,
    layer: &str,
    table: &TableName,
    declared: Option<&TableLayout>,
    aggregate_above: u64,
) -> Result<Option<Built>, DbError> {
    let tx = client.transaction().await?;
    ensure_schema(tx.client()).await?;
    if declared.is_some() {
        // Held to the end of this (long) transaction, but only by rebuilds of declared
        // tables: concurrent CREATE OR REPLACE TRIGGER on one table can fail.
        tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"))
            .await?;
        ensure_version_trigger(tx.client(), table).await?;
    }
    lock_and_bump(&tx, table).await?;
    let (points_sql, timed) = match declared {
        Some(layout) => {
            let resolved = crate::source::postgis::table_sql::resolve(tx.client(), layout).await?;
            let timed = layout.attributes.time.clone().map(|time| TimedPoints {
                sql: resolved.inner_all_timed,
                time,
                categories: layout
                    .attributes
                    .categories
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
            });
            (resolved.inner_all, timed)
        }
        None => (
            imported_inner_all(table)?,
            imported_timed_points(&tx, layer, table).await?,
        ),
    };
    let built = build_pyramid_of(
        &tx,
        layer,
        table,
        (&points_sql, timed.as_ref()),
        aggregate_above,
    )
    .await?;
    tx.commit().await?;
    Ok(built)
}

/// Holds writers off `table` until the transaction ends, so the pyramid matches the version
/// it records (readers, the server, go on), and bumps that version: running servers then
/// drop their cached statistics and tiles and read the new pyramid.
async fn lock_and_bump(tx: &Transaction<'_>, table: &TableName) -> Result<(), DbError> {
    tx.batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", table.quoted()))
        .await?;
    tx.execute(
        "INSERT INTO twine.versions (table_name, version) VALUES ($1, 1) \
         ON CONFLICT (table_name) DO UPDATE SET version = twine.versions.version + 1",
        &[&table.key()],
    )
    .await?;
    tx.execute("SELECT pg_notify('twine_data', $1)", &[&table.key()])
        .await?;
    Ok(())
}

/// `twine-heatmap pyramid`: rebuilds an imported layer's bin pyramid (after the table was
/// written to directly, or to match another `aggregate_above`).
pub async fn rebuild_pyramid(
    database_url: &str,
    layer: &str,
    aggregate_above: u64,
) -> Result<(), ImportError> {
    let target = Target::for_layer(layer)?;
    let mut client = connect(database_url).await?;
    let started = Instant::now();
    let rebuild_error = |source| ImportError::Rebuild {
        table: target.table.key(),
        source,
    };
    let registered = client
        .query_opt(
            "SELECT 1 FROM twine.layers WHERE name = $1 AND table_name = $2 AND to_regclass($3) IS NOT NULL",
            &[&target.layer, &target.table.key(), &target.table.quoted()],
        )
        .await;
    match registered {
        Ok(Some(_)) => {}
        // Without the schema (nothing imported yet) the query fails: no such layer either.
        Ok(None) | Err(_) => return Err(ImportError::UnknownLayer(layer.to_string())),
    }
    let built = rebuild_in_transaction(
        &mut client,
        &target.layer,
        &target.table,
        None,
        aggregate_above,
    )
    .await
    .map_err(rebuild_error)?;
    eprintln!(
        "{}",
        PyramidReport {
            layer: &target.layer,
            built,
            elapsed: started.elapsed(),
        }
    );
    Ok(())
}
