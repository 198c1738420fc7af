//! Handler tests: the real routes and middleware through actix's test utilities, with
//! mocked use cases, so every status and problem shape is pinned without a database.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure there is the test failing

mod auth;
mod errors;
mod health;
mod middleware;
mod openapi;
mod posts;
mod support;
mod users;
