//! `lookup join`: each row of the stream joined with the rows of a table that have its key, as
//! the table is when the row arrives (Flink's `JOIN t FOR SYSTEM_TIME AS OF s.proctime`). The
//! table is read whole and indexed ([`LookupTable`]), once per worker and shared by its
//! subtasks, and read again when its time to live passes. Stateless: nothing is checkpointed
//! (a restored job reads the table again), and no shuffle is needed before it.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::RowConverter;

use super::lookup_http::HttpCache;
use super::lookup_table::{Loaded, LookupTable, key_converter};
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;

/// Joins a stream with a [`LookupTable`].
#[derive(Clone)]
pub struct LookupJoin {
    /// The stream's key columns, in join-key order (not in the output).
    pub keys: Vec<String>,
    /// Keep stream rows without a match, the table's columns null (`LEFT JOIN`).
    pub left_outer: bool,
    /// The table.
    pub table: LookupTable,
    /// The table as last read, and when (ms of processing time): one copy per worker.
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The table as last read, and when (ms of processing time).
type Cached = (Arc<Loaded>, i64);

impl LookupJoin {
    /// A lookup join of the stream's `keys` with `table`.
    pub fn new(keys: Vec<String>, left_outer: bool, table: LookupTable) -> Self {
        LookupJoin {
            keys,
            left_outer,
            table,
            cache: Arc::default(),
        }
    }

    fn plan(&self, input: &SchemaRef) -> Result<(Vec<usize>, Vec<usize>, SchemaRef)> {
        let keys = self
            .keys
            .iter()
            .map(|k| field_index(input, k, "lookup join key"))
            .collect::<Result<Vec<_>>>()?;
        let table_input = self.table.input_schema()?;
        let key_types = self.table.key_types(&table_input)?;
        for (k, t) in keys.iter().zip(&key_types) {
            let own = input.field(*k).data_type();
            if own != t {
                return Err(WeirError::plan(format!(
                    "lookup join: key '{}' is {own}, the table '{}' key is {t}",
                    input.field(*k).name(),
                    self.table.name
                )));
            }
        }
        let kept: Vec<usize> = (0..input.fields().len()).filter(|i| !keys.contains(i)).collect();
        let mut fields: Vec<_> = kept.iter().map(|i| input.field(*i).clone()).collect();
        fields.extend(
            self.table
                .output_schema(&table_input)?
                .fields()
                .iter()
                .map(|f| f.as_ref().clone()),
        );
        Ok((keys, kept, Arc::new(Schema::new(fields))))
    }

    /// The table as of `now`: the cached copy, or read again when there is none or it expired.
    fn current(&self, ctx: &TaskContext) -> Result<Arc<Loaded>> {
        let now = ctx.now_ms();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((loaded, at)) = cache.as_ref()
            && self.table.ttl_ms.is_none_or(|ttl| now < at.saturating_add(ttl))
        {
            return Ok(loaded.clone());
        }
        let loaded = Arc::new(self.table.load(ctx)?);
        tracing::info!(
            node = %ctx.node,
            table = %self.table.name,
            rows = loaded.rows.num_rows(),
            keys = loaded.index.len(),
            rejected = loaded.rejected,
            "lookup table read"
        );
        *cache = Some((loaded.clone(), now));
        Ok(loaded)
    }
}

impl OperatorFactory for LookupJoin {
    fn kind(&self) -> &'static str {
        "lookup-join"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.2)
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (keys, kept, output) = self.plan(input)?;
        let types: Vec<_> = keys.iter().map(|k| input.field(*k).data_type().clone()).collect();
        // Over HTTP each subtask asks for its keys and keeps its own answers; a table read
        // whole is read once per worker.
        let (table, http) = match &self.table.http {
            Some(h) => (Arc::new(Loaded::empty()), Some(HttpCache::new(h.clone(), &types)?)),
            None => (self.current(ctx)?, None),
        };
        Ok(Box::new(LookupJoinOp {
            http,
            join: self.clone(),
            ctx: ctx.clone(),
            keys,
            kept,
            output,
            converter: key_converter(&types)?,
            table,
        }))
    }
}

struct LookupJoinOp {
    http: Option<HttpCache>,
    join: LookupJoin,
    ctx: TaskContext,
    keys: Vec<usize>,
    kept: Vec<usize>,
    output: SchemaRef,
    converter: RowConverter,
    table: Arc<Loaded>,
}

