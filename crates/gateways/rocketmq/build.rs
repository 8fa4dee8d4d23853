//! Generates the gRPC server for `apache.rocketmq.v2.MessagingService` from the vendored
//! `.proto` files (vendor/rocketmq-apis). `protox` compiles them in Rust, so the build needs
//! neither `protoc` nor the network.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../vendor/rocketmq-apis");
    let service = format!("{root}/apache/rocketmq/v2/service.proto");
    let definition = format!("{root}/apache/rocketmq/v2/definition.proto");
    println!("cargo:rerun-if-changed={service}");
    println!("cargo:rerun-if-changed={definition}");
    let descriptors = protox::compile([&service], [root])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        // Bodies stay `Bytes` from the request to the log and back, never copied into a `Vec`.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
