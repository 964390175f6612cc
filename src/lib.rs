//! bms-keys: the BMS console's Permissions → API Keys, and the verification path of the BMS APIs.
//!
//! Layers, from the URL to the row: `web` (routes and thin handlers) → domain modules (one per concept:
//! `accounts`, `users`, `sessions`, `access`, `audit`, `api_keys`, `access_codes`, …) → `db` and
//! `schema`. Every change on a member's behalf goes through `revocation::commit` (via the console's
//! `SignedIn::change_in`), so that what it revoked reaches every instance's cache; `ids` and
//! `text_enum` keep ids and stored enums well-formed from where they enter.

pub mod access;
pub mod access_codes;
pub mod accounts;
pub mod ads;
pub mod api_caller;
pub mod api_keys;
pub mod audit;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod drive_files;
pub mod error;
pub mod exposure;
pub mod hashing;
pub mod idempotency;
pub mod ids;
pub mod keystore;
pub mod limits;
pub mod metrics;
pub mod onboarding;
pub mod policies;
pub mod revocation;
pub mod schema;
pub mod secret_scanning;
pub mod secrets;
pub mod sessions;
pub mod startup;
pub mod telemetry;
pub mod text_enum;
pub mod throttle;
pub mod trusted_proxies;
pub mod usage;
pub mod users;
pub mod verify;
pub mod web;
pub mod webhooks;
