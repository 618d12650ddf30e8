//! [`Ts`]: an instant as both backends keep it, encoded and decoded natively by each — SQLite
//! stores unix microseconds in an `INTEGER` column, PostgreSQL a `timestamptz` (whose binary
//! form is microseconds since 2000-01-01). So the SQL text of a statement is the same on both:
//! no conversion in the SQL, none at the call site.

use jiff::Timestamp;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, Postgres,
};
use sqlx::sqlite::{Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

/// An instant, to the microsecond (what both schemas keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub Timestamp);

/// PostgreSQL's `timestamptz`.
const TIMESTAMPTZ: Oid = Oid(1184);
/// PostgreSQL's `timestamptz[]`.
const TIMESTAMPTZ_ARRAY: Oid = Oid(1185);
/// Microseconds from the unix epoch to PostgreSQL's, 2000-01-01T00:00:00Z.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

impl Ts {
    /// The instant cut to whole microseconds.
    pub fn new(t: Timestamp) -> Self {
        Ts(Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t))
    }

    pub fn micros(self) -> i64 {
        self.0.as_microsecond()
    }

    /// The instant as PostgreSQL's binary `timestamptz`: microseconds since 2000-01-01 UTC.
    pub(crate) fn pg_micros(self) -> i64 {
        self.micros() - PG_EPOCH_US
    }

    fn from_micros(us: i64) -> Result<Self, BoxDynError> {
        Ok(Ts(Timestamp::from_microsecond(us)?))
    }
}

impl From<Timestamp> for Ts {
    fn from(t: Timestamp) -> Self {
        Ts::new(t)
    }
}

impl From<Ts> for Timestamp {
    fn from(t: Ts) -> Self {
        t.0
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(self.micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ts::from_micros(<i64 as Decode<Sqlite>>::decode(value)?)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ)
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid() == Some(TIMESTAMPTZ)
    }
}

impl PgHasArrayType for Ts {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_ARRAY)
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Postgres>>::encode(self.pg_micros(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let us = <i64 as Decode<Postgres>>::decode(value)?;
                Ts::from_micros(
                    us.checked_add(PG_EPOCH_US)
                        .ok_or("timestamp out of range")?,
                )
            }
            PgValueFormat::Text => {
                Err("timestamptz in text format: Herald reads it in binary".into())
            }
        }
    }
}
