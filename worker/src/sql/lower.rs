//! The lowering pass: an optimized DataFusion logical plan becomes Weir's graph, through the
//! DataStream API, so a SQL job runs on the same operators as a DataStream or pipeline job.
//! Scans become sources (with their computed columns and watermarks), projections and filters
//! Calc steps on Arrow batches, aggregates over window columns window operators keyed by the
//! `GROUP BY` columns, other aggregates updating (changelog) aggregates, and `INSERT INTO` a
//! sink. Node names come from the statement and the plan's shape, so they are stable: a
//! savepoint of a query restores into the same query.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, RecordBatch, StructArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, TableScan, WriteOp, lit};
use datafusion::physical_expr::PhysicalExpr;

mod temporal;

pub use temporal::mark_temporal_joins;

use super::catalog::{Catalog, Table};
use super::connectors::{self, SinkMode};
use super::functions::{self, Bound, PROCTIME};
use super::interval::{Rowtimes, join_bounds};
use super::lookup::{LookupSide, lookup_side, reads_lookup};
use super::script::TvfKind;
use super::source_calc::SourceCalc;
use crate::api::{DataStream, StreamExecutionEnvironment};
use crate::connectors::nexmark::config::NexmarkStream;
use crate::connectors::registry;
use crate::contract::error::{Result, WeirError};
use crate::contract::watermark::WatermarkStrategy;
use crate::operators::changelog_aggregate::{ChangelogAggregate, RetractAgg, RetractKind};
use crate::operators::filter::FilterExpr;
use crate::operators::interval_join::IntervalJoin;
use crate::operators::join::{JoinType, RegularJoin};
use crate::operators::lookup_join::LookupJoin;
use crate::operators::lookup_table::HttpLookup;
use crate::operators::lookup_table::LookupTable;
use crate::operators::mini_batch::MiniBatch;
use crate::operators::running_aggregate::{OP_COLUMN, RunningAggregate};
use crate::operators::select::Select;
use crate::window::{
    Agg, AggKind, CumulativeEventTimeWindows, EventTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows, WindowAssigner,
};

/// The right time column a semi interval join reads (the right side's columns are not shown).
const SEMI_RIGHT_TIME: &str = "__rt";

/// A lowered relation: its stream (columns named as the plan's, plus [`OP_COLUMN`] last when
/// it updates) and whether it is a changelog.
pub struct Lowered {
    /// The stream.
    pub stream: DataStream,
    /// Whether rows carry a changelog kind.
    pub updating: bool,
    /// A projection not made yet: consecutive projections compose into one step, and filters
    /// above one run below it (so a filter and the projection after it fuse into one Calc).
    pub pending: Option<Vec<(Expr, String)>>,
}

impl Lowered {
    fn of(stream: DataStream, updating: bool) -> Self {
        Lowered {
            stream,
            updating,
            pending: None,
        }
    }
}

/// `e` with each column named in `items` replaced by its expression there.
fn substitute(e: Expr, items: &[(Expr, String)]) -> Result<Expr> {
    e.transform(|x| {
        Ok(match &x {
            Expr::Column(c) => match items.iter().find(|(_, n)| *n == c.name) {
                Some((d, _)) => Transformed::yes(d.clone()),
                None => Transformed::no(x),
            },
            _ => Transformed::no(x),
        })
    })
    .map(|t| t.data)
    .map_err(|e| WeirError::plan(e.to_string()))
}

/// Lowers the plans of one statement into `env`.
pub struct Lowering<'a> {
    env: &'a StreamExecutionEnvironment,
    catalog: &'a Catalog,
    prefix: String,
    nodes: usize,
    pushdown: bool,
    /// Fold updating aggregates' changelogs in mini-batches (latency ms, rows).
    mini_batch: Option<(i64, usize)>,
    /// `table.exec.state.ttl` (ms) for the unbounded state of regular joins, group aggregates,
    /// Top-N and deduplication.
    state_ttl: Option<i64>,
    /// The sources made so far, by table, event kind and columns read: a statement that reads
    /// the same table the same way twice (q5's two `bid` windows) reads it once, as Flink's
    /// source reuse.
    sources: HashMap<SourceKey, (DataStream, bool)>,
    /// The placeholders of versioned tables read by temporal joins (read as their table).
    versioned: std::collections::HashSet<String>,
    /// Every column the statement reads of each table, over all its scans: a source reads them
    /// all, so scans that differ in columns share it too (Flink's scan reuser).
    scan_columns: HashMap<String, Vec<String>>,
}

/// A source as a statement reads it: the table, the Nexmark kind it is narrowed to, the columns.
type SourceKey = (String, Option<i32>, Vec<String>);

/// A projection item: an expression and the name it goes by.
type Item = (Expr, String);

impl<'a> Lowering<'a> {
    /// Lowering for the statement named `prefix` (e.g. `insert-1`) with the session's options:
    /// push-down lets sources apply the filters they can (a Nexmark table narrowed to one event
    /// kind); mini-batch folds updating aggregates' output.
    pub fn new(
        env: &'a StreamExecutionEnvironment,
        catalog: &'a Catalog,
        prefix: &str,
        options: &super::PlanOptions,
    ) -> Result<Self> {
        Ok(Lowering {
            env,
            catalog,
            prefix: prefix.to_string(),
            nodes: 0,
            pushdown: options.pushdown,
            mini_batch: options.mini_batch()?,
            state_ttl: options.state_ttl.filter(|d| !d.is_zero()).map(|d| d.as_millis() as i64),
            sources: HashMap::new(),
            versioned: Default::default(),
            scan_columns: HashMap::new(),
        })
    }

    fn name(&mut self, what: &str) -> String {
        self.nodes += 1;
        format!("{}.{}-{what}", self.prefix, self.nodes)
    }

    /// Lowers `INSERT INTO … SELECT …` (the plan's root is the insert).
    pub fn insert(&mut self, plan: &LogicalPlan) -> Result<DataStream> {
        let LogicalPlan::Dml(dml) = plan else {
            return Err(WeirError::plan(format!("expected an INSERT, found {}", plan.display())));
        };
        if !matches!(dml.op, WriteOp::Insert(_)) {
            return Err(WeirError::plan(format!(
                "{} is not supported; a job writes with INSERT INTO",
                dml.op
            )));
        }
        let table_name = dml.table_name.table().to_string();
        let table = self
            .catalog
            .table(&table_name)
            .ok_or_else(|| WeirError::plan(format!("'{table_name}' is not a table (a view cannot be written to)")))?
            .clone();
        if !table.computed.is_empty() {
            return Err(WeirError::plan(format!(
                "table '{table_name}' has computed columns; a sink table has physical columns only"
            )));
        }
        let input = self.lower(&dml.input)?;
        self.sink(input, &table, &stream_names(dml.input.schema()))
    }

    /// Lowers a query into a stream (for the Table API): its columns, and whether it updates
    /// (then `__op` is its last column).
    pub fn stream(&mut self, plan: &LogicalPlan) -> Result<(DataStream, bool)> {
        let input = self.lower(plan)?;
        let updating = input.updating;
        let mut items = named_columns(plan.schema());
        if updating {
            items.push((col(OP_COLUMN), OP_COLUMN.into()));
        }
        let projected = self.project(input, items)?;
        Ok((self.flush(projected, "calc")?, updating))
    }

    /// Lowers a bare query into a `print` sink.
    pub fn print(&mut self, plan: &LogicalPlan) -> Result<DataStream> {
        let input = self.lower(plan)?;
        let mut items: Vec<(Expr, String)> = Vec::new();
        if input.updating {
            items.push((col(OP_COLUMN), "op".into()));
        }
        items.extend(named_columns(plan.schema()));
        let projected = self.project(input, items)?;
        let stream = self.flush(projected, "calc")?;
        let factory = registry::sink("stdout", "print", &serde_json::Map::new())?;
        let name = self.name("sink-print");
        Ok(stream.add_sink_named(&name, factory))
    }

