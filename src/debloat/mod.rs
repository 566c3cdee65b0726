//! Debloat profiles.
