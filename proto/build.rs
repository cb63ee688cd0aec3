//! Compiles `proto/weir.proto` with protox (a protobuf compiler in Rust, so building Weir needs
//! no `protoc` on the machine) and generates tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/weir.proto");
    let descriptors = protox::compile(["proto/weir.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
