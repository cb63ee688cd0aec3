//! The Weir Kubernetes operator: the `StreamJob` custom resource ([`crd`]), the desired objects
//! it becomes ([`resources`]: a ConfigMap, a headless Service and a StatefulSet of
//! `weir-worker` pods), the reconciler that applies them and drives rescales, upgrades and
//! savepoints through the job's coordinator ([`reconcile`] carries out what [`decide`]
//! decides; [`coordinator`] is the client of the job master), and the operator's
//! own HTTP endpoint ([`http`]). The operator never links the engine: it only needs the job
//! spec types and the coordinator's gRPC contract.

#![deny(missing_docs)]

pub mod conditions;
pub mod coordinator;
pub mod crd;
pub mod decide;
pub mod http;
pub mod reconcile;
pub mod resources;
