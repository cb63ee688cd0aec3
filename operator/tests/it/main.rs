//! The operator's integration tests, one binary: the CRD against kube's CEL interpreter
//! (`crd`), a real control plane with kwok nodes (`control_plane`, `chart`), and real pods on a
//! kubelet with containerd (`real_pods`, and `chaos`: the kind demo's manifests, then a job
//! through 20 rounds of random failures and changes; `autoscale_pods`: a job following a
//! Kafka load that steps up and down). `scripts/test` starts what each needs.

mod common;

mod autoscale_pods;
mod chaos;
mod chart;
mod control_plane;
mod crd;
mod real_pods;
