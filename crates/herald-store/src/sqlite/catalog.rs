//! The catalog on SQLite: the code is the same on both backends and written once, in
//! `../shared/catalog.rs`. What is SQLite's own: a schedule is stored as JSON text.

/// The schedule column of a campaign row, parsed (or why it does not parse).
fn read_schedule(r: &DbRow, id: Uuid) -> Result<std::result::Result<serde_json::Value, String>> {
    let schedule: String = col(r, "campaign", Some(id), "schedule")?;
    Ok(serde_json::from_str(&schedule).map_err(|e| e.to_string()))
}

/// The schedule column of `spec`.
fn schedule_param(spec: &CampaignSpec) -> Result<String> {
    Ok(common::schedule_json(&spec.schedule)?.to_string())
}

include!("../shared/catalog.rs");
