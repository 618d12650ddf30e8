//! `herald doctor phones`: finds phone numbers stored by an older, wrong reading.
//!
//! Before Herald read numbers as libphonenumber does, a number written with `+` in a file
//! uploaded with a default region could lose a digit (`+86 139 1234 5678` with region US was
//! stored as `+863912345678`): the texts went to someone else. This command reports — and never
//! rewrites — every recipient, customer and opt-out whose stored number the current reading
//! would not give:
//! * a recipient whose file value (kept since migration 0009 when it says more than the stored
//!   number's digits in another layout: empty otherwise) now reads as another number;
//! * a recipient imported before that, whose number would have come out of that bug: stored
//!   `+CC N` for an outreach read in region R, while `+CC` + R's national prefix + `N` is a valid
//!   number as written ("possibly": the file value itself was not kept);
//! * any stored number that is no longer a valid number, or reads as another;
//! * customers and opt-outs under a number a recipient was wrongly stored under.

use herald_core::E164;
use herald_store::{PhoneTable, RecipientPhone, Store};
use std::collections::HashMap;
use uuid::Uuid;

const PAGE: u32 = 5_000;

/// One thing to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `recipient`, `customer` or `suppression`.
    pub kind: &'static str,
    /// The row: `outreach/recipient` for recipients, the id otherwise.
    pub id: String,
    pub stored: String,
    pub what: String,
}

/// What is wrong with a recipient's stored number, if anything (the message says "possibly"
/// when the file value was not kept).
pub fn check_recipient(r: &RecipientPhone) -> Option<String> {
    let region = r.default_region.as_deref().filter(|s| !s.is_empty());
    if r.raw_address.as_deref() == Some("") {
        // The file wrote the stored number's own digits in another layout.
        return check_stored(&r.address).map(|problem| format!("line {}: {problem}", r.line));
    }
    if let Some(raw) = &r.raw_address {
        return match E164::parse(raw, region) {
            Ok(now) if now.as_str() == r.address => None,
            Ok(now) => Some(format!(
                "line {}: the file wrote `{raw}`, which reads as {now}, not {}",
                r.line, r.address
            )),
            Err(e) => Some(format!(
                "line {}: the file wrote `{raw}`, stored as {}, but it is not a number now: {e}",
                r.line, r.address
            )),
        };
    }
    if let Some(problem) = check_stored(&r.address) {
        return Some(format!("line {}: {problem}", r.line));
    }
    let region = region?;
    let prefix = herald_core::address::national_prefix(region)?;
    let stored = E164::parse(&r.address, None).ok()?;
    if stored.region().as_deref() == Some(region) {
        return None;
    }
    let code = herald_core::address::country_code(&r.address)?;
    let national = r.address.strip_prefix('+')?.strip_prefix(code.as_str())?;
    let candidate = format!("+{code}{prefix}{national}");
    match E164::parse(&candidate, None) {
        Ok(now) if now.as_str() == candidate => Some(format!(
            "line {}: possibly misread (imported before file values were kept, with region \
             {region}): if the file wrote {candidate}, it was stored as {} and is {now}",
            r.line, r.address
        )),
        _ => None,
    }
}

/// What is wrong with a stored E.164 number on its own, if anything.
pub fn check_stored(address: &str) -> Option<String> {
    match E164::parse(address, None) {
        Ok(now) if now.as_str() == address => None,
        Ok(now) => Some(format!("{address} now reads as {now}")),
        Err(e) => Some(format!("{address} is not a valid number now: {e}")),
    }
}

/// Walks the whole store; prints nothing, returns the findings.
pub async fn phones(store: &dyn Store) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    // Stored (wrong) number -> the recipient it came from.
    let mut misread: HashMap<String, String> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.recipient_phones(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for r in &page {
            if let Some(what) = check_recipient(r) {
                let id = format!("{}/{}", r.outreach_id, r.id);
                misread
                    .entry(r.address.clone())
                    .or_insert_with(|| id.clone());
                findings.push(Finding {
                    kind: "recipient",
                    id,
                    stored: r.address.clone(),
                    what,
                });
            }
        }
    }
    for (table, kind) in [
        (PhoneTable::Customers, "customer"),
        (PhoneTable::Suppressions, "suppression"),
    ] {
        let mut after = Uuid::nil();
        loop {
            let page = store.stored_phones(table, after, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (id, address) in &page {
                let what = match (check_stored(address), misread.get(address)) {
                    (Some(problem), _) => problem,
                    (None, Some(recipient)) => format!(
                        "{address} is the number recipient {recipient} was wrongly stored under"
                    ),
                    (None, None) => continue,
                };
                findings.push(Finding {
                    kind,
                    id: id.to_string(),
                    stored: address.clone(),
                    what,
                });
            }
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(address: &str, raw: Option<&str>, region: Option<&str>) -> RecipientPhone {
        RecipientPhone {
            id: 1,
            outreach_id: Uuid::nil(),
            line: 2,
            address: address.into(),
            raw_address: raw.map(Into::into),
            default_region: region.map(Into::into),
        }
    }

    #[test]
    fn a_kept_file_value_that_reads_as_another_number_is_reported() {
        let r = recipient("+863912345678", Some("+86 139 1234 5678"), Some("US"));
        let what = check_recipient(&r).unwrap();
        assert!(what.contains("+8613912345678"), "{what}");
        let ok = recipient("+8613912345678", Some("+86 139 1234 5678"), Some("US"));
        assert_eq!(check_recipient(&ok), None);
        let national = recipient("+14155552671", Some("(415) 555-2671"), Some("US"));
        assert_eq!(check_recipient(&national), None);
    }

    #[test]
    fn without_a_file_value_the_old_bug_is_recognised_as_possible() {
        let r = recipient("+4915123456789", None, Some("US"));
        assert_eq!(check_recipient(&r), None);
        let old = recipient("+863912345678", None, Some("US"));
        let what = check_recipient(&old).unwrap();
        assert!(
            what.contains("possibly") && what.contains("+8613912345678"),
            "{what}"
        );
        // A US number in a US outreach is not suspect.
        assert_eq!(
            check_recipient(&recipient("+14155552671", None, Some("US"))),
            None
        );
    }

    #[test]
    fn a_stored_number_that_is_no_longer_valid_is_reported() {
        assert!(check_stored("+1555").is_some());
        assert_eq!(check_stored("+4915123456789"), None);
    }
}
