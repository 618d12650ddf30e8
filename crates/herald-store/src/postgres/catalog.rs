//! The catalog on PostgreSQL: the code is the same on both backends and written once, in
//! `../shared/catalog.rs`. What is PostgreSQL's own: a schedule is stored as `jsonb`.

/// The schedule column of a campaign row.
fn read_schedule(r: &DbRow, id: Uuid) -> Result<std::result::Result<serde_json::Value, String>> {
    let schedule: serde_json::Value = col(r, "campaign", Some(id), "schedule")?;
    Ok(Ok(schedule))
}

/// The schedule column of `spec`.
fn schedule_param(spec: &CampaignSpec) -> Result<serde_json::Value> {
    common::schedule_json(&spec.schedule)
}

include!("../shared/catalog.rs");
