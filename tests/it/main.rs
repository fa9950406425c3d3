//! The integration suite: one binary, every test against the real
//! `spyglass` binary (or an example app built on the library).

mod support;

mod core;
mod static_files;
