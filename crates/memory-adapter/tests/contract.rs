//! The shared port contracts, run against the in-memory adapter.

use memory_adapter::{
    MemoryIdempotencyStore, MemoryMailer, MemoryPostRepository, MemoryProbe,
    MemoryRefreshTokenStore, MemoryUserRepository,
};

async fn user_repository() -> (MemoryUserRepository, ()) {
    (MemoryUserRepository::new(), ())
}

async fn probe() -> (MemoryProbe, ()) {
    (MemoryProbe, ())
}

async fn mailer() -> (MemoryMailer, ()) {
    (MemoryMailer::new(), ())
}

async fn refresh_tokens() -> (MemoryRefreshTokenStore, MemoryUserRepository, ()) {
    let users = MemoryUserRepository::new();
    (users.refresh_tokens(), users, ())
}

async fn accounts() -> (contract_tests::accounts::AccountStores, ()) {
    let users = MemoryUserRepository::new();
    (
        contract_tests::accounts::AccountStores {
            accounts: std::sync::Arc::new(users.accounts()),
            refresh_tokens: std::sync::Arc::new(users.refresh_tokens()),
            queue: std::sync::Arc::new(users.jobs()),
            users: std::sync::Arc::new(users),
        },
        (),
    )
}

mod accounts {
    contract_tests::account_store_contract!(super::accounts);
}

async fn posts() -> (MemoryPostRepository, MemoryUserRepository, ()) {
    let users = MemoryUserRepository::new();
    (users.posts(), users, ())
}

async fn idempotency() -> (MemoryIdempotencyStore, ()) {
    (MemoryIdempotencyStore::new(), ())
}

async fn jobs() -> (memory_adapter::MemoryJobQueue, MemoryUserRepository, ()) {
    let users = MemoryUserRepository::new();
    (users.jobs(), users, ())
}

mod jobs {
    contract_tests::job_queue_contract!(super::jobs);
}

async fn chat() -> (
    memory_adapter::MemoryChatRepository,
    MemoryUserRepository,
    (),
) {
    (
        memory_adapter::MemoryChatRepository::new(),
        MemoryUserRepository::new(),
        (),
    )
}

async fn bus() -> (memory_adapter::MemoryEventBus, ()) {
    (memory_adapter::MemoryEventBus::default(), ())
}

mod chat {
    contract_tests::chat_repository_contract!(super::chat);
}

mod events {
    contract_tests::event_bus_contract!(super::bus);
}

mod posts {
    contract_tests::post_repository_contract!(super::posts);
}

mod idempotency {
    contract_tests::idempotency_store_contract!(super::idempotency);
}

mod refresh {
    contract_tests::refresh_token_store_contract!(super::refresh_tokens);
}

mod users {
    contract_tests::user_repository_contract!(super::user_repository);
}

mod health {
    contract_tests::health_probe_contract!(super::probe);
}

mod mail {
    contract_tests::mailer_contract!(super::mailer);

    #[tokio::test]
    async fn the_memory_mailer_records_what_it_accepts() {
        use domain::mail::Mailer;
        let mailer = memory_adapter::MemoryMailer::new();
        let message = domain::mail::EmailMessage {
            to: domain::users::Email::parse("ada@example.com").unwrap(),
            subject: "Welcome, Ada".into(),
            text: "Hi".into(),
            html: None,
            message_id: None,
        };
        mailer.send(&message).await.unwrap();
        assert_eq!(mailer.sent(), vec![message]);
    }
}

async fn housekept() -> (contract_tests::housekeeping::Housekept, ()) {
    let users = MemoryUserRepository::new();
    let leases = memory_adapter::MemoryLeaseStore::default();
    (
        contract_tests::housekeeping::Housekept {
            housekeeping: std::sync::Arc::new(users.housekeeping(leases.clone())),
            leases: std::sync::Arc::new(leases),
            queue: std::sync::Arc::new(users.jobs()),
        },
        (),
    )
}

mod housekeeping {
    contract_tests::housekeeping_contract!(super::housekept);
}
