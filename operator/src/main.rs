//! `weir-operator`: will reconcile `StreamJob` resources (issue #10); the CRD is in `crd.rs`
//! (`crdgen` prints it). The reconciler is not built yet, so this binary exits with status 2.
fn main() {
    eprintln!("weir-operator: the Kubernetes operator is not implemented yet");
    std::process::exit(2);
}
