//! What a `StreamJob` should look like in the cluster, as pure functions of the resource: a
//! ConfigMap with the job, a headless Service (stable DNS names for the workers, so each finds
//! ordinal 0 as `<job>-0.<job>.<namespace>.svc`), and a StatefulSet of `weir-worker` pods, all
//! owned by the StreamJob so deleting it removes them. The reconciler applies these by
//! server-side apply; the unit tests below check them without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource,
    EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretEnvSource, SecurityContext,
    Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::crd::{Deployed, JobState, StateBackendKind, StreamJob};

/// Port of the workers' gRPC server (coordinator and data exchange).
pub const GRPC_PORT: i32 = 7070;
/// Port of worker 0's HTTP status endpoint (`/status`, `/metrics`, `/healthz`).
pub const STATUS_PORT: i32 = 8081;
/// Where the job file is mounted in the worker pods.
pub const JOB_DIR: &str = "/etc/weir";
/// The worker's working directory, a writable emptyDir (the root filesystem is read-only):
/// dead letters and other local files of a job go there.
pub const WORK_DIR: &str = "/var/lib/weir";
/// Where the disk state backend keeps its files (a volume of its own).
pub const STATE_DIR: &str = "/var/lib/weir-state";
/// Label naming the StreamJob a pod belongs to.
pub const JOB_LABEL: &str = "weir.dev/job";
/// Pod label carrying the deployment serial ([`Deployed::serial`]): pods of an older one are
/// replaced all at once (a job needs all its workers on the same plan).
pub const SERIAL_LABEL: &str = "weir.dev/deployment";

/// Why the desired objects cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The resource has no name, namespace or uid yet (not read from the API server).
    #[error("StreamJob has no {0} (it must come from the API server)")]
    Missing(&'static str),
    /// A field's value cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// The labels of every object of `job`.
pub fn labels(job: &StreamJob) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "weir".to_string()),
        ("app.kubernetes.io/instance".to_string(), job.name_any()),
        ("app.kubernetes.io/managed-by".to_string(), "weir-operator".to_string()),
        (JOB_LABEL.to_string(), job.name_any()),
    ])
}

/// The label selector of the job's pods, as the scale subresource reports it.
pub fn selector(job: &StreamJob) -> String {
    format!("{JOB_LABEL}={}", job.name_any())
}

/// The URL of the job's dashboard and REST API: its Ingress's when the operator makes one, else
/// worker pod 0's stable DNS name inside the cluster.
pub fn dashboard(job: &StreamJob, ingress: Option<&DashboardIngress>) -> String {
    if let Some(i) = ingress {
        let scheme = if i.tls_secret.is_some() { "https" } else { "http" };
        return format!("{scheme}://{}/", i.host_of(job));
    }
    let name = job.name_any();
    let namespace = job.namespace().unwrap_or_else(|| "default".into());
    format!("http://{name}-0.{name}.{namespace}.svc.cluster.local:{STATUS_PORT}/")
}

/// How the operator exposes each job's dashboard through an Ingress (the chart's
/// `dashboard.ingress`; off unless a host is given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardIngress {
    /// The host, `{name}` and `{namespace}` replaced by the job's (`{name}.{namespace}.example.com`).
    pub host: String,
    /// The IngressClass (none: the cluster's default).
    pub class: Option<String>,
    /// A TLS Secret for the host (in the job's namespace).
    pub tls_secret: Option<String>,
    /// Annotations of each Ingress (an ingress controller's settings: authentication, …).
    pub annotations: BTreeMap<String, String>,
}

impl DashboardIngress {
    /// The host of `job`'s Ingress.
    pub fn host_of(&self, job: &StreamJob) -> String {
        self.host
            .replace("{name}", &job.name_any())
            .replace("{namespace}", &job.namespace().unwrap_or_else(|| "default".into()))
    }
}

/// The name of the dashboard's Service and Ingress.
pub fn ui_name(job: &StreamJob) -> String {
    format!("{}-ui", job.name_any())
}

