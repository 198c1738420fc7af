// The tables as diesel sees them; kept by hand next to `migrations/` (or regenerated with
// `diesel print-schema`).

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

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(posts -> users (author_id));
diesel::allow_tables_to_appear_in_same_query!(users, refresh_tokens, posts);
