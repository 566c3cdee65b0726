//! Writing fastboot packages.
