//! romkit: read, verify, unpack and write Android firmware packages.
//!
//! The command-line tool is a thin shell over this library. Modules are
//! layered; each imports only from its own layer or those below
//! (`tests/layers.rs` enforces it, `ARCHITECTURE.md` explains it):
//!
//! ```text
//! util < format < error, output < fs < rom < apk, apps < debloat
//!      < manifest < package < build, fixture < cli
//! ```
//!
//! Data flows one way: [`rom`] opens a package and yields partitions,
//! [`format`](mod@format) decodes and encodes the on-disk formats, [`fs`] turns a
//! partition into a file tree, [`apk`], [`apps`] and [`debloat`] read and
//! edit the trees, the package writers lay out the output, [`manifest`]
//! records it, and [`output`] writes every file atomically.

#![warn(missing_docs)]

pub mod apk;
pub mod apps;
pub mod build;
pub mod cli;
pub mod debloat;
pub mod error;
pub mod fixture;
pub mod format;
pub mod fs;
pub mod manifest;
pub mod output;
pub mod package;
pub mod rom;
pub mod util;

pub use error::{Error, Result};
