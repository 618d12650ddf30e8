// The SQL fragments that are the same in both dialects, as macros (for `concat!`). Included by
// `sqlite/sql.rs` and `postgres/sql.rs`, beside the fragments that differ.

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
         frequency_cap_messages, frequency_cap_days, voice, spoken_language, press_one_prompt, \
         agent_unavailable, created_at, updated_at"
    };
}

macro_rules! answers_with_variants {
    ($answers:literal) => {
        concat!(
            "SELECT a.id, a.name, a.created_at, a.updated_at, v.language, v.subject, v.body, \
             v.voice \
             FROM (",
            $answers,
            ") a LEFT JOIN answer_variants v ON v.answer_id = a.id \
             ORDER BY a.id, v.position"
        )
    };
}

macro_rules! outreach_cols {
    () => {
        "id, campaign_id, status, file_name, encoding, default_region, start_at, end_at, \
         rows_total, accepted, invalid, duplicates, suppressed, created_at, updated_at, finished_at"
    };
}

/// The columns of `MessageRow` (`crate::conversation::message_row`).
macro_rules! message_cols {
    () => {
        "id, customer_id, sender_id, direction, author, channel, from_address, to_address, \
         subject, body, campaign_id, outreach_id, recipient_id, provider_message_id, status, \
         error_code, unverified_sender, created_at, agent_id"
    };
}

/// The columns of `ConversationRow`, of `conversations c JOIN customers cu`.
macro_rules! conversation_cols {
    () => {
        "c.id, c.inbox_id, c.sender_id, c.customer_id, cu.address AS customer_address, \
         cu.name AS customer_name, c.status, c.assignee_id, c.last_inbound_at, \
         c.channel, c.campaign_id, c.outreach_id, c.created_at, c.last_message_at"
    };
}

macro_rules! suppression_cols {
    () => {
        "id, address, sender_id, reason, created_at, added_by"
    };
}

macro_rules! customer_cols {
    () => {
        "id, address, name, created_at"
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
