//! spyglass: a socket-activated, pre-forking, systemd-native HTTP/1.1 server.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod config;
pub mod handler;
pub mod listeners;
pub mod logging;
pub mod notify;
pub mod request;
pub mod scoreboard;
pub mod signals;
#[allow(unsafe_code)]
mod sys;
