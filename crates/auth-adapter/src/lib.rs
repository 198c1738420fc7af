//! Adapters for the domain's auth ports: argon2id password hashing and HS256 JWT access
//! tokens. Handlers and use cases never see either library.

mod jwt;
mod password;

pub use jwt::{JwtSettings, JwtTokens, MIN_SECRET_BYTES, SecretError};
pub use password::{Argon2Hasher, Argon2Settings, HashCapacity};
