//! `src/schema.rs` describes every table and column the migrations create, so typed
//! queries can reach all of them and a migration cannot drift from diesel's view.

use std::collections::BTreeSet;

use test_support::TestDb;

/// `(table, column)` pairs of `src/schema.rs`'s `table!` blocks.
fn described() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/schema.rs");
    let mut pairs = BTreeSet::new();
    for block in source.split("diesel::table! {").skip(1) {
        let body = block.split("\n}\n").next().unwrap_or_default();
        let table = body
            .split_whitespace()
            .next()
            .expect("a table name")
            .to_owned();
        for line in body.lines() {
            if let Some((column, _)) = line.trim().split_once(" -> ") {
                pairs.insert((table.clone(), column.to_owned()));
            }
        }
    }
    pairs
}

#[tokio::test]
async fn schema_rs_describes_every_table_and_column_the_migrations_create() {
    let db = TestDb::new().await;
    let created: BTreeSet<(String, String)> = db
        .strings(
            "SELECT table_name || '.' || column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
        )
        .await
        .into_iter()
        .map(|pair| {
            let (table, column) = pair.split_once('.').unwrap();
            (table.to_owned(), column.to_owned())
        })
        .collect();
    assert!(!created.is_empty(), "the migrations created no table");
    assert_eq!(described(), created);
}
