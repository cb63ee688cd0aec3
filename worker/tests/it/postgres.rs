//! The PostgreSQL sink against a real PostgreSQL server (scripts/test starts a throwaway cluster
//! with scripts/pg-up and sets WEIR_PG_URL; without it these tests fail, they do not skip):
//! appending, upserting by primary key, refusing a schema the table cannot take, rows the
//! database refuses going to the dead-letter output, exactly-once through prepared transactions
//! across a failure, a resume at another parallelism, `SIGKILL`s of the `weir` process and a
//! database restart, with no prepared transaction left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir::connectors::postgres::{PgDelivery, PostgresConfig, PostgresSink, PostgresSource};
use weir::prelude::*;

/// Held shared by every test here and exclusively by the database restart test, so the restart
/// fails no other test.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(|p| p.into_inner())
}

fn url() -> String {
    std::env::var("WEIR_PG_URL").expect("WEIR_PG_URL is set by scripts/test (PostgreSQL test server)")
}

/// Runs `sql` statements on the test database; the rows of the last one's first column as text.
fn sql(statements: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let mut last = Vec::new();
        for m in client.simple_query(statements).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                last.push((0..r.len()).map(|i| r.get(i).map(String::from)).collect());
            }
        }
        last
    })
}

fn table(name: &str, columns: &str) -> String {
    let t = format!("{name}_{}", std::process::id());
    sql(&format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} ({columns})"));
    t
}

fn config(table: &str) -> PostgresConfig {
    PostgresConfig {
        url: url(),
        user: None,
        password: None,
        table: table.into(),
        primary_key: vec![],
        batch_rows: 100,
        delivery: PgDelivery::AtLeastOnce,
        transaction_prefix: None,
        connect_attempts: 3,
    }
}

fn ids(rows: u64) -> DatagenConfig {
    DatagenConfig {
        rows: Some(rows),
        rows_per_second: Some(rows.min(20_000)),
        fields: vec![DatagenField::new("id", FieldKind::Sequence)],
        ..Default::default()
    }
}

fn count(sql_text: &str) -> i64 {
    sql(sql_text)[0][0].as_deref().unwrap().parse().unwrap()
}

#[test]
fn rows_are_appended_and_upserted_by_primary_key() {
    let _server = shared();
    let appended = table(
        "pg_append",
        "id bigint, label text, at timestamp, half double precision",
    );
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let mut generated = ids(5_000);
    let mut at = DatagenField::new("at", FieldKind::Timestamp);
    at.start = Some(0);
    at.rows_per_ms = Some(1);
    generated.fields.push(at);
    env.add_source_named("gen", Arc::new(Datagen::new("gen", generated).unwrap()))
        .select(&[
            "id",
            "CONCAT('row-', CAST(id AS VARCHAR)) AS label",
            "at",
            "id / 2.0 AS half",
        ])
        .add_sink(PostgresSink::new("pg", config(&appended)).unwrap());
    env.execute("pg-append").unwrap();
    let row = &sql(&format!(
        "SELECT count(*), count(DISTINCT id), min(label), max(at)::text, sum(half) FROM {appended}"
    ))[0];
    assert_eq!(row[0].as_deref(), Some("5000"));
    assert_eq!(row[1].as_deref(), Some("5000"));
    assert_eq!(row[2].as_deref(), Some("row-0"));
    assert_eq!(
        row[3].as_deref(),
        Some("1970-01-01 00:00:04.999"),
        "4999 ms after the epoch"
    );
    assert_eq!(row[4].as_deref(), Some("6248750"));

    // Upserts: 5,000 rows over 100 keys leave each key's last row (one subtask, batches of 256
    // rows, so a batch holds keys twice).
    let upserted = table("pg_upsert", "k integer PRIMARY KEY, id bigint NOT NULL");
    let env = StreamExecutionEnvironment::new();
    env.set_batch_size(256);
    let mut cfg = config(&upserted);
    cfg.primary_key = vec!["k".into()];
    env.add_source_named("gen", Arc::new(Datagen::new("gen", ids(5_000)).unwrap()))
        .select(&["CAST(id % 100 AS INT) AS k", "id"])
        .add_sink(PostgresSink::new("pg", cfg).unwrap());
    env.execute("pg-upsert").unwrap();
    assert_eq!(count(&format!("SELECT count(*) FROM {upserted}")), 100);
    assert_eq!(
        count(&format!("SELECT count(*) FROM {upserted} WHERE id = 4900 + k")),
        100,
        "each key holds its last row"
    );
}

