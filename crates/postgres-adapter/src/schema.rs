// Every table as diesel sees them; kept by hand next to `migrations/` (or regenerated
// with `diesel print-schema`). A test compares the tables here with those the migrations
// create. Tables only raw SQL touches today are here too, so the next query can be typed.

diesel::table! {
    users (id) {
        id -> Uuid,
        name -> Text,
        email -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        role -> Text,
        password_hash -> Nullable<Text>,
        version -> Int8,
        email_verified_at -> Nullable<Timestamptz>,
        pending_email -> Nullable<Text>,
    }
}

diesel::table! {
    posts (id) {
        id -> Uuid,
        author_id -> Uuid,
        title -> Text,
        body -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int8,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        family_id -> Uuid,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        family_expires_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        fingerprint -> Bytea,
        response_status -> Nullable<Int2>,
        response_location -> Nullable<Text>,
        response_body -> Nullable<Bytea>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        last_error -> Nullable<Text>,
        run_at -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        user_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    chat_messages (id) {
        id -> Uuid,
        room -> Text,
        author_id -> Uuid,
        author_name -> Text,
        text -> Text,
        sent_at -> Timestamptz,
        seq -> Int8,
    }
}

diesel::table! {
    rate_limits (budget, key) {
        budget -> Text,
        key -> Text,
        full_at -> Timestamptz,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Uuid,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        login_address -> Nullable<Text>,
        login_user_agent -> Nullable<Text>,
        last_address -> Nullable<Text>,
        last_user_agent -> Nullable<Text>,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        email -> Text,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(chat_messages -> users (author_id));
diesel::joinable!(posts -> users (author_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_tokens,
    posts,
    idempotency_keys,
    jobs,
    chat_messages,
    rate_limits,
    leases,
    sessions,
    account_tokens
);
