//! The decision over recorded traces: a simulated job (a source vertex and a keyed vertex that
//! does 10,000 records per second per subtask) fed at a rate that follows each trace, sampled
//! every 5 s; each rescale the autoscaler asks for takes the job down for 3 s.

use super::*;

/// Records per second one subtask of the keyed vertex does busy all the time.
const CAP: f64 = 10_000.0;
/// A source subtask reads this many records per second at most (not the bottleneck).
const SOURCE_CAP: f64 = 100_000.0;
const STEP_MS: i64 = 5_000;
const DOWNTIME_MS: u64 = 3_000;

struct Job {
    parallelism: u32,
    lag: f64,
    /// Until when it is down (rescaling).
    down_until: i64,
}

/// The trace's result: the parallelism at each step and each decision.
struct Run {
    parallelism: Vec<u32>,
    decisions: Vec<Decision>,
    peak_lag: f64,
    rescales: Vec<(i64, u32, u32)>,
}

fn spec() -> AutoscalerSpec {
    AutoscalerSpec {
        enabled: true,
        metric_window_seconds: 30,
        scale_up_cooldown_seconds: 30,
        scale_down_delay_seconds: 120,
        catch_up_seconds: 60,
        ..AutoscalerSpec::default()
    }
}

/// Runs the job for `seconds` at the input rate `rate(t_seconds)`, starting at `p`.
fn run(spec: AutoscalerSpec, p: u32, seconds: i64, rate: impl Fn(f64) -> f64) -> Run {
    let mut a = Autoscaler::new(spec, 128).unwrap();
    let mut job = Job {
        parallelism: p,
        lag: 0.0,
        down_until: 0,
    };
    let mut out = Run {
        parallelism: Vec::new(),
        decisions: Vec::new(),
        peak_lag: 0.0,
        rescales: Vec::new(),
    };
    let mut t = 0;
    while t < seconds * 1000 {
        t += STEP_MS;
        let input = rate(t as f64 / 1000.0);
        let dt = STEP_MS as f64 / 1000.0;
        let up = (t - job.down_until).clamp(0, STEP_MS) as f64 / 1000.0;
        let capacity = job.parallelism as f64 * CAP;
        // It reads what arrives and what waits, up to what it can do while up.
        let consumed = ((input * dt + job.lag) / dt).min(capacity * up / dt);
        job.lag = (job.lag + (input - consumed) * dt).max(0.0);
        out.peak_lag = out.peak_lag.max(job.lag);
        let sample = Sample {
            at_ms: t,
            parallelism: job.parallelism,
            vertices: vec![
                VertexSample {
                    id: "source".into(),
                    source: true,
                    subtasks: job.parallelism,
                    busy: consumed / (job.parallelism as f64 * SOURCE_CAP),
                    records_per_s: consumed,
                },
                VertexSample {
                    id: "window".into(),
                    source: false,
                    subtasks: job.parallelism,
                    busy: consumed / capacity,
                    records_per_s: consumed,
                },
            ],
            lag: Some(job.lag),
        };
        let d = a.observe(sample);
        if d.action != Action::Hold && d.target != job.parallelism {
            out.rescales.push((t, job.parallelism, d.target));
            job.parallelism = d.target;
            job.down_until = t + DOWNTIME_MS as i64;
            a.rescaled(t, DOWNTIME_MS);
        }
        out.parallelism.push(job.parallelism);
        out.decisions.push(d);
    }
    out
}