    fn sink(&mut self, input: Lowered, table: &Table, columns: &[String]) -> Result<DataStream> {
        let (mapped, mode) = connectors::sink(&table.def, &table.physical)?;
        let connector = table.def.options.get("connector").cloned().unwrap_or_default();
        // The query's columns take the table's names and types, in its order.
        let mut items: Vec<(Expr, String)> = Vec::new();
        if input.updating {
            if mode == SinkMode::Append {
                return Err(WeirError::plan(format!(
                    "table '{}' ('connector' = '{connector}') takes inserts only, but the query's GROUP BY without a \
                     window updates its results (a changelog); write it to 'upsert-kafka' (with a PRIMARY KEY), \
                     'print' or 'blackhole', or aggregate over a window (TUMBLE, HOP, SESSION)",
                    table.def.name
                )));
            }
            if connector == "print" {
                items.push((col(OP_COLUMN), "op".into()));
            }
            if connector == "jdbc" || connector == "upsert-kafka" {
                // The sink upserts and deletes by each row's kind.
                items.push((col(OP_COLUMN), OP_COLUMN.into()));
            }
        }
        for (i, f) in table.physical.fields().iter().enumerate() {
            let source = columns.get(i).ok_or_else(|| {
                WeirError::plan(format!(
                    "INSERT INTO {}: the query gives {} columns, the table has {}",
                    table.def.name,
                    columns.len(),
                    table.physical.fields().len()
                ))
            })?;
            items.push((
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col(source)),
                    f.data_type().clone(),
                )),
                f.name().clone(),
            ));
        }
        if mapped.debezium {
            // Debezium JSON: inserts and update-afters as `after` with op `c`, retractions as
            // `before` with op `d` (what Flink's debezium-json writes).
            let row = datafusion::functions::core::expr_fn::named_struct(
                items
                    .iter()
                    .filter(|(_, name)| name != "op")
                    .flat_map(|(e, name)| [lit(name.as_str()), e.clone()])
                    .collect(),
            );
            let adds = if input.updating {
                col(OP_COLUMN).eq(lit("+I")).or(col(OP_COLUMN).eq(lit("+U")))
            } else {
                lit(true)
            };
            let when = |cond: Expr| -> Result<Expr> {
                datafusion::logical_expr::when(cond, row.clone())
                    .end()
                    .map_err(|e| WeirError::plan(e.to_string()))
            };
            // A keyed sink (Kafka) keeps the key columns beside the envelope, for the key.
            let keys: Vec<String> = mapped
                .options
                .get("key_fields")
                .and_then(|k| k.as_array())
                .map(|k| k.iter().filter_map(|n| n.as_str().map(String::from)).collect())
                .unwrap_or_default();
            let key_items: Vec<(Expr, String)> = items.iter().filter(|(_, n)| keys.contains(n)).cloned().collect();
            items = key_items;
            items.extend([
                (when(Expr::Not(Box::new(adds.clone())))?, "before".into()),
                (when(adds.clone())?, "after".into()),
                (
                    datafusion::logical_expr::when(adds, lit("c"))
                        .otherwise(lit("d"))
                        .map_err(|e| WeirError::plan(e.to_string()))?,
                    "op".into(),
                ),
            ]);
        }
        let projected = self.project(input, items)?;
        let stream = self.flush(projected, "calc")?;
        let factory = registry::sink(mapped.connector, &table.def.name, &mapped.options)?;
        let name = self.name(&format!("sink-{}", table.def.name));
        let sink = stream.add_sink_named(&name, factory);
        Ok(match mapped.parallelism {
            Some(p) => sink.set_parallelism(p),
            None => sink,
        })
    }

    /// `input` projected to `items` (composed with its pending projection; made later).
    fn project(&mut self, input: Lowered, items: Vec<(Expr, String)>) -> Result<Lowered> {
        let items = match &input.pending {
            None => items,
            Some(below) => items
                .into_iter()
                .map(|(e, n)| Ok((substitute(e, below)?, n)))
                .collect::<Result<_>>()?,
        };
        Ok(Lowered {
            stream: input.stream,
            updating: input.updating,
            pending: Some(items),
        })
    }

    /// `input` filtered by `predicate` (below its pending projection).
    fn restrict(&mut self, input: Lowered, predicate: Expr, what: &str) -> Result<Lowered> {
        let predicate = match &input.pending {
            None => predicate,
            Some(below) => substitute(predicate, below)?,
        };
        let name = self.name(what);
        let stream = input.stream.transform(&name, Arc::new(FilterExpr::planned(predicate)));
        Ok(Lowered { stream, ..input })
    }

    /// The stream of `input` with its pending projection made.
    fn flush(&mut self, input: Lowered, what: &str) -> Result<DataStream> {
        match input.pending {
            None => Ok(input.stream),
            Some(items) => {
                let name = self.name(what);
                Ok(input.stream.transform(&name, Arc::new(Select::planned(items)?)))
            }
        }
    }

    /// Records the columns each scan of `plan` reads, by table (see [`Lowering::scan`]).
    fn note_scans(&mut self, plan: &LogicalPlan) {
        if let LogicalPlan::TableScan(scan) = plan
            && let Some(table) = self.catalog.table(scan.table_name.table())
        {
            let read: Vec<String> = match &scan.projection {
                Some(p) => p.iter().map(|i| table.schema.field(*i).name().clone()).collect(),
                None => table.schema.fields().iter().map(|f| f.name().clone()).collect(),
            };
            let all = self
                .scan_columns
                .entry(scan.table_name.table().to_string())
                .or_default();
            all.extend(read.into_iter().filter(|c| !all.contains(c)).collect::<Vec<_>>());
            // In the table's order, so every scan asks for the same list.
            let order = |c: &String| table.schema.index_of(c).unwrap_or(usize::MAX);
            all.sort_by_key(order);
        }
        for input in plan.inputs() {
            self.note_scans(input);
        }
    }

    /// Lowers a relation.
    pub fn lower(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        if self.nodes == 0 && self.scan_columns.is_empty() {
            self.note_scans(plan);
        }
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan, None),
            LogicalPlan::Filter(f) => {
                if let LogicalPlan::Window(w) = f.input.as_ref() {
                    return self.top_n(w, &f.predicate);
                }
                // The planner may narrow the window's columns between it and the filter.
                if let LogicalPlan::Projection(p) = f.input.as_ref()
                    && let LogicalPlan::Window(w) = p.input.as_ref()
                    && p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
                {
                    let ranked = self.top_n(w, &f.predicate)?;
                    let mut items = projection_items(p);
                    items.push((col(OP_COLUMN), OP_COLUMN.into()));
                    return self.project(ranked, items);
                }
                if self.pushdown
                    && let Some(kind) = nexmark_event_type(self.catalog, &f.input, &f.predicate)
                {
                    return self.lower_narrowed(&f.input, kind);
                }
                let input = self.lower(&f.input)?;
                self.restrict(input, resolve(f.predicate.clone(), f.input.schema()), "filter")
            }
            LogicalPlan::Projection(p) => {
                let input = self.lower(&p.input)?;
                for e in &p.expr {
                    check_no_window_markers(e)?;
                }
                let mut items = projection_items(p);
                if input.updating {
                    items.push((col(OP_COLUMN), OP_COLUMN.into()));
                }
                self.project(input, items)
            }
            LogicalPlan::SubqueryAlias(s) => self.lower(&s.input),
            LogicalPlan::Aggregate(a) => self.aggregate(a),
            LogicalPlan::Union(u) => {
                let mut parts = Vec::new();
                let mut updating = Vec::new();
                for i in &u.inputs {
                    let part = self.lower(i)?;
                    updating.push(part.updating);
                    parts.push(self.flush(part, "calc")?);
                }
                if updating.iter().any(|u| *u) && !updating.iter().all(|u| *u) {
                    return Err(WeirError::plan(
                        "UNION ALL of an updating and an append-only query is not supported yet",
                    ));
                }
                let first = parts.remove(0);
                let others: Vec<&DataStream> = parts.iter().collect();
                Ok(Lowered::of(first.union(&others), updating[0]))
            }
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => Err(WeirError::plan(
                "ORDER BY and LIMIT over a stream are not supported: keep the first rows per key with Top-N, \
                 ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) in a subquery filtered by rownum <= N outside it",
            )),
            LogicalPlan::Window(_) => Err(WeirError::plan(
                "OVER windows run as Top-N only: ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) in a subquery, \
                 filtered by rownum <= N (or = 1) outside it",
            )),
            other => Err(WeirError::plan(format!(
                "a streaming job cannot run this part of the plan yet: {}",
                other.display()
            ))),
        }
    }

    /// Lowers projections over a Nexmark scan narrowed to one event kind.
    fn lower_narrowed(&mut self, plan: &LogicalPlan, kind: i32) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan, Some(kind)),
            LogicalPlan::Projection(p) => {
                let input = self.lower_narrowed(&p.input, kind)?;
                self.project(input, projection_items(p))
            }
            other => self.lower(other),
        }
    }

    /// A table's source: the connector, computed columns, the watermark. `event_type` narrows a
    /// Nexmark table to one event kind (the filter `event_type = k` the planner found above it).
    fn scan(&mut self, scan: &TableScan, event_type: Option<i32>) -> Result<Lowered> {
        let table_name = scan.table_name.table();
        if let Some(stream) = self.catalog.stream(table_name) {
            // A DataStream registered as a table: its columns by name.
            let items = named_columns(&scan.projected_schema);
            return self.project(Lowered::of(stream.clone(), false), items);
        }
        if let Some(l) = self.catalog.lookup(table_name)
            && !self.versioned.contains(table_name)
        {
            return Err(WeirError::plan(format!(
                "'{}' FOR SYSTEM_TIME AS OF is looked up by a join (FROM stream JOIN {0} FOR SYSTEM_TIME AS OF \
                 stream.proctime ON …); it cannot be read on its own",
                l.table
            )));
        }
        let table = self
            .catalog
            .table(table_name)
            .ok_or_else(|| WeirError::plan(format!("no table '{table_name}'")))?
            .clone();
        // The columns the query reads, and the rowtime column (the watermark needs it).
        let mut wanted: Vec<String> = match &scan.projection {
            Some(p) => p.iter().map(|i| table.schema.field(*i).name().clone()).collect(),
            None => table.schema.fields().iter().map(|f| f.name().clone()).collect(),
        };
        if let Some((w, _)) = &table.watermark
            && !wanted.contains(w)
        {
            wanted.push(w.clone());
        }
        // The columns every scan of the table reads (when this one reads fewer, the shared
        // source reads them all and this scan takes its own), unless it is a changelog.
        let own = wanted.clone();
        let debezium = table
            .def
            .options
            .get("format")
            .is_some_and(|f| f.starts_with("debezium"));
        if let Some(all) = self.scan_columns.get(table_name)
            && !debezium
            && own.iter().all(|c| all.contains(c))
        {
            wanted = all.clone();
        }
        let reuse = (table_name.to_string(), event_type, wanted.clone());
        let (stream, changes) = match self.sources.get(&reuse) {
            Some(made) => made.clone(),
            None => {
                let made = self.source(&table, table_name, event_type, &wanted)?;
                self.sources.insert(reuse, made.clone());
                made
            }
        };
        let lowered = Lowered::of(stream, changes);
        if own == wanted {
            Ok(lowered)
        } else {
            self.project(lowered, own.iter().map(|c| (col(c), c.clone())).collect())
        }
    }

    /// A new source reading `wanted` of `table` (narrowed to a Nexmark kind): its stream, and
    /// whether it is a changelog.
    fn source(
        &mut self,
        table: &Table,
        table_name: &str,
        event_type: Option<i32>,
        wanted: &[String],
    ) -> Result<(DataStream, bool)> {
        let stream_kind = event_type.map(|k| match k {
            0 => ("person", NexmarkStream::Person),
            1 => ("auction", NexmarkStream::Auction),
            _ => ("bid", NexmarkStream::Bid),
        });
        let mapped = connectors::source(&table.def, &table.physical, stream_kind.map(|(s, _)| s))?;
        let factory = registry::source(mapped.connector, table_name, &mapped.options)?;
        let all_physical = wanted.iter().all(|w| table.physical.field_with_name(w).is_ok());
        let changes = mapped.changes.clone();
        let factory: Arc<dyn crate::contract::SourceFactory> =
            if stream_kind.is_none() && all_physical && changes.is_none() {
                factory
            } else {
                let (inner_schema, reshape) = match stream_kind {
                    Some((_, kind)) => {
                        let flat = crate::connectors::nexmark::source::schema_of(kind);
                        (flat, Some(event_type.expect("set with the kind")))
                    }
                    None => (table.physical.clone(), None),
                };
                let (output, calc) = table_calc(table, wanted, reshape)?;
                // The rowtime of each connector record, for per-split watermarks. A changelog's
                // records are not one row each (an update is two, a malformed one none), so its
                // watermark follows the table's rows instead.
                let event_time = match (&table.watermark, &changes) {
                    (Some((rowtime, _)), None) => {
                        let (_, time) = table_calc(table, std::slice::from_ref(rowtime), reshape)?;
                        let derive: crate::contract::watermark::EventTimeFn = Arc::new(move |batch: &RecordBatch| {
                            let mut rejects = super::source_calc::Rejects::new();
                            Ok(time(batch.clone(), &mut rejects)?.column(0).clone())
                        });
                        Some(derive)
                    }
                    _ => None,
                };
                let (inner_schema, output, calc) = match &changes {
                    Some(layout) => {
                        let (output, calc) = changelog_calc(&table.physical, output, calc);
                        (layout.clone(), output, calc)
                    }
                    None => (inner_schema, output, calc),
                };
                Arc::new(SourceCalc {
                    inner: factory,
                    inner_schema,
                    output,
                    calc,
                    event_time,
                })
            };
        let name = self.name(&format!("source-{table_name}"));
        let mut stream = self.env.add_source_named(&name, factory);
        if let Some(p) = mapped.parallelism {
            stream = stream.set_parallelism(p);
        }
        if let Some((column, delay)) = &table.watermark {
            stream = stream.with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
                column,
                std::time::Duration::from_millis(*delay as u64),
            ));
        }
        // A Debezium JSON source is a changelog: its rows carry their kind in `__op`, last.
        Ok((stream, changes.is_some()))
    }

    fn aggregate(&mut self, a: &Aggregate) -> Result<Lowered> {
        let window = find_window(a)?;
        let input = self.lower_allowing_markers(&a.input)?;
        if input.updating && window.is_some() {
            return Err(WeirError::plan(
                "a window over an updating query (a GROUP BY without a window below it) is not supported",
            ));
        }
        // Keys, aggregate arguments and the window's time as named columns.
        let mut pre: Vec<(Expr, String)> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let mut group_roles: Vec<GroupRole> = Vec::new();
        for e in &a.group_expr {
            let role = match &window {
                Some(_) => window_role(e, &a.input),
                None => None,
            };
            match role {
                Some(b) => group_roles.push(GroupRole::Window(b)),
                None => {
                    let k = format!("__k{}", keys.len());
                    pre.push((resolve(e.clone(), a.input.schema()), k.clone()));
                    keys.push(k.clone());
                    group_roles.push(GroupRole::Key(k));
                }
            }
        }
        let mut aggs: Vec<Agg> = Vec::new();
        let mut agg_roles: Vec<GroupRole> = Vec::new();
        // Which of `aggs` count distinct values.
        let mut distinct: Vec<usize> = Vec::new();
        for e in &a.aggr_expr {
            let Expr::AggregateFunction(AggregateFunction { func, params }) = strip_alias(e) else {
                return Err(WeirError::plan(format!("unsupported aggregate {e}")));
            };
            if let Some((_, bound)) = functions::auxiliary(func.name()) {
                if window.is_none() {
                    return Err(WeirError::plan(format!(
                        "{}(..) needs the query grouped by its window ({}(..) in GROUP BY)",
                        func.name().to_uppercase(),
                        func.name()
                            .rsplit_once('_')
                            .map(|(k, _)| k)
                            .unwrap_or("")
                            .to_uppercase()
                    )));
                }
                agg_roles.push(GroupRole::Window(bound));
                continue;
            }
            if params.distinct {
                if window.is_some() || !func.name().eq_ignore_ascii_case("count") {
                    return Err(WeirError::plan(format!(
                        "{e}: DISTINCT is supported in COUNT(DISTINCT …) of a GROUP BY without a window"
                    )));
                }
                distinct.push(aggs.len());
            }
            let kind = match func.name().to_ascii_lowercase().as_str() {
                "count" => AggKind::Count,
                "sum" => AggKind::Sum,
                "min" => AggKind::Min,
                "max" => AggKind::Max,
                "avg" | "mean" => AggKind::Avg,
                "first_value" => AggKind::First,
                "last_value" => AggKind::Last,
                other => {
                    return Err(WeirError::plan(format!(
                        "aggregate function {}(..) is not supported (supported: COUNT, SUM, MIN, MAX, AVG, \
                         FIRST_VALUE, LAST_VALUE)",
                        other.to_uppercase()
                    )));
                }
            };
            // `agg(x) FILTER (WHERE c)` aggregates `CASE WHEN c THEN x END`: the aggregates skip
            // nulls, so rows where `c` is not true count for nothing (Flink's semantics).
            let filter = params.filter.as_ref().map(|f| resolve((**f).clone(), a.input.schema()));
            if filter.is_some() && matches!(kind, AggKind::First | AggKind::Last) {
                return Err(WeirError::plan(format!(
                    "{e}: FILTER (WHERE …) is supported on COUNT, SUM, MIN, MAX and AVG"
                )));
            }
            let only_where = |x: Expr| -> Result<Expr> {
                match &filter {
                    Some(c) => datafusion::logical_expr::when(c.clone(), x)
                        .end()
                        .map_err(|err| WeirError::plan(format!("{e}: {err}"))),
                    None => Ok(x),
                }
            };
            let name = format!("__a{}", aggs.len());
            let field = match params.args.first() {
                Some(Expr::Literal(..)) | None if kind == AggKind::Count && filter.is_none() => None,
                Some(Expr::Literal(..)) | None if kind == AggKind::Count => {
                    pre.push((only_where(lit(1i64))?, name.clone()));
                    Some(name.clone())
                }
                Some(arg) => {
                    pre.push((only_where(resolve(arg.clone(), a.input.schema()))?, name.clone()));
                    Some(name.clone())
                }
                None => return Err(WeirError::plan(format!("{e} takes an argument"))),
            };
            aggs.push(Agg {
                kind,
                field,
                name: name.clone(),
            });
            agg_roles.push(GroupRole::Key(name));
        }
        if aggs.is_empty() {
            // SELECT DISTINCT or a GROUP BY without aggregates: count rows, show none.
            pre.push((lit(1i64), "__a0".into()));
            aggs.push(Agg {
                kind: AggKind::Count,
                field: None,
                name: "__a0".into(),
            });
        }
        let output_names: Vec<String> = stream_names(&a.schema);
        let output_types: Vec<DataType> = a.schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let roles: Vec<GroupRole> = group_roles.into_iter().chain(agg_roles).collect();
        // A GROUP BY of a window aggregate's output by its window's start and end (q5's
        // `MaxBids`): Flink carries the window attributes through and aggregates per window, once,
        // when the watermark passes its end. Here: the bounds are keys, and a tumbling window as
        // long as the inner window's step, over `window_end - 1 ms`, fires each window once.
        let windowed_input = match &window {
            None if !input.updating => windowed_input(a),
            _ => None,
        };
        if let Some((step, end, end_type)) = windowed_input {
            let end = resolve(end, a.input.schema());
            let before_end = match end_type {
                DataType::Timestamp(..) => end - lit(ScalarValue::new_interval_mdn(0, 0, 1_000_000)),
                _ => end - lit(1i64),
            };
            pre.push((before_end, "__t".into()));
            let projected = self.project(input, pre)?;
            let pre_stream = self.flush(projected, "window-input")?;
            let assigner = TumblingEventTimeWindows::of(std::time::Duration::from_millis(step as u64)).on("__t");
            let name = self.name("window-of-windows");
            let out = pre_stream
                .key_by(keys.clone())
                .window(assigner)
                .aggregate(&aggs)
                .name(&name);
            let items = post_items(&roles, &output_names, &output_types);
            return self.project(Lowered::of(out, false), items);
        }
        match window {
            Some(w) => {
                pre.push((resolve(w.time.clone(), a.input.schema()), "__t".into()));
                let projected = self.project(input, pre)?;
                let pre_stream = self.flush(projected, "window-input")?;
                let assigner = w.assigner()?.on("__t");
                let name = self.name(&format!("window-{}", w.kind_name()));
                let windowed = if keys.is_empty() {
                    pre_stream.window_all(assigner)
                } else {
                    pre_stream.key_by(keys.clone()).window(assigner)
                };
                let out = windowed.aggregate(&aggs).name(&name);
                let items = post_items(&roles, &output_names, &output_types);
                self.project(Lowered::of(out, false), items)
            }
            None => {
                if keys.is_empty() {
                    pre.push((lit(0i32), "__k0".into()));
                    keys.push("__k0".into());
                }
                let projected = self.project(input, pre)?;
                let updating_input = projected.updating;
                let retracting_op = updating_input || !distinct.is_empty();
                let projected = if updating_input {
                    let mut items = projected.pending.clone().unwrap_or_default();
                    items.push((col(OP_COLUMN), OP_COLUMN.into()));
                    Lowered {
                        pending: Some(items),
                        ..projected
                    }
                } else {
                    projected
                };
                let pre_stream = self.flush(projected, "group-input")?;
                let name = self.name("group-aggregate");
                let keyed = pre_stream.key_by(keys.clone());
                let out = if retracting_op {
                    // Retractions in (or distinct values counted), retractions out.
                    let mut retract = aggs.iter().map(retracting).collect::<Result<Vec<_>>>()?;
                    for i in &distinct {
                        retract[*i].kind = RetractKind::CountDistinct;
                    }
                    let op = ChangelogAggregate {
                        keys: keys.clone(),
                        aggs: retract,
                        state_ttl: self.state_ttl,
                    };
                    keyed.stream().transform(&name, Arc::new(op))
                } else {
                    let op = RunningAggregate {
                        keys: keys.clone(),
                        aggs: aggs.clone(),
                        changelog: true,
                        state_ttl: self.state_ttl,
                    };
                    keyed.stream().transform(&name, Arc::new(op))
                };
                let out = match self.mini_batch {
                    Some((allow_latency_ms, size)) => {
                        let fold = MiniBatch {
                            keys,
                            allow_latency_ms,
                            size,
                        };
                        let name = self.name("mini-batch");
                        out.transform(&name, Arc::new(fold))
                    }
                    None => out,
                };
                let mut items = post_items(&roles, &output_names, &output_types);
                items.push((col(OP_COLUMN), OP_COLUMN.into()));
                self.project(Lowered::of(out, true), items)
            }
        }
    }

    /// A regular join: each side projected to its columns (named as the join's output names
    /// them) and its equi-join keys (`__lk*` / `__rk*`, cast to one type), keyed by them, into
    /// the join operator; the other conditions of an inner join filter its output.
    fn join(&mut self, j: &datafusion::logical_expr::Join) -> Result<Lowered> {
        use datafusion::common::NullEquality;
        use datafusion::logical_expr::JoinType as Sql;
        if let Some(side) = lookup_side(&j.right, self.catalog)? {
            if let Some(as_of) = temporal::take_as_of(&j.filter) {
                return self.temporal_join(j, side, as_of);
            }
            return self.lookup_join(j, side);
        }
        if let Some(table) = reads_lookup(&j.left, self.catalog) {
            return Err(WeirError::plan(format!(
                "'{table}' FOR SYSTEM_TIME AS OF is looked up, so it goes on the right of the join (FROM stream JOIN {table} FOR SYSTEM_TIME AS OF …)"
            )));
        }
        // Semi and anti joins keep one side's rows: that side goes left.
        let (join_type, swap) = match j.join_type {
            Sql::Inner => (JoinType::Inner, false),
            Sql::Left => (JoinType::Left, false),
            Sql::Right => (JoinType::Right, false),
            Sql::Full => (JoinType::Full, false),
            Sql::LeftSemi => (JoinType::LeftSemi, false),
            Sql::RightSemi => (JoinType::LeftSemi, true),
            Sql::LeftAnti | Sql::RightAnti if j.null_aware => {
                return Err(WeirError::plan(
                    "NOT IN over a subquery (null-aware anti join) is not supported yet; write NOT EXISTS",
                ));
            }
            Sql::LeftAnti => (JoinType::LeftAnti, false),
            Sql::RightAnti => (JoinType::LeftAnti, true),
            other => {
                return Err(WeirError::plan(format!(
                    "{other} joins are not supported yet; this query joins {} with {}",
                    relation_names(&j.left),
                    relation_names(&j.right)
                )));
            }
        };
        if j.on.is_empty() {
            return Err(WeirError::plan(format!(
                "a join of {} with {} needs an equality between the two sides (a streaming join keeps \
                 each side's rows per key; a cross join would keep and pair them all)",
                relation_names(&j.left),
                relation_names(&j.right)
            )));
        }
        if j.null_equality == NullEquality::NullEqualsNull {
            return Err(WeirError::plan(
                "joins on IS NOT DISTINCT FROM (nulls equal) are not supported yet",
            ));
        }
        // A semi or anti join's condition runs inside the join, on its inputs' columns: the kept
        // side's under their output names, the other side's as `__r<i>`.
        let in_join = j.filter.is_some() && matches!(join_type, JoinType::LeftSemi | JoinType::LeftAnti);
        let out_names = stream_names(&j.schema);
        let (left_plan, right_plan) = if swap {
            (j.right.as_ref(), j.left.as_ref())
        } else {
            (j.left.as_ref(), j.right.as_ref())
        };
        let on: Vec<(Expr, Expr)> =
            j.on.iter()
                .map(|(l, r)| {
                    if swap {
                        (r.clone(), l.clone())
                    } else {
                        (l.clone(), r.clone())
                    }
                })
                .collect();
        let split = left_plan.schema().fields().len();
        // An inner join bounding one side's rowtime by the other's: an interval join (once both
        // inputs turn out append-only).
        let window_time = |a: &Aggregate, i: usize| {
            if i >= a.group_expr.len() {
                return false;
            }
            let direct = matches!(window_role(&a.group_expr[i], &a.input), Some(Bound::End | Bound::Time))
                && find_window(a).is_ok_and(|w| w.is_some_and(|w| !w.processing_time));
            // A GROUP BY of a window aggregate's bounds (q5's per-window maximum) is a window
            // aggregate too, whose rows come out as the watermark passes their window_end.
            let of_windows = windowed_input(a).is_some()
                && window_of_input(&a.group_expr[i], &a.input).is_some_and(|c| {
                    c.bound == Bound::End
                        && !c
                            .time
                            .exists(|x| Ok(matches!(x, Expr::ScalarFunction(f) if f.func.name() == PROCTIME)))
                            .expect("cannot fail")
                });
            direct || of_windows
        };
        let rowtimes = Rowtimes {
            catalog: self.catalog,
            window_time: &window_time,
        };
        let bounds = || join_bounds(&on, j.filter.as_ref(), left_plan, right_plan, &rowtimes);
        let interval = match join_type {
            JoinType::Inner => bounds(),
            // A semi join's further condition runs inside the join.
            JoinType::LeftSemi => bounds(),
            // An outer one pads the rows that met none: only the bounds may decide a match.
            JoinType::Left | JoinType::Right | JoinType::Full => bounds().filter(|b| b.rest.is_none()),
            _ => None,
        };
        // An outer join's further condition decides what matches, so it runs inside the join
        // (an inner join's filters the pairs after it).
        let outer_condition = matches!(join_type, JoinType::Left | JoinType::Right | JoinType::Full);
        let mut sides = Vec::new();
        for (index, plan) in [left_plan, right_plan].into_iter().enumerate() {
            let input = self.lower(plan)?;
            let names = &out_names[if index == 0 { 0..split } else { split..out_names.len() }];
            let mut items: Vec<(Expr, String)> = stream_names(plan.schema())
                .into_iter()
                .zip(names)
                .map(|(from, to)| (col(&from), to.clone()))
                .collect();
            if index == 1 && in_join {
                items = stream_names(plan.schema())
                    .into_iter()
                    .enumerate()
                    .map(|(i, from)| (col(&from), format!("__r{i}")))
                    .collect();
            }
            let (key_items, mut keys) = join_keys(&on, index, left_plan, right_plan)?;
            // A key that is one of the side's columns, of the type compared, is keyed by that
            // column: no copy of it in every row the join keeps.
            let columns = stream_names(plan.schema());
            for ((e, name), key) in key_items.into_iter().zip(keys.iter_mut()) {
                let same = match &e {
                    Expr::Cast(c) if let Expr::Column(column) = c.expr.as_ref() => columns
                        .iter()
                        .position(|n| *n == column.name)
                        .filter(|i| plan.schema().field(*i).data_type() == c.field.data_type()),
                    _ => None,
                };
                // (A semi join's right side shows no column, so its keys are their own.)
                match same.and_then(|i| items.get(i)) {
                    Some((_, shown)) => *key = shown.clone(),
                    None => items.push((e, name)),
                }
            }
            if input.updating {
                items.push((col(OP_COLUMN), OP_COLUMN.into()));
            }
            // A semi join shows no right column: the interval join still needs the right time.
            if let (1, Some(b), JoinType::LeftSemi) = (index, &interval, join_type) {
                items.push((col(&stream_names(plan.schema())[b.right]), SEMI_RIGHT_TIME.into()));
            }
            let updating = input.updating;
            let projected = self.project(input, items)?;
            let stream = self.flush(projected, if index == 0 { "join-left" } else { "join-right" })?;
            sides.push((stream.key_by(keys.clone()), keys, updating));
        }
        let (right, right_keys, right_updating) = sides.pop().expect("two sides");
        let (left, left_keys, left_updating) = sides.pop().expect("two sides");
        if let Some(bounds) = interval.filter(|_| !left_updating && !right_updating) {
            let semi = join_type == JoinType::LeftSemi;
            let condition = match &bounds.rest {
                Some(f) if semi => Some(in_join_names(f, left_plan, right_plan, &out_names[0..split])?),
                _ => None,
            };
            let op = IntervalJoin {
                condition,
                left_keys,
                right_keys,
                left_time: Some(out_names[bounds.left].clone()),
                right_time: Some(match join_type {
                    JoinType::LeftSemi => SEMI_RIGHT_TIME.into(),
                    _ => out_names[split + bounds.right].clone(),
                }),
                lower: bounds.lower,
                upper: bounds.upper,
                semi: join_type == JoinType::LeftSemi,
                window: None,
                outer: [
                    matches!(join_type, JoinType::Left | JoinType::Full),
                    matches!(join_type, JoinType::Right | JoinType::Full),
                ],
            };
            let name = self.name("interval-join");
            let joined = left.stream().union(&[right.stream()]).transform(&name, Arc::new(op));
            let lowered = Lowered {
                stream: joined,
                updating: false,
                pending: Some(out_names.iter().map(|n| (col(n), n.clone())).collect()),
            };
            return match bounds.rest {
                Some(f) if !semi => self.restrict(lowered, resolve(f, &j.schema), "join-filter"),
                _ => Ok(lowered),
            };
        }
        let condition = match &j.filter {
            Some(f) if in_join => Some(in_join_names(f, left_plan, right_plan, &out_names[0..split])?),
            Some(f) if outer_condition => Some(resolve(f.clone(), &j.schema)),
            _ => None,
        };
        let op = RegularJoin {
            join_type,
            left_keys,
            right_keys,
            condition,
            state_ttl: self.state_ttl,
        };
        let name = self.name("join");
        let joined = left.stream().union(&[right.stream()]).transform(&name, Arc::new(op));
        let updating = left_updating || right_updating || !matches!(join_type, JoinType::Inner | JoinType::LeftSemi);
        let mut items = out_names.iter().map(|n| (col(n), n.clone())).collect::<Vec<_>>();
        if updating {
            items.push((col(OP_COLUMN), OP_COLUMN.into()));
        }
        let lowered = Lowered {
            stream: joined,
            updating,
            pending: Some(items),
        };
        match &j.filter {
            Some(f) if !in_join && !outer_condition => {
                self.restrict(lowered, resolve(f.clone(), &j.schema), "join-filter")
            }
            _ => Ok(lowered),
        }
    }

    /// A join whose right side is a table `FOR SYSTEM_TIME AS OF` a processing-time attribute:
    /// each left row joined with the table's rows of its key, as read when it arrives.
    fn lookup_join(&mut self, j: &datafusion::logical_expr::Join, side: LookupSide) -> Result<Lowered> {
        use datafusion::logical_expr::JoinType as Sql;
        let table_name = side.lookup.table.clone();
        let left_outer = match j.join_type {
            Sql::Inner => false,
            Sql::Left => true,
            other => {
                return Err(WeirError::plan(format!(
                    "a lookup join of '{table_name}' is INNER or LEFT, not {other}"
                )));
            }
        };
        if j.filter.is_some() && left_outer {
            return Err(WeirError::plan(format!(
                "a LEFT lookup join of '{table_name}' may only compare the two sides with '=' so far; filter the table in a subquery"
            )));
        }
        if j.on.is_empty() {
            return Err(WeirError::plan(format!(
                "a lookup join of '{table_name}' needs an equality between a left column and the table's"
            )));
        }
        let connector = side.table.def.options.get("connector").cloned().unwrap_or_default();
        if !matches!(connector.as_str(), "filesystem" | "http" | "jdbc") {
            return Err(WeirError::plan(format!(
                "'{table_name}' FOR SYSTEM_TIME AS OF: lookup joins read tables of the filesystem, jdbc or http connector \
                 (this one is '{connector}')"
            )));
        }
        let mapped = connectors::source(&side.table.def, &side.table.physical, None)?;
        let factory = registry::source(mapped.connector, &table_name, &mapped.options)?;
        let input = self.lower(&j.left)?;
        if input.updating {
            return Err(WeirError::plan(format!(
                "a lookup join of '{table_name}' reads an append-only stream; its left side is a changelog"
            )));
        }
        let out_names = stream_names(&j.schema);
        let split = j.left.schema().fields().len();
        let mut items: Vec<(Expr, String)> = stream_names(j.left.schema())
            .into_iter()
            .zip(&out_names[..split])
            .map(|(from, to)| (col(&from), to.clone()))
            .collect();
        let mut keys = Vec::new();
        let mut table_keys = Vec::new();
        let mut params = Vec::new();
        for (k, (l, r)) in j.on.iter().enumerate() {
            let common = key_type(l, &j.left, r, &j.right)?;
            let name = format!("__lk{k}");
            items.push((
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(resolve(l.clone(), j.left.schema())),
                    common.clone(),
                )),
                name.clone(),
            ));
            keys.push(name);
            let over_table = side.over_table(r, &j.right)?;
            if let Expr::Column(c) = strip_cast(&over_table) {
                params.push(c.name.clone());
            }
            table_keys.push(Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(over_table),
                common,
            )));
        }
        let http = if connector == "http" {
            if params.len() != j.on.len() {
                return Err(WeirError::plan(format!(
                    "a lookup join of the http table '{table_name}' compares columns of the table (each becomes a \
                     query parameter), not expressions"
                )));
            }
            let option = |k: &str| mapped.options.get(k).and_then(|v| v.as_str()).map(str::to_string);
            Some(HttpLookup {
                url: option("url").unwrap_or_default(),
                params,
                pointer: option("pointer"),
                schema: side.table.physical.clone(),
                max_rows: mapped.lookup_max_rows.unwrap_or(10_000),
            })
        } else {
            None
        };
        let columns = side
            .columns
            .iter()
            .cloned()
            .zip(out_names[split..].iter().cloned())
            .collect();
        let table = LookupTable {
            name: table_name,
            factory,
            columns,
            keys: table_keys,
            filter: side.filter.clone(),
            ttl_ms: mapped.lookup_ttl_ms,
            http,
        };
        let projected = self.project(input, items)?;
        let stream = self.flush(projected, "lookup-left")?;
        let name = self.name("lookup-join");
        let joined = stream.transform(&name, Arc::new(LookupJoin::new(keys, left_outer, table)));
        let lowered = Lowered {
            stream: joined,
            updating: false,
            pending: Some(out_names.iter().map(|n| (col(n), n.clone())).collect()),
        };
        match &j.filter {
            Some(f) => self.restrict(lowered, resolve(f.clone(), &j.schema), "join-filter"),
            None => Ok(lowered),
        }
    }

    /// `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` filtered to its first `N` rows: the
    /// Top-N operator keyed by the partition, its rank column named as the window's output.
    fn top_n(&mut self, w: &datafusion::logical_expr::Window, predicate: &Expr) -> Result<Lowered> {
        use datafusion::logical_expr::{BinaryExpr, Operator as Op};
        let refuse = |why: &str| {
            WeirError::plan(format!(
                "{why}: Weir runs OVER windows as Top-N — ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) in a \
                 subquery, filtered by rownum <= N (or = 1) outside it"
            ))
        };
        let [Expr::WindowFunction(wf)] = w.window_expr.as_slice() else {
            return Err(refuse("one window function over one OVER clause is supported"));
        };
        if !wf.fun.name().eq_ignore_ascii_case("row_number") {
            return Err(refuse(&format!(
                "{}() OVER (…) is not supported yet",
                wf.fun.name().to_uppercase()
            )));
        }
        let names = stream_names(&w.schema);
        let rank = names.last().expect("the window's column").clone();
        let rank_field = w.schema.fields().len() - 1;
        let is_rank = |e: &Expr| matches!(e, Expr::Column(c) if w.schema.maybe_index_of_column(c) == Some(rank_field));
        let n = match predicate {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_rank(left) => match (op, right.as_ref()) {
                (Op::LtEq, Expr::Literal(v, _)) => v.to_string().parse::<i64>().ok(),
                (Op::Lt, Expr::Literal(v, _)) => v.to_string().parse::<i64>().ok().map(|n| n - 1),
                (Op::Eq, Expr::Literal(v, _)) if v.to_string() == "1" => Some(1),
                _ => None,
            },
            _ => None,
        };
        let Some(n) = n.filter(|n| *n >= 1) else {
            return Err(refuse(&format!(
                "the filter on the row number ({predicate}) is not rownum <= N"
            )));
        };
        let input = self.lower(&w.input)?;
        if input.updating {
            return Err(refuse("Top-N over an updating input is not supported yet"));
        }
        let in_schema = w.input.schema();
        let mut items = named_columns(in_schema);
        let mut keys = Vec::new();
        for (i, e) in wf.params.partition_by.iter().enumerate() {
            items.push((resolve(e.clone(), in_schema), format!("__pk{i}")));
            keys.push(format!("__pk{i}"));
        }
        if keys.is_empty() {
            items.push((lit(0i32), "__pk0".into()));
            keys.push("__pk0".into());
        }
        let mut order = Vec::new();
        for (i, sort) in wf.params.order_by.iter().enumerate() {
            items.push((resolve(sort.expr.clone(), in_schema), format!("__sk{i}")));
            order.push(crate::operators::top_n::SortColumn {
                name: format!("__sk{i}"),
                descending: !sort.asc,
                nulls_first: sort.nulls_first,
            });
        }
        let projected = self.project(input, items)?;
        let stream = self.flush(projected, "top-n-input")?;
        let op = crate::operators::top_n::TopN {
            keys: keys.clone(),
            order,
            n: n as usize,
            rank: "__rank".into(),
            state_ttl: self.state_ttl,
        };
        let name = self.name("top-n");
        let ranked = stream.key_by(keys).stream().transform(&name, Arc::new(op));
        let mut out: Vec<(Expr, String)> = names[..names.len() - 1].iter().map(|c| (col(c), c.clone())).collect();
        out.push((
            Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(col("__rank")),
                w.schema.field(rank_field).data_type().clone(),
            )),
            rank,
        ));
        out.push((col(OP_COLUMN), OP_COLUMN.into()));
        Ok(Lowered {
            stream: ranked,
            updating: true,
            pending: Some(out),
        })
    }

    /// Lowers the input of a windowed aggregate, whose projections may compute window markers.
    fn lower_allowing_markers(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::Projection(p) if p.expr.iter().any(has_marker) => {
                let input = self.lower_allowing_markers(&p.input)?;
                self.project(input, projection_items(p))
            }
            LogicalPlan::SubqueryAlias(s) => self.lower_allowing_markers(&s.input),
            LogicalPlan::Filter(f) if !matches!(f.input.as_ref(), LogicalPlan::TableScan(_)) => {
                let input = self.lower_allowing_markers(&f.input)?;
                self.restrict(input, resolve(f.predicate.clone(), f.input.schema()), "filter")
            }
            other => self.lower(other),
        }
    }
}

