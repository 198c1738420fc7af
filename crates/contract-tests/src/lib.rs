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
