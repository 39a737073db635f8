//! Finding the `refundry` binary the tools drive.

use std::path::{Path, PathBuf};

/// The `refundry` binary of the same build as this test: the test runs
/// from `<target>/debug/deps/`, so it is `<target>/debug/refundry` (whatever
/// CARGO_TARGET_DIR is). `REFUNDRY_BIN` overrides it. Nothing is built
/// here: `cargo test --workspace` builds it (the `refundry` package has
/// integration tests); with `-p refundry-bench` alone run
/// `cargo build -p refundry` first.
pub fn refundry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REFUNDRY_BIN") {
        return path.into();
    }
    let name = format!("refundry{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("the test knows where it runs from");
    let beside_deps = exe.parent().and_then(Path::parent).map(|dir| dir.join(&name));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug").join(&name);
    let candidates: Vec<PathBuf> = beside_deps.into_iter().chain([workspace]).collect();
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "no refundry binary at {candidates:?}: build it first (`cargo build -p refundry` with the same \
             CARGO_TARGET_DIR), or set REFUNDRY_BIN"
        )
    })
}