/// Whether a plan's results update (it aggregates without a window somewhere).
pub fn is_updating(plan: &LogicalPlan) -> bool {
    plan.exists(|p| Ok(matches!(p, LogicalPlan::Aggregate(a) if matches!(find_window(a), Ok(None)))))
        .unwrap_or(false)
}

/// The retracting form of an aggregate (over an updating input).
fn retracting(a: &Agg) -> Result<RetractAgg> {
    let kind = match a.kind {
        AggKind::Count => RetractKind::Count,
        AggKind::Sum => RetractKind::Sum,
        AggKind::Avg => RetractKind::Avg,
        AggKind::Min => RetractKind::Min,
        AggKind::Max => RetractKind::Max,
        other => {
            return Err(WeirError::plan(format!(
                "{other:?} over an updating query is not supported (COUNT, SUM, AVG, MIN and MAX are)"
            )));
        }
    };
    Ok(RetractAgg {
        kind,
        field: a.field.clone(),
        name: a.name.clone(),
    })
}

/// What an output column of an aggregate is.
enum GroupRole {
    /// A window bound.
    Window(Bound),
    /// A named column of the operator's output.
    Key(String),
}

fn post_items(roles: &[GroupRole], names: &[String], types: &[DataType]) -> Vec<(Expr, String)> {
    roles
        .iter()
        .zip(names.iter().zip(types))
        .map(|(role, (name, ty))| {
            let e = match role {
                GroupRole::Window(Bound::Start) => col("window_start"),
                GroupRole::Window(Bound::End) => col("window_end"),
                GroupRole::Window(Bound::Time) => {
                    col("window_end") - lit(ScalarValue::new_interval_mdn(0, 0, 1_000_000))
                }
                GroupRole::Key(k) => col(k),
            };
            (
                Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(e), ty.clone())),
                name.clone(),
            )
        })
        .collect()
}