#[test]
fn a_configuration_the_sink_cannot_use_is_refused_naming_the_option() {
    let _server = shared();
    let mut cfg = config("anything");
    cfg.transaction_prefix = Some("a'b".into());
    let e = PostgresSink::new("pg", cfg).err().unwrap().to_string();
    assert!(e.contains("transaction_prefix"), "{e}");
    let mut cfg = config("anything");
    cfg.url = "mysql://nowhere".into();
    let e = PostgresSink::new("pg", cfg).err().unwrap().to_string();
    assert!(e.contains("url"), "{e}");
    let mut cfg = config("anything");
    cfg.primary_key = vec!["k".into()];
    cfg.delivery = PgDelivery::ExactlyOnce;
    let e = PostgresSink::new("pg", cfg).err().unwrap().to_string();
    assert!(e.contains("at_least_once ends at the same table"), "{e}");
}

/// The dead-letter lines (`{node, subtask, reason, raw}`) under `dir`.
fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    out
}

#[test]
fn rows_the_database_refuses_go_to_the_dead_letter_output_and_the_job_goes_on() {
    let _server = shared();
    let tmp = tempfile::tempdir().unwrap();
    // A NOT NULL column left out: each row is refused with PostgreSQL's own message.
    let t = table("pg_bad", "id bigint, must text NOT NULL");
    let env = StreamExecutionEnvironment::new();
    env.set_dead_letter(tmp.path().join("dlq-null").display().to_string());
    env.add_source_named("gen", Arc::new(Datagen::new("gen", ids(10)).unwrap()))
        .add_sink(PostgresSink::new("pg", config(&t)).unwrap());
    let r = env.execute("pg-bad").unwrap();
    assert_eq!(r.dead_letters(), 10);
    let letters = dead_letters(&tmp.path().join("dlq-null"));
    assert_eq!(letters.len(), 10);
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("null value in column \"must\"") && reason.contains("23502"),
        "{reason}"
    );

    // One row in a hundred breaks a CHECK constraint: the other 99 are written, batch by batch
    // (a refused batch is written again row by row), at least once and exactly once.
    for delivery in [PgDelivery::AtLeastOnce, PgDelivery::ExactlyOnce] {
        let t = table("pg_check", "id bigint PRIMARY KEY, v bigint CHECK (v >= 0)");
        let dlq = tmp.path().join(format!("dlq-{delivery:?}"));
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2).set_batch_size(300);
        env.set_dead_letter(dlq.display().to_string());
        env.enable_checkpointing(Duration::from_millis(100));
        env.set_checkpoint_storage(format!(
            "file://{}",
            tmp.path().join(format!("chk-{delivery:?}")).display()
        ));
        let mut cfg = config(&t);
        cfg.delivery = delivery;
        cfg.transaction_prefix = Some(format!("test-{t}"));
        env.add_source_named("gen", Arc::new(Datagen::new("gen", ids(5_000)).unwrap()))
            .select(&["id", "CASE WHEN id % 100 = 7 THEN -1 ELSE id END AS v"])
            .add_sink(PostgresSink::new("pg", cfg).unwrap());
        let r = env.execute("pg-check").unwrap();
        assert_eq!(r.dead_letters(), 50, "{delivery:?}");
        let row = &sql(&format!(
            "SELECT count(*), count(*) FILTER (WHERE id % 100 = 7) FROM {t}"
        ))[0];
        let row: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
        assert_eq!(row, ["4950", "0"], "{delivery:?}: every row but the refused ones");
        let letters = dead_letters(&dlq);
        let mut refused: Vec<i64> = letters
            .iter()
            .map(|l| {
                let raw: serde_json::Value = serde_json::from_str(l["raw"].as_str().unwrap()).unwrap();
                assert_eq!(raw["v"], -1);
                assert!(
                    l["reason"].as_str().unwrap().contains("violates check constraint"),
                    "{l}"
                );
                raw["id"].as_i64().unwrap()
            })
            .collect();
        refused.sort_unstable();
        assert_eq!(
            refused,
            (0..50).map(|i| i * 100 + 7).collect::<Vec<_>>(),
            "{delivery:?}"
        );
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, 'test-{t}:')"
            )),
            0
        );
    }
}

