//! Weir's autoscaler: the parallelism a job needs, from what its subtasks report (busy time and
//! records per second per vertex) and what its sources have left to read (lag), in the spirit
//! of Flink's autoscaler (FLIP-271), made to act in seconds since a Weir rescale takes seconds.
//!
//! [`Autoscaler::observe`] takes one [`Sample`] at a time and answers a [`Decision`]; it holds
//! the samples of the last metric window and the stabilisation state (cool-down, scale-down
//! delay). It reads no clock: sample times drive it, so tests replay recorded traces.
//!
//! The rule, per vertex `v` over the window's averages:
//!
//! - the true rate of one subtask = its records per second / its busy share (what it would do
//!   busy all the time);
//! - the job's target rate = what arrives at the sources (their consumption plus the lag's
//!   growth; the median over the window's samples, so a spike shorter than half the window
//!   does not move it) plus the lag to drain within `catchUpSeconds`;
//! - `v` must take `target / consumption` times what it takes now, so it needs
//!   `⌈rate needed / (true rate per subtask × targetUtilization)⌉` subtasks;
//! - the job gets the most any vertex needs (Weir runs every vertex at the job's parallelism),
//!   within `minParallelism`…`maxParallelism`, rounded up to a divisor of the key groups when
//!   one is within a third above (key groups then spread evenly).
//!
//! Stabilisation: no decision before a whole window of samples; none within
//! `scaleUpCooldownSeconds` of a rescale; a scale-down only once every sample for
//! `scaleDownDelaySeconds` asked for less (and then to the most they asked for), and only if
//! the backlog the rescale's downtime piles up (the last rescale's measured downtime × the input
//! rate) drains within `catchUpSeconds` at the lower parallelism.

