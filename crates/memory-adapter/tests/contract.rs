//! The shared port contracts, run against the in-memory adapter.

use memory_adapter::MemoryUserRepository;

async fn user_repository() -> (MemoryUserRepository, ()) {
    (MemoryUserRepository::new(), ())
}

contract_tests::user_repository_contract!(user_repository);
