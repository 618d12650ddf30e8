//! The SQL fragments this backend's files share, as macros (for `concat!`).

macro_rules! inbox_cols {
    () => {
        "id, name, agent_number, created_at, updated_at"
    };
}

macro_rules! sender_cols {
    () => {
        "id, channel, address, inbox_id, provider, created_at, updated_at"
    };
}

macro_rules! campaign_cols {
    () => {
        "id, name, description, channel, sender_id, language, answer_id, schedule, quiet_hours, \
         created_at, updated_at"
    };
}

macro_rules! answers_with_variants {
    ($answers:literal) => {
        concat!(
            "SELECT a.id, a.name, a.created_at, a.updated_at, v.language, v.subject, v.body \
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

macro_rules! suppression_cols {
    () => {
        "id, address, sender_id, reason, created_at"
    };
}

/// The proactive messages the sender sent the customer (`$1`, `$2`), for an attribution.
macro_rules! attribution_select {
    () => {
        "SELECT campaign_id, outreach_id, recipient_id FROM messages \
         WHERE customer_id = $1 AND sender_id = $2 AND direction = 'outbound' \
           AND author = 'outreach'"
    };
}
