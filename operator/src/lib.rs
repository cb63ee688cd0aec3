//! The Weir Kubernetes operator: the `StreamJob` custom resource ([`crd`]), the desired objects
//! it becomes ([`resources`]: a ConfigMap, a headless Service and a StatefulSet of
//! `weir-worker` pods), and, next, the reconciler that applies them. The operator never links
//! the engine: it only needs the job spec types.

pub mod crd;
pub mod resources;
