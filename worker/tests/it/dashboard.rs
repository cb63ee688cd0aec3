//! The dashboard in a real headless Chromium (see `browser.rs`): a Nexmark job with a slow sink
//! runs in this process behind the REST API; the test reads the page as a user sees it and
//! writes screenshots under the test's output folder (`$CARGO_TARGET_TMPDIR/dashboard`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use weir::prelude::{Nexmark, NexmarkConfig, NexmarkStream, StreamExecutionEnvironment};
use weir::rest::{self, RestOptions, local::LocalJob};
use weir::runtime::control::JobControl;

use crate::browser::Browser;
use crate::runtime::SlowSink;

const JOB: &str = "nexmark-dashboard";
const TOKEN: &str = "dashboard-token";

/// Bids at 20,000 a second, a map that fails once when `fail` is set, keyed by auction into a
/// sink that takes 20 ms a batch; checkpoints every 300 ms into `chk`.
fn job(chk: &std::path::Path, fail: Arc<AtomicBool>) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1)
        .set_batch_size(200)
        .set_channel_capacity(2)
        .enable_checkpointing(Duration::from_millis(300))
        .set_checkpoint_storage(chk.to_str().unwrap());
    let bids = NexmarkConfig {
        events: None,
        stream: NexmarkStream::Bid,
        rows_per_second: Some(20_000),
        ..Default::default()
    };
    env.add_source(Nexmark::new("bids", bids).unwrap())
        .map_batches(move |_, batch| {
            if fail.swap(false, Ordering::SeqCst) {
                return Err("injected failure: price check rejected a batch".into());
            }
            Ok(batch)
        })
        .name("price-check")
        .key_by("auction")
        .add_sink(SlowSink::new(Duration::from_millis(20), Arc::new(AtomicU64::new(0))));
    env
}

fn count(browser: &mut Browser, selector: &str) -> u64 {
    browser
        .eval(&format!("document.querySelectorAll('{selector}').length"))
        .as_u64()
        .unwrap()
}

fn text(browser: &mut Browser, selector: &str) -> String {
    match browser.eval(&format!("document.querySelector('{selector}')?.textContent ?? ''")) {
        Value::String(s) => s,
        other => panic!("{selector}: {other}"),
    }
}

