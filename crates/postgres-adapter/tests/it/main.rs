//! The Postgres adapter against a real Postgres: the shared port contracts, plus what only
//! a real database can show (error mapping, pool bounds, migrations).

mod contract;
mod pool;
