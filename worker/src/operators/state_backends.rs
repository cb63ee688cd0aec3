//! Property test: every operator keeping keyed state gives the same output on the disk backend
//! as in memory, over random input, through full and incremental snapshots and restores — each
//! backend restoring the other's snapshots — and the same as a run that is never restored.
//!
//! [`StateTable`]: crate::state::StateTable

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;

use super::changelog_aggregate::{ChangelogAggregate, RetractAgg, RetractKind};
use super::interval_join::IntervalJoin;
use super::join::{JoinType, RegularJoin};
use super::keyed_process::{KeyedContext, KeyedProcess, KeyedProcessFunction};
use super::running_aggregate::{OP_COLUMN, RunningAggregate};
use super::testing::ctx;
use super::top_n::{SortColumn, TopN};
use super::window::count::CountWindowAggregate;
use super::window::{WindowAggregate, WindowFunction};
use super::{Operator, OperatorFactory, TaskContext};
use crate::checkpoint::OperatorState;
use crate::contract::UserResult;
use crate::contract::operator::TimeDomain;
use crate::row::{Row, RowRef, Value};
use crate::state::{DiskSettings, StateBackend};
use crate::state::{ListStateDescriptor, ValueStateDescriptor};
use crate::window::trigger::{ContinuousEventTimeTrigger, CountTrigger, PurgingTrigger, Trigger};
use crate::window::{Agg, EventTimeSessionWindows, GlobalWindows, SlidingEventTimeWindows, WindowAssigner};

