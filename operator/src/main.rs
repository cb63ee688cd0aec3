//! `weir-operator`: reconciles `StreamJob` resources (see issue #10). Not built yet.
fn main() {
    eprintln!("weir-operator: the Kubernetes operator is not implemented yet");
    std::process::exit(2);
}