fn exactly_once_job(
    table: &str,
    parallelism: usize,
    fail_at: Option<(i64, Arc<AtomicBool>)>,
    restarts: u32,
    chk: &str,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.set_batch_size(200);
    env.enable_checkpointing(Duration::from_millis(100));
    env.set_checkpoint_storage(chk);
    env.set_restart_strategy(RestartStrategy {
        attempts: restarts,
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    let mut cfg = config(table);
    cfg.delivery = PgDelivery::ExactlyOnce;
    cfg.transaction_prefix = Some(format!("test-{table}"));
    // The source keeps its parallelism (its positions are per subtask); the rest rescales.
    env.add_source_named("gen", Arc::new(Datagen::new("gen", ids(20_000)).unwrap()))
        .set_parallelism(2)
        .filter(move |row| {
            if let Some((at, failed)) = &fail_at
                && row.get_i64("id") == Some(*at)
                && !failed.swap(true, Ordering::SeqCst)
            {
                panic!("injected failure");
            }
            true
        })
        .add_sink(PostgresSink::new("pg", cfg).unwrap());
    env
}

fn assert_each_id_once(table: &str, what: &str) {
    let row = &sql(&format!(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {table}"
    ))[0];
    let row: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(
        row,
        ["20000", "20000", "0", "19999"],
        "{what}: rows, distinct ids, min, max"
    );
    let prefix = format!("test-{table}:");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, '{prefix}')"
        )),
        0,
        "{what}: no prepared transaction left behind"
    );
}

#[test]
fn the_exactly_once_sink_writes_every_row_once_across_a_failure_and_a_rescaled_resume() {
    let _server = shared();
    let tmp = tempfile::tempdir().unwrap();

    // A failure inside the job, restarted from its checkpoint.
    let t = table("pg_eos", "id bigint");
    let chk = format!("file://{}", tmp.path().join("a").display());
    let failed = Arc::new(AtomicBool::new(false));
    let r = exactly_once_job(&t, 2, Some((13_000, failed.clone())), 2, &chk)
        .execute("pg-eos")
        .unwrap();
    assert!(failed.load(Ordering::SeqCst));
    assert_eq!(r.restarts, 1);
    assert_each_id_once(&t, "restarted");

    // A job that fails for good, its checkpoint's prepared transactions committed and later
    // ones rolled back by the job resumed at parallelism 3.
    let t = table("pg_eos_rescaled", "id bigint");
    let chk = format!("file://{}", tmp.path().join("b").display());
    let failed = Arc::new(AtomicBool::new(false));
    let e = exactly_once_job(&t, 2, Some((11_111, failed)), 0, &chk).execute("pg-eos-rescaled");
    assert!(e.is_err(), "the job failed");
    let written = count(&format!("SELECT count(*) FROM {t}"));
    assert!(written < 20_000, "only completed checkpoints are visible: {written}");
    let env = exactly_once_job(&t, 3, None, 0, &chk);
    env.set_restore(RestoreFrom::Latest);
    env.execute("pg-eos-rescaled").unwrap();
    assert_each_id_once(&t, "resumed at parallelism 3");
}

#[test]
fn an_updating_sql_query_upserts_and_deletes_its_final_table_through_the_jdbc_connector() {
    let _server = shared();
    // Counts per key of a datagen sequence, kept only while a key has fewer than 4 rows: keys
    // are inserted, updated, then deleted again as their fourth row arrives.
    let t = table("pg_sql", "k bigint PRIMARY KEY, n bigint NOT NULL");
    let text = format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE seq (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '999');
CREATE TABLE counts (k BIGINT, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH (
  'connector' = 'jdbc', 'url' = 'jdbc:{url}', 'table-name' = '{t}', 'sink.buffer-flush.max-rows' = '50');
INSERT INTO counts SELECT k, n FROM (SELECT id % 300 AS k, COUNT(*) AS n FROM seq GROUP BY id % 300) WHERE n < 4;",
        url = url()
    );
    let job = weir::pipeline::build_sql(&text, "counts.sql", "pg-sql").unwrap();
    job.env.execute(&job.name).unwrap();
    // 1000 rows over 300 keys: keys 0..99 get 4 rows (deleted), the other 200 keep 3.
    let rows = sql(&format!("SELECT count(*), min(k), max(k), min(n), max(n) FROM {t}"));
    let row: Vec<&str> = rows[0].iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(row, ["200", "100", "299", "3", "3"]);

    let bad = "CREATE TABLE t (a BIGINT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:mysql://db/x', 'table-name' = 't');
CREATE TABLE s (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
INSERT INTO t SELECT a FROM s;";
    let e = weir::pipeline::build_sql(bad, "bad.sql", "bad")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("only PostgreSQL"), "{e}");
}

