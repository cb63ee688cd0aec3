//! The REST API as a client uses it: every resource of a job running on 3 worker processes
//! (`weir cluster`), checked against `/metrics` and summed per worker; a failure on the
//! exceptions page; the bearer token on the savepoint and stop endpoints; and `weir run --ui`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Cluster, free_port, http_get, mixed_job, status, unbounded_keyed_job, wait_for, weir};

/// One request; the status code and the body.
fn request(port: u16, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the API listens");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n{extra}\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_string())
}

pub(crate) fn get(port: u16, path: &str) -> Value {
    let (code, body) = request(port, "GET", path, &[]);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A counter's value in Prometheus text.
fn series(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

fn vertex_of<'a>(job: &'a Value, operator: &str) -> &'a Value {
    job["vertices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["operators"].as_array().unwrap().iter().any(|o| o["name"] == operator))
        .unwrap_or_else(|| panic!("no vertex runs {operator}: {job}"))
}

fn window_reads(port: u16) -> u64 {
    let job = get(port, "/jobs/mixed");
    let win = vertex_of(&job, "win");
    let op = win["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "win")
        .unwrap();
    op["metrics"]["read-records"].as_u64().unwrap()
}

#[test]
fn the_rest_api_shows_a_job_on_three_workers_and_only_a_token_holder_takes_savepoints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    // Long enough to look at (100 s at its rate): stopped with a savepoint at the end.
    let yaml = mixed_job(dir, true).replace("rows: 120000", "rows: 4000000");
    let cluster = Cluster::start_with(dir, &yaml, 3, port, &[("WEIR_UI_TOKEN", "s3cret")]);
    wait_for("the job to run", Duration::from_secs(30), || {
        status(port).is_some_and(|s| s["state"] == "running" && s["last_checkpoint"].as_u64() > Some(2))
    });

    let overview = get(port, "/overview");
    assert_eq!(overview["taskmanagers"], 3, "{overview}");
    assert_eq!(overview["jobs-running"], 1, "{overview}");
    assert_eq!(get(port, "/jobs")["jobs"][0]["id"], "mixed");

    // The plan: every input names a vertex of the plan; the keyed window is fed by a hash edge.
    let job = get(port, "/jobs/mixed");
    assert_eq!(job["state"], "running");
    let ids: Vec<&str> = job["plan"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    for node in job["plan"]["nodes"].as_array().unwrap() {
        for input in node["inputs"].as_array().unwrap() {
            assert!(ids.contains(&input["id"].as_str().unwrap()), "{job}");
        }
    }
    let win = vertex_of(&job, "win");
    assert_eq!(win["parallelism"], 3);
    let fed: Vec<&Value> = job["plan"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["id"] == win["id"])
        .collect();
    assert_eq!(fed[0]["inputs"][0]["ship_strategy"], "hash", "{job}");
    let vid = win["id"].as_str().unwrap().to_string();
    assert_eq!(get(port, &format!("/jobs/mixed/vertices/{vid}"))["id"], vid.as_str());
    // Event time: each window subtask shows the watermark it received, once it has one.
    let marks = format!("/jobs/mixed/vertices/{vid}/watermarks");
    wait_for("the window's watermarks", Duration::from_secs(30), || {
        get(port, &marks).as_array().is_some_and(|m| {
            m.iter()
                .any(|w| w["id"] == "0.currentInputWatermark" && w["value"].as_i64() > Some(0))
        })
    });

    // The same counters as /metrics (read between two reads of the API: they only grow).
    let before = window_reads(port);
    let metrics = http_get(port, "/metrics");
    let after = window_reads(port);
    let exported = series(&metrics, "weir_records_in_total{job=\"mixed\",node=\"win\"}");
    assert!(
        before <= exported && exported <= after,
        "{before} <= {exported} <= {after}"
    );
    assert!(after > 0);
    // Every series the Grafana dashboard in docs/ queries (but the operator's) is exported.
    // (The source lag needs a Kafka source: kafka.rs checks that one.)
    for name in grafana_series()
        .iter()
        .filter(|n| !n.starts_with("weir_operator_") && *n != "weir_subtask_source_lag")
    {
        assert!(
            metrics.contains(&format!("\n{name}{{")) || metrics.contains(&format!("\n{name} ")),
            "the Grafana dashboard queries {name}, which /metrics does not export:\n{metrics}"
        );
    }
    // Per worker: three workers each run a share of the window (once each has sent a
    // heartbeat with its counters), and the shares add up.
    let path = format!("/jobs/mixed/vertices/{vid}/taskmanagers");
    wait_for("every worker's share in a heartbeat", Duration::from_secs(30), || {
        get(port, &path)["taskmanagers"]
            .as_array()
            .is_some_and(|w| w.len() == 3 && w.iter().all(|w| w["metrics"]["read-records"].as_u64() > Some(0)))
    });
    let before = window_reads(port);
    let per_worker = get(port, &path);
    let after = window_reads(port);
    let shares: Vec<u64> = per_worker["taskmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["metrics"]["read-records"].as_u64().unwrap())
        .collect();
    assert_eq!(shares.len(), 3, "{per_worker}");
    let sum: u64 = shares.iter().sum();
    assert!(before <= sum && sum <= after, "{before} <= {sum} <= {after}");
    let workers = get(port, "/taskmanagers");
    assert_eq!(workers["taskmanagers"].as_array().unwrap().len(), 3);
    assert!(
        workers["taskmanagers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["attached"] == true)
    );
    // Each worker process reports its memory (a worker holds more than a MiB) and CPU time.
    for w in workers["taskmanagers"].as_array().unwrap() {
        assert!(w["memory-bytes"].as_u64() > Some(1 << 20), "{w}");
        assert!(w["cpu-ms"].as_u64().is_some(), "{w}");
    }

    // Checkpoints: counts agree with /metrics, the history holds completed ones with sizes.
    let checkpoints = get(port, "/jobs/mixed/checkpoints");
    let completed = checkpoints["counts"]["completed"].as_u64().unwrap();
    assert!(completed >= 2, "{checkpoints}");
    let history = checkpoints["history"].as_array().unwrap();
    assert!(!history.is_empty());
    assert!(
        history
            .iter()
            .any(|c| c["status"] == "completed" && c["state_size_bytes"].as_u64() > Some(0))
    );
    // Per operator in the newest: the window's state and when its subtasks acknowledged.
    let latest = &checkpoints["latest"]["completed"];
    let win_part = latest["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uid"] == "win")
        .unwrap_or_else(|| panic!("the window in {latest}"));
    assert!(win_part["state_size_bytes"].as_u64() > Some(0), "{win_part}");
    assert_eq!(win_part["subtasks_with_state"], 3, "{win_part}");
    assert!(
        win_part["acknowledged_ms"].as_u64() <= latest["duration_ms"].as_u64(),
        "{latest}"
    );
    // Per subtask: its part in its newest checkpoint (alignment, sync, async, state).
    let win = vertex_of(&get(port, "/jobs/mixed"), "win").clone();
    assert!(win["state-size"].as_u64() > Some(0), "{win}");
    // Bytes as well as records: what came in took room.
    for s in win["subtasks"].as_array().unwrap() {
        assert!(s["read-bytes"].as_u64() > s["read-records"].as_u64(), "{s}");
    }
    for s in win["subtasks"].as_array().unwrap() {
        let part = &s["checkpoint"];
        assert!(part["id"].as_u64() >= Some(1), "{s}");
        for field in ["alignment-ms", "sync-ms", "async-ms", "state-bytes"] {
            assert!(part[field].is_u64(), "{field} in {s}");
        }
    }
    let exported = http_get(port, "/metrics");
    for name in [
        "weir_subtask_state_bytes",
        "weir_subtask_checkpoint_alignment_ms",
        "weir_subtask_checkpoint_async_ms",
    ] {
        assert!(
            exported.contains(&format!("{name}{{job=\"mixed\",vertex=")),
            "{name} in {exported}"
        );
    }
    let newest = checkpoints["latest"]["completed"]["id"].as_u64().unwrap();
    assert!(newest >= history.last().unwrap()["id"].as_u64().unwrap());
    let exported = series(&http_get(port, "/metrics"), "weir_checkpoints_completed_total");
    assert!(exported >= completed);
    let config = get(port, "/jobs/mixed/checkpoints/config");
    assert_eq!(
        (config["enabled"].clone(), config["interval"].clone()),
        (true.into(), 100.into())
    );

    // A failure: SIGKILL of a worker shows on the exceptions page and the job goes on.
    assert_eq!(get(port, "/jobs/mixed/exceptions")["entries"], serde_json::json!([]));
    cluster.signal(2, "-KILL");
    wait_for("the failure on the exceptions page", Duration::from_secs(30), || {
        serde_json::from_str::<Value>(&http_get(port, "/jobs/mixed/exceptions"))
            .is_ok_and(|e| e["entries"].as_array().is_some_and(|a| !a.is_empty()))
    });
    let entry = get(port, "/jobs/mixed/exceptions")["entries"][0].clone();
    assert!(entry["message"].as_str().is_some_and(|m| !m.is_empty()), "{entry}");
    wait_for("the job to run again", Duration::from_secs(60), || {
        status(port).is_some_and(|s| s["state"] == "running" && s["restarts"].as_u64() >= Some(1))
    });

    // Every document has the shape the served OpenAPI description gives it: each key one its
    // schema names, of the type it says, every required key present.
    let doc = get(port, "/openapi.json");
    for (template, path) in [
        ("/overview", "/overview".to_string()),
        ("/jobs", "/jobs".into()),
        ("/jobs/{id}", "/jobs/mixed".into()),
        ("/jobs/{id}/vertices/{vid}", format!("/jobs/mixed/vertices/{vid}")),
        (
            "/jobs/{id}/vertices/{vid}/taskmanagers",
            format!("/jobs/mixed/vertices/{vid}/taskmanagers"),
        ),
        (
            "/jobs/{id}/vertices/{vid}/backpressure",
            format!("/jobs/mixed/vertices/{vid}/backpressure"),
        ),
        (
            "/jobs/{id}/vertices/{vid}/watermarks",
            format!("/jobs/mixed/vertices/{vid}/watermarks"),
        ),
        ("/jobs/{id}/checkpoints", "/jobs/mixed/checkpoints".into()),
        ("/jobs/{id}/checkpoints/config", "/jobs/mixed/checkpoints/config".into()),
        ("/jobs/{id}/exceptions", "/jobs/mixed/exceptions".into()),
        ("/taskmanagers", "/taskmanagers".into()),
        ("/status", "/status".into()),
    ] {
        let schema = &doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{template} is described");
        if let Err(e) = conforms(&doc, schema, &get(port, &path), path.as_str()) {
            panic!("{path} does not match its schema: {e}");
        }
    }
    // (And the check tells a wrong document: an unknown key, a wrong type, a missing key.)
    let overview = &doc["paths"]["/overview"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let mut wrong = get(port, "/overview");
    wrong["extra-key"] = 1.into();
    assert!(conforms(&doc, overview, &wrong, "o").is_err());
    let mut wrong = get(port, "/overview");
    wrong["taskmanagers"] = "three".into();
    assert!(conforms(&doc, overview, &wrong, "o").is_err());
    let mut wrong = get(port, "/overview");
    wrong.as_object_mut().unwrap().remove("jobs-running");
    assert!(conforms(&doc, overview, &wrong, "o").is_err());

    // Unknown resources answer 404 in Flink's error form.
    let (code, body) = request(port, "GET", "/jobs/other", &[]);
    assert_eq!(code, 404);
    assert!(body.contains("\"errors\"") && body.contains("mixed"), "{body}");
    assert_eq!(request(port, "GET", "/jobs/mixed/vertices/v99", &[]).0, 404);

    // Savepoints: no token, a wrong one, then the right one.
    let (code, body) = request(port, "POST", "/jobs/mixed/savepoints", &[]);
    assert_eq!(code, 401, "{body}");
    let (code, body) = request(port, "POST", "/jobs/mixed/savepoints", &["authorization: Bearer nope"]);
    assert_eq!(code, 403, "{body}");
    let (code, body) = request(
        port,
        "POST",
        "/jobs/mixed/savepoints",
        &["authorization: Bearer s3cret"],
    );
    assert_eq!(code, 200, "{body}");
    let done: Value = serde_json::from_str(&body).unwrap();
    let location = done["location"].as_str().unwrap();
    assert!(Path::new(location).join("_metadata").exists(), "{done}");
    assert_eq!(
        request(port, "PATCH", "/jobs/mixed?mode=stop", &["authorization: Bearer nope"]).0,
        403
    );
    assert_eq!(
        request(
            port,
            "PATCH",
            "/jobs/mixed?mode=cancel",
            &["authorization: Bearer s3cret"]
        )
        .0,
        400
    );
    let (code, body) = request(
        port,
        "PATCH",
        "/jobs/mixed?mode=stop",
        &["authorization: Bearer s3cret"],
    );
    assert_eq!(code, 200, "{body}");
    let stopped: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stopped["stopped"], true);
    assert!(
        Path::new(stopped["location"].as_str().unwrap())
            .join("_metadata")
            .exists()
    );
    assert!(
        cluster.wait(Duration::from_secs(60)),
        "the cluster ends well after the stop"
    );
}

#[test]
fn weir_run_serves_the_rest_api_read_only_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = tmp.path().join("job.yaml");
    std::fs::write(&file, unbounded_keyed_job("local", &tmp.path().join("chk"))).unwrap();
    let child = weir()
        .arg("run")
        .arg(&file)
        .args(["--progress=never", "--ui", &format!("127.0.0.1:{port}")])
        .env_remove("WEIR_UI_TOKEN")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Killed(child);
    wait_for("checkpoints in the API", Duration::from_secs(30), || {
        serde_json::from_str::<Value>(&http_get(port, "/jobs/local/checkpoints"))
            .is_ok_and(|c| c["counts"]["completed"].as_u64() >= Some(2))
    });
    let job = get(port, "/jobs/local");
    assert_eq!(job["state"], "running");
    assert!(
        vertex_of(&job, "out")["metrics"]["read-records"].as_u64() > Some(0),
        "{job}"
    );
    assert_eq!(get(port, "/overview")["taskmanagers"], 1);
    let (code, body) = request(port, "POST", "/jobs/local/savepoints", &["authorization: Bearer x"]);
    assert_eq!(code, 403, "read-only without a token: {body}");
    assert!(body.contains("read-only"), "{body}");
}

/// Whether `value` has the shape `schema` (OpenAPI 3.0, `$ref`s into `doc`) gives it: the
/// types, the required keys, no key the schema does not name; `at` names the place.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(any) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        return any
            .iter()
            .find_map(|s| conforms(doc, s, value, at).ok())
            .ok_or_else(|| format!("{at}: {value} matches none of {any:?}"));
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, s, value, at)?;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is none of {options:?}"));
    }
    let fits = match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return Err(format!("{at}: {value} is not an object"));
            };
            for (key, v) in object {
                match schema["properties"].get(key) {
                    Some(s) => conforms(doc, s, v, &format!("{at}.{key}"))?,
                    None if schema["additionalProperties"].is_object() => {
                        conforms(doc, &schema["additionalProperties"], v, &format!("{at}.{key}"))?
                    }
                    None => return Err(format!("{at}: key '{key}' is not in the schema")),
                }
            }
            for key in schema["required"].as_array().into_iter().flatten() {
                if !object.contains_key(key.as_str().unwrap()) {
                    return Err(format!("{at}: required key {key} is missing"));
                }
            }
            true
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return Err(format!("{at}: {value} is not an array"));
            };
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
            true
        }
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("{at}: {value} is not of type {}", schema["type"]))
    }
}

