//! Phone numbers as stored, read back for `herald doctor phones`: the recipients (with the value
//! their file wrote and the region it was read in), the customers and the opt-out list. The SQL
//! is the same in both dialects, so it is written once, for each pool type.

use crate::Result;
use uuid::Uuid;

/// One recipient stored under a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientPhone {
    pub id: i64,
    pub outreach_id: Uuid,
    pub line: u64,
    /// The E.164 number it is stored (and messaged) under.
    pub address: String,
    /// What the file wrote, when that differs (`None` before this was kept, or for E.164).
    pub raw_address: Option<String>,
    /// The default region the outreach's numbers were read in.
    pub default_region: Option<String>,
}

/// Where else Herald keeps phone numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneTable {
    Customers,
    Suppressions,
}

impl PhoneTable {
    fn select(self) -> &'static str {
        match self {
            PhoneTable::Customers => {
                "SELECT id, address FROM customers WHERE address LIKE '+%' AND id > $1 \
                 ORDER BY id LIMIT $2"
            }
            PhoneTable::Suppressions => {
                "SELECT id, address FROM suppressions WHERE address LIKE '+%' AND id > $1 \
                 ORDER BY id LIMIT $2"
            }
        }
    }
}

const RECIPIENT_PHONES: &str = "SELECT r.id, r.outreach_id, r.line, r.address, r.raw_address, \
     o.default_region FROM recipients r JOIN outreaches o ON o.id = r.outreach_id \
     WHERE r.address LIKE '+%' AND r.id > $1 ORDER BY r.id LIMIT $2";

type RecipientRow = (i64, Uuid, i64, String, Option<String>, Option<String>);

fn recipient(row: RecipientRow) -> RecipientPhone {
    let (id, outreach_id, line, address, raw_address, default_region) = row;
    RecipientPhone {
        id,
        outreach_id,
        line: u64::try_from(line).unwrap_or_default(),
        address,
        raw_address,
        default_region,
    }
}

/// The same two queries on both backends (the SQL is the same text).
macro_rules! phone_audit {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::PhoneAudit for $store {
            async fn recipient_phones(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<RecipientPhone>> {
                let rows: Vec<RecipientRow> = sqlx::query_as(RECIPIENT_PHONES)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                Ok(rows.into_iter().map(recipient).collect())
            }

            async fn stored_phones(
                &self,
                table: PhoneTable,
                after: Uuid,
                limit: u32,
            ) -> Result<Vec<(Uuid, String)>> {
                Ok(sqlx::query_as(table.select())
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?)
            }
        }
    };
}

phone_audit!(crate::SqliteStore);
phone_audit!(crate::PgStore);