/// The README's example as written (only its URL and table filled in): Nexmark's expensive
/// bids into PostgreSQL, exactly once, the same 46,244 rows the file example writes.
#[test]
fn the_postgres_example_writes_the_expensive_bids_once() {
    let _server = shared();
    let t = table(
        "expensive_bids",
        "auction bigint, bidder bigint, euros double precision, \"dateTime\" timestamp",
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nexmark-to-postgres.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("PG_URL", &url())
        .replace("table: expensive_bids", &format!("table: {t}"));
    let tmp = tempfile::tempdir().unwrap();
    let job = weir::pipeline::build(&text, "nexmark-to-postgres.yaml").unwrap();
    job.env
        .set_checkpoint_storage(format!("file://{}", tmp.path().display()));
    job.env.execute(&job.name).unwrap();
    let row = &sql(&format!("SELECT count(*), min(euros) > 50000000 * 0.908 - 1 FROM {t}"))[0];
    let row: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(row, ["46244", "t"], "every expensive bid once");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, 'weir-{t}-')"
        )),
        0
    );
}

/// Rows `(id, v)` of `a` missing from `b`.
fn missing(a: &str, b: &str) -> i64 {
    count(&format!(
        "SELECT count(*) FROM (SELECT id, v FROM {a} EXCEPT ALL SELECT id, v FROM {b}) m"
    ))
}

/// The `weir run` job of the SIGKILL test: 30,000 rows at 6,000 a second into `table` exactly
/// once, checkpoints every 100 ms.
fn killed_job(table: &str, chk: &std::path::Path) -> String {
    format!(
        r#"
name: pg-killed
parallelism: 2
checkpoint: {{interval_ms: 100, storage: "{chk}"}}
restart: {{delay_ms: 200, backoff: 1}}
sources:
  - id: gen
    connector: datagen
    rows: 30000
    rows_per_second: 6000
    seed: 11
    fields:
      - {{name: id, kind: sequence}}
      - {{name: v, kind: random, min: 0, max: 999}}
sinks:
  - {{id: pg, input: gen, connector: postgres, url: "{url}", table: {table}, delivery: exactly_once,
     transaction_prefix: "test-{table}", batch_rows: 200}}
"#,
        chk = chk.display(),
        url = url()
    )
}

#[test]
fn the_exactly_once_sink_survives_sigkill_at_random_points_with_the_same_table() {
    let _server = shared();
    let tmp = tempfile::tempdir().unwrap();
    let clean = table("pg_clean", "id bigint, v bigint");
    let status = crate::common::cli::weir_run(
        tmp.path(),
        "clean.yaml",
        &killed_job(&clean, &tmp.path().join("clean")),
        false,
    )
    .status();
    assert!(status.unwrap().success());
    assert_eq!(count(&format!("SELECT count(DISTINCT id) FROM {clean}")), 30_000);

    let t = table("pg_killed", "id bigint, v bigint");
    let job = killed_job(&t, &tmp.path().join("chk"));
    let kills = crate::common::cli::kill_and_resume(tmp.path(), "job.yaml", &job, 3, 0x2545_f491_4f6c_dd1d, 300, 1200);
    assert_eq!(kills, 3, "the job was killed three times");
    assert_eq!(count(&format!("SELECT count(*) FROM {t}")), 30_000, "no row twice");
    assert_eq!(
        (missing(&clean, &t), missing(&t, &clean)),
        (0, 0),
        "the failure-free run's table, row for row"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, 'test-{t}:')"
        )),
        0,
        "no prepared transaction left behind"
    );
}

/// Restarts the test server (scripts/pg-restart: open connections are cut, prepared
/// transactions survive).
fn restart_server() {
    let dir = std::env::var("WEIR_PG_DIR").expect("WEIR_PG_DIR is set by scripts/test");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-restart");
    let status = std::process::Command::new(script).arg(dir).status().unwrap();
    assert!(status.success(), "scripts/pg-restart: {status}");
}