/// Times the parallelism changed direction (up then down or down then up).
fn reversals(r: &Run) -> usize {
    let dirs: Vec<bool> = r.rescales.iter().map(|(_, from, to)| to > from).collect();
    dirs.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn steady_load_settles_once_and_stays() {
    let r = run(spec(), 2, 1800, |_| 15_000.0);
    // 15,000/s at 70 % of 10,000 per subtask: 3, rounded to 4 (a divisor of 128 key groups).
    assert_eq!(*r.parallelism.last().unwrap(), 4, "{:?}", r.rescales);
    assert_eq!(r.rescales.len(), 1, "{:?}", r.rescales);
    let last = r.decisions.last().unwrap();
    assert_eq!(last.action, Action::Hold);
    assert!(last.reason.contains("at the target"), "{}", last.reason);
}

#[test]
fn a_step_up_scales_up_within_a_window_and_a_cooldown() {
    // 5,000/s, then 20,000/s from minute 5.
    let r = run(spec(), 1, 900, |t| if t < 300.0 { 5_000.0 } else { 20_000.0 });
    // Up only, at most twice: first for the lag piling up (before half the window saw the new
    // rate), then for the rate itself once the window's median moved.
    assert!(r.rescales.iter().all(|(_, from, to)| to > from), "{:?}", r.rescales);
    assert!(r.rescales.len() <= 2, "{:?}", r.rescales);
    let (first, _, _) = r.rescales[0];
    assert!(
        first - 300_000 <= 15_000,
        "first move {} s after the step",
        (first - 300_000) / 1000
    );
    let (at, _, to) = *r.rescales.last().unwrap();
    assert_eq!(to, 4, "{:?}", r.rescales);
    // Within a cool-down and a window of the step.
    assert!(
        at - 300_000 <= 60_000,
        "at 4 {} s after the step",
        (at - 300_000) / 1000
    );
    assert_eq!(*r.parallelism.last().unwrap(), 4);
    let d = r.decisions.iter().find(|d| d.action == Action::ScaleUp).unwrap();
    assert!(d.reason.contains("window"), "names the bottleneck: {}", d.reason);
    // The lag it piled up drains: the last decisions see (almost) none.
    assert!(r.decisions.last().unwrap().lag < Some(1.0), "{:?}", r.decisions.last());
    assert!(
        r.decisions.iter().any(|d| d.lag_rate.is_some_and(|r| r < -100.0)),
        "the decisions saw the lag drain"
    );
}

#[test]
fn a_step_down_scales_down_only_after_the_delay_and_in_one_move() {
    let r = run(spec(), 4, 900, |t| if t < 120.0 { 20_000.0 } else { 5_000.0 });
    assert_eq!(r.rescales.len(), 1, "{:?}", r.rescales);
    let (at, from, to) = r.rescales[0];
    assert_eq!((from, to), (4, 1));
    // The scale-down delay (120 s) after the window saw the lower load.
    assert!(
        at - 120_000 >= 120_000,
        "scaled down {} s after the step",
        (at - 120_000) / 1000
    );
    assert!(
        at - 120_000 <= 120_000 + 40_000,
        "scaled down {} s after the step",
        (at - 120_000) / 1000
    );
    let holding = &r.decisions[(150_000 / STEP_MS) as usize];
    assert!(holding.reason.contains("scale-down delay"), "{}", holding.reason);
}

#[test]
fn a_spike_shorter_than_the_window_is_absorbed_not_followed() {
    // 5,000/s with 15 s at 14,000/s: the lag it leaves drains within the catch-up time.
    let r = run(spec(), 1, 600, |t| {
        if (200.0..215.0).contains(&t) { 14_000.0 } else { 5_000.0 }
    });
    assert!(r.rescales.is_empty(), "{:?}", r.rescales);
    assert!(r.peak_lag > 0.0);
}

#[test]
fn a_slow_ramp_scales_up_step_by_step_never_down() {
    // 2,000/s to 40,000/s over 20 minutes.
    let r = run(spec(), 1, 1500, |t| 2_000.0 + 38_000.0 * (t / 1200.0).min(1.0));
    assert!(r.rescales.iter().all(|(_, from, to)| to > from), "{:?}", r.rescales);
    // 40,000/s at 70 % of 10,000: 6, rounded to 8.
    assert_eq!(*r.parallelism.last().unwrap(), 8, "{:?}", r.rescales);
    assert!(r.rescales.len() <= 6, "{:?}", r.rescales);
}

#[test]
fn noisy_load_does_not_flap() {
    // 15,000/s ± 25 %, a different draw every sample (a fixed sequence).
    let mut x: u64 = 42;
    let noise: Vec<f64> = (0..400)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) as f64 / (1u64 << 31) as f64) * 0.5 - 0.25
        })
        .collect();
    let r = run(spec(), 2, 1800, |t| {
        15_000.0 * (1.0 + noise[(t / 5.0) as usize % noise.len()])
    });
    assert_eq!(reversals(&r), 0, "{:?}", r.rescales);
    assert!(r.rescales.len() <= 2, "{:?}", r.rescales);
    assert_eq!(*r.parallelism.last().unwrap(), 4, "{:?}", r.rescales);
}

