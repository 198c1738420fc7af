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

pub mod accounts;
pub mod chat;
pub mod events;
pub mod health;
pub mod housekeeping;
pub mod idempotency;
pub mod jobs;
pub mod mail;
pub mod posts;
pub mod rate_limit;
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
            updates_bump_the_version_and_honour_the_expected_one,
            credentials_are_found_by_email_ignoring_case,
            password_hashes_can_be_replaced,
            a_rehash_replaces_only_the_hash_it_was_made_from,
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

/// Expands to one test per [`PostRepository`](domain::posts::PostRepository) contract
/// case. `$make` returns `(posts, users, guard)` over the same storage.
#[macro_export]
macro_rules! post_repository_contract {
    ($make:path) => {
        $crate::paired_cases!($make, posts;
            create_then_get_round_trips,
            a_post_by_an_unknown_author_is_refused,
            updates_check_the_version_in_the_same_step,
            concurrent_updates_expecting_one_version_succeed_once,
            delete_removes_and_unknown_is_not_found,
            listing_is_per_author_newest_first_with_keyset_pages,
            deleting_the_author_deletes_their_posts,
        );
    };
}

/// Expands to one test per [`JobQueue`](domain::jobs::JobQueue) contract case. `$make`
/// returns `(queue, users, guard)` over the same storage.
#[macro_export]
macro_rules! job_queue_contract {
    ($make:path) => {
        $crate::paired_cases!($make, jobs;
            a_job_is_claimed_once_and_completed,
            many_concurrent_claimers_take_each_job_exactly_once,
            an_expired_lease_lets_another_worker_claim_the_job,
            a_lease_that_expires_on_the_last_attempt_kills_the_job,
            failures_wait_for_their_retry_then_die_with_the_last_error,
            dead_jobs_can_be_retried_and_others_cannot,
            a_released_job_is_queued_again_without_using_an_attempt,
            a_users_jobs_are_stored_with_the_user_and_only_then,
            a_deleted_users_jobs_go_with_them,
            a_waiting_worker_wakes_when_a_job_is_enqueued,
        );
    };
}

/// Expands to one test per [`IdempotencyStore`](domain::idempotency::IdempotencyStore)
/// contract case.
#[macro_export]
macro_rules! idempotency_store_contract {
    ($make:path) => {
        $crate::contract_cases!($make, idempotency;
            a_completed_key_replays_for_the_same_request,
            a_different_request_with_the_key_is_a_mismatch,
            an_unfinished_claim_is_in_progress_until_released,
            keys_are_scoped_per_caller,
            expired_and_abandoned_keys_can_be_claimed_again,
            concurrent_claims_of_one_key_give_one_new,
        );
    };
}

/// Expands to one test per [`RefreshTokenStore`](domain::auth::RefreshTokenStore)
/// contract case. `$make` returns `(store, user_repository, guard)`: tokens belong to
/// stored users.
#[macro_export]
macro_rules! refresh_token_store_contract {
    ($make:path) => {
        $crate::paired_cases!($make, refresh;
            a_valid_token_rotates_once,
            reusing_a_spent_token_revokes_its_whole_family,
            unknown_and_expired_tokens_are_invalid,
            a_family_past_its_absolute_lifetime_is_invalid,
            the_owner_of_a_token_is_read_without_spending_it,
            ending_a_session_by_its_token_is_idempotent,
            ending_every_session_of_a_user_spares_others_and_the_one_kept,
            a_login_that_raced_a_password_change_starts_no_session,
            a_session_records_where_it_was_seen,
            concurrent_rotations_of_one_token_succeed_at_most_once,
        );
    };
}

/// Expands to one test per [`AccountStore`](domain::accounts::AccountStore) contract
/// case; `$make` returns an [`accounts::AccountStores`] over one storage.
#[macro_export]
macro_rules! account_store_contract {
    ($make:path) => {
        $crate::contract_cases!($make, accounts;
            a_verification_token_works_once_and_only_for_its_address,
            expired_and_unknown_tokens_do_nothing,
            a_newer_token_ends_the_older_ones_of_its_kind,
            a_password_change_ends_sessions_spends_its_token_and_stores_its_notice,
            an_email_change_applies_the_pending_address_once,
            an_address_taken_meanwhile_fails_the_confirmation,
            a_reset_link_works_only_for_the_address_the_account_has_now,
            a_new_password_cancels_a_pending_address_change,
        );
    };
}

