//! The integration suite: one binary, every test against the real
//! `spyglass` binary (or an example app built on the library), including
//! under real systemd booted in namespaces (`sdbox`, `systemd`).

mod support;

mod cgi;
mod control;
mod core;
mod docs;
mod faults;
mod hosting;
mod http;
pub mod idle;
mod lookout;
mod package;
mod proxy;
mod sdbox;
mod sites;
mod static_files;
mod systemd;
mod templates;
mod under_systemd;
mod units;
