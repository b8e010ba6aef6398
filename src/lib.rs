//! certsmith: a Kubernetes operator that keeps X.509 certificates alive.
//!
//! The crate is a pure decision core (`api`, `pki`, `time`, `controller::certificate::decide`)
//! with thin I/O around it: `issuer` (one room per signing backend), `controller` (the
//! reconcilers), `secret`, `health`. Imports point down only: `controller` uses `issuer`,
//! `issuer` never uses `controller`.

#![deny(clippy::unwrap_used, clippy::expect_used)]
// kube-derive's repeated `printcolumn(...)` keys trip this lint; they are not duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod cli;
pub mod controller;
pub mod crds;
pub mod crl_http;
pub mod health;
pub mod issuer;
pub mod leader;
pub mod metrics;
pub mod pki;
pub mod policy;
pub mod reason;
pub mod secret;
pub mod telemetry;
pub mod time;
pub mod yaml;