use std::collections::VecDeque;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.autoscaler` of a StreamJob (and `weir cluster --autoscale`'s settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSpec {
    /// Decide (and, unless `dryRun`, rescale) on the job's metrics.
    #[serde(default)]
    pub enabled: bool,
    /// The busy share each subtask should run at (0–1; the rest is headroom).
    #[serde(default = "defaults::target_utilization")]
    pub target_utilization: f64,
    /// Least parallelism it sets.
    #[serde(default = "defaults::one")]
    pub min_parallelism: u32,
    /// Most parallelism it sets (none: the job's key groups, `maxParallelism`).
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    /// Seconds of samples each decision averages over.
    #[serde(default = "defaults::window")]
    pub metric_window_seconds: u64,
    /// Seconds after a rescale before the next decision.
    #[serde(default = "defaults::cooldown")]
    pub scale_up_cooldown_seconds: u64,
    /// Seconds the load must stay low before a scale-down.
    #[serde(default = "defaults::down_delay")]
    pub scale_down_delay_seconds: u64,
    /// Seconds in which the sources' lag should be drained.
    #[serde(default = "defaults::catch_up")]
    pub catch_up_seconds: u64,
    /// Decide and report, never rescale.
    #[serde(default)]
    pub dry_run: bool,
}

mod defaults {
    pub fn target_utilization() -> f64 {
        0.7
    }
    pub fn one() -> u32 {
        1
    }
    pub fn window() -> u64 {
        30
    }
    pub fn cooldown() -> u64 {
        30
    }
    pub fn down_delay() -> u64 {
        120
    }
    pub fn catch_up() -> u64 {
        60
    }
}

impl Default for AutoscalerSpec {
    fn default() -> Self {
        AutoscalerSpec {
            enabled: false,
            target_utilization: defaults::target_utilization(),
            min_parallelism: defaults::one(),
            max_parallelism: None,
            metric_window_seconds: defaults::window(),
            scale_up_cooldown_seconds: defaults::cooldown(),
            scale_down_delay_seconds: defaults::down_delay(),
            catch_up_seconds: defaults::catch_up(),
            dry_run: false,
        }
    }
}

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

impl AutoscalerSpec {
    /// How often to sample the job: a sixth of the window, 1–10 s.
    pub fn sample_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.metric_window_seconds * 1000 / 6).clamp(1000, 10_000))
    }

    /// Checks the fields against each other and the job's key groups, naming the field.
    pub fn validate(&self, key_groups: u32) -> Result<(), SpecError> {
        let bad = |field: &str, why: String| Err(SpecError(format!("autoscaler.{field}: {why}")));
        if !(self.target_utilization > 0.0 && self.target_utilization <= 1.0) {
            return bad(
                "targetUtilization",
                format!("must be in (0, 1], got {}", self.target_utilization),
            );
        }
        if self.min_parallelism == 0 {
            return bad("minParallelism", "must be at least 1".into());
        }
        let max = self.max_parallelism.unwrap_or(key_groups);
        if max < self.min_parallelism {
            return bad(
                "maxParallelism",
                format!("{max} is below minParallelism {}", self.min_parallelism),
            );
        }
        if max > key_groups {
            return bad(
                "maxParallelism",
                format!("{max} is above the job's {key_groups} key groups"),
            );
        }
        if self.metric_window_seconds == 0 {
            return bad("metricWindowSeconds", "must be at least 1".into());
        }
        Ok(())
    }
}

/// One vertex's figures at a moment (summed or averaged over its subtasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VertexSample {
    /// Vertex id or name.
    pub id: String,
    /// Whether it reads a source (its records are the ones it reads from outside). Sources
    /// size the target, not the parallelism: their busy time includes waiting on the system
    /// they read.
    pub source: bool,
    /// Its subtasks (0: the job's parallelism).
    #[serde(default)]
    pub subtasks: u32,
    /// Its subtasks' mean share of time busy (0–1).
    pub busy: f64,
    /// Records per second it takes in (a source vertex: records it reads).
    pub records_per_s: f64,
}

/// The job's figures at a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// When, ms (any clock; samples must come in order).
    pub at_ms: i64,
    /// The job's parallelism when the figures were taken.
    pub parallelism: u32,
    /// Per vertex.
    pub vertices: Vec<VertexSample>,
    /// Records the sources have not read yet (Kafka: end offsets − positions); none when the
    /// sources cannot tell (a generator).
    pub lag: Option<f64>,
}

/// What the autoscaler wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Keep the parallelism.
    Hold,
    /// More subtasks.
    ScaleUp,
    /// Fewer subtasks.
    ScaleDown,
}

/// One vertex's numbers behind a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VertexNeed {
    /// Vertex.
    pub id: String,
    /// Mean busy share over the window.
    pub busy: f64,
    /// Records per second over the window.
    pub records_per_s: f64,
    /// What one subtask would do busy all the time (none: it was idle, no estimate).
    pub true_rate_per_subtask: Option<f64>,
    /// Subtasks it needs for the target rate.
    pub needed: u32,
}

/// A decision and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// When (the sample's time).
    pub at_ms: i64,
    /// Hold, scale up or down.
    pub action: Action,
    /// The parallelism now.
    pub current: u32,
    /// The parallelism it wants now (before stabilisation holds it back).
    pub recommended: u32,
    /// The parallelism to set (the current one when holding).
    pub target: u32,
    /// Why, in words.
    pub reason: String,
    /// Records per second the sources read (window mean).
    pub source_rate: f64,
    /// Records per second arriving at the sources (consumption plus the lag's growth; the
    /// window's median).
    pub input_rate: f64,
    /// Records per second the job should take in: input plus the lag drained in time.
    pub target_rate: f64,
    /// The sources' lag at the sample (none: unknown).
    pub lag: Option<f64>,
    /// How fast the lag changed over the window, records per second: negative while it drains
    /// (none: unknown, or a single sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_rate: Option<f64>,
    /// Per vertex.
    pub vertices: Vec<VertexNeed>,
}

/// The autoscaler of one job: its window of samples and its stabilisation state.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: AutoscalerSpec,
    key_groups: u32,
    window: VecDeque<Sample>,
    /// When the job was last rescaled (ms), and how long it was down then.
    last_rescale: Option<(i64, u64)>,
    /// Since when every sample asked for fewer subtasks, and the most any of them asked for.
    low: Option<(i64, u32)>,
    /// The previous reading of the subtasks' running totals, and at which parallelism.
    previous: Option<(u32, Vec<SubtaskTotals>)>,
}

/// Below this busy share a vertex gives no estimate of its rate (it waits nearly all the time).
const IDLE: f64 = 0.02;

impl Autoscaler {
    /// An autoscaler with `spec` for a job of `key_groups` key groups (its `maxParallelism`).
    pub fn new(spec: AutoscalerSpec, key_groups: u32) -> Result<Autoscaler, SpecError> {
        spec.validate(key_groups)?;
        Ok(Autoscaler {
            spec,
            key_groups,
            window: VecDeque::new(),
            last_rescale: None,
            low: None,
            previous: None,
        })
    }

    /// The settings.
    pub fn spec(&self) -> &AutoscalerSpec {
        &self.spec
    }

    /// Tells it the job was rescaled at `at_ms` and was down `downtime_ms` for it: the window
    /// starts over (the old parallelism's figures no longer apply) and the cool-down begins.
    pub fn rescaled(&mut self, at_ms: i64, downtime_ms: u64) {
        self.last_rescale = Some((at_ms, downtime_ms));
        self.window.clear();
        self.low = None;
        self.previous = None;
    }

    /// Takes a reading of the job's subtask totals (at `at_ms`, running at `parallelism`) and
    /// decides on the sample since the previous reading; None for the first reading, after a
    /// change of parallelism, or when no subtask is in both readings (a new run). Workers
    /// report their totals with their heartbeats, each on its own beat: while a subtask has
    /// not reported since the previous reading, that reading stays the baseline (a sample of
    /// only the workers that did report would count part of the job as all of it).
    pub fn observe_totals(&mut self, at_ms: i64, parallelism: u32, totals: Vec<SubtaskTotals>) -> Option<Decision> {
        let lag = lag_of(&totals);
        let sample = match &self.previous {
            Some((p, before)) if *p == parallelism => {
                if not_reported_since(before, &totals) {
                    return None;
                }
                sample_between(before, &totals, at_ms, parallelism, lag)
            }
            _ => None,
        };
        self.previous = Some((parallelism, totals));
        Some(self.observe(sample?))
    }

    /// Takes `sample` and decides.
    pub fn observe(&mut self, sample: Sample) -> Decision {
        let window_ms = self.spec.metric_window_seconds as i64 * 1000;
        if self.window.back().is_some_and(|s| s.parallelism != sample.parallelism) {
            // Rescaled by someone else (kubectl scale): start over at the new parallelism.
            self.window.clear();
            self.low = None;
        }
        self.window.push_back(sample.clone());
        // Drop samples older than the window, but keep the newest of those: the samples then
        // span the whole window whatever the sampling interval.
        while self.window.len() >= 2 && sample.at_ms - self.window[1].at_ms >= window_ms {
            self.window.pop_front();
        }
        let current = sample.parallelism;
        let span = sample.at_ms - self.window.front().map_or(sample.at_ms, |s| s.at_ms);
        let mut d = self.assess(&sample);
        let hold = |d: &mut Decision, reason: String| {
            d.action = Action::Hold;
            d.target = current;
            d.reason = reason;
        };
        // A window is its samples from `window_ms` back; it is whole once they span nearly
        // all of it (samples come every few seconds).
        if span * 10 < window_ms * 9 {
            hold(
                &mut d,
                format!(
                    "collecting metrics: {:.0} s of the {} s window",
                    span as f64 / 1000.0,
                    self.spec.metric_window_seconds
                ),
            );
            return d;
        }
        if let Some((at, _)) = self.last_rescale {
            let since = sample.at_ms - at;
            if since < self.spec.scale_up_cooldown_seconds as i64 * 1000 {
                hold(
                    &mut d,
                    format!(
                        "cooling down: rescaled {:.0} s ago (scaleUpCooldownSeconds {})",
                        since as f64 / 1000.0,
                        self.spec.scale_up_cooldown_seconds
                    ),
                );
                return d;
            }
        }
        let recommended = d.recommended;
        if recommended > current {
            self.low = None;
            d.action = Action::ScaleUp;
            d.target = recommended;
            d.reason = format!(
                "scale up {current} → {recommended}: {}",
                bottleneck(&d.vertices, d.target_rate, d.source_rate)
            );
            return d;
        }
        if recommended == current {
            self.low = None;
            hold(&mut d, format!("at the target: {current} subtasks are enough"));
            return d;
        }
        // Fewer would do: only after the load stayed low for the whole delay.
        let (since, most) = match self.low {
            Some((since, most)) => (since, most.max(recommended)),
            None => (sample.at_ms, recommended),
        };
        self.low = Some((since, most));
        let low_for = sample.at_ms - since;
        let delay = self.spec.scale_down_delay_seconds as i64 * 1000;
        if low_for < delay {
            hold(
                &mut d,
                format!(
                    "{most} would do, for {:.0} s of the {} s scale-down delay",
                    low_for as f64 / 1000.0,
                    self.spec.scale_down_delay_seconds
                ),
            );
            return d;
        }
        // The rescale's downtime piles up input; the lower parallelism must drain it in time.
        let downtime_s = self.last_rescale.map_or(0, |(_, down)| down) as f64 / 1000.0;
        let capacity = capacity_at(&d.vertices, most, d.source_rate, self.spec.target_utilization);
        let backlog = d.input_rate * downtime_s;
        let spare = capacity - d.input_rate;
        if backlog > 0.0 && spare * (self.spec.catch_up_seconds as f64) < backlog {
            hold(
                &mut d,
                format!(
                    "{most} would do, but the {downtime_s:.1} s a rescale takes piles up {backlog:.0} records \
                     that {most} subtasks would not drain within {} s",
                    self.spec.catch_up_seconds
                ),
            );
            return d;
        }
        d.action = Action::ScaleDown;
        d.target = most;
        d.reason = format!(
            "scale down {current} → {most}: the load stayed low for {:.0} s (busiest vertex {})",
            low_for as f64 / 1000.0,
            busiest(&d.vertices)
        );
        d
    }

    /// The window's figures and what they call for.
    fn assess(&self, sample: &Sample) -> Decision {
        let samples: Vec<&Sample> = self.window.iter().collect();
        let source_rate_of =
            |s: &Sample| -> f64 { s.vertices.iter().filter(|v| v.source).map(|v| v.records_per_s).sum() };
        // What arrived at the sources in each sample: what they read plus the lag's growth
        // since the sample before. The median over the window: a spike shorter than half the
        // window moves it little, a step moves it once half the window saw the new load.
        let mut inputs: Vec<f64> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let growth = match (i.checked_sub(1).map(|j| samples[j]), s.lag) {
                    (Some(prev), Some(lag)) if s.at_ms > prev.at_ms => prev
                        .lag
                        .map_or(0.0, |p| (lag - p) * 1000.0 / (s.at_ms - prev.at_ms) as f64),
                    _ => 0.0,
                };
                (source_rate_of(s) + growth).max(0.0)
            })
            .collect();
        let input_rate = median(&mut inputs);
        let n = samples.len() as f64;
        let source_rate = samples.iter().map(|s| source_rate_of(s)).sum::<f64>() / n;
        let lag = sample.lag;
        let with_lag: Vec<(i64, f64)> = samples.iter().filter_map(|s| Some((s.at_ms, s.lag?))).collect();
        let lag_rate = match (with_lag.first(), with_lag.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => Some((b.1 - a.1) * 1000.0 / (b.0 - a.0) as f64),
            _ => None,
        };
        let target_rate = input_rate + lag.unwrap_or(0.0).max(0.0) / self.spec.catch_up_seconds.max(1) as f64;
        let p = sample.parallelism.max(1) as f64;
        let vertices: Vec<VertexNeed> = sample
            .vertices
            .iter()
            .map(|v| {
                let same: Vec<&VertexSample> = samples
                    .iter()
                    .flat_map(|s| s.vertices.iter().filter(|x| x.id == v.id))
                    .collect();
                let k = same.len().max(1) as f64;
                let busy = same.iter().map(|x| x.busy).sum::<f64>() / k;
                let records_per_s = same.iter().map(|x| x.records_per_s).sum::<f64>() / k;
                // One subtask's true rate: from the samples where it worked enough to tell.
                let rates: Vec<f64> = same
                    .iter()
                    .filter(|x| x.busy >= IDLE && x.records_per_s > 0.0)
                    .map(|x| {
                        let subtasks = if x.subtasks > 0 { x.subtasks as f64 } else { p };
                        x.records_per_s / subtasks / x.busy.min(1.0)
                    })
                    .collect();
                let true_rate =
                    (!v.source && !rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
                // Records it takes per source record, times the target.
                let share = if source_rate > 0.0 {
                    records_per_s / source_rate
                } else {
                    1.0
                };
                let needed = true_rate.map_or(1, |r| {
                    (target_rate * share / (r * self.spec.target_utilization))
                        .ceil()
                        .max(1.0) as u32
                });
                VertexNeed {
                    id: v.id.clone(),
                    busy,
                    records_per_s,
                    true_rate_per_subtask: true_rate,
                    needed,
                }
            })
            .collect();
        let max = self.spec.max_parallelism.unwrap_or(self.key_groups);
        let most = vertices.iter().map(|v| v.needed).max().unwrap_or(1);
        let recommended = even_key_groups(most.clamp(self.spec.min_parallelism, max), self.key_groups, max);
        Decision {
            at_ms: sample.at_ms,
            action: Action::Hold,
            current: sample.parallelism,
            recommended,
            target: sample.parallelism,
            reason: String::new(),
            source_rate,
            input_rate,
            target_rate,
            lag,
            lag_rate,
            vertices,
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let m = values.len() / 2;
    if !values.len().is_multiple_of(2) {
        values[m]
    } else {
        (values[m - 1] + values[m]) / 2.0
    }
}

/// `p` rounded up to a divisor of `key_groups` when one is at most a third above it (and
/// within `max`): every subtask then holds as many key groups.
pub fn even_key_groups(p: u32, key_groups: u32, max: u32) -> u32 {
    let limit = (p + p / 3).min(max);
    (p..=limit).find(|q| key_groups.is_multiple_of(*q)).unwrap_or(p)
}

/// Records per second the job takes in at parallelism `p` with every vertex at the target
/// utilisation (the least over vertices, in source records).
fn capacity_at(vertices: &[VertexNeed], p: u32, source_rate: f64, utilization: f64) -> f64 {
    vertices
        .iter()
        .filter_map(|v| {
            let per_subtask = v.true_rate_per_subtask?;
            // Records this vertex handles per source record.
            let share = if source_rate > 0.0 {
                v.records_per_s / source_rate
            } else {
                1.0
            };
            (share > 0.0).then(|| per_subtask * p as f64 * utilization / share)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The busiest vertex that sizes the job (sources do not: their busy time includes waiting on
/// what they read).
fn busiest(vertices: &[VertexNeed]) -> String {
    vertices
        .iter()
        .filter(|v| v.true_rate_per_subtask.is_some())
        .max_by(|a, b| a.busy.total_cmp(&b.busy))
        .map_or("none".into(), |v| format!("{} at {:.0} % busy", v.id, v.busy * 100.0))
}

fn bottleneck(vertices: &[VertexNeed], target_rate: f64, source_rate: f64) -> String {
    let v = vertices.iter().max_by_key(|v| v.needed);
    match v {
        Some(v) => format!(
            "{} is {:.0} % busy at {:.0} records/s, the target is {:.0} source records/s (now {:.0}) and one \
             subtask does {:.0}/s",
            v.id,
            v.busy * 100.0,
            v.records_per_s,
            target_rate,
            source_rate,
            v.true_rate_per_subtask.unwrap_or(0.0)
        ),
        None => "no vertex reported".into(),
    }
}

/// One subtask's running totals as the coordinator reports them (the workers' per-subtask
/// metrics; other fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubtaskTotals {
    /// Its vertex (operators joined with ` -> `).
    pub vertex: String,
    /// Subtask index.
    pub subtask: usize,
    /// Whether its vertex reads a source.
    #[serde(default)]
    pub source: bool,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Time waiting for input, ms.
    pub idle_ms: u64,
    /// Time waiting for room downstream, ms.
    pub backpressured_ms: u64,
    /// Since it started, ms.
    pub elapsed_ms: u64,
    /// A source subtask's records not read yet, when it tells.
    #[serde(default)]
    pub lag: Option<u64>,
}

/// The sources' lag in `totals`: the sum over the source subtasks that tell (none: none tells).
pub fn lag_of(totals: &[SubtaskTotals]) -> Option<f64> {
    let known: Vec<u64> = totals.iter().filter(|t| t.source).filter_map(|t| t.lag).collect();
    (!known.is_empty()).then(|| known.iter().sum::<u64>() as f64)
}

/// `n`'s subtask in the reading `before`, if it is there.
fn same_subtask<'a>(before: &'a [SubtaskTotals], n: &SubtaskTotals) -> Option<&'a SubtaskTotals> {
    before.iter().find(|b| b.vertex == n.vertex && b.subtask == n.subtask)
}

/// Whether a subtask in both readings has not reported since `before` (its clock did not move).
fn not_reported_since(before: &[SubtaskTotals], now: &[SubtaskTotals]) -> bool {
    now.iter()
        .any(|n| same_subtask(before, n).is_some_and(|b| b.elapsed_ms == n.elapsed_ms))
}

/// The sample between two readings of the same subtasks, `before` and `now` (taken at
/// `at_ms`): per vertex its subtasks' mean busy share and records per second (a source vertex:
/// records it read). None when no subtask is in both (a new run started in between).
pub fn sample_between(
    before: &[SubtaskTotals],
    now: &[SubtaskTotals],
    at_ms: i64,
    parallelism: u32,
    lag: Option<f64>,
) -> Option<Sample> {
    let mut vertices: Vec<(VertexSample, f64)> = Vec::new();
    for n in now {
        let Some(b) = same_subtask(before, n) else {
            continue;
        };
        let dt = n.elapsed_ms.saturating_sub(b.elapsed_ms);
        if dt == 0 || n.elapsed_ms < b.elapsed_ms {
            continue;
        }
        let waiting = n.idle_ms.saturating_sub(b.idle_ms) + n.backpressured_ms.saturating_sub(b.backpressured_ms);
        let busy = (1.0 - waiting as f64 / dt as f64).clamp(0.0, 1.0);
        let records = if n.source {
            n.records_out.saturating_sub(b.records_out)
        } else {
            n.records_in.saturating_sub(b.records_in)
        };
        let rate = records as f64 * 1000.0 / dt as f64;
        match vertices.iter_mut().find(|(v, _)| v.id == n.vertex) {
            Some((v, busy_sum)) => {
                v.records_per_s += rate;
                v.subtasks += 1;
                *busy_sum += busy;
            }
            None => vertices.push((
                VertexSample {
                    id: n.vertex.clone(),
                    source: n.source,
                    subtasks: 1,
                    busy: 0.0,
                    records_per_s: rate,
                },
                busy,
            )),
        }
    }
    if vertices.is_empty() {
        return None;
    }
    Some(Sample {
        at_ms,
        parallelism,
        vertices: vertices
            .into_iter()
            .map(|(mut v, busy_sum)| {
                v.busy = busy_sum / v.subtasks as f64;
                v
            })
            .collect(),
        lag,
    })
}

#[cfg(test)]
mod tests;