/// A Service in front of worker pod 0's dashboard and REST API only (the headless Service
/// spans every worker; only pod 0 serves the API): a stable target for
/// `kubectl port-forward svc/<job>-ui 8081` and for the Ingress.
pub fn ui_service(job: &StreamJob) -> Result<Service, DesiredError> {
    let name = job.name_any();
    Ok(Service {
        metadata: meta(job, ui_name(job))?,
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([
                (JOB_LABEL.to_string(), name.clone()),
                ("statefulset.kubernetes.io/pod-name".to_string(), format!("{name}-0")),
            ])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: STATUS_PORT,
                target_port: Some(IntOrString::Int(STATUS_PORT)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The Ingress of the job's dashboard, routing its host to [`ui_service`].
pub fn ingress(job: &StreamJob, settings: &DashboardIngress) -> Result<Ingress, DesiredError> {
    let host = settings.host_of(job);
    let mut metadata = meta(job, ui_name(job))?;
    if !settings.annotations.is_empty() {
        metadata.annotations = Some(settings.annotations.clone());
    }
    Ok(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: settings.class.clone(),
            tls: settings.tls_secret.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: ui_name(job),
                                port: Some(ServiceBackendPort {
                                    number: Some(STATUS_PORT),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

fn meta(job: &StreamJob, name: String) -> Result<ObjectMeta, DesiredError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(job.namespace().ok_or(DesiredError::Missing("namespace"))?),
        labels: Some(labels(job)),
        owner_references: Some(vec![owner(job)?]),
        ..ObjectMeta::default()
    })
}

fn owner(job: &StreamJob) -> Result<OwnerReference, DesiredError> {
    job.controller_owner_ref(&()).ok_or(DesiredError::Missing("uid"))
}

/// File name of the job in the ConfigMap (the worker tells SQL, a pipeline and a Python script
/// apart by it).
pub fn job_file(job: &StreamJob) -> &'static str {
    if job.spec.job.sql.is_some() {
        "job.sql"
    } else if job.spec.job.python.is_some() {
        "job.py"
    } else {
        "job.yaml"
    }
}

/// The name the workers run the job under: a pipeline's own `name`, else the StreamJob's.
pub fn job_name(job: &StreamJob) -> String {
    job.spec
        .job
        .pipeline
        .as_deref()
        .and_then(|p| serde_yaml::from_str::<serde_yaml::Value>(p).ok())
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(String::from))
        .unwrap_or_else(|| job.name_any())
}

/// The ConfigMap holding the job's text.
pub fn config_map(job: &StreamJob) -> Result<ConfigMap, DesiredError> {
    let text = job
        .spec
        .job
        .sql
        .clone()
        .or_else(|| job.spec.job.pipeline.clone())
        .or_else(|| job.spec.job.python.clone())
        .unwrap_or_default();
    Ok(ConfigMap {
        metadata: meta(job, job.name_any())?,
        data: Some(BTreeMap::from([(job_file(job).to_string(), text)])),
        ..ConfigMap::default()
    })
}

/// The headless Service that gives each worker pod a stable DNS name.
pub fn service(job: &StreamJob) -> Result<Service, DesiredError> {
    Ok(Service {
        metadata: meta(job, job.name_any())?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Workers must find each other before they are ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(BTreeMap::from([(JOB_LABEL.to_string(), job.name_any())])),
            ports: Some(vec![
                ServicePort {
                    name: Some("grpc".into()),
                    port: GRPC_PORT,
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("status".into()),
                    port: STATUS_PORT,
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// Worker pods wanted: the parallelism while running, none while suspended.
pub fn replicas(job: &StreamJob) -> i32 {
    match job.spec.state {
        JobState::Running => job.spec.parallelism,
        JobState::Suspended => 0,
    }
}

/// A stable hash (FNV-1a, hex) of what needs the workers restarted to change: the job's text,
/// the image, checkpointing, resources and the pod template. Parallelism is not in it (a
/// rescale is told apart from an upgrade).
pub fn job_hash(job: &StreamJob) -> String {
    let s = &job.spec;
    let text = serde_json::json!([
        s.job,
        s.image,
        s.checkpoint,
        s.resources,
        s.pod_template,
        s.state_backend
    ])
    .to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The checkpoint storage of a deployment: the spec's, or a fresh namespace under it after a
/// stateless upgrade.
pub fn checkpoint_storage(storage: &str, state_epoch: i64) -> String {
    if state_epoch == 0 {
        storage.to_string()
    } else {
        format!("{}/epoch-{state_epoch}", storage.trim_end_matches('/'))
    }
}

/// The StatefulSet of `weir-worker` pods (ordinal 0 runs the coordinator) for a deployment:
/// `deployed` says how many pods, the savepoint to restore from and the serial their label
/// carries. Updates are `OnDelete`: the operator replaces every pod of an older serial at once.
pub fn stateful_set(job: &StreamJob, deployed: &Deployed) -> Result<StatefulSet, DesiredError> {
    let name = job.name_any();
    let namespace = job.namespace().ok_or(DesiredError::Missing("namespace"))?;
    let spec = &job.spec;
    let env = |k: &str, v: String| EnvVar {
        name: k.to_string(),
        value: Some(v),
        ..EnvVar::default()
    };
    // Suspended: no pods; the template keeps the spec's parallelism.
    let workers = if deployed.parallelism > 0 {
        deployed.parallelism
    } else {
        spec.parallelism
    };
    let mut envs = vec![
        env("WEIR_JOB", format!("{JOB_DIR}/{}", job_file(job))),
        // SQL jobs are named after the StreamJob (a pipeline names itself).
        env("WEIR_JOB_NAME", job_name(job)),
        env("WEIR_WORKERS", workers.to_string()),
        env("WEIR_PARALLELISM", workers.to_string()),
        // Key groups: the StreamJob's, fixed for the life of the state (a job file that sets
        // another value is refused by the workers).
        env("WEIR_MAX_PARALLELISM", spec.max_parallelism.to_string()),
        env(
            "WEIR_PEER_PATTERN",
            format!("{name}-{{ordinal}}.{name}.{namespace}.svc.cluster.local:{GRPC_PORT}"),
        ),
        env("WEIR_STATUS_PORT", STATUS_PORT.to_string()),
        env("WEIR_LOG", "info".into()),
        // A job that ended stays ended: an exiting pod would be restarted and run it again.
        env("WEIR_LINGER", "true".into()),
        // Workers of another pod template never join this one's coordinator.
        env("WEIR_DEPLOYMENT", deployed.serial.to_string()),
        // Pods come and go in a cluster: keep restarting (with back-off up to 30 s), as Flink
        // does with checkpointing on Kubernetes.
        env("WEIR_RESTART_ATTEMPTS", "1000000".into()),
    ];
    let mut env_from = Vec::new();
    if let Some(c) = &spec.checkpoint {
        envs.push(env("WEIR_CHECKPOINT_INTERVAL_MS", c.interval_ms.to_string()));
        envs.push(env(
            "WEIR_CHECKPOINT_STORAGE",
            checkpoint_storage(&c.storage, deployed.state_epoch),
        ));
        if let Some(secret) = &c.credentials_secret {
            // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT … for object_store.
            env_from.push(EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: secret.clone(),
                    ..SecretEnvSource::default()
                }),
                ..EnvFromSource::default()
            });
        }
    }
    if let Some(path) = &deployed.restore_from {
        envs.push(env("WEIR_FROM_SAVEPOINT", path.clone()));
    }
    // The disk state backend keeps its files on a volume of its own.
    let disk = spec.state_backend.as_ref().filter(|b| b.kind == StateBackendKind::Disk);
    if let Some(b) = disk {
        envs.push(env("WEIR_STATE_BACKEND", "disk".into()));
        envs.push(env("WEIR_STATE_DIR", STATE_DIR.into()));
        if let Some(m) = &b.memory {
            envs.push(env("WEIR_STATE_MEMORY", m.0.clone()));
        }
        if let Some(on) = b.local_recovery {
            envs.push(env("WEIR_STATE_LOCAL_RECOVERY", on.to_string()));
        }
    }
    let mut mounts = vec![
        VolumeMount {
            name: "job".into(),
            mount_path: JOB_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "work".into(),
            mount_path: WORK_DIR.into(),
            ..VolumeMount::default()
        },
    ];
    let mut volumes = vec![
        Volume {
            name: "job".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "work".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    if let Some(b) = disk {
        mounts.push(VolumeMount {
            name: "state".into(),
            mount_path: STATE_DIR.into(),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "state".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: b.volume_size.clone(),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let container = Container {
        name: "worker".into(),
        image: Some(spec.image.clone()),
        args: Some(vec!["worker".into()]),
        env: Some(envs),
        env_from: (!env_from.is_empty()).then_some(env_from),
        ports: Some(vec![
            ContainerPort {
                name: Some("grpc".into()),
                container_port: GRPC_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("status".into()),
                container_port: STATUS_PORT,
                ..ContainerPort::default()
            },
        ]),
        resources: spec.resources.clone(),
        // Ready once the gRPC server listens: peers and the operator can reach it.
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(GRPC_PORT),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(1),
            ..Probe::default()
        }),
        working_dir: Some(WORK_DIR.into()),
        volume_mounts: Some(mounts),
        // Pod Security "restricted": no privilege escalation, no capabilities, not root, the
        // runtime's default seccomp profile (on the pod).
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let mut pod_labels = labels(job);
    pod_labels.insert(SERIAL_LABEL.to_string(), deployed.serial.to_string());
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            termination_grace_period_seconds: Some(10),
            ..PodSpec::default()
        }),
    };
    if let Some(overrides) = &spec.pod_template {
        template = merge_template(template, overrides);
    }
    Ok(StatefulSet {
        metadata: meta(job, name.clone())?,
        spec: StatefulSetSpec {
            replicas: Some(deployed.parallelism),
            service_name: Some(name.clone()),
            // Workers start and stop together: the job needs all of them.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(JOB_LABEL.to_string(), name)])),
                ..LabelSelector::default()
            },
            template,
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    })
}

/// Merges a user's pod template override into the generated one (JSON merge: objects merge
/// key by key, anything else replaces).
fn merge_template(template: PodTemplateSpec, overrides: &serde_json::Value) -> PodTemplateSpec {
    fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p.clone(),
        }
    }
    let mut value = serde_json::to_value(&template).unwrap_or_default();
    merge(&mut value, overrides);
    serde_json::from_value(value).unwrap_or(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CheckpointSpec, JobSource, StreamJobSpec};

    fn job(parallelism: i32) -> StreamJob {
        let mut j = StreamJob::new(
            "clicks",
            StreamJobSpec {
                image: "weir-worker:dev".into(),
                parallelism,
                max_parallelism: 128,
                job: JobSource {
                    pipeline: Some("name: clicks\n".into()),
                    ..JobSource::default()
                },
                checkpoint: Some(CheckpointSpec {
                    interval_ms: 1000,
                    storage: "s3://chk/weir".into(),
                    credentials_secret: Some("s3-creds".into()),
                }),
                upgrade_mode: Default::default(),
                upgrade: Default::default(),
                health_check: Default::default(),
                state: JobState::Running,
                restart_nonce: None,
                savepoint_trigger_nonce: None,
                savepoint: Default::default(),
                initial_savepoint_path: None,
                state_backend: None,
                resources: None,
                pod_template: None,
                autoscaler: None,
            },
        );
        j.metadata.namespace = Some("streams".into());
        j.metadata.uid = Some("1234".into());
        j
    }

    fn deployed(parallelism: i32) -> Deployed {
        Deployed {
            parallelism,
            job_hash: String::new(),
            restore_from: None,
            serial: 1,
            state_epoch: 0,
        }
    }

    fn env_of(s: &StatefulSet) -> BTreeMap<String, String> {
        let c = &s.spec.template.spec.as_ref().unwrap().containers[0];
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn every_object_is_owned_by_the_job_and_labelled() {
        let j = job(3);
        let cm = config_map(&j).unwrap();
        let svc = service(&j).unwrap();
        let sts = stateful_set(&j, &deployed(3)).unwrap();
        let ui = ui_service(&j).unwrap();
        for m in [&cm.metadata, &svc.metadata, &sts.metadata, &ui.metadata] {
            let owner = &m.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.controller),
                ("StreamJob", "clicks", Some(true))
            );
            assert_eq!(m.namespace.as_deref(), Some("streams"));
            assert_eq!(m.labels.as_ref().unwrap()[JOB_LABEL], "clicks");
        }
        assert_eq!(cm.data.unwrap()["job.yaml"], "name: clicks\n");
        assert_eq!(svc.spec.unwrap().cluster_ip.as_deref(), Some("None"));
        assert_eq!(selector(&j), "weir.dev/job=clicks");
    }

    #[test]
    fn the_dashboard_has_a_service_of_pod_zero_and_an_ingress_when_configured() {
        let j = job(3);
        let ui = ui_service(&j).unwrap();
        assert_eq!(ui.metadata.name.as_deref(), Some("clicks-ui"));
        let spec = ui.spec.unwrap();
        assert_eq!(
            spec.selector.unwrap()["statefulset.kubernetes.io/pod-name"],
            "clicks-0",
            "only pod 0 serves the API"
        );
        assert_eq!(spec.ports.unwrap()[0].port, STATUS_PORT);
        assert_eq!(
            dashboard(&j, None),
            "http://clicks-0.clicks.streams.svc.cluster.local:8081/"
        );
        let settings = DashboardIngress {
            host: "{name}.{namespace}.weir.example.com".into(),
            class: Some("nginx".into()),
            tls_secret: Some("weir-tls".into()),
            annotations: BTreeMap::from([("a/b".to_string(), "c".to_string())]),
        };
        let ing = ingress(&j, &settings).unwrap();
        assert_eq!(ing.metadata.annotations.as_ref().unwrap()["a/b"], "c");
        assert_eq!(ing.metadata.owner_references.unwrap()[0].name, "clicks");
        let spec = ing.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("clicks.streams.weir.example.com"));
        let backend = rule.http.as_ref().unwrap().paths[0].backend.service.as_ref().unwrap();
        assert_eq!(
            (backend.name.as_str(), backend.port.as_ref().unwrap().number),
            ("clicks-ui", Some(8081))
        );
        assert_eq!(spec.tls.unwrap()[0].secret_name.as_deref(), Some("weir-tls"));
        assert_eq!(
            dashboard(&j, Some(&settings)),
            "https://clicks.streams.weir.example.com/"
        );
    }

    #[test]
    fn a_python_job_is_a_script_in_the_config_map_that_the_workers_run() {
        let mut j = job(2);
        j.spec.job = JobSource {
            python: Some("from weir.datastream import *\n".into()),
            ..JobSource::default()
        };
        j.spec.image = "weir-worker-python:dev".into();
        let cm = config_map(&j).unwrap();
        assert_eq!(cm.data.unwrap()["job.py"], "from weir.datastream import *\n");
        let sts = stateful_set(&j, &deployed(2)).unwrap();
        let env = env_of(&sts);
        assert_eq!(env["WEIR_JOB"], "/etc/weir/job.py");
        assert_eq!(
            env["WEIR_JOB_NAME"], "clicks",
            "a script runs under the StreamJob's name"
        );
        let pod = sts.spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("weir-worker-python:dev"));
    }

    #[test]
    fn the_stateful_set_runs_one_worker_per_parallel_slot_and_finds_ordinal_zero() {
        let j = job(3);
        let sts = stateful_set(&j, &deployed(3)).unwrap();
        let spec = &sts.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("clicks"));
        let env = env_of(&sts);
        assert_eq!(
            env["WEIR_PEER_PATTERN"],
            "clicks-{ordinal}.clicks.streams.svc.cluster.local:7070"
        );
        assert_eq!(env["WEIR_WORKERS"], "3");
        assert_eq!(
            env["WEIR_MAX_PARALLELISM"], "128",
            "the StreamJob's key groups reach the workers"
        );
        assert_eq!(env["WEIR_CHECKPOINT_STORAGE"], "s3://chk/weir");
        assert_eq!(env["WEIR_JOB"], "/etc/weir/job.yaml");
        assert_eq!(env["WEIR_JOB_NAME"], "clicks", "a pipeline names itself");
        assert_eq!(env["WEIR_LINGER"], "true");
        assert_eq!(env["WEIR_DEPLOYMENT"], "1");
        assert!(!env.contains_key("WEIR_FROM_SAVEPOINT"));
        assert_eq!(
            spec.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels[SERIAL_LABEL], "1");
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap().len(),
            1,
            "the serial is not in the selector"
        );
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let from = pod.containers[0].env_from.as_ref().unwrap();
        assert_eq!(from[0].secret_ref.as_ref().unwrap().name, "s3-creds");
    }

    #[test]
    fn the_disk_state_backend_gets_a_volume_its_budget_and_a_restart() {
        use crate::crd::StateBackendSpec;
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let memory = job(2);
        let sts = stateful_set(&memory, &deployed(2)).unwrap();
        assert!(
            !env_of(&sts).contains_key("WEIR_STATE_BACKEND"),
            "memory is the default"
        );
        let mut disk = job(2);
        disk.spec.state_backend = Some(StateBackendSpec {
            kind: StateBackendKind::Disk,
            memory: Some(Quantity("1Gi".into())),
            volume_size: Some(Quantity("20Gi".into())),
            local_recovery: Some(false),
        });
        let sts = stateful_set(&disk, &deployed(2)).unwrap();
        let env = env_of(&sts);
        assert_eq!(
            (
                env["WEIR_STATE_BACKEND"].as_str(),
                env["WEIR_STATE_DIR"].as_str(),
                env["WEIR_STATE_MEMORY"].as_str(),
                env["WEIR_STATE_LOCAL_RECOVERY"].as_str()
            ),
            ("disk", STATE_DIR, "1Gi", "false")
        );
        let pod = sts.spec.template.spec.as_ref().unwrap();
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "state")
            .unwrap();
        assert_eq!(
            volume.empty_dir.as_ref().unwrap().size_limit,
            Some(Quantity("20Gi".into()))
        );
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        assert!(mounts.iter().any(|m| m.name == "state" && m.mount_path == STATE_DIR));
        assert_ne!(
            job_hash(&memory),
            job_hash(&disk),
            "changing the backend restarts the workers"
        );
    }

    #[test]
    fn suspended_scales_to_zero_and_overrides_merge() {
        let mut j = job(2);
        j.spec.state = JobState::Suspended;
        assert_eq!(replicas(&j), 0);
        j.spec.pod_template = Some(serde_json::json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
        let mut d = deployed(0);
        d.restore_from = Some("s3://chk/weir/clicks/savepoints/sp-7".into());
        d.state_epoch = 2;
        let sts = stateful_set(&j, &d).unwrap();
        let env = env_of(&sts);
        assert_eq!(env["WEIR_WORKERS"], "2", "the template keeps the spec's parallelism");
        assert_eq!(env["WEIR_FROM_SAVEPOINT"], "s3://chk/weir/clicks/savepoints/sp-7");
        assert_eq!(env["WEIR_CHECKPOINT_STORAGE"], "s3://chk/weir/epoch-2");
        let spec = sts.spec;
        assert_eq!(spec.replicas, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()["disk"], "ssd");
        assert_eq!(
            pod.containers[0].name, "worker",
            "the generated container survives the merge"
        );
    }

    #[test]
    fn a_job_not_from_the_api_server_is_an_error() {
        let mut j = job(1);
        j.metadata.uid = None;
        assert!(stateful_set(&j, &deployed(1)).unwrap_err().to_string().contains("uid"));
    }

    #[test]
    fn the_job_hash_changes_with_the_job_but_not_with_parallelism() {
        let a = job(2);
        let mut b = job(4);
        assert_eq!(job_hash(&a), job_hash(&b));
        b.spec.job.pipeline = Some("name: clicks\nparallelism: 3\n".into());
        assert_ne!(job_hash(&a), job_hash(&b));
        assert_eq!(job_hash(&a).len(), 16);
    }
}