/// A projection's expressions (columns by name) and output names.
fn projection_items(p: &datafusion::logical_expr::Projection) -> Vec<(Expr, String)> {
    p.expr
        .iter()
        .zip(stream_names(&p.schema))
        .map(|(e, name)| (resolve(e.clone().unalias(), p.input.schema()), name))
        .collect()
}

/// The stream column of each field of a relation with `schema`: the field's name, or
/// `qualifier.name` when another field has the same name (a join's two `id`s). Each lowered
/// relation names its columns so, and [`resolve`] finds them so.
fn stream_names(schema: &DFSchema) -> Vec<String> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (_, f) in schema.iter() {
        *seen.entry(f.name().as_str()).or_default() += 1;
    }
    schema
        .iter()
        .map(|(q, f)| match q {
            Some(q) if seen[f.name().as_str()] > 1 => format!("{q}.{}", f.name()),
            _ => f.name().clone(),
        })
        .collect()
}

/// `e`, an expression over a relation with `schema`, with its columns named as that relation's
/// stream columns ([`stream_names`]); a column the schema lacks (a window marker, `__op`) keeps
/// its bare name.
fn resolve(e: Expr, schema: &DFSchema) -> Expr {
    let names = stream_names(schema);
    e.transform(|x| {
        Ok(match &x {
            Expr::Column(c) => {
                let name = schema
                    .maybe_index_of_column(c)
                    .map_or_else(|| c.name.clone(), |i| names[i].clone());
                Transformed::yes(col(&name))
            }
            _ => Transformed::no(x),
        })
    })
    .map(|t| t.data)
    .expect("renaming columns cannot fail")
}

