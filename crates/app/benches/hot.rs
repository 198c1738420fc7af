//! Micro-benchmarks of the hot paths every request takes: validating input, verifying
//! a token, encoding a user. `cargo bench -p app --bench hot` (part of `just bench`).

use std::hint::black_box;
use std::time::Duration;

use auth_adapter::{JwtSettings, JwtTokens};
use criterion::{Criterion, criterion_group, criterion_main};
use domain::auth::{AccessTokens, Principal};
use domain::users::{Email, Role, User, UserName};
use ports::users::CreateUser;
use prost::Message;

fn user() -> User {
    User::new(
        UserName::parse("Ada Lovelace").expect("valid"),
        Email::parse("ada@example.com").expect("valid"),
    )
}

fn hot(c: &mut Criterion) {
    c.bench_function("validate/email", |b| {
        b.iter(|| Email::parse(black_box("Ada.Lovelace+list@example.co.uk")))
    });
    c.bench_function("validate/create_user", |b| {
        b.iter(|| {
            CreateUser::parse(
                black_box("Ada Lovelace"),
                black_box("ada@example.com"),
                black_box("correct horse battery staple"),
            )
        })
    });

    let tokens = JwtTokens::new(JwtSettings {
        secret: b"benchmark-secret-0123456789abcdef-0123456789".to_vec(),
        previous_secrets: Vec::new(),
        issuer: "users-service".into(),
        audience: "users-service".into(),
        ttl: Duration::from_secs(900),
        leeway: Duration::from_secs(30),
    })
    .expect("a long enough secret");
    let principal = Principal {
        user_id: user().id,
        role: Role::User,
    };
    let session = domain::auth::SessionId::generate();
    let token = tokens.issue(&principal, session).expect("issue").token;
    c.bench_function("jwt/verify", |b| {
        b.iter(|| tokens.verify(black_box(&token)))
    });
    c.bench_function("jwt/issue", |b| {
        b.iter(|| tokens.issue(black_box(&principal), session))
    });

    c.bench_function("encode/user_json", |b| {
        b.iter_batched(
            user,
            |u| serde_json::to_vec(&http_adapter::UserResponse::from(u)),
            criterion::BatchSize::SmallInput,
        )
    });
    let pb = grpc_adapter::pb::users::User {
        id: user().id.to_string(),
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        role: 1,
        created_at: None,
        updated_at: None,
        version: 1,
    };
    c.bench_function("encode/user_protobuf", |b| {
        b.iter(|| black_box(&pb).encode_to_vec())
    });
}

criterion_group!(benches, hot);
criterion_main!(benches);