impl Operator for LookupJoinOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let keys: Vec<ArrayRef> = self.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let encoded = self.converter.convert_columns(&keys)?;
        let found;
        let (table_rows, index) = match &mut self.http {
            None => {
                self.table = self.join.current(&self.ctx)?;
                (&self.table.rows, &self.table.index)
            }
            Some(cache) => {
                let wanted: Vec<(Box<[u8]>, usize)> = (0..batch.num_rows())
                    .filter(|i| !keys.iter().any(|k| k.is_null(*i)))
                    .map(|i| (encoded.row(i).as_ref().into(), i))
                    .collect();
                found = cache.find(
                    &self.join.table,
                    &wanted,
                    &keys,
                    self.ctx.now_ms(),
                    self.join.table.ttl_ms,
                )?;
                (&found.rows, &found.index)
            }
        };
        let mut probe: Vec<u32> = Vec::with_capacity(batch.num_rows());
        let mut found: Vec<Option<u32>> = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let matches = (!keys.iter().any(|k| k.is_null(i)))
                .then(|| index.get(encoded.row(i).as_ref()))
                .flatten()
                .filter(|rows| !rows.is_empty());
            match matches {
                Some(rows) => {
                    for r in rows {
                        probe.push(i as u32);
                        found.push(Some(*r));
                    }
                }
                None if self.join.left_outer => {
                    probe.push(i as u32);
                    found.push(None);
                }
                None => {}
            }
        }
        if probe.is_empty() {
            return Ok(());
        }
        let (probe, found) = (UInt32Array::from(probe), UInt32Array::from(found));
        let mut columns = Vec::with_capacity(self.output.fields().len());
        for i in &self.kept {
            columns.push(take(batch.column(*i), &probe, None)?);
        }
        for c in table_rows.columns() {
            columns.push(take(c, &found, None)?);
        }
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::col;

    use super::*;
    use crate::connectors::file::config::FileSourceConfig;
    use crate::connectors::file::source::FileSource;
    use crate::connectors::format::Format;
    use crate::contract::ManualClock;
    use crate::operators::testing::{batch_of, ctx, ints};

    fn write(path: &std::path::Path, rows: &[(i64, i64)]) {
        let text: String = rows.iter().map(|(k, v)| format!("{{\"k\":{k},\"v\":{v}}}\n")).collect();
        std::fs::write(path, text).unwrap();
    }

    /// The table's rows of keys 1, 2, 3 (INNER: only matches; LEFT: a null for a miss), and the
    /// table read again only once its time to live has passed on the job's clock.
    #[test]
    fn joins_each_row_with_the_table_and_reads_it_again_after_its_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.jsonl");
        write(&file, &[(1, 10), (2, 20), (2, 21)]);
        let source = FileSource::new("t", FileSourceConfig::new(file.display().to_string(), Format::Json));
        let table = LookupTable {
            name: "t".into(),
            factory: Arc::new(source),
            columns: vec![(col("v"), "v".into())],
            keys: vec![col("k")],
            filter: None,
            ttl_ms: Some(1_000),
            http: None,
        };
        let clock = ManualClock::new(0);
        let ctx = TaskContext {
            clock: clock.shared(),
            ..ctx()
        };
        let probe = batch_of(&[("id", vec![100, 200, 300]), ("key", vec![1, 2, 3])]);
        for outer in [false, true] {
            let join = LookupJoin::new(vec!["key".into()], outer, table.clone());
            let mut op = join.create(&probe.schema(), &ctx).unwrap();
            let mut out = Vec::new();
            op.process_batch(probe.clone(), &mut out).unwrap();
            assert_eq!(out[0].schema().fields().len(), 2, "id and v: the key column is dropped");
            let want_ids = if outer {
                vec![100, 200, 200, 300]
            } else {
                vec![100, 200, 200]
            };
            assert_eq!(ints(&out, "id"), want_ids);
            let v = out[0].column_by_name("v").unwrap();
            assert_eq!(v.null_count(), usize::from(outer));
        }
        let join = LookupJoin::new(vec!["key".into()], false, table);
        let mut op = join.create(&probe.schema(), &ctx).unwrap();
        write(&file, &[(3, 30)]);
        clock.set(999);
        let mut out = Vec::new();
        op.process_batch(probe.clone(), &mut out).unwrap();
        assert_eq!(ints(&out, "v"), vec![10, 20, 21], "read at 0, still fresh at 999");
        clock.set(1_000);
        out.clear();
        op.process_batch(probe, &mut out).unwrap();
        assert_eq!(ints(&out, "v"), vec![30], "read again at 1000");
    }
}
