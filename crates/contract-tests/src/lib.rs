//! The contract of each driven port, written once as executable cases and run against
//! every implementation, so the in-memory default cannot drift from Postgres.
//!
//! An adapter's test crate runs a whole suite with one macro call, e.g.
//!
//! ```text
//! async fn repo() -> (MemoryUserRepository, ()) { (MemoryUserRepository::new(), ()) }
//! contract_tests::user_repository_contract!(repo);
//! ```
//!
//! The factory returns the implementation and a guard kept alive for the test (a
//! database, say). Each case becomes its own `#[tokio::test]` in the calling crate.

pub mod health;
pub mod mail;
pub mod refresh;
pub mod users;

/// Expands to one `#[tokio::test]` per [`UserRepository`](domain::users::UserRepository)
/// contract case, each with a repository from `$make`.
#[macro_export]
macro_rules! user_repository_contract {
    ($make:path) => {
        $crate::contract_cases!($make, users;
            create_then_get_round_trips,
            get_unknown_is_not_found,
            duplicate_email_ignoring_case_is_rejected_and_nothing_stored,
            update_replaces_only_given_fields,
            update_unknown_is_not_found,
            update_to_taken_email_is_duplicate_and_changes_nothing,
            update_own_email_to_other_case_is_allowed,
            credentials_are_found_by_email_ignoring_case,
            password_hashes_can_be_replaced,
            roles_are_stored_and_changed,
            deleted_users_are_gone,
            list_of_nothing_is_an_empty_last_page,
            list_is_newest_first_and_pages_without_gaps_or_repeats,
            list_breaks_timestamp_ties_by_id_descending,
        );
    };
}

/// Expands to one test per [`HealthProbe`](domain::health::HealthProbe) contract case;
/// `$make` returns a probe whose dependency is up.
#[macro_export]
macro_rules! health_probe_contract {
    ($make:path) => {
        $crate::contract_cases!($make, health;
            a_reachable_dependency_checks_ok,
            the_check_name_is_stable_and_non_empty,
        );
    };
}

/// Expands to one test per [`Mailer`](domain::mail::Mailer) contract case; `$make`
/// returns a mailer whose mail system accepts messages.
#[macro_export]
macro_rules! mailer_contract {
    ($make:path) => {
        $crate::contract_cases!($make, mail;
            a_well_formed_message_is_accepted,
            text_only_and_non_ascii_subjects_are_accepted,
        );
    };
}

/// Expands to one test per [`RefreshTokenStore`](domain::auth::RefreshTokenStore)
/// contract case. `$make` returns `(store, user_repository, guard)`: tokens belong to
/// stored users.
#[macro_export]
macro_rules! refresh_token_store_contract {
    ($make:path) => {
        $crate::refresh_cases!($make;
            a_valid_token_rotates_once,
            reusing_a_spent_token_revokes_its_whole_family,
            unknown_and_expired_tokens_are_invalid,
            a_revoked_token_is_invalid_and_revoking_is_idempotent,
            revoking_a_user_kills_all_their_tokens_only,
            concurrent_rotations_of_one_token_succeed_at_most_once,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! refresh_cases {
    ($make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, users, _guard) = $make().await;
                $crate::refresh::$case(&store, &users).await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! contract_cases {
    ($make:path, $module:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (subject, _guard) = $make().await;
                $crate::$module::$case(&subject).await;
            }
        )*
    };
}
