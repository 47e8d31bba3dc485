//! The self-contained integration tests, one test binary (one link,
//! `tests/common` compiled once): each module is what used to be a
//! `tests/NAME.rs`. Run one with `cargo test --test it NAME::`.
//! The environment tests (arm64, Debian VM and package, pretix, the
//! browser, mDNS, USB, tus interop, schemathesis) stay their own binaries.

#[path = "../common/mod.rs"]
mod common;

mod backup;
mod capture_scale;
mod checkin_api;
mod cli;
mod clock;
mod config_file;
mod crash;
mod devices_sim;
mod escrow;
mod event_close;
mod events_golden;
mod lan_https;
mod lan_safety;
mod logs;
mod readme;
mod rehearse;
mod sales_api;
mod satellite;
mod standby;
mod sync_s3;
mod systemd_notify;
mod tidy;
mod uploads_tus;
