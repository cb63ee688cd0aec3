//! The Weir Kubernetes operator: the `StreamJob` custom resource (this module), and, next, the
//! reconciler that turns it into a ConfigMap, a headless Service and a StatefulSet of
//! `weir-worker` pods. The operator never links the engine: it only needs the job spec types.

pub mod crd;
