// The tables as diesel sees them; kept by hand next to `migrations/` (or regenerated with
// `diesel print-schema`).

diesel::table! {
    users (id) {
        id -> Uuid,
        name -> Text,
        email -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}
