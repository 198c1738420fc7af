//! The Postgres adapter against a real Postgres: the shared port contracts, plus what only
//! a real database can show (error mapping, pool bounds, migrations).

#![allow(clippy::unwrap_used)] // tests unwrap: a failure there is the test failing

mod contract;
mod migrations;
mod pool;
mod schema;
mod sessions;
mod tls;
