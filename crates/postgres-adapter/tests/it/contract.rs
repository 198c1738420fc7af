use postgres_adapter::{
    Database, PgIdempotencyStore, PgPostRepository, PgProbe, PgRefreshTokenStore, PgUserRepository,
    PoolConfig, PoolSettings,
};
use test_support::TestDb;

async fn user_repository() -> (PgUserRepository, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (PgUserRepository::new(pool), db)
}

pub(crate) fn small_pool(url: &str) -> PoolSettings {
    PoolSettings {
        pool: PoolConfig {
            max_size: 4,
            min_idle: 1,
            ..PoolConfig::default()
        },
        ..PoolSettings::new(url)
    }
}

async fn probe() -> (PgProbe, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (PgProbe::new(pool), db)
}

async fn refresh_tokens() -> (PgRefreshTokenStore, PgUserRepository, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (
        PgRefreshTokenStore::new(pool.clone()),
        PgUserRepository::new(pool),
        db,
    )
}

async fn accounts() -> (contract_tests::accounts::AccountStores, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (
        contract_tests::accounts::AccountStores {
            accounts: std::sync::Arc::new(postgres_adapter::PgAccountStore::new(pool.clone())),
            refresh_tokens: std::sync::Arc::new(PgRefreshTokenStore::new(pool.clone())),
            queue: std::sync::Arc::new(postgres_adapter::PgJobQueue::polling(pool.clone())),
            users: std::sync::Arc::new(PgUserRepository::new(pool)),
        },
        db,
    )
}

mod accounts {
    contract_tests::account_store_contract!(super::accounts);
}

async fn posts() -> (PgPostRepository, PgUserRepository, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (
        PgPostRepository::new(pool.clone()),
        PgUserRepository::new(pool),
        db,
    )
}

async fn idempotency() -> (PgIdempotencyStore, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (PgIdempotencyStore::new(pool), db)
}

async fn jobs() -> (postgres_adapter::PgJobQueue, PgUserRepository, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (
        postgres_adapter::PgJobQueue::new(pool.clone()),
        PgUserRepository::new(pool),
        db,
    )
}

mod jobs {
    contract_tests::job_queue_contract!(super::jobs);
}

async fn chat() -> (postgres_adapter::PgChatRepository, PgUserRepository, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (
        postgres_adapter::PgChatRepository::new(pool.clone()),
        PgUserRepository::new(pool),
        db,
    )
}

async fn bus() -> (postgres_adapter::PgEventBus, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (postgres_adapter::PgEventBus::new(pool), db)
}

async fn rate_limits() -> (postgres_adapter::PgRateLimitStore, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (postgres_adapter::PgRateLimitStore::new(pool), db)
}

mod chat {
    contract_tests::chat_repository_contract!(super::chat);
}

mod rate_limit {
    contract_tests::rate_limit_store_contract!(super::rate_limits);
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

async fn housekept() -> (contract_tests::housekeeping::Housekept, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (
        contract_tests::housekeeping::Housekept {
            leases: std::sync::Arc::new(postgres_adapter::PgLeaseStore::new(pool.clone())),
            housekeeping: std::sync::Arc::new(postgres_adapter::PgHousekeeping::new(pool.clone())),
            queue: std::sync::Arc::new(postgres_adapter::PgJobQueue::polling(pool)),
        },
        db,
    )
}

mod housekeeping {
    contract_tests::housekeeping_contract!(super::housekept);
}