/// Every column of a relation with `schema`, by its stream name.
fn named_columns(schema: &DFSchema) -> Vec<(Expr, String)> {
    stream_names(schema).into_iter().map(|n| (col(&n), n)).collect()
}

fn col(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn relation_names(plan: &LogicalPlan) -> String {
    let mut names = Vec::new();
    plan.apply(|p| {
        match p {
            LogicalPlan::TableScan(s) => names.push(format!("'{}'", s.table_name.table())),
            LogicalPlan::SubqueryAlias(s) => {
                names.push(format!("'{}'", s.alias.table()));
                return Ok(datafusion::common::tree_node::TreeNodeRecursion::Jump);
            }
            _ => {}
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .expect("walking a plan cannot fail");
    names.join(", ")
}

fn is_marker_name(name: &str) -> bool {
    [functions::WINDOW_START, functions::WINDOW_END, functions::WINDOW_TIME].contains(&name)
}

fn has_marker(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(ScalarFunction { func, args })
            if is_marker_name(func.name())
                && matches!(args.get(1), Some(Expr::Literal(ScalarValue::Int64(Some(k)), _)) if *k != functions::kind_code(TvfKind::Tumble))))
    })
    .expect("cannot fail")
}

fn check_no_window_markers(e: &Expr) -> Result<()> {
    if has_marker(e) {
        return Err(WeirError::plan(
            "the window_start / window_end / window_time of HOP, CUMULATE and SESSION windows are known only \
             per group: use them in GROUP BY window_start, window_end, …",
        ));
    }
    Ok(())
}