#[test]
fn the_dashboard_shows_back_pressure_live_rates_checkpoints_and_a_failure() {
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let chk = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let env = job(chk.path(), fail.clone());
    let (graph, config) = env.prepare(JOB).unwrap();
    let (metrics, control) = (env.metrics(), JobControl::default());
    let source = Arc::new(LocalJob::new(graph, config, metrics.clone(), control.clone()));
    let options = RestOptions {
        token: Some(TOKEN.into()),
    };
    let addr = rt
        .block_on(rest::serve("127.0.0.1:0".parse().unwrap(), source, options))
        .unwrap();
    let running = rt.spawn({
        let control = control.clone();
        async move { env.execute_controlled(JOB, &metrics, &control).await }
    });
    let base = format!("http://{addr}");
    let mut browser = Browser::launch(1280, 800);

    // The overview lists the job and its worker.
    browser.open(&format!("{base}/"));
    browser.wait_until(
        "the job in the overview",
        Duration::from_secs(20),
        &format!("document.querySelector('#jobs')?.textContent.includes('{JOB}')"),
    );
    assert!(text(&mut browser, "#overview .cards").contains("workers"));

    // The graph: the source's chain waits for the slow sink (back-pressured, grey), the sink
    // works; edges are labelled with their partitioning.
    browser.open(&format!("{base}/#/jobs/{JOB}"));
    browser.wait_until(
        "the source marked back-pressured",
        Duration::from_secs(30),
        "document.querySelector('#graph .vertex[data-id=\"v0\"]')?.dataset.backpressure === 'high'",
    );
    let sink_level = browser.eval("document.querySelector('#graph .vertex[data-id=\"v1\"]').dataset.backpressure");
    assert_eq!(sink_level, "ok", "the slow sink itself is not back-pressured");
    let source = text(&mut browser, "#graph .vertex[data-id=\"v0\"]");
    assert!(source.contains("price-check"), "{source}");
    assert_eq!(
        browser.eval("document.querySelector('#graph .edge').dataset.ship"),
        "hash"
    );
    assert!(text(&mut browser, "#graph .edge").contains("HASH"));
    // Live numbers: the source's records out per second changes between two reads.
    let first = text(&mut browser, "#vertices tr[data-id=\"v0\"] .rate-out");
    let first_count = text(&mut browser, "#vertices tr[data-id=\"v0\"] td:nth-child(5)");
    browser.wait_until(
        "the records/s figure to change",
        Duration::from_secs(15),
        &format!(
            "document.querySelector('#vertices tr[data-id=\"v0\"] .rate-out').textContent !== '{first}' \
             && document.querySelector('#vertices tr[data-id=\"v0\"] td:nth-child(5)').textContent !== '{first_count}'"
        ),
    );
    browser.screenshot(&shots.join("job-graph.png"));

    // The vertex page: a subtask table and a sparkline growing with each refresh.
    browser.open(&format!("{base}/#/jobs/{JOB}/vertices/v0"));
    browser.wait_until(
        "the subtask table",
        Duration::from_secs(10),
        "document.querySelectorAll('#subtasks tbody tr').length === 1",
    );
    browser.wait_until(
        "a sparkline of several points",
        Duration::from_secs(10),
        "document.querySelector('#sparkline polyline.out').getAttribute('points').split(' ').length >= 3",
    );
    assert!(text(&mut browser, "#subtasks tbody tr").contains("worker-0"));
    browser.wait_until(
        "the subtask's checkpoint figures",
        Duration::from_secs(10),
        "document.querySelector('#subtasks .checkpoint-times')?.textContent.startsWith('#')",
    );
    browser.screenshot(&shots.join("vertex.png"));

    // Checkpoints: the history table gains rows while the page is open.
    browser.open(&format!("{base}/#/jobs/{JOB}/checkpoints"));
    browser.wait_until(
        "checkpoint rows",
        Duration::from_secs(20),
        "document.querySelectorAll('#checkpoint-history tbody tr').length >= 1",
    );
    let rows = count(&mut browser, "#checkpoint-history tbody tr");
    browser.wait_until(
        "more checkpoint rows",
        Duration::from_secs(20),
        &format!("document.querySelectorAll('#checkpoint-history tbody tr').length > {rows}"),
    );
    assert!(text(&mut browser, "#checkpoint-history tbody tr").contains("completed"));
    // The newest checkpoint per operator: the source, the map and the sink acknowledged.
    for uid in ["nexmark", "price-check", "sink-slow"] {
        assert_eq!(
            count(&mut browser, &format!("#checkpoint-operators tr[data-uid=\"{uid}\"]")),
            1,
            "{uid} in {}",
            text(&mut browser, "#checkpoint-operators")
        );
    }
    assert_eq!(
        count(&mut browser, "#checkpoint-chart rect"),
        count(&mut browser, "#checkpoint-history tbody tr[data-status=\"completed\"]")
    );
    browser.screenshot(&shots.join("checkpoints.png"));

    // A failure injected into a task shows on the exceptions page, naming the operator.
    browser.open(&format!("{base}/#/jobs/{JOB}/exceptions"));
    browser.wait_until(
        "the page",
        Duration::from_secs(10),
        "document.querySelector('#exceptions')",
    );
    assert!(text(&mut browser, "#exceptions").contains("No failures"));
    fail.store(true, Ordering::SeqCst);
    browser.wait_until(
        "the injected failure",
        Duration::from_secs(30),
        "document.querySelector('#exceptions')?.textContent.includes('injected failure')",
    );
    let shown = text(&mut browser, "#exceptions li");
    assert!(shown.contains("price-check"), "the operator is named: {shown}");
    assert!(shown.contains("ended run 1"), "{shown}");
    browser.screenshot(&shots.join("exceptions.png"));
    // The job restarted from its checkpoint and runs on.
    browser.open(&format!("{base}/#/jobs/{JOB}"));
    browser.wait_until(
        "the restart in the header",
        Duration::from_secs(30),
        "document.querySelector('#job .muted')?.textContent.includes('1 restart') \
         && document.querySelector('#job-state')?.textContent === 'running'",
    );

    // Workers: memory and CPU of this process.
    browser.open(&format!("{base}/#/taskmanagers"));
    browser.wait_until(
        "the worker's memory",
        Duration::from_secs(10),
        "document.querySelector('#workers tr[data-id=\"worker-0\"]')?.textContent.includes('iB')",
    );
    browser.screenshot(&shots.join("workers.png"));

    // The savepoint button: refused without the token, taken with it.
    browser.open(&format!("{base}/#/jobs/{JOB}"));
    browser.wait_until(
        "the button",
        Duration::from_secs(10),
        "document.querySelector('#savepoint:not([disabled])')",
    );
    browser.eval("document.querySelector('#savepoint').click()");
    browser.wait_until(
        "the refusal",
        Duration::from_secs(10),
        "document.querySelector('#banner').textContent.includes('No savepoint')",
    );
    browser.eval(&format!(
        "(() => {{ const t = document.querySelector('#token'); t.value = '{TOKEN}'; \
         t.dispatchEvent(new Event('change')); document.querySelector('#savepoint').click(); }})()"
    ));
    browser.wait_until(
        "the savepoint",
        Duration::from_secs(30),
        "document.querySelector('#banner').textContent.includes('Savepoint completed')",
    );
    let banner = text(&mut browser, "#banner");
    let location = banner.rsplit(": ").next().unwrap().trim().to_string();
    assert!(std::path::Path::new(&location).join("_metadata").exists(), "{banner}");

    // Stop with a savepoint: two clicks (arm, confirm).
    browser.eval("document.querySelector('#stop').click()");
    browser.wait_until(
        "the armed stop button",
        Duration::from_secs(10),
        "document.querySelector('#stop').textContent === 'Confirm stop'",
    );
    browser.eval("document.querySelector('#stop').click()");
    let result = rt.block_on(running).unwrap().unwrap();
    assert!(result.cancelled, "stopped");
    assert_eq!(result.restarts, 1);
}