#[test]
fn lag_raises_the_target_to_drain_it_in_time() {
    // A backlog of 600,000 records at 5,000/s: 60 s catch-up means 15,000/s.
    let mut a = Autoscaler::new(spec(), 128).unwrap();
    let mut d = None;
    for i in 0..=6 {
        d = Some(a.observe(Sample {
            at_ms: i * STEP_MS,
            parallelism: 1,
            vertices: vec![
                VertexSample {
                    id: "source".into(),
                    source: true,
                    subtasks: 1,
                    busy: 1.0,
                    records_per_s: 5_000.0,
                },
                VertexSample {
                    id: "window".into(),
                    source: false,
                    subtasks: 1,
                    busy: 0.5,
                    records_per_s: 5_000.0,
                },
            ],
            lag: Some(600_000.0),
        }));
    }
    let d = d.unwrap();
    assert_eq!(d.target_rate, 15_000.0);
    assert_eq!(d.lag_rate, Some(0.0), "a lag that neither grows nor drains");
    // One subtask does 10,000 busy all the time; at 70 %: 3 (→ 4).
    assert_eq!((d.action, d.target), (Action::ScaleUp, 4), "{d:?}");
}

#[test]
fn bounds_hold_and_key_groups_spread_evenly() {
    assert_eq!(even_key_groups(3, 128, 128), 4);
    assert_eq!(even_key_groups(5, 128, 128), 5, "8 is too far above");
    assert_eq!(even_key_groups(6, 128, 128), 8);
    assert_eq!(even_key_groups(9, 128, 128), 9, "16 is too far above");
    assert_eq!(even_key_groups(7, 100, 100), 7, "no divisor of 100 within a third");
    assert_eq!(even_key_groups(3, 128, 3), 3, "the maximum wins");
    let capped = AutoscalerSpec {
        max_parallelism: Some(2),
        ..spec()
    };
    let r = run(capped, 1, 600, |_| 50_000.0);
    assert_eq!(*r.parallelism.last().unwrap(), 2);
}