#[test]
fn a_job_rides_out_a_database_restart_at_least_once_and_exactly_once() {
    let _server = SERVER.write().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let upserted = table("pg_restart_upsert", "k bigint PRIMARY KEY, id bigint NOT NULL");
    let appended = table("pg_restart_eos", "id bigint");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2).set_batch_size(200);
    env.enable_checkpointing(Duration::from_millis(100));
    env.set_checkpoint_storage(format!("file://{}", tmp.path().display()));
    env.set_restart_strategy(RestartStrategy {
        delay: Duration::from_millis(200),
        backoff: 1.0,
        ..Default::default()
    });
    let mut generated = ids(20_000);
    generated.rows_per_second = Some(5_000);
    let rows = env.add_source_named("gen", Arc::new(Datagen::new("gen", generated).unwrap()));
    let mut at_least_once = config(&upserted);
    at_least_once.primary_key = vec!["k".into()];
    rows.select(&["id % 1000 AS k", "id"])
        .add_sink(PostgresSink::new("upsert", at_least_once).unwrap());
    let mut exactly_once = config(&appended);
    exactly_once.delivery = PgDelivery::ExactlyOnce;
    exactly_once.transaction_prefix = Some(format!("test-{appended}"));
    rows.add_sink(PostgresSink::new("eos", exactly_once).unwrap());
    // The server restarts once the job is writing (it runs 4 s).
    let written = format!("SELECT count(*) FROM {upserted}");
    let restart = std::thread::spawn(move || {
        crate::common::until(|| count(&written) > 0);
        restart_server();
    });
    let r = env.execute("pg-restart").unwrap();
    restart.join().unwrap();
    assert!(r.restarts >= 1, "the restart cut the job's connections");
    assert_eq!(count(&format!("SELECT count(*) FROM {upserted}")), 1_000);
    assert_eq!(
        count(&format!("SELECT count(*) FROM {upserted} WHERE id = 19000 + k")),
        1_000,
        "each key's last row, as without the restart"
    );
    let rows = &sql(&format!("SELECT count(*), count(DISTINCT id) FROM {appended}"))[0];
    let rows: Vec<&str> = rows.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(rows, ["20000", "20000"], "exactly once across the restart");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, 'test-{appended}:')"
        )),
        0
    );
}

/// A source table of `rows` rows: `id` (the primary key, 1..=rows), `name`, `at`, `day`,
/// `price` (numeric, read as text unless declared), `ok`.
fn source_table(name: &str, rows: i64) -> String {
    let t = table(
        name,
        "id bigint PRIMARY KEY, name text, at timestamp, day date, price numeric(10,2), ok boolean",
    );
    sql(&format!(
        "INSERT INTO {t} SELECT i, 'n' || i, TIMESTAMP '2026-01-01' + i * INTERVAL '1 second',
           DATE '2026-01-01' + (i % 7)::int, i / 100.0, i % 2 = 0 FROM generate_series(1, {rows}) i"
    ));
    t
}

fn scan(table: &str) -> weir::connectors::postgres::PostgresScanConfig {
    serde_json::from_value(serde_json::json!({
        "url": url(), "table": table, "partitions": 5, "fetch_rows": 300
    }))
    .unwrap()
}

