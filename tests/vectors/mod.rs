//! Helpers shared by the vector tests: locating `shared/incremental-vectors`.

use std::path::PathBuf;

/// Folder of the third-party vectors: `$INCREMENTAL_VECTORS` if set, else
/// `CARGO_MANIFEST_DIR/../shared/incremental-vectors`.
pub fn vectors_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("INCREMENTAL_VECTORS") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/incremental-vectors")
}

/// Reads one vector file (panics with the path if missing).
pub fn read(rel: &str) -> Vec<u8> {
    let p = vectors_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
