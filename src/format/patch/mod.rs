//! Patch codecs used by incremental update_engine payloads.
//!
//! Each submodule is a self-contained codec over byte slices: it parses a
//! patch, checks every header field and every control value against the
//! sizes it is given, and writes the result into memory bounded by a limit
//! the caller chooses. None of them panics or allocates more than that limit
//! (plus small fixed buffers) on hostile input.
//!
//! - [`bsdiff`]: classic `BSDIFF40` and AOSP `BSDF2` patches (BSDIFF,
//!   SOURCE_BSDIFF and BROTLI_BSDIFF operations).
//! - [`puffin`]: `PUF1` patches (PUFFDIFF operations): deflate ↔ puff
//!   conversion and the inner bsdiff or Zucchini patch.
//! - [`lz4diff`]: `LZ4DIFF` patches (LZ4DIFF_BSDIFF and LZ4DIFF_PUFFDIFF
//!   operations): decompress LZ4 clusters, patch, compress them again.
//! - [`zucchini`]: Zucchini ensemble patches (ZUCCHINI operations).

pub mod bsdiff;
pub mod lz4diff;
pub mod puffin;
pub mod zucchini;