#[test]
fn a_bad_spec_is_refused_naming_the_field() {
    let e = |s: AutoscalerSpec| Autoscaler::new(s, 128).unwrap_err().0;
    assert!(
        e(AutoscalerSpec {
            target_utilization: 1.5,
            ..spec()
        })
        .starts_with("autoscaler.targetUtilization")
    );
    assert!(
        e(AutoscalerSpec {
            min_parallelism: 4,
            max_parallelism: Some(2),
            ..spec()
        })
        .starts_with("autoscaler.maxParallelism")
    );
    assert!(
        e(AutoscalerSpec {
            max_parallelism: Some(256),
            ..spec()
        })
        .contains("128 key groups")
    );
    // The spec as a manifest writes it.
    let parsed: AutoscalerSpec =
        serde_json::from_str(r#"{"enabled": true, "targetUtilization": 0.6, "dryRun": true}"#).unwrap();
    assert_eq!(
        (parsed.target_utilization, parsed.dry_run, parsed.metric_window_seconds),
        (0.6, true, 30)
    );
}

#[test]
fn a_manual_rescale_starts_the_window_over() {
    let mut a = Autoscaler::new(spec(), 128).unwrap();
    let at = |ms, p| Sample {
        at_ms: ms,
        parallelism: p,
        vertices: vec![VertexSample {
            id: "window".into(),
            source: false,
            subtasks: p,
            busy: 0.9,
            records_per_s: 9_000.0 * p as f64,
        }],
        lag: None,
    };
    for i in 0..=6 {
        a.observe(at(i * STEP_MS, 1));
    }
    // Someone set 3: the figures at 1 no longer count.
    let d = a.observe(at(35_000, 3));
    assert!(d.reason.starts_with("collecting metrics"), "{}", d.reason);
}

#[test]
fn samples_come_from_the_difference_of_two_readings_of_the_running_totals() {
    let at = |vertex: &str, subtask, source, records, idle, elapsed| SubtaskTotals {
        vertex: vertex.into(),
        subtask,
        source,
        records_in: if source { 0 } else { records },
        records_out: records,
        idle_ms: idle,
        backpressured_ms: 0,
        elapsed_ms: elapsed,
        lag: source.then_some(7),
    };
    let before = [
        at("src", 0, true, 0, 0, 1_000),
        at("win", 0, false, 0, 500, 1_000),
        at("win", 1, false, 0, 500, 1_000),
    ];
    // Two seconds later: the source read 20,000; each window subtask took 10,000 and was idle
    // half the time, the other a quarter.
    let now = [
        at("src", 0, true, 20_000, 0, 3_000),
        at("win", 0, false, 10_000, 1_500, 3_000),
        at("win", 1, false, 10_000, 1_000, 3_000),
    ];
    let s = sample_between(&before, &now, 3_000, 2, lag_of(&now)).unwrap();
    let win = s.vertices.iter().find(|v| v.id == "win").unwrap();
    assert_eq!((win.subtasks, win.records_per_s, win.busy), (2, 10_000.0, 0.625));
    let src = s.vertices.iter().find(|v| v.id == "src").unwrap();
    assert!(src.source && src.records_per_s == 10_000.0);
    assert_eq!(s.lag, Some(7.0));
    // A new run (its clocks started over): nothing to compare.
    let restarted = [at("win", 0, false, 5, 0, 100)];
    assert!(sample_between(&now, &restarted, 4_000, 2, None).is_none());
    // The coordinator's JSON, with fields this crate does not read.
    let json = r#"[{"vertex":"win","subtask":0,"source":false,"records_in":1,"records_out":1,"idle_ms":0,"backpressured_ms":0,"elapsed_ms":5,"input_watermark":null,"worker":2}]"#;
    let parsed: Vec<SubtaskTotals> = serde_json::from_str(json).unwrap();
    assert_eq!(parsed[0].elapsed_ms, 5);

    // The autoscaler keeps the previous reading itself: the first reading gives nothing, the
    // second a decision on the sample between them, a change of parallelism starts over.
    let mut a = Autoscaler::new(AutoscalerSpec::default(), 128).unwrap();
    assert!(a.observe_totals(1_000, 2, before.to_vec()).is_none());
    let d = a.observe_totals(3_000, 2, now.to_vec()).expect("a decision");
    assert_eq!((d.current, d.lag), (2, Some(7.0)));
    assert!(
        a.observe_totals(5_000, 3, now.to_vec()).is_none(),
        "parallelism changed"
    );
    a.rescaled(6_000, 0);
    assert!(
        a.observe_totals(7_000, 3, now.to_vec()).is_none(),
        "a rescale forgets the reading"
    );

    // Worker 1 (window subtask 1) reports every other reading: until it has, the reading before
    // stays the baseline, so no sample counts worker 0's records as the whole job's.
    let mut a = Autoscaler::new(AutoscalerSpec::default(), 128).unwrap();
    a.observe_totals(1_000, 2, before.to_vec());
    let mut partial = now.to_vec();
    partial[2] = before[2].clone();
    assert!(
        a.observe_totals(2_000, 2, partial).is_none(),
        "window subtask 1 has not reported"
    );
    let d = a.observe_totals(3_000, 2, now.to_vec()).expect("both reported");
    let win = d.vertices.iter().find(|v| v.id == "win").unwrap();
    assert_eq!(
        win.records_per_s, 10_000.0,
        "both subtasks' records, over the baseline's interval"
    );
}