/// A window found in an aggregate's `GROUP BY`.
struct WindowFound {
    kind: TvfKind,
    size_ms: i64,
    slide_ms: i64,
    /// The expression the window operator assigns windows by (over the aggregate's input).
    time: Expr,
    /// Whether the time is processing time.
    processing_time: bool,
}

impl WindowFound {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            TvfKind::Tumble => "tumble",
            TvfKind::Hop => "hop",
            TvfKind::Cumulate => "cumulate",
            TvfKind::Session => "session",
        }
    }

    fn assigner(&self) -> Result<WindowAssigner> {
        let ms = |v: i64| std::time::Duration::from_millis(v as u64);
        Ok(match (self.kind, self.processing_time) {
            (TvfKind::Tumble, false) => TumblingEventTimeWindows::of(ms(self.size_ms)),
            (TvfKind::Tumble, true) => TumblingProcessingTimeWindows::of(ms(self.size_ms)),
            (TvfKind::Hop, false) => SlidingEventTimeWindows::of(ms(self.size_ms), ms(self.slide_ms)),
            (TvfKind::Hop, true) => SlidingProcessingTimeWindows::of(ms(self.size_ms), ms(self.slide_ms)),
            (TvfKind::Session, false) => EventTimeSessionWindows::with_gap(ms(self.size_ms)),
            (TvfKind::Session, true) => {
                return Err(WeirError::plan(
                    "SESSION windows on processing time are not supported yet",
                ));
            }
            (TvfKind::Cumulate, processing_time) => {
                let mut a = CumulativeEventTimeWindows::of(ms(self.size_ms), ms(self.slide_ms));
                a.processing_time = processing_time;
                a
            }
        })
    }
}

/// Which window bound a `GROUP BY` item is, if it is one.
fn window_role(e: &Expr, input: &LogicalPlan) -> Option<Bound> {
    window_call(&definition(e, input)).map(|c| c.bound)
}

/// A window function call: which bound it gives (a legacy `TUMBLE(..)` in `GROUP BY` is the
/// window's start), the window, and the time it is computed from.
struct WindowCall {
    bound: Bound,
    kind: TvfKind,
    size: i64,
    slide: i64,
    time: Expr,
}

fn window_call(e: &Expr) -> Option<WindowCall> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = strip_alias(e) else {
        return None;
    };
    let name = func.name();
    if is_marker_name(name) {
        let int = |i: usize| match args.get(i) {
            Some(Expr::Literal(ScalarValue::Int64(Some(v)), _)) => Some(*v),
            _ => None,
        };
        let bound = match name {
            functions::WINDOW_START => Bound::Start,
            functions::WINDOW_END => Bound::End,
            _ => Bound::Time,
        };
        return Some(WindowCall {
            bound,
            kind: functions::kind_of_code(int(1)?)?,
            size: int(2)?,
            slide: int(3)?,
            time: args[0].clone(),
        });
    }
    let kind = functions::GROUP_WINDOWS.iter().find(|(n, _)| *n == name)?.1;
    let ms: Vec<i64> = args[1..]
        .iter()
        .map(functions::interval_literal_ms)
        .collect::<Option<_>>()?;
    let (size, slide) = match (kind, ms.as_slice()) {
        (TvfKind::Hop, [slide, size]) => (*size, *slide),
        (_, [size]) => (*size, *size),
        _ => return None,
    };
    Some(WindowCall {
        bound: Bound::Start,
        kind,
        size,
        slide,
        time: args[0].clone(),
    })
}

