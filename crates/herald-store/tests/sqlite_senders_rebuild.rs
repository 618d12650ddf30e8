//! Migration 0019 rebuilds `senders` on SQLite (a CHECK cannot be changed in place) with foreign
//! keys off. With them on, dropping the old table would have deleted, by cascade, every
//! conversation, message and rate bucket that names a sender: this runs the migration over a
//! database that has such rows and finds them all, still tied to their sender.

use herald_core::Page;
use herald_store::{Catalog, Conversations, Schema, SqliteStore};
use sqlx::migrate::Migrator;
use std::borrow::Cow;
use uuid::Uuid;

async fn count(store: &SqliteStore, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
}

#[tokio::test]
async fn rebuilding_senders_keeps_every_row_that_names_a_sender() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    let mut before = Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .expect("migrations");
    before.migrations = Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 19)
            .cloned()
            .collect(),
    );
    before.run(store.pool()).await.expect("migrate to 0017");

    let (inbox, sender, customer, conversation, message) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    for (sql, ids) in [
        (
            "INSERT INTO inboxes (id, name, created_at, updated_at) VALUES ($1, 'Support', 0, 0)",
            vec![inbox],
        ),
        (
            "INSERT INTO senders (id, channel, address, inbox_id, provider, created_at, updated_at) \
             VALUES ($1, 'sms', '+14155550100', $2, 'file', 0, 0)",
            vec![sender, inbox],
        ),
        (
            "INSERT INTO customers (id, address, created_at) VALUES ($1, '+14155550199', 0)",
            vec![customer],
        ),
        (
            "INSERT INTO conversations (id, inbox_id, sender_id, customer_id, channel, created_at, \
             last_message_at) VALUES ($1, $2, $3, $4, 'sms', 0, 0)",
            vec![conversation, inbox, sender, customer],
        ),
        (
            "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, \
             from_address, to_address, body, status, created_at) VALUES ($1, $2, $3, 'inbound', \
             'customer', 'sms', '+14155550199', '+14155550100', 'hello', 'received', 0)",
            vec![message, customer, sender],
        ),
        (
            "INSERT INTO sender_buckets (sender_id, tokens, at) VALUES ($1, 1.0, 0)",
            vec![sender],
        ),
    ] {
        let mut q = sqlx::query(sql);
        for id in ids {
            q = q.bind(id);
        }
        q.execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    store.migrate().await.expect("migrate to the end");

    for table in ["senders", "conversations", "messages", "sender_buckets"] {
        assert_eq!(count(&store, table).await, 1, "{table} after the rebuild");
    }
    let fk_on: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert_eq!(fk_on, 1, "foreign keys are on again after the migration");
    assert_eq!(store.get_sender(sender).await.expect("sender").id, sender);
    let listed = store
        .list_conversations(
            inbox,
            Page {
                limit: 10,
                after: None,
            },
        )
        .await
        .expect("conversations");
    assert_eq!(listed.items.len(), 1);
    let timeline = store
        .conversation_messages(conversation, None, 10)
        .await
        .expect("timeline");
    assert_eq!(timeline.len(), 1);

    // The other tables' foreign keys name the new table: deleting the sender still takes its
    // conversation, messages and bucket with it.
    sqlx::query("DELETE FROM senders WHERE id = $1")
        .bind(sender)
        .execute(store.pool())
        .await
        .expect("delete sender");
    for table in ["conversations", "messages", "sender_buckets"] {
        assert_eq!(
            count(&store, table).await,
            0,
            "{table} after its sender went"
        );
    }
}
