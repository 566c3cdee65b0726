//! Hostile packages: every input is generated here from the real formats
//! (zip, tar, payload, LP, EROFS, APK), then bent where a writer refuses to
//! write something bad. Each case runs the commands a user would run on it
//! under an address-space limit and a time limit, inside a fresh folder with
//! a sentinel parent, and checks the exit code, that the message names what
//! is wrong, that nothing was written outside the output folder and that no
//! output or temporary file was left behind.

#[path = "../common/mod.rs"]
mod common;

mod apk;
mod archives;
mod erofs;
mod harness;
mod lp;
mod payload;
mod zipraw;
