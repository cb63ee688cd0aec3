//! The REST API's OpenAPI 3.0 description (`GET /openapi.json`, committed as
//! `docs/openapi.json`): the paths listed here, their documents' schemas derived from the Rust
//! types the handlers serialize (schemars, which follows their serde names and doc comments), so
//! the description cannot drift from what is sent.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::model::*;
use super::status::StatusView;

/// One operation: method, path, id, summary, and the schema of its 200 answer.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    answer: Answer,
    /// Needs the bearer token.
    mutating: bool,
    /// Its JSON request body, if it takes one.
    body: Option<Schema>,
}

enum Answer {
    Json(Schema),
    Text(&'static str, &'static str),
}

fn json_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Answer {
    Answer::Json(g.subschema_for::<T>())
}

fn operations(g: &mut SchemaGenerator) -> Vec<Operation> {
    let get = |path, id, summary, answer| Operation {
        method: "get",
        path,
        id,
        summary,
        answer,
        mutating: false,
        body: None,
    };
    vec![
        get(
            "/overview",
            "overview",
            "The cluster at a glance: workers, jobs by state, version",
            json_of::<Overview>(g),
        ),
        get("/jobs", "jobs", "The job's id and state", json_of::<JobList>(g)),
        get(
            "/jobs/{id}",
            "job",
            "The job: state, times, vertices with their operators and subtasks, the plan",
            json_of::<JobDetail>(g),
        ),
        get(
            "/jobs/{id}/vertices/{vid}",
            "vertex",
            "One vertex with its subtasks' figures",
            json_of::<Vertex>(g),
        ),
        get(
            "/jobs/{id}/vertices/{vid}/taskmanagers",
            "vertexWorkers",
            "A vertex's counters per worker",
            json_of::<VertexWorkers>(g),
        ),
        get(
            "/jobs/{id}/vertices/{vid}/backpressure",
            "backpressure",
            "A vertex's back-pressure level (ok below 10 % of the time, low to 50 %, high above)",
            json_of::<BackPressure>(g),
        ),
        get(
            "/jobs/{id}/vertices/{vid}/watermarks",
            "watermarks",
            "A vertex's input and output watermarks per subtask",
            json_of::<Vec<WatermarkEntry>>(g),
        ),
        get(
            "/jobs/{id}/checkpoints",
            "checkpoints",
            "Checkpoint counts, summary, latest and history",
            json_of::<Checkpoints>(g),
        ),
        get(
            "/jobs/{id}/checkpoints/config",
            "checkpointConfig",
            "The job's checkpoint settings",
            json_of::<CheckpointConfigView>(g),
        ),
        get(
            "/jobs/{id}/exceptions",
            "exceptions",
            "The failures that restarted or ended runs, newest first",
            json_of::<Exceptions>(g),
        ),
        Operation {
            method: "post",
            path: "/jobs/{id}/savepoints",
            id: "savepoint",
            summary: "Takes a savepoint (cancel-job: then stops the job)",
            answer: json_of::<SavepointDone>(g),
            mutating: true,
            body: Some(g.subschema_for::<SavepointRequest>()),
        },
        Operation {
            method: "patch",
            path: "/jobs/{id}",
            id: "stop",
            summary: "Stops the job with a savepoint (mode=stop)",
            answer: json_of::<SavepointDone>(g),
            mutating: true,
            body: None,
        },
        get(
            "/taskmanagers",
            "taskmanagers",
            "The workers: address, heartbeat, records, memory and CPU",
            json_of::<TaskManagers>(g),
        ),
        get(
            "/status",
            "status",
            "The job's status as `weir status` shows it",
            json_of::<StatusView>(g),
        ),
        get(
            "/metrics",
            "metrics",
            "The figures for Prometheus",
            Answer::Text(super::prometheus::CONTENT_TYPE, "OpenMetrics text"),
        ),
        get("/healthz", "healthz", "Liveness", Answer::Text("text/plain", "ok")),
        get(
            "/",
            "dashboard",
            "The dashboard (a single page over this API)",
            Answer::Text("text/html", "the page"),
        ),
        get(
            "/openapi.json",
            "openapi",
            "This description",
            Answer::Text("application/json", "OpenAPI 3.0"),
        ),
    ]
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|p| p.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let description = if name == "id" {
                "The job's id (its name)"
            } else {
                "A vertex id (`v0`, `v1`, … in plan order)"
            };
            json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
        })
        .collect()
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut g = SchemaSettings::openapi3().into_generator();
    let errors = g.subschema_for::<Errors>();
    let mut paths = Map::new();
    for op in operations(&mut g) {
        let ok = match op.answer {
            Answer::Json(schema) => json!({
                "description": "OK",
                "content": {"application/json": {"schema": schema}},
            }),
            Answer::Text(content_type, description) => json!({
                "description": description,
                "content": {content_type: {"schema": {"type": "string"}}},
            }),
        };
        let problem = |description: &str| json!({"description": description, "content": {"application/json": {"schema": errors}}});
        let mut responses = Map::new();
        responses.insert("200".into(), ok);
        if op.path.contains('{') {
            responses.insert("404".into(), problem("No such job or vertex"));
        }
        let mut parameters = path_parameters(op.path);
        let mut operation = json!({"operationId": op.id, "summary": op.summary});
        if op.mutating {
            responses.insert("401".into(), problem("No bearer token sent"));
            responses.insert(
                "403".into(),
                problem("A wrong token, or none configured (the API is read-only)"),
            );
            responses.insert("409".into(), problem("The savepoint could not be taken"));
            operation["security"] = json!([{"bearer": []}]);
        }
        if op.id == "stop" {
            parameters.push(json!({"name": "mode", "in": "query", "required": true, "schema": {"type": "string", "enum": ["stop"]}}));
            responses.insert("400".into(), problem("A missing or unknown mode"));
        }
        if let Some(body) = op.body {
            operation["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": body}}});
            responses.insert("400".into(), problem("A body that is not a savepoint request"));
        }
        if !parameters.is_empty() {
            operation["parameters"] = parameters.into();
        }
        operation["responses"] = responses.into();
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Weir REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A Weir job's coordinator: Flink's resource names and kebab-case keys where a resource means the same.",
        },
        "paths": paths,
        "components": {
            "schemas": g.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed `docs/openapi.json` is what the types say (regenerate it with
    /// `WEIR_BLESS=1 cargo test -p weir-worker --lib openapi`).
    #[test]
    fn the_committed_description_is_the_generated_one() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("WEIR_BLESS").is_some() {
            std::fs::write(&file, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date: regenerate it with WEIR_BLESS=1 cargo test -p weir-worker --lib openapi",
            file.display()
        );
    }

    #[test]
    fn every_path_answers_and_names_its_schemas() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "JobDetail",
            "Vertex",
            "SubtaskView",
            "Checkpoints",
            "CheckpointRecord",
            "TaskManager",
        ] {
            assert!(schemas.contains_key(name), "{name} in {:?}", schemas.keys());
        }
        // Serde's names, not Rust's.
        let vertex = &schemas["Vertex"]["properties"];
        assert!(vertex.get("busy-ratio").is_some() && vertex.get("busy_ratio").is_none());
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        assert_eq!(doc["paths"]["/jobs/{id}"]["patch"]["security"][0]["bearer"], json!([]));
    }
}
