//! The SQL fragments this backend's files share, as macros (for `concat!`).

macro_rules! inbox_cols {
    () => {
        "id, name, agent_number, created_at AS created_at, \
         updated_at AS updated_at"
    };
}

macro_rules! sender_cols {
    () => {
        "id, channel, address, inbox_id, provider, \
         created_at AS created_at, \
         updated_at AS updated_at"
    };
}

macro_rules! campaign_cols {
    () => {
        "id, name, description, channel, sender_id, language, answer_id, schedule, quiet_hours, \
         created_at AS created_at, \
         updated_at AS updated_at"
    };
}

macro_rules! answers_with_variants {
    ($answers:literal) => {
        concat!(
            "SELECT a.id, a.name, \
             a.created_at AS created_at, \
             a.updated_at AS updated_at, \
             v.language, v.subject, v.body \
             FROM (",
            $answers,
            ") a LEFT JOIN answer_variants v ON v.answer_id = a.id \
             ORDER BY a.id, v.position"
        )
    };
}

/// The claim order, which `recipients_due` is keyed by: unset `due_at` first.
macro_rules! due_key {
    () => {
        "coalesce(due_at, '-infinity'::timestamptz)"
    };
}

macro_rules! recipient_cols {
    () => {
        concat!(
            "id, line, address, timezone, variables, state, skip_reason, \
             attempts::int8 AS attempts, ",
            "due_at",
            " AS due_at, provider_message_id, error_code, error_message, ",
            "sent_at",
            " AS sent_at, ",
            "updated_at",
            " AS updated_at"
        )
    };
}

/// The update of [`record_sent`].
///
/// The state check is written so that it names `v` (`v.id` is never NULL, so it changes
/// nothing): it is then a join filter rather than a filter of the scan of `recipients`. As a scan
/// filter it is estimated from statistics gathered while nothing was `sending` (an autoanalyze
/// mid-outreach) at one row, and the plan became a sequential scan of every recipient nested
/// around the batch's ids: measured on 20,000 recipients, 95 ms a batch of 1,000 instead of 8.
/// Joined, the batch's ids drive primary-key lookups whatever the statistics say.
macro_rules! sent_update {
    () => {
        concat!(
            "UPDATE recipients r SET state = 'sent', provider_message_id = v.provider_message_id, \
             error_code = NULL, error_message = NULL, lease_until = NULL, sent_at = ",
            "$1",
            ", updated_at = ",
            "$1",
            " FROM unnest($2::int8[], $3::text[]) AS v (id, provider_message_id) \
             WHERE r.id = v.id AND (r.state IN ('sending', 'unknown') OR v.id IS NULL)"
        )
    };
}

macro_rules! suppression_cols {
    () => {
        concat!(
            "id, address, sender_id, reason, ",
            "created_at",
            " AS created_at"
        )
    };
}

macro_rules! customer_cols {
    () => {
        concat!("id, address, ", "created_at", " AS created_at")
    };
}