#[test]
fn a_table_is_read_in_key_ranges_with_its_types_at_any_parallelism() {
    let _server = shared();
    let t = source_table("pg_src", 10_000);
    for p in [1, 2, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let rows = Collect::new();
        env.add_source_named("pg", Arc::new(PostgresSource::new("pg", scan(&t)).unwrap()))
            .add_sink(rows.clone());
        env.execute("pg-scan").unwrap();
        let ids = crate::common::sorted_ids(&rows.rows_json());
        assert_eq!(ids, (1..=10_000).collect::<Vec<_>>(), "p = {p}: every row once");
    }
    // Types: timestamps, dates and booleans in their Arrow types; numeric as text.
    let env = StreamExecutionEnvironment::new();
    let rows = Collect::new();
    let mut cfg = scan(&t);
    cfg.columns = vec!["id".into(), "at".into(), "day".into(), "price".into(), "ok".into()];
    cfg.lower_bound = Some(1);
    cfg.upper_bound = Some(3);
    env.add_source_named("pg", Arc::new(PostgresSource::new("pg", cfg).unwrap()))
        .filter_expr("id = 42")
        .add_sink(rows.clone());
    env.execute("pg-types").unwrap();
    assert_eq!(
        rows.rows_json(),
        [r#"{"id":42,"at":"2026-01-01T00:00:42","day":"2026-01-01","price":"0.42","ok":true}"#]
    );

    // A partition column that is not unique is refused, saying why.
    let t2 = table("pg_src_dup", "id bigint NOT NULL, v bigint");
    let mut cfg = scan(&t2);
    cfg.partition_column = Some("id".into());
    let env = StreamExecutionEnvironment::new();
    env.add_source_named("pg", Arc::new(PostgresSource::new("pg", cfg).unwrap()))
        .add_sink(Collect::new());
    let e = env.execute("pg-dup").unwrap_err().to_string();
    assert!(e.contains("must be unique"), "{e}");
}

#[test]
fn a_table_scan_resumes_after_a_failure_at_another_parallelism_exactly_once() {
    let _server = shared();
    let tmp = tempfile::tempdir().unwrap();
    let src = source_table("pg_src_eos", 20_000);
    let dst = table("pg_dst_eos", "id bigint, name text");
    let chk = format!("file://{}", tmp.path().display());
    let job = |parallelism: usize, fail_at: Option<i64>| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(parallelism).set_batch_size(200);
        env.enable_checkpointing(Duration::from_millis(50));
        env.set_checkpoint_storage(&chk);
        env.set_restart_strategy(RestartStrategy {
            attempts: 0,
            ..Default::default()
        });
        let mut cfg = config(&dst);
        cfg.delivery = PgDelivery::ExactlyOnce;
        cfg.transaction_prefix = Some(format!("test-{dst}"));
        let mut scan = scan(&src);
        scan.columns = vec!["id".into(), "name".into()];
        scan.fetch_rows = 100;
        env.add_source_named("pg", Arc::new(PostgresSource::new("pg", scan).unwrap()))
            .filter(move |row| {
                if row.get_i64("id") == fail_at {
                    panic!("injected failure");
                }
                std::thread::sleep(Duration::from_micros(20));
                true
            })
            .add_sink(PostgresSink::new("out", cfg).unwrap());
        env
    };
    assert!(job(2, Some(15_000)).execute("pg-scan-eos").is_err(), "the job failed");
    let env = job(3, None);
    env.set_restore(RestoreFrom::Latest);
    env.execute("pg-scan-eos").unwrap();
    let row = &sql(&format!(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {dst}"
    ))[0];
    let row: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(
        row,
        ["20000", "20000", "1", "20000"],
        "every row once after the resume at p = 3"
    );
}

#[test]
fn a_jdbc_table_is_read_by_sql() {
    let _server = shared();
    let src = source_table("pg_src_sql", 1_000);
    let dst = table("pg_dst_sql", "id bigint, name text");
    let text = format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE src (id BIGINT, name STRING, ok BOOLEAN) WITH ('connector' = 'jdbc', 'url' = 'jdbc:{url}',
  'table-name' = '{src}', 'scan.partition.column' = 'id', 'scan.partition.num' = '4', 'scan.fetch-size' = '100');
CREATE TABLE dst (id BIGINT, name STRING) WITH ('connector' = 'jdbc', 'url' = 'jdbc:{url}', 'table-name' = '{dst}');
INSERT INTO dst SELECT id, name FROM src WHERE ok;",
        url = url()
    );
    let job = weir::pipeline::build_sql(&text, "copy.sql", "pg-sql-scan").unwrap();
    job.env.execute(&job.name).unwrap();
    let row = &sql(&format!("SELECT count(*), min(id), max(id), min(name) FROM {dst}"))[0];
    let row: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(row, ["500", "2", "1000", "n10"]);
}

#[test]
fn a_stream_is_joined_with_a_jdbc_table_as_a_lookup_table() {
    let _server = shared();
    let dims = source_table("pg_dims", 100);
    let dst = table("pg_enriched", "id bigint, name text");
    let text = format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE events (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '999');
CREATE TABLE dims (id BIGINT, name STRING) WITH ('connector' = 'jdbc', 'url' = 'jdbc:{url}',
  'table-name' = '{dims}', 'lookup.cache' = 'FULL', 'lookup.full-cache.periodic-reload.interval' = '10 min');
CREATE TABLE dst (id BIGINT, name STRING) WITH ('connector' = 'jdbc', 'url' = 'jdbc:{url}', 'table-name' = '{dst}');
CREATE VIEW timed AS SELECT *, PROCTIME() AS pt FROM events;
INSERT INTO dst SELECT e.id, d.name FROM timed AS e JOIN dims FOR SYSTEM_TIME AS OF e.pt AS d ON e.id % 200 = d.id;",
        url = url()
    );
    let job = weir::pipeline::build_sql(&text, "lookup.sql", "pg-lookup").unwrap();
    job.env.execute(&job.name).unwrap();
    // Ids whose id % 200 is in 1..=100: 100 of every 200, 500 in all, each named after its key.
    let row = &sql(&format!(
        "SELECT count(*), count(*) FILTER (WHERE name = 'n' || (id % 200)) FROM {dst}"
    ))[0];
    let row: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(row, ["500", "500"]);
}
