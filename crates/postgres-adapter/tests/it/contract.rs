use postgres_adapter::{Database, PgUserRepository, PoolSettings};
use test_support::TestDb;

async fn user_repository() -> (PgUserRepository, TestDb) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    (PgUserRepository::new(pool), db)
}

pub(crate) fn small_pool(url: &str) -> PoolSettings {
    PoolSettings {
        max_size: 4,
        min_idle: 1,
        ..PoolSettings::new(url)
    }
}

contract_tests::user_repository_contract!(user_repository);
