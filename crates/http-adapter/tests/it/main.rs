//! Handler tests: the real routes and middleware through actix's test utilities, with
//! mocked use cases, so every status and problem shape is pinned without a database.

mod errors;
mod health;
mod middleware;
mod openapi;
mod support;
mod users;
