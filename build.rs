//! Compiles proto/ (the Terraform plugin protocol 6.10 and go-plugin's services) with protox: no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/tfplugin6.proto", "proto/plugin.proto", "proto/health.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // The registry namespace is one Makefile variable (NAMESPACE), passed in the environment.
    println!("cargo:rerun-if-env-changed=DIFY_PROVIDER_NAMESPACE");
    let namespace = std::env::var("DIFY_PROVIDER_NAMESPACE").unwrap_or_else(|_| "difyops".to_string());
    println!("cargo:rustc-env=DIFY_PROVIDER_NAMESPACE={namespace}");
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