#[macro_export]
macro_rules! housekeeping_contract {
    ($make:path) => {
        $crate::contract_cases!($make, housekeeping;
            a_lease_has_one_holder_until_released,
            an_expired_lease_is_taken_over,
            a_sweep_without_the_lease_deletes_nothing,
            sweeps_delete_finished_jobs_past_their_retention_in_batches,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! paired_cases {
    ($make:path, $module:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (subject, users, _guard) = $make().await;
                $crate::$module::$case(&subject, &users).await;
            }
        )*
    };
}

/// Expands to one test per [`ChatRepository`](domain::chat::ChatRepository) case;
/// `$make` returns `(chat, users, guard)` over the same storage.
#[macro_export]
macro_rules! chat_repository_contract {
    ($make:path) => {
        $crate::paired_cases!($make, chat;
            messages_round_trip_and_unknown_is_not_found,
            recent_is_the_latest_n_of_the_room_oldest_first,
            since_returns_what_was_missed_up_to_a_bound,
            resuming_follows_storage_order_not_id_order,
            pages_are_newest_first_per_room,
        );
    };
}

/// Expands to one test per [`RateLimitStore`](domain::rate_limit::RateLimitStore) case;
/// `$make` returns an empty store.
#[macro_export]
macro_rules! rate_limit_store_contract {
    ($make:path) => {
        $crate::contract_cases!($make, rate_limit;
            a_budget_allows_its_limit_then_refuses_spending_nothing,
            keys_and_budgets_are_independent,
            peek_spends_nothing_record_spends_past_the_limit_and_refund_gives_back,
            concurrent_takes_never_exceed_the_budget,
        );
    };
}

/// Expands to one test per [`EventBus`](domain::events::EventBus) case.
#[macro_export]
macro_rules! event_bus_contract {
    ($make:path) => {
        $crate::contract_cases!($make, events;
            every_subscriber_gets_every_event_in_order,
            an_oversized_event_is_refused,
            an_event_at_the_size_limit_is_accepted,
            a_topic_followed_twice_stays_until_unfollowed_twice,
            account_changes_are_delivered_without_following,
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

#[cfg(test)]
mod tests {
    /// Each module's `pub async fn` cases and the list its macro expands are written
    /// twice; a case missing from the list would never run anywhere.
    #[test]
    fn every_case_is_in_its_macro_and_every_listed_case_exists() {
        let macros = include_str!("lib.rs");
        let modules = [
            ("accounts", include_str!("accounts.rs")),
            ("chat", include_str!("chat.rs")),
            ("events", include_str!("events.rs")),
            ("health", include_str!("health.rs")),
            ("housekeeping", include_str!("housekeeping.rs")),
            ("idempotency", include_str!("idempotency.rs")),
            ("jobs", include_str!("jobs.rs")),
            ("mail", include_str!("mail.rs")),
            ("posts", include_str!("posts.rs")),
            ("rate_limit", include_str!("rate_limit.rs")),
            ("refresh", include_str!("refresh.rs")),
            ("users", include_str!("users.rs")),
        ];
        for (module, source) in modules {
            let mut cases: Vec<&str> = source
                .lines()
                .filter_map(|l| l.strip_prefix("pub async fn "))
                .filter_map(|l| l.split(['(', '<']).next())
                .collect();
            cases.sort_unstable();
            let mut listed: Vec<&str> = macros
                .split(&format!("_cases!($make, {module};"))
                .nth(1)
                .and_then(|rest| rest.split(");").next())
                .unwrap_or_else(|| panic!("no macro lists the cases of `{module}`"))
                .split(',')
                .map(str::trim)
                .filter(|case| !case.is_empty())
                .collect();
            listed.sort_unstable();
            assert_eq!(
                cases, listed,
                "the cases of `{module}` and its macro's list"
            );
        }
    }
}
