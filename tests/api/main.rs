#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is how a test fails

//! The integration tests: one binary, every test against the real application over HTTP, on SQLite
//! and on PostgreSQL (see `helpers::both_backends!`).

mod helpers;
mod paths;
mod raw_http;

mod hostile;
mod leaks;

mod access_codes;
mod accessibility;
mod api_keys;
mod browser;
mod cluster;
mod durability;
mod exposure;
mod faults;
mod gateways;
mod login;
mod management;
mod matrix;
mod platform;
mod rate_limits;
mod retirement;
mod revocation;
mod setup;
mod trust_boundary;
mod verification;
mod webhooks;
