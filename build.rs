//! Generates the gRPC code for `proto/bureau/v1/*.proto` with protox (pure Rust), so a machine
//! with only cargo builds the crate: no system `protoc`.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "proto/bureau/v1/common.proto",
        "proto/bureau/v1/whatif.proto",
        "proto/bureau/v1/notice.proto",
        "proto/bureau/v1/records.proto",
        "proto/bureau/v1/federation.proto",
        "proto/bureau/v1/scoring.proto",
        "proto/bureau/v1/audit.proto",
        "proto/bureau/v1/subjects.proto",
        "proto/bureau/v1/admin.proto",
        "proto/bureau/v1/disputes.proto",
        "proto/bureau/v1/locator.proto",
        "proto/bureau/v1/attest.proto",
        "proto/bureau/v1/decisions.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("bureau_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().type_attribute(".", "#[allow(clippy::all)]").compile_fds(fds)?;
    Ok(())
}
