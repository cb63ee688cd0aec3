//! The Weir Kubernetes operator: the `StreamJob` custom resource ([`crd`]), the desired objects
//! it becomes ([`resources`]: a ConfigMap, a headless Service and a StatefulSet of
//! `weir-worker` pods), the reconciler that applies them and drives rescales, upgrades and
//! savepoints through the job's coordinator ([`reconcile`] carries out what [`decide`] and
//! [`retention`] (the savepoint history) decide; [`coordinator`] is the client of the job master), and the operator's
//! own HTTP endpoint ([`http`]); [`leader`] elects the one replica that reconciles. The operator never links the engine: it only needs the job
//! spec types and the coordinator's gRPC contract.

#![deny(missing_docs)]

pub mod conditions;
pub mod coordinator;
pub mod crd;
pub mod decide;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod resources;
pub mod retention;

/// The namespaces to watch from `--namespaces` / `WEIR_WATCH_NAMESPACES`: blank entries are
/// dropped (the chart's default passes an empty string), and none left means every namespace
/// (`None`).
pub fn watch_scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let named: Vec<Option<String>> = namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| Some(n.to_string()))
        .collect();
    if named.is_empty() { vec![None] } else { named }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blank_namespaces_mean_every_namespace() {
        let s = |v: &[&str]| super::watch_scopes(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), [None]);
        assert_eq!(s(&[""]), [None], "the chart's default, an empty string");
        assert_eq!(s(&["a", " ", "b "]), [Some("a".into()), Some("b".into())]);
    }
}