/// A batch of `(key, value)` rows with the given column names; with `changelog`, each row an
/// insert or (when its flag is set) a retraction in the changelog column.
fn batch(names: (&str, &str), rows: &[(i64, i64, bool)], changelog: bool) -> RecordBatch {
    let mut fields = vec![
        Field::new(names.0, DataType::Int64, false),
        Field::new(names.1, DataType::Int64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
    ];
    if changelog {
        fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| if r.2 { "-D" } else { "+I" }),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// A keyed process function with value and list state and event-time timers: sums `v` per
/// key, keeps the values, and at a timer (at time `v`) emits the key's sum and number of values,
/// clearing the key when its sum is negative.
#[derive(Clone)]
struct SumAndList;

impl KeyedProcessFunction for SumAndList {
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, _out: &mut Vec<Row>) -> UserResult<()> {
        let v = row.get_i64("v").unwrap_or(0);
        let sum = ValueStateDescriptor::<i64>::new("sum");
        let s = ctx.state().value(&sum).unwrap_or(0) + v;
        ctx.state().update(&sum, s);
        ctx.state().add(&ListStateDescriptor::<i64>::new("values"), v);
        ctx.register_event_time_timer(v);
        Ok(())
    }

    fn on_timer(&mut self, at: i64, _: TimeDomain, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        let s = ctx.state().value(&ValueStateDescriptor::<i64>::new("sum")).unwrap_or(0);
        let n = ctx.state().list(&ListStateDescriptor::<i64>::new("values")).len() as i64;
        out.push(vec![
            ctx.current_key()[0].clone(),
            Value::Int(at),
            Value::Int(s),
            Value::Int(n),
        ]);
        if s < 0 {
            ctx.state().clear("sum");
            ctx.state().clear("values");
        }
        Ok(())
    }
}

/// The rows of a batch, printed and sorted.
fn sorted_rows(batch: &RecordBatch) -> Vec<String> {
    let columns: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).unwrap())
        .collect();
    let mut rows: Vec<String> = (0..batch.num_rows())
        .map(|r| {
            columns
                .iter()
                .map(|c| c.value(r).to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    rows.sort();
    rows
}

/// One operator subtask on one backend, with its chain of snapshots since the last full one.
struct Run {
    op: Box<dyn Operator>,
    chain: Vec<OperatorState>,
    out: Vec<RecordBatch>,
}

impl Run {
    fn snapshot(&mut self, changes: bool) {
        let asked = changes && !self.chain.is_empty();
        let snap = self.op.snapshot(1, asked).unwrap();
        // Asked for changes, a table may answer with everything (the disk backend does when
        // much changed); never the other way round.
        let changes = snap.is_changes();
        assert!(asked || !changes, "changes it was not asked for");
        let state = snap.into_state().unwrap();
        if !changes {
            self.chain.clear();
        }
        self.chain.push(state);
    }

    /// What a restore from the chain hands the operator.
    fn restored(&self) -> OperatorState {
        let (full, changes) = self.chain.split_first().expect("a snapshot");
        OperatorState {
            deltas: changes.iter().map(|c| c.keyed.clone()).collect(),
            operator: self.chain.last().and_then(|s| s.operator.clone()),
            union: self.chain.last().and_then(|s| s.operator.clone()).into_iter().collect(),
            ..full.clone()
        }
    }
}

/// A way to make the operator under test on a context.
type Make = Box<dyn Fn(&TaskContext) -> Box<dyn Operator>>;

/// The operators under test: a name, whether its input is a changelog, and how to make one (two
/// inputs for the join).
fn operators() -> Vec<(&'static str, bool, Make)> {
    let one = |f: Box<dyn OperatorFactory>, changelog: bool| -> Make {
        let schema: SchemaRef = batch(("k", "v"), &[], changelog).schema();
        Box::new(move |c: &TaskContext| f.create(&schema, c).unwrap())
    };
    let (l, r) = (
        batch(("k", "v"), &[], true).schema(),
        batch(("rk", "rv"), &[], true).schema(),
    );
    // Windows over time `v` (ms), with lateness, so that late rows refire windows.
    let windows = |assigner: WindowAssigner| -> Box<dyn OperatorFactory> {
        Box::new(WindowAggregate {
            keys: vec!["k".into()],
            assigner: assigner.on("v"),
            function: WindowFunction::Aggregates(vec![Agg::count().alias("n"), Agg::sum("k").alias("s")]),
            allowed_lateness: 2,
            trigger: None,
        })
    };
    let ms = std::time::Duration::from_millis;
    let process_output: SchemaRef = Arc::new(Schema::new(
        ["k", "at", "sum", "n"]
            .map(|n| Field::new(n, DataType::Int64, false))
            .to_vec(),
    ));
    let global = |trigger: Arc<dyn Trigger>| -> Box<dyn OperatorFactory> {
        Box::new(WindowAggregate {
            keys: vec!["k".into()],
            assigner: GlobalWindows::create().on("v"),
            function: WindowFunction::Aggregates(vec![Agg::count().alias("n"), Agg::sum("v").alias("s")]),
            allowed_lateness: 0,
            trigger: Some(trigger),
        })
    };
    vec![
        (
            "global count windows",
            false,
            one(global(PurgingTrigger::of(CountTrigger::of(3))), false),
        ),
        (
            "global event-time windows",
            false,
            one(global(ContinuousEventTimeTrigger::of(ms(3))), false),
        ),
        (
            "keyed process",
            false,
            one(
                Box::new(KeyedProcess {
                    keys: vec!["k".into()],
                    output: Some(process_output),
                    function: Arc::new(std::sync::Mutex::new(SumAndList)),
                }),
                false,
            ),
        ),
        (
            "sliding windows",
            false,
            one(windows(SlidingEventTimeWindows::of(ms(4), ms(2))), false),
        ),
        (
            "session windows",
            false,
            one(windows(EventTimeSessionWindows::with_gap(ms(2))), false),
        ),
        (
            "running aggregate",
            false,
            one(
                Box::new(RunningAggregate {
                    keys: vec!["k".into()],
                    aggs: vec![
                        Agg::count().alias("n"),
                        Agg::sum("v").alias("s"),
                        Agg::max("v").alias("m"),
                    ],
                    changelog: true,
                    state_ttl: None,
                }),
                false,
            ),
        ),
        (
            "changelog aggregate",
            true,
            one(
                Box::new(ChangelogAggregate {
                    keys: vec!["k".into()],
                    aggs: vec![
                        RetractAgg {
                            kind: RetractKind::Sum,
                            field: Some("v".into()),
                            name: "s".into(),
                        },
                        RetractAgg {
                            kind: RetractKind::Min,
                            field: Some("v".into()),
                            name: "lo".into(),
                        },
                    ],
                    state_ttl: None,
                }),
                true,
            ),
        ),
        (
            "count windows",
            false,
            one(
                Box::new(CountWindowAggregate {
                    keys: vec!["k".into()],
                    size: 3,
                    slide: 2,
                    aggs: vec![Agg::count().alias("n"), Agg::sum("v").alias("s")],
                }),
                false,
            ),
        ),
        (
            "top-n",
            false,
            one(
                Box::new(TopN {
                    keys: vec!["k".into()],
                    order: vec![SortColumn {
                        name: "v".into(),
                        descending: true,
                        nulls_first: false,
                    }],
                    n: 3,
                    rank: "rn".into(),
                    state_ttl: None,
                }),
                false,
            ),
        ),
        (
            "join",
            true,
            Box::new(move |c: &TaskContext| {
                RegularJoin {
                    join_type: JoinType::Full,
                    left_keys: vec!["k".into()],
                    right_keys: vec!["rk".into()],
                    condition: None,
                    state_ttl: None,
                }
                .create_of(&[l.clone(), r.clone()], c)
                .unwrap()
            }),
        ),
        (
            "interval join",
            false,
            Box::new(move |c: &TaskContext| {
                let (l, r) = (
                    batch(("k", "v"), &[], false).schema(),
                    batch(("rk", "rv"), &[], false).schema(),
                );
                IntervalJoin {
                    left_keys: vec!["k".into()],
                    right_keys: vec!["rk".into()],
                    left_time: Some("v".into()),
                    right_time: Some("rv".into()),
                    lower: -2,
                    upper: 1,
                    semi: false,
                    window: None,
                    outer: [false, false],
                    condition: None,
                }
                .create_of(&[l, r], c)
                .unwrap()
            }),
        ),
    ]
}

/// Restores `state` into `op`: in two parts split by key group when the operator takes its
/// state in parts (as the runtime does with large state), else at once.
fn restore(op: &mut dyn Operator, state: OperatorState) {
    if !op.restores_in_parts() {
        return op.restore(state).unwrap();
    }
    let split = |m: &std::collections::BTreeMap<u32, Vec<u8>>, low: bool| {
        m.iter()
            .filter(|(g, _)| (**g < 64) == low)
            .map(|(g, b)| (*g, b.clone()))
            .collect()
    };
    for low in [true, false] {
        op.restore(OperatorState {
            keyed: split(&state.keyed, low),
            deltas: state.deltas.iter().map(|d| split(d, low)).collect(),
            ..state.clone()
        })
        .unwrap();
    }
}

/// After a batch: nothing, a full snapshot, an incremental one, or a snapshot and a restore of
/// each backend from the other's chain.
#[derive(Debug, Clone, Copy)]
enum Step {
    Go,
    Full,
    Changes,
    Swap,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Go),
        1 => Just(Step::Full),
        2 => Just(Step::Changes),
        1 => Just(Step::Swap),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn keyed_operators_give_the_same_output_on_disk_as_in_memory(
        batches in prop::collection::vec(
            (prop::collection::vec((0i64..30, -6i64..6, prop::bool::weighted(0.3)), 1..50), step()),
            1..14,
        )
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let disk = TaskContext {
            // 4 KiB: the entry cache holds about a dozen of the 30 keys, so state goes to disk and
            // back all the time.
            state: StateBackend::Disk(DiskSettings { dir: tmp.path().to_path_buf(), memory: 4 << 10, local_recovery: true }),
            ..ctx()
        };
        let memory = ctx();
        for (name, changelog, make) in operators() {
            // Memory and disk, snapshotted and restored from each other; and a reference in
            // memory that never is (a correct restore changes no output).
            let mut runs = [
                Run { op: make(&memory), chain: Vec::new(), out: Vec::new() },
                Run { op: make(&disk), chain: Vec::new(), out: Vec::new() },
                Run { op: make(&memory), chain: Vec::new(), out: Vec::new() },
            ];
            for (i, (rows, step)) in batches.iter().enumerate() {
                // The joins take even batches on the left, odd ones on the right.
                let (input, names) = if name.ends_with("join") && i % 2 == 1 { (1, ("rk", "rv")) } else { (0, ("k", "v")) };
                let b = batch(names, rows, changelog);
                for run in &mut runs {
                    run.op.process_input(input, b.clone(), &mut run.out).unwrap();
                    if name.ends_with("windows") || name == "keyed process" || name == "interval join" {
                        run.op.on_watermark(i as i64 - 6, &mut run.out).unwrap();
                    }
                }
                match step {
                    Step::Go => {}
                    Step::Full | Step::Changes => {
                        for run in &mut runs[..2] {
                            run.snapshot(matches!(step, Step::Changes));
                        }
                    }
                    Step::Swap => {
                        // A snapshot now (incremental when there is a chain), then each backend
                        // restores the other's.
                        for run in &mut runs[..2] {
                            run.snapshot(true);
                        }
                        let (from_disk, from_memory) = (runs[1].restored(), runs[0].restored());
                        runs[0].op = make(&memory);
                        restore(runs[0].op.as_mut(), from_disk);
                        runs[1].op = make(&disk);
                        restore(runs[1].op.as_mut(), from_memory);
                        for run in &mut runs[..2] {
                            run.chain.clear();
                        }
                    }
                }
            }
            for run in &mut runs {
                run.op.on_end(&mut run.out).unwrap();
            }
            let [m, d, reference] = &runs;
            for (run, what) in [(m, "restored in memory"), (d, "restored on disk")] {
                prop_assert_eq!(run.out.len(), reference.out.len(), "{} {}: output batches", name, what);
                for (a, b) in run.out.iter().zip(&reference.out) {
                    // A window's keys come in hash order from memory, in key order from disk.
                    prop_assert_eq!(sorted_rows(a), sorted_rows(b), "{} {}", name, what);
                }
            }
        }
    }
}

#[test]
fn sliding_windows_refuse_a_snapshot_kept_per_window() {
    // A snapshot of sliding windows written before they were kept per slice has the bare
    // watermark as its operator state: read as slices it would count records several times.
    let (_, _, make) = operators()
        .into_iter()
        .find(|(name, _, _)| *name == "sliding windows")
        .unwrap();
    let mut op = make(&ctx());
    let mut out = Vec::new();
    op.process_input(0, batch(("k", "v"), &[(1, 3, false), (2, 4, false)], false), &mut out)
        .unwrap();
    let mut state = op.snapshot(1, false).unwrap().into_state().unwrap();
    assert!(!state.keyed.is_empty());
    let sliced = state.operator.clone().unwrap();
    let mut fresh = make(&ctx());
    fresh
        .restore(OperatorState {
            union: vec![sliced],
            ..state.clone()
        })
        .unwrap();
    let per_window = crate::checkpoint::encode(&i64::MIN).unwrap();
    state.union = vec![per_window];
    let e = make(&ctx()).restore(state).unwrap_err().to_string();
    assert!(e.contains("per window") && e.contains("per slice"), "{e}");
}