fn find_window(a: &Aggregate) -> Result<Option<WindowFound>> {
    let mut found: Option<WindowCall> = None;
    for e in &a.group_expr {
        let Some(call) = window_call(&definition(e, &a.input)) else {
            continue;
        };
        match &found {
            Some(f) if (f.kind, f.size, f.slide) != (call.kind, call.size, call.slide) => {
                return Err(WeirError::plan(
                    "a GROUP BY has one window; this one groups by two different windows",
                ));
            }
            Some(_) => {}
            None => found = Some(call),
        }
    }
    let Some(call) = found else {
        return Ok(None);
    };
    // The window operator assigns by the group item that is the window's start, evaluated on
    // the aggregate's input: for a tumbling window the start itself (in the same window as
    // the row's time), else the row's time.
    let start = a
        .group_expr
        .iter()
        .find(|e| window_role(e, &a.input) == Some(Bound::Start))
        .ok_or_else(|| WeirError::plan("a windowed GROUP BY needs window_start (with window_end)"))?
        .clone();
    let processing_time = call
        .time
        .exists(|x| Ok(matches!(x, Expr::ScalarFunction(ScalarFunction { func, .. }) if func.name() == PROCTIME)))
        .expect("cannot fail");
    Ok(Some(WindowFound {
        kind: call.kind,
        size_ms: call.size,
        slide_ms: call.slide,
        time: start,
        processing_time,
    }))
}

/// `e` with columns replaced by their definitions through projections and aliases below.
/// Whether `a` groups a window aggregate's output by that window's start and end (through
/// projections, aliases and filters): the inner window's step (a tumble's size, a hop's slide,
/// a cumulate's step), the end expression over `a`'s input and its type. Session windows have
/// no fixed step and are not recognised.
fn windowed_input(a: &Aggregate) -> Option<(i64, Expr, DataType)> {
    let mut start = None;
    let mut end = None;
    for e in &a.group_expr {
        if let Some(call) = window_of_input(e, &a.input) {
            match call.bound {
                Bound::Start => start = Some(call),
                Bound::End => end = Some((call, e.clone())),
                _ => {}
            }
        }
    }
    let (start, (end, end_expr)) = (start?, end?);
    if (start.kind, start.size, start.slide) != (end.kind, end.size, end.slide) || start.kind == TvfKind::Session {
        return None;
    }
    let step = if start.kind == TvfKind::Tumble {
        start.size
    } else {
        start.slide
    };
    let ty = datafusion::logical_expr::ExprSchemable::get_type(&end_expr, a.input.schema().as_ref()).ok()?;
    Some((step, end_expr, ty))
}

/// The window bound column `e` of `plan` stands for, when it is a window aggregate's group
/// item (its `window_start` / `window_end`) carried up through projections, aliases and filters.
fn window_of_input(e: &Expr, plan: &LogicalPlan) -> Option<WindowCall> {
    let Expr::Column(c) = strip_alias(e) else {
        return None;
    };
    match plan {
        LogicalPlan::Projection(p) => {
            let i = p.schema.index_of_column(c).ok()?;
            window_of_input(&p.expr[i].clone().unalias(), &p.input)
        }
        LogicalPlan::SubqueryAlias(s) => {
            let i = s.schema.index_of_column(c).ok()?;
            let (q, f) = s.input.schema().qualified_field(i);
            window_of_input(&Expr::Column(Column::new(q.cloned(), f.name())), &s.input)
        }
        LogicalPlan::Filter(f) => window_of_input(e, &f.input),
        LogicalPlan::Aggregate(inner) => {
            let i = inner.schema.index_of_column(c).ok()?;
            let group = inner.group_expr.get(i)?;
            find_window(inner).ok()??;
            window_call(&definition(group, &inner.input))
        }
        _ => None,
    }
}

fn definition(e: &Expr, plan: &LogicalPlan) -> Expr {
    e.clone()
        .transform(|x| {
            let Expr::Column(c) = &x else {
                return Ok(Transformed::no(x));
            };
            Ok(match column_definition(c, plan) {
                Some(d) => Transformed::yes(d),
                None => Transformed::no(x),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}

fn column_definition(c: &Column, plan: &LogicalPlan) -> Option<Expr> {
    match plan {
        LogicalPlan::Projection(p) => {
            let i = p.schema.index_of_column(c).ok()?;
            Some(definition(&p.expr[i].clone().unalias(), &p.input))
        }
        LogicalPlan::SubqueryAlias(s) => {
            let i = s.schema.index_of_column(c).ok()?;
            let (q, f) = s.input.schema().qualified_field(i);
            let inner = Column::new(q.cloned(), f.name());
            Some(definition(&Expr::Column(inner), &s.input))
        }
        LogicalPlan::Filter(f) => column_definition(c, &f.input),
        _ => None,
    }
}

/// Side `index`'s equi-join keys (0: the left's, named `__lk<k>`; 1: the right's, `__rk<k>`),
/// each cast to the type both sides share: the projection items and their names.
fn join_keys(
    on: &[(Expr, Expr)],
    index: usize,
    left: &LogicalPlan,
    right: &LogicalPlan,
) -> Result<(Vec<Item>, Vec<String>)> {
    let mut items = Vec::new();
    let mut names = Vec::new();
    for (k, (l, r)) in on.iter().enumerate() {
        let common = key_type(l, left, r, right)?;
        let (e, plan, name) = if index == 0 {
            (l, left, format!("__lk{k}"))
        } else {
            (r, right, format!("__rk{k}"))
        };
        items.push((
            Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(resolve(e.clone(), plan.schema())),
                common,
            )),
            name.clone(),
        ));
        names.push(name);
    }
    Ok((items, names))
}

/// The type both sides of the join key `l = r` are compared as (each cast to it).
fn key_type(l: &Expr, left: &LogicalPlan, r: &Expr, right: &LogicalPlan) -> Result<DataType> {
    let ty = |e: &Expr, p: &LogicalPlan| {
        datafusion::logical_expr::ExprSchemable::get_type(e, p.schema().as_ref())
            .map_err(|e| WeirError::plan(e.to_string()))
    };
    let (lt, rt) = (ty(l, left)?, ty(r, right)?);
    datafusion::logical_expr::type_coercion::binary::comparison_coercion(&lt, &rt)
        .ok_or_else(|| WeirError::plan(format!("join keys {l} ({lt}) and {r} ({rt}) cannot be compared")))
}

/// A condition that runs inside a semi or anti join, over its inputs' columns: the kept (left)
/// side's under their output names `kept_names`, the other side's as `__r<i>`.
fn in_join_names(f: &Expr, kept: &LogicalPlan, other: &LogicalPlan, kept_names: &[String]) -> Result<Expr> {
    let (kept, other) = (kept.schema(), other.schema());
    f.clone()
        .transform(|x| {
            Ok(match &x {
                Expr::Column(c) => {
                    let name = match (kept.maybe_index_of_column(c), other.maybe_index_of_column(c)) {
                        (Some(i), _) => kept_names[i].clone(),
                        (None, Some(i)) => format!("__r{i}"),
                        (None, None) => c.name.clone(),
                    };
                    Transformed::yes(col(&name))
                }
                _ => Transformed::no(x),
            })
        })
        .map(|t| t.data)
        .map_err(|e| WeirError::plan(e.to_string()))
}

/// `k` when `predicate` is `event_type = k` over a Nexmark table's scan (through projections
/// that keep `event_type`).
fn nexmark_event_type(catalog: &Catalog, input: &LogicalPlan, predicate: &Expr) -> Option<i32> {
    let mut below = input;
    while let LogicalPlan::Projection(p) = below {
        below = &p.input;
    }
    let LogicalPlan::TableScan(scan) = below else {
        return None;
    };
    let resolved = definition(predicate, input);
    let predicate = &resolved;
    let table = catalog.table(scan.table_name.table())?;
    let connector = table.def.options.get("connector")?;
    if connector != "nexmark" && connector != "nexmark-peer" {
        return None;
    }
    let Expr::BinaryExpr(b) = predicate else {
        return None;
    };
    if b.op != datafusion::logical_expr::Operator::Eq {
        return None;
    }
    let (Expr::Column(c), Expr::Literal(v, _)) = (strip_cast(&b.left), strip_cast(&b.right)) else {
        return None;
    };
    if c.name != "event_type" {
        return None;
    }
    let k = match v {
        ScalarValue::Int32(Some(k)) => *k,
        ScalarValue::Int64(Some(k)) => *k as i32,
        _ => return None,
    };
    (0..=2).contains(&k).then_some(k)
}

fn strip_cast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => strip_cast(&c.expr),
        other => other,
    }
}

/// The step that turns the connector's batches into the table's `wanted` columns: computed
/// columns evaluated, and with `event_type` the unified Nexmark layout rebuilt around the flat
/// stream of that kind (the other kinds' columns null, `event_type` constant).
/// A Debezium JSON source's step: the changes become changelog rows (rejects for the
/// dead-letter output), then `calc` computes the table's columns; [`OP_COLUMN`] stays last.
fn changelog_calc(
    physical: &SchemaRef,
    output: SchemaRef,
    calc: super::source_calc::BatchFn,
) -> (SchemaRef, super::source_calc::BatchFn) {
    let mut fields: Vec<arrow::datatypes::FieldRef> = output.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    let with_op = Arc::new(Schema::new(fields));
    let physical = physical.clone();
    let out = with_op.clone();
    let step = move |batch: RecordBatch, rejects: &mut super::source_calc::Rejects| -> Result<RecordBatch> {
        let (rows, rejected) = super::debezium::changelog(&batch, &physical)?;
        rejects.extend(rejected);
        let last = rows.num_columns() - 1;
        let ops = rows.column(last).clone();
        let table = calc(rows.project(&(0..last).collect::<Vec<_>>())?, rejects)?;
        let mut columns = table.columns().to_vec();
        columns.push(ops);
        Ok(RecordBatch::try_new(out.clone(), columns)?)
    };
    (with_op, Arc::new(step))
}

