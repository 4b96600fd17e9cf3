//! A PostGIS layer's time and category columns: each request's window and categories bound
//! to its queries, and their summary (extent, values) refreshed with the statistics.

use super::PostgisLayer;
use crate::source::postgis::attributes::{attribute_params, summarize};
use crate::source::postgis::lock;
use crate::source::postgis::table_sql::Resolved;
use crate::source::{FilterValues, SourceError};
use tokio_postgres::types::ToSql;

impl PostgisLayer {
    /// The values of the attribute conditions of `resolved`'s queries for `filters` (NULLs
    /// for a request that filters nothing on them).
    pub(super) fn attribute_params(
        &self,
        resolved: &Resolved,
        filters: &FilterValues,
    ) -> Vec<Box<dyn ToSql + Sync + Send>> {
        attribute_params(
            &self.layout.attributes,
            resolved.time_type,
            filters.1.as_ref(),
        )
    }

    /// Recomputes the time extent and category values (a scan of the table; called when
    /// the data version changed, not per request).
    pub(super) async fn refresh_summary(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<(), SourceError> {
        if self.schema.is_none() {
            return Ok(());
        }
        let resolved = self.resolved().await?;
        let summary = self
            .timed(summarize(
                &***client,
                &self.layout.table,
                &self.layout.attributes,
                &resolved.where_all,
            ))
            .await?;
        *lock(&self.summary) = Some(summary);
        Ok(())
    }
}
