//! spyglass's single integration-test binary (`cargo test --test it`).

mod sdbox;
mod systemd;