fn table_calc(
    table: &Table,
    wanted: &[String],
    event_type: Option<i32>,
) -> Result<(SchemaRef, super::source_calc::BatchFn)> {
    let bad = |e: datafusion::error::DataFusionError| WeirError::plan(format!("table '{}': {e}", table.def.name));
    let full = DFSchema::try_from(table.physical.as_ref().clone()).map_err(bad)?;
    let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
        datafusion::logical_expr::simplify::SimplifyContext::builder()
            .with_schema(Arc::new(full))
            .build(),
    );
    // Each wanted column: physical, or a computed expression (with a narrowed Nexmark source's
    // event type folded in, so the other kinds' branches fall away).
    let mut exprs: Vec<(String, Option<Expr>)> = Vec::new();
    for w in wanted {
        if table.physical.field_with_name(w).is_ok() {
            exprs.push((w.clone(), None));
            continue;
        }
        let (_, expr) = table
            .computed
            .iter()
            .find(|(n, _)| n == w)
            .ok_or_else(|| WeirError::plan(format!("table '{}' has no column '{w}'", table.def.name)))?;
        let mut expr = expr.clone();
        if let Some(k) = event_type {
            expr = expr
                .transform(|x| {
                    Ok(match &x {
                        Expr::Column(c) if c.name == "event_type" => Transformed::yes(lit(k)),
                        _ => Transformed::no(x),
                    })
                })
                .map(|t| t.data)
                .map_err(bad)?;
        }
        exprs.push((w.clone(), Some(simplifier.simplify(expr).map_err(bad)?)));
    }
    // Struct fields the expressions read (`person.dateTime`) become columns of their own, so
    // an expression is evaluated on the few columns it reads, never on whole rows (a CASE
    // filters its input per branch: copying wide structs of strings would dominate).
    let mut exprs_flat: Vec<(String, Option<Computed>)> = Vec::new();
    for (name, e) in exprs {
        match e {
            None => exprs_flat.push((name, None)),
            Some(e) => {
                let mut inputs: Vec<Inner> = Vec::new();
                let e = e
                    .transform(|x| {
                        if let Some((c, f)) = struct_field(&x, &table.physical) {
                            let inner = Inner::Field(c, f);
                            let col_name = inner.column_name();
                            if !inputs.contains(&inner) {
                                inputs.push(inner);
                            }
                            return Ok(Transformed::yes(col(&col_name)));
                        }
                        Ok(Transformed::no(x))
                    })
                    .map(|t| t.data)
                    .map_err(bad)?;
                for c in e.column_refs() {
                    let inner = Inner::Column(c.name.clone());
                    if !c.name.starts_with(FIELD_PREFIX) && !inputs.contains(&inner) {
                        inputs.push(inner);
                    }
                }
                exprs_flat.push((name, Some((e, inputs))));
            }
        }
    }
    // The physical columns all of that needs, in declared order: the batch the step builds first.
    let mut needed = std::collections::BTreeSet::new();
    for (name, e) in &exprs_flat {
        match e {
            None => {
                needed.insert(name.clone());
            }
            Some((_, inputs)) => {
                for i in inputs {
                    needed.insert(i.physical().to_string());
                }
            }
        }
    }
    let base_schema = Arc::new(Schema::new(
        table
            .physical
            .fields()
            .iter()
            .filter(|f| needed.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    let ctx = crate::operators::expr::planning_context();
    let mut columns: Vec<(Field, Option<Evaluated>)> = Vec::new();
    for (name, e) in exprs_flat {
        match e {
            None => columns.push((base_schema.field_with_name(&name).expect("needed").clone(), None)),
            Some((e, inputs)) => {
                let fields: Vec<Field> = inputs.iter().map(|i| i.field(&base_schema)).collect::<Result<_>>()?;
                let eval_schema = Arc::new(Schema::new(fields));
                let df_schema = DFSchema::try_from(eval_schema.as_ref().clone()).map_err(bad)?;
                let physical = ctx.create_physical_expr(e, &df_schema).map_err(bad)?;
                let physical = crate::operators::expr_kernels::specialize(physical, &eval_schema);
                let field = physical.return_field(eval_schema.as_ref()).map_err(bad)?;
                columns.push((
                    field.as_ref().clone().with_name(name),
                    Some((physical, inputs, eval_schema)),
                ));
            }
        }
    }
    let output = Arc::new(Schema::new(columns.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>()));
    let out = output.clone();
    let table_name = table.def.name.clone();
    let calc = move |batch: RecordBatch, _: &mut super::source_calc::Rejects| -> Result<RecordBatch> {
        let n = batch.num_rows();
        let base = match event_type {
            Some(k) => unified(&base_schema, &batch, k)?,
            None => batch.project(
                &base_schema
                    .fields()
                    .iter()
                    .map(|f| batch.schema().index_of(f.name()))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            )?,
        };
        let missing =
            |name: &str| WeirError::plan(format!("table '{table_name}': the connector gave no column '{name}'"));
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for (f, expr) in &columns {
            arrays.push(match expr {
                None => base
                    .column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| missing(f.name()))?,
                Some((e, inputs, eval_schema)) => {
                    let cols = inputs
                        .iter()
                        .map(|i| i.array(&base).ok_or_else(|| missing(i.physical())))
                        .collect::<Result<Vec<_>>>()?;
                    let small = RecordBatch::try_new_with_options(
                        eval_schema.clone(),
                        cols,
                        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
                    )?;
                    e.evaluate(&small)
                        .and_then(|v| v.into_array(n))
                        .map_err(|e| WeirError::plan(format!("table '{table_name}', column '{}': {e}", f.name())))?
                }
            });
        }
        Ok(RecordBatch::try_new_with_options(
            out.clone(),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    };
    Ok((output, Arc::new(calc)))
}

const FIELD_PREFIX: &str = "__field.";

/// A computed column's expression over the columns it reads.
type Computed = (Expr, Vec<Inner>);

/// A computed column's physical expression, the columns it reads and their schema.
type Evaluated = (Arc<dyn PhysicalExpr>, Vec<Inner>, SchemaRef);

/// A column a computed expression reads: a physical column, or one field of a struct column.
#[derive(Debug, Clone, PartialEq)]
enum Inner {
    Column(String),
    Field(String, String),
}

impl Inner {
    fn column_name(&self) -> String {
        match self {
            Inner::Column(c) => c.clone(),
            Inner::Field(c, f) => format!("{FIELD_PREFIX}{c}.{f}"),
        }
    }

    fn physical(&self) -> &str {
        match self {
            Inner::Column(c) | Inner::Field(c, _) => c,
        }
    }

    fn field(&self, base: &Schema) -> Result<Field> {
        let parent = base
            .field_with_name(self.physical())
            .map_err(|_| WeirError::plan(format!("no column '{}'", self.physical())))?;
        Ok(match (self, parent.data_type()) {
            (Inner::Column(_), _) => parent.clone(),
            (Inner::Field(_, f), DataType::Struct(fields)) => {
                let child = fields
                    .iter()
                    .find(|x| x.name() == f)
                    .ok_or_else(|| WeirError::plan(format!("no field '{f}' in '{}'", self.physical())))?;
                Field::new(self.column_name(), child.data_type().clone(), true)
            }
            (Inner::Field(..), other) => {
                return Err(WeirError::plan(format!("'{}' is {other}, not a ROW", self.physical())));
            }
        })
    }

    /// The column's values in `batch`: a struct field with its parent's nulls.
    fn array(&self, batch: &RecordBatch) -> Option<ArrayRef> {
        let parent = batch.column_by_name(self.physical())?;
        match self {
            Inner::Column(_) => Some(parent.clone()),
            Inner::Field(_, f) => {
                let s = parent.as_any().downcast_ref::<StructArray>()?;
                let child = s.column_by_name(f)?;
                let nulls = arrow::buffer::NullBuffer::union(s.nulls(), child.nulls());
                let data = child.to_data().into_builder().nulls(nulls).build().ok()?;
                Some(arrow::array::make_array(data))
            }
        }
    }
}

/// `(column, field)` when `e` is `get_field(column, 'field')` on a struct column of `physical`.
fn struct_field(e: &Expr, physical: &Schema) -> Option<(String, String)> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = e else {
        return None;
    };
    if func.name() != "get_field" {
        return None;
    }
    match args.as_slice() {
        [Expr::Column(c), Expr::Literal(ScalarValue::Utf8(Some(f)), _)]
            if matches!(
                physical.field_with_name(&c.name).map(|x| x.data_type()),
                Ok(DataType::Struct(_))
            ) =>
        {
            Some((c.name.clone(), f.clone()))
        }
        _ => None,
    }
}

/// A flat Nexmark batch of event kind `k` in the unified layout `schema`.
fn unified(schema: &SchemaRef, flat: &RecordBatch, k: i32) -> Result<RecordBatch> {
    let n = flat.num_rows();
    let own = ["person", "auction", "bid"][k as usize];
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        arrays.push(match (f.name().as_str(), f.data_type()) {
            ("event_type", _) => Arc::new(Int32Array::from_value(k, n)),
            (name, DataType::Struct(fields)) if name == own => {
                let children: Vec<ArrayRef> = fields
                    .iter()
                    .map(|cf| {
                        flat.column_by_name(cf.name())
                            .cloned()
                            .ok_or_else(|| WeirError::plan(format!("nexmark {own} has no field '{}'", cf.name())))
                    })
                    .collect::<Result<_>>()?;
                Arc::new(StructArray::try_new(fields.clone(), children, None)?)
            }
            (_, t) => new_null_array(t, n),
        });
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}
