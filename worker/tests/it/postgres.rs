//! The PostgreSQL sink against a real PostgreSQL server (scripts/test starts a throwaway cluster
//! with scripts/pg-up and sets WEIR_PG_URL; without it these tests fail, they do not skip):
//! appending, upserting by primary key, refusing a schema the table cannot take, and
//! exactly-once through prepared transactions across a failure and a resume at another
//! parallelism, with no prepared transaction left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir::connectors::postgres::{PgDelivery, PostgresConfig, PostgresSink};
use weir::prelude::*;

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
fn a_schema_the_table_cannot_take_is_refused_by_field_and_a_bad_row_names_the_database_error() {
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

    // A NOT NULL column left out: the job fails with PostgreSQL's own message.
    let t = table("pg_bad", "id bigint, must text NOT NULL");
    let env = StreamExecutionEnvironment::new();
    env.add_source_named("gen", Arc::new(Datagen::new("gen", ids(10)).unwrap()))
        .add_sink(PostgresSink::new("pg", config(&t)).unwrap());
    let e = env
        .execute("pg-bad")
        .expect_err("a violated constraint fails the job")
        .to_string();
    assert!(e.contains("null value in column \"must\""), "{e}");
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
