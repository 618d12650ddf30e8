//! SQL fragments the PostgreSQL modules share. Herald passes instants to and from PostgreSQL as
//! unix microseconds (`int8`), the representation SQLite stores, so both backends bind the same
//! values.

/// A timestamp parameter given as unix microseconds: `ts!("3")` is `$3` as a `timestamptz`.
macro_rules! ts {
    ($n:literal) => {
        concat!(
            "(timestamptz 'epoch' + $",
            $n,
            "::int8 * interval '1 microsecond')"
        )
    };
}
pub(crate) use ts;

/// A timestamp column as unix microseconds: `us!("sent_at")`.
macro_rules! us {
    ($c:literal) => {
        concat!("(extract(epoch from ", $c, ") * 1000000)::int8")
    };
}
pub(crate) use us;
