//! End to end: the real server on a random port, a real HTTP client, and a fresh Postgres
//! database per test (or the in-memory default where a test says so).

#![allow(clippy::unwrap_used)] // tests unwrap: a failure there is the test failing

mod accounts;
mod auth;
mod binary;
mod faults;
mod grpc;
mod health;
mod hostile;
mod instances;
mod jobs;
mod lifecycle;
mod metrics;
mod posts;
mod security;
mod support;
mod under_load;
mod users;
mod ws;
