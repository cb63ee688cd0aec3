//! Prints the `StreamJob` CRD: `cargo run -p weir-operator --bin crdgen > crds/streamjob.yaml`.
fn main() {
    print!("{}", weir_operator::crd::crd_yaml());
}