/// The metric names the Grafana dashboard (`docs/grafana/weir-dashboard.json`) queries.
pub(crate) fn grafana_series() -> Vec<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/weir-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("weir_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
    }
    assert!(names.len() > 10, "{names:?}");
    names.into_iter().collect()
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_slow_sink_shows_its_upstream_back_pressured_with_rates_per_subtask() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use weir::rest::{self, RestOptions, local::LocalJob};
    use weir::runtime::control::JobControl;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = crate::runtime::source_into_slow_sink(100, 2, Arc::new(AtomicU64::new(0)));
    let (graph, config) = env.prepare("slow").unwrap();
    let (metrics, control) = (env.metrics(), JobControl::default());
    let source = Arc::new(LocalJob::new(graph, config, metrics.clone(), control.clone()));
    let addr = rt
        .block_on(rest::serve(
            "127.0.0.1:0".parse().unwrap(),
            source,
            RestOptions::default(),
        ))
        .unwrap();
    let port = addr.port();
    let job = rt.spawn({
        let control = control.clone();
        async move { env.execute_controlled("slow", &metrics, &control).await }
    });
    // The source waits for the sink nearly all the time: its vertex is back-pressured ("high",
    // above half the time), the sink's is busy and not back-pressured.
    wait_for("the source's back-pressure", Duration::from_secs(30), || {
        get(port, "/jobs/slow/vertices/v0/backpressure")["backpressure-level"] == "high"
    });
    let job_doc = get(port, "/jobs/slow");
    let (source, sink) = (vertex_of(&job_doc, "gen"), vertex_of(&job_doc, "sink-slow"));
    assert!(source["backpressured-ratio"].as_f64() > Some(0.5), "{job_doc}");
    assert!(sink["busy-ratio"].as_f64() > Some(0.5), "{job_doc}");
    assert_eq!(
        get(
            port,
            &format!("/jobs/slow/vertices/{}/backpressure", sink["id"].as_str().unwrap())
        )["backpressure-level"],
        "ok"
    );
    let subtask = &source["subtasks"][0];
    assert_eq!(
        (subtask["subtask"].clone(), subtask["taskmanager-id"].clone()),
        (0.into(), "worker-0".into())
    );
    assert!(subtask["write-records-per-second"].as_f64() > Some(0.0), "{subtask}");
    // The same figures for Prometheus, per subtask.
    let metrics_text = http_get(port, "/metrics");
    assert!(
        series(
            &metrics_text,
            "weir_subtask_backpressured_ms_total{job=\"slow\",vertex=\"gen\",subtask=\"0\",worker=\"0\"}"
        ) > 0,
        "{metrics_text}"
    );
    control.cancel_token().cancel();
    let result = rt.block_on(job).unwrap().unwrap();
    assert!(result.cancelled);
}
