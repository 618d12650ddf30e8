//! Every connection of a file database's pool runs with Herald's page cache
//! ([`herald_store::sqlite::CACHE_KIB`]), not SQLite's default of 2,000 KiB: the bound that
//! keeps 10,000 chat streams within their memory target (docs/benchmarks.md, "Chat").

use herald_store::SqliteStore;
use herald_store::sqlite::{CACHE_KIB, CONNECTIONS};

#[tokio::test]
async fn every_pooled_connection_has_the_small_page_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    // Hold every connection at once, so each one the pool opens is asked.
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        held.push(store.pool().acquire().await.expect("a connection"));
    }
    for conn in &mut held {
        let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut **conn)
            .await
            .expect("cache_size");
        // Negative: KiB, as SQLite reads it.
        assert_eq!(size, -i64::from(CACHE_KIB));
        assert_ne!(size, -2000, "SQLite's default");
    }
    assert_eq!(held.len(), CONNECTIONS as usize);
}
