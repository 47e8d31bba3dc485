//! venuebox: the box at the venue.
//!
//! One binary on a Raspberry Pi-class computer that runs a creator-led
//! micro-event with or without internet. This crate is its library; the
//! binary (`src/main.rs`) only parses the command line and calls in here.
//!
//! Modules, from the inside out:
//!
//! - [`domain`] — tickets, signed codes, the manifest, roles and the
//!   check-in decision: pure types and functions, no I/O.
//! - [`store`] — the SQLite file: migrations, the single writer with group
//!   commit, the read pool, the outbox, the box identity. Only it speaks SQL.
//! - [`api`] — the HTTP API (axum): routes, the access policy (the OpenAPI
//!   document's roles), paired devices and PIN sign-in, the accept loop
//!   with its timeouts and caps, one error type. Only it knows HTTP and
//!   JSON shapes.
//! - [`media`] — capture files: uploads in progress, the content-addressed
//!   store, probing, thumbnails.
//! - [`devices`] — USB scanners and printers, GPIO lights: pure protocol
//!   code, nusb/rppal adapters, fakes, the scan pipeline and print worker.
//! - [`sync`] — cloud sync: event log, captures, payouts and manifests to and from S3.
//! - [`pretix`] — the pretix link: import, the door's pretix rules, the
//!   send-back lane.
//! - [`replication`] — the standby: the mutually authenticated link
//!   between the two boxes of a pair, shipping the store's changesets,
//!   snapshots, joining, and the report of what a fenced primary took alone.
//! - [`server`] — wires store and API together and runs them until shutdown.
//! - [`rehearsal`] — "ready for doors?": the real flows on a scratch copy,
//!   above the server (the API runs it through `api::Rehearse`).
//! - [`organiser`] — the organiser's tools that run on a laptop or the box:
//!   keys, signing manifests, minting tickets, the demo event.
//! - [`net`] — the venue LAN: the box's certificate authority and server
//!   certificate (re-issued when its addresses change), mDNS.
//! - [`metrics`] — counters and histograms for `/metrics`.
//! - [`clock`] — the box's clock, settable in tests.
//! - [`systemd`] — sd_notify: ready, status, the watchdog, stopping.
//! - [`secrets`] — randomness (ids, tokens, keys) and secret files written
//!   whole, readable by the box only.
//! - [`throttle`] — a token bucket (capture uploads, tus while the door is busy).
//!
//! Which module may import which is a table in `tests/it/tidy.rs` (`LAYERS`),
//! checked on the source and itself acyclic.
//!
//! See ARCHITECTURE.md for the invariants that hold across them.

pub mod api;
pub mod clock;
pub mod devices;
pub mod domain;
pub mod media;
pub mod metrics;
pub mod net;
pub mod organiser;
pub mod parts;
pub mod pretix;
pub mod rehearsal;
pub mod replication;
pub mod secrets;
pub mod server;
pub mod store;
pub mod sync;
pub mod systemd;
pub mod throttle;
