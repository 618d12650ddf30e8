//! The SQL fragments this backend's files share, as macros (for `concat!`).

include!("../shared/sql.rs");

/// Row locks: none. A SQLite write transaction (`BEGIN IMMEDIATE`) holds the whole database.
macro_rules! for_update {
    () => {
        ""
    };
}

macro_rules! for_share {
    () => {
        ""
    };
}

macro_rules! for_key_share {
    () => {
        ""
    };
}

/// The new `updated_at` of an update at `$at`: `$at`, or one microsecond past the old value if
/// the clock has not moved past it, so that every update is seen as a change.
macro_rules! later {
    ($at:literal) => {
        concat!("max(", $at, ", updated_at + 1)")
    };
}

/// The claim order, which `recipients_due` is keyed by: unset `due_at` first.
macro_rules! due_key {
    () => {
        "ifnull(due_at, -9223372036854775808)"
    };
}

macro_rules! recipient_cols {
    () => {
        "id, line, address, timezone, variables, state, skip_reason, attempts, due_at, \
         provider_message_id, error_code, error_message, sent_at, updated_at"
    };
}

/// The due recipients of outreach `$1` at `$2`, at most `$3`, in claim order: a walk of
/// `recipients_due` that stops after `$3` entries.
macro_rules! due_ids {
    () => {
        concat!(
            "SELECT id FROM recipients \
             WHERE outreach_id = $1 AND state = 'pending' AND ",
            due_key!(),
            " <= $2 \
               AND EXISTS (SELECT 1 FROM outreaches WHERE id = $1 AND status = 'in_progress') \
             ORDER BY ",
            due_key!(),
            ", id LIMIT $3"
        )
    };
}

/// `FOR UPDATE OF` a table: none (see `for_update!`).
macro_rules! for_update_of {
    ($table:literal) => {
        ""
    };
}

/// The larger of two values.
macro_rules! greatest {
    ($a:literal, $b:literal) => {
        concat!("max(", $a, ", ", $b, ")")
    };
}

/// Equality under which NULL equals NULL.
macro_rules! is_same {
    () => {
        "IS"
    };
}

/// Membership in a list bound as `text_list` (a JSON array).
macro_rules! in_list {
    ($param:literal) => {
        concat!("IN (SELECT value FROM json_each(", $param, "))")
    };
}

/// The start of the UTC hour of a timestamp column (microseconds since the epoch).
macro_rules! hour_of {
    ($col:literal) => {
        concat!("(", $col, " / 3600000000) * 3600000000")
    };
}

/// Whole seconds from timestamp column `$from` to `$to`.
macro_rules! seconds_between {
    ($from:literal, $to:literal) => {
        concat!("((", $to, " - ", $from, ") / 1000000)")
    };
}
