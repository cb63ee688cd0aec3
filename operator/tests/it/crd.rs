//! The `StreamJob` CRD: the committed YAML is what `crdgen` prints, and its admission rules (CEL,
//! evaluated here by kube's CEL interpreter as the API server would) refuse bad specs with the
//! field named.

use weir_operator::crd::{JobSource, StreamJob, StreamJobSpec};

fn spec(parallelism: i32, max_parallelism: i32) -> StreamJobSpec {
    StreamJobSpec {
        image: "weir-worker:dev".into(),
        parallelism,
        max_parallelism,
        job: JobSource {
            pipeline: Some("name: j".into()),
            ..Default::default()
        },
        checkpoint: None,
        upgrade_mode: Default::default(),
        upgrade: Default::default(),
        health_check: Default::default(),
        state: Default::default(),
        restart_nonce: None,
        savepoint_trigger_nonce: None,
        savepoint: Default::default(),
        initial_savepoint_path: None,
        state_backend: None,
        resources: None,
        pod_template: None,
        autoscaler: None,
    }
}

#[test]
fn the_committed_crd_is_current() {
    for file in ["crds/streamjob.yaml", "charts/weir/crds/streamjob.yaml"] {
        let committed = std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(
            committed == weir_operator::crd::crd_yaml(),
            "{file} is stale: run `cargo run -p weir-operator --bin crdgen > {file}`"
        );
    }
}

#[test]
fn admission_rules_name_what_is_wrong() {
    let ok = StreamJob::new("j", spec(2, 128));
    ok.validate_cel().unwrap();

    let too_wide = StreamJob::new("j", spec(200, 128));
    let e = format!("{:?}", too_wide.validate_cel().unwrap_err());
    assert!(e.contains("parallelism must not exceed maxParallelism"), "{e}");

    let zero = StreamJob::new("j", spec(0, 128));
    let e = format!("{:?}", zero.validate_cel().unwrap_err());
    assert!(e.contains("parallelism must be at least 1"), "{e}");

    let mut two_jobs = spec(1, 128);
    two_jobs.job.sql = Some("SELECT 1".into());
    let e = format!("{:?}", StreamJob::new("j", two_jobs).validate_cel().unwrap_err());
    assert!(
        e.contains("set exactly one of job.sql, job.pipeline, job.python, job.builtin"),
        "{e}"
    );

    let mut builtin = spec(1, 128);
    builtin.job = weir_operator::crd::JobSource {
        builtin: Some("wordcount".into()),
        ..Default::default()
    };
    let e = format!("{:?}", StreamJob::new("j", builtin).validate_cel().unwrap_err());
    assert!(e.contains("job.builtin: worker pods run"), "{e}");

    // maxParallelism is fixed for the life of the job's state.
    let changed = StreamJob::new("j", spec(2, 256));
    let e = format!("{:?}", changed.validate_cel_update(&ok).unwrap_err());
    assert!(e.contains("maxParallelism is immutable"), "{e}");
    StreamJob::new("j", spec(4, 128)).validate_cel_update(&ok).unwrap();
}
