//! `herald doctor phones` on SQLite and PostgreSQL: it reports recipients, customers and opt-outs
//! stored under a number Herald's reading would not give, and changes nothing.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, AnswerSpec, AnswerVariant, CampaignSpec, Channel, E164, InboxSpec, Language, Provider,
    Schedule, SenderSpec, Template,
};
use herald_store::testing::TestStore;
use herald_store::{ImportSummary, ImportedRecipient, InboundMessage, NewOutreach, Store};
use std::collections::BTreeMap;

#[tokio::test]
async fn doctor_reports_misread_numbers_on_sqlite() {
    doctor_reports_misread_numbers(herald_store::testing::sqlite().await).await;
}

#[tokio::test]
async fn doctor_reports_misread_numbers_on_postgres() {
    if let Some(db) = herald_store::testing::postgres().await {
        doctor_reports_misread_numbers(db).await;
    }
}

/// An SMS campaign sending from a US number; its id.
async fn campaign(store: &dyn Store) -> (uuid::Uuid, uuid::Uuid) {
    let inbox = store
        .create_inbox(&InboxSpec {
            name: "Care".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let sender = store
        .create_sender(&SenderSpec {
            channel: Channel::Sms,
            address: Address::Phone(E164::parse("+14155550100", None).unwrap()),
            inbox_id: inbox.id,
            provider: Provider::File,
        })
        .await
        .unwrap();
    let answer = store
        .create_answer(&AnswerSpec {
            name: "Late".into(),
            variants: vec![AnswerVariant {
                language: Language::parse("en").unwrap(),
                subject: None,
                body: Template::parse("Your order is late.").unwrap(),
                voice: None,
            }],
        })
        .await
        .unwrap();
    let mut days = BTreeMap::new();
    days.insert("mon".to_string(), vec!["09:00-17:00".to_string()]);
    let schedule = Schedule::parse(&ScheduleInput {
        timezone: "UTC".into(),
        days,
        closed_dates: Vec::new(),
    })
    .unwrap();
    let campaign = store
        .create_campaign(&CampaignSpec {
            name: "Late orders".into(),
            description: String::new(),
            channel: Channel::Sms,
            sender_id: Some(sender.id),
            language: Language::parse("en").unwrap(),
            answer_id: answer.id,
            schedule,
            quiet_hours: true,
            frequency_cap: None,
            voice_settings: Default::default(),
        })
        .await
        .unwrap();
    (campaign.id, sender.id)
}

async fn doctor_reports_misread_numbers(db: TestStore) {
    let store = &*db.store;
    let (campaign, sender) = campaign(store).await;
    let mut import = store
        .begin_outreach(&NewOutreach {
            campaign_id: campaign,
            file_name: "list.csv".into(),
            start_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            end_at: None,
            default_region: Some("US".into()),
        })
        .await
        .unwrap();
    let row = |line: u64, address: &str, raw: Option<&str>| ImportedRecipient {
        line,
        address: address.into(),
        raw_address: raw.map(Into::into),
        timezone: None,
        variables_json: "{}".into(),
        suppressed: false,
    };
    import
        .recipients(&[
            // What the old reading stored for a Chinese mobile uploaded with region US.
            row(2, "+863912345678", Some("+86 139 1234 5678")),
            // Right.
            row(3, "+4915123456789", Some("+49 1512 3456789")),
            row(4, "+14155552671", Some("(415) 555-2671")),
            // Imported before file values were kept: the German mobile lost its 1.
            row(5, "+495123456789", None),
            // The same shape, but imported since: the file wrote these very digits (`+49 512…`),
            // so it is not a "possibly".
            row(6, "+495123456788", Some("")),
        ])
        .await
        .unwrap();
    let outreach = import.outreach_id();
    import
        .commit(&ImportSummary {
            rows: 5,
            accepted: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    // The stranger's number is also on the opt-out list and has written to the sender.
    store
        .add_suppression("+863912345678", None, "asked")
        .await
        .unwrap();
    let now = jiff::Timestamp::now();
    store
        .receive_message(&InboundMessage {
            sender_id: sender,
            from: "+863912345678".into(),
            to: "+14155550100".into(),
            subject: None,
            body: "who is this?".into(),
            provider_message_id: Some("SM1".into()),
            received_at: now,
            attribute_since: now,
            in_reply_to: None,
            unverified_sender: false,
        })
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = common::herald(dir.path(), &db.url)
        .args(["doctor", "phones"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let of = |kind: &str, stored: &str| {
        lines
            .iter()
            .find(|l| l[0] == kind && l[2] == stored)
            .unwrap_or_else(|| panic!("no {kind} {stored} in:\n{stdout}"))
            .clone()
    };
    let chinese = of("recipient", "+863912345678");
    assert!(chinese[1].starts_with(&outreach.to_string()), "{chinese:?}");
    assert!(
        chinese[3].contains("reads as +8613912345678"),
        "{chinese:?}"
    );
    let german = of("recipient", "+495123456789");
    assert!(
        german[3].contains("possibly") && german[3].contains("+4915123456789"),
        "{german:?}"
    );
    assert!(of("suppression", "+863912345678")[3].contains("wrongly stored"));
    assert!(of("customer", "+863912345678")[3].contains("wrongly stored"));
    assert!(stderr.contains("4 stored phone number(s)"), "{stderr}");

    // It changed nothing.
    let stored = store.list_recipients(outreach, None, 0, 10).await.unwrap();
    assert_eq!(stored[0].address, "+863912345678");
    assert!(
        store
            .find_customer("+863912345678")
            .await
            .unwrap()
            .is_some()
    );
}
