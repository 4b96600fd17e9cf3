//! How a PostGIS layer makes its database calls: through the statement cache, counted and
//! timed for `/metrics`, and with every answer or failure reported to the shared status.

use super::PostgisLayer;
use crate::source::postgis::failure::{db_error, lost_contact};
use crate::source::postgis::DbError;
use crate::source::SourceError;
use tokio_postgres::types::ToSql;

impl PostgisLayer {
    /// Maps a database call's result, reporting the contact to the shared status: an answer
    /// means the database is there, a lost connection that it is not.
    pub(super) fn checked<T, E: Into<DbError>>(
        &self,
        result: Result<T, E>,
    ) -> Result<T, SourceError> {
        match result {
            Ok(value) => {
                self.status.contact_ok();
                Ok(value)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    pub(super) fn failed(&self, e: impl Into<DbError>) -> SourceError {
        let e = e.into();
        if lost_contact(&e) {
            self.status.contact_failed(&e.to_string());
        }
        // Class 42 (no such table or column, no privilege, a type mismatch): the declared
        // table changed under the layer; the watcher's next check says exactly how.
        if let DbError::Postgres(pg) = &e {
            if self.declared && pg.code().is_some_and(|c| c.code().starts_with("42")) {
                return self.misconfigured(&crate::source::postgis::pg_message(pg));
            }
        }
        db_error(e)
    }

    /// Runs one database call, counted and timed for `/metrics`.
    pub(super) async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, SourceError> {
        let started = std::time::Instant::now();
        self.metrics.db_queries.inc();
        let result = call.await;
        self.metrics
            .db_query_seconds
            .observe(started.elapsed().as_secs_f64());
        self.checked(result)
    }

    /// Runs one query through the connection's statement cache: a layer sends the same few
    /// statements again and again, so each is parsed and planned once per connection.
    pub(super) async fn timed_query(
        &self,
        client: &deadpool_postgres::Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, SourceError> {
        self.timed(async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
        .await
    }

    /// [`Self::timed_query`] with each row decoded as it arrives, for answers of many rows: a
    /// tile's can be 100,000 rows, and holding them all as rows (column offsets and buffers,
    /// about 300 bytes each) before decoding takes several times the memory of the decoded
    /// values, for every query in flight. The connection hands over one batch at a time.
    pub(super) async fn timed_rows<T>(
        &self,
        client: &deadpool_postgres::Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut decode: impl FnMut(&tokio_postgres::Row) -> T,
    ) -> Result<Vec<T>, SourceError> {
        use futures_util::TryStreamExt;
        self.timed(async {
            let statement = client.prepare_cached(sql).await?;
            let rows = client.query_raw(&statement, params.iter().copied()).await?;
            let mut rows = std::pin::pin!(rows);
            let mut decoded = Vec::new();
            while let Some(row) = rows.try_next().await? {
                decoded.push(decode(&row));
            }
            Ok(decoded)
        })
        .await
    }
}
