//! The operator's integration tests, one binary: the CRD against kube's CEL interpreter
//! (`crd`), a real control plane with kwok nodes (`control_plane`, `chart`), and real pods on a
//! kubelet with containerd (`real_pods`). `scripts/test` starts what each needs.

mod common;

mod chart;
mod control_plane;
mod crd;
mod real_pods;
