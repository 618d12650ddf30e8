//! The dispatcher against a real store (SQLite and PostgreSQL) with an injected clock and a
//! recording transport: sending hours in each recipient's zone, DST, quiet hours, end time, stop,
//! rate limits, retries and crash recovery.
//!
//! Every test body is an `async fn(TestStore)`; `herald_store::on_both_backends!` runs it on
//! SQLite and on PostgreSQL (`HERALD_TEST_POSTGRES_URL`; required under `CI=true`).

use async_trait::async_trait;
use herald_channels::{Accepted, OutboundMessage, SendError, Transport, Transports};
use herald_core::outreach::{DeliveryState, OutreachStatus, SkipReason};
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, AnswerSpec, AnswerVariant, CampaignSpec, Channel, E164, EmailAddress, FrequencyCap,
    InboxSpec, Language, Provider, Schedule, SenderSpec, Template,
};
use herald_engine::{
    Clock, DispatchConfig, Dispatcher, ManualClock, OutreachUpload, RateConfig, import_outreach,
};
use herald_store::testing::TestStore;
use herald_store::{RecipientRecord, Store};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

herald_store::on_both_backends!(
    start_outside_the_window_waits_for_it,
    window_closing_mid_outreach_defers_the_rest_to_the_next_window,
    three_time_zones_each_get_their_own_nine_o_clock,
    dst_change_moves_the_window_in_utc,
    end_time_expires_what_is_left,
    stop_skips_the_rest_and_nothing_more_is_sent,
    quiet_hours_hold_sms_but_not_email_and_can_be_turned_off,
    rate_limit_is_shared_by_outreaches_of_a_sender,
    a_daily_cap_holds_the_rest_for_the_next_day,
    the_frequency_cap_skips_customers_contacted_often_enough,
    a_campaign_frequency_cap_alone_skips_and_is_counted,
    transient_failures_retry_with_backoff_then_fail,
    retry_failed_sends_the_failed_again,
    opted_out_and_invalid_numbers_fail_at_once,
    crash_mid_send_never_resends_sms_and_resends_email_with_the_same_key,
    render_errors_fail_the_recipient_with_the_reason,
    a_two_segment_sms_costs_two_seconds_of_a_long_code,
    status_reports_that_never_find_their_send_are_forgotten_after_a_week,
    a_claim_that_died_before_its_sends_began_is_sent_after_all,
    shutdown_begins_no_send_and_requeues_the_rest_of_the_batch,
    a_batch_is_sent_only_once_the_one_before_is_written,
    shutdown_gives_back_a_batch_claimed_ahead,
    a_batch_whose_opt_outs_cannot_be_read_is_given_back,
    shutdown_waits_no_longer_than_its_grace,
    a_live_slow_batch_keeps_its_lease,
    a_failed_write_of_results_is_tried_again_until_it_succeeds,
    metrics_count_what_the_dispatcher_did,
);

// ---------------------------------------------------------------- a recording transport

#[derive(Debug, Clone)]
struct Delivered {
    to: String,
    body: String,
    subject: Option<String>,
    key: String,
    at: Timestamp,
}

/// Accepts everything (unless told to fail a number) and writes down when it did.
struct Recorder {
    clock: Arc<ManualClock>,
    sent: Mutex<Vec<Delivered>>,
    /// Per address: errors to answer, in order, before accepting.
    failures: Mutex<HashMap<String, Vec<SendError>>>,
    /// How long each send takes, in real time (a slow provider).
    delay: Mutex<Duration>,
    /// Sends begun, finished or not.
    begun: std::sync::atomic::AtomicUsize,
    /// When set: the outreach whose recipients are counted as each send begins, into `seen`.
    watch: Mutex<Option<(Arc<dyn Store>, Uuid)>>,
    /// Per send, in order: the outreach's recipients `sent` and `sending` in the store as it
    /// began.
    seen: Mutex<Vec<(usize, usize)>>,
}

impl Recorder {
    fn new(clock: Arc<ManualClock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            sent: Mutex::new(Vec::new()),
            failures: Mutex::new(HashMap::new()),
            delay: Mutex::new(Duration::ZERO),
            begun: std::sync::atomic::AtomicUsize::new(0),
            watch: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn slow(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    fn begun(&self) -> usize {
        self.begun.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn fail(&self, address: &str, errors: Vec<SendError>) {
        self.failures
            .lock()
            .unwrap()
            .insert(address.to_string(), errors);
    }

    fn sent(&self) -> Vec<Delivered> {
        self.sent.lock().unwrap().clone()
    }

    fn sent_to(&self) -> Vec<String> {
        let mut to: Vec<String> = self.sent().into_iter().map(|d| d.to).collect();
        to.sort();
        to
    }
}

#[async_trait]
impl Transport for Recorder {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        self.begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let watch = self.watch.lock().unwrap().clone();
        if let Some((store, outreach)) = watch {
            let rows = store.list_recipients(outreach, None, 0, 10_000).await;
            let rows = rows.expect("the watched outreach's recipients");
            let count = |s: DeliveryState| rows.iter().filter(|r| r.state == s).count();
            let seen = (count(DeliveryState::Sent), count(DeliveryState::Sending));
            self.seen.lock().unwrap().push(seen);
        }
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let to = msg.to.as_str().to_string();
        if let Some(errors) = self.failures.lock().unwrap().get_mut(&to)
            && !errors.is_empty()
        {
            return Err(errors.remove(0));
        }
        self.sent.lock().unwrap().push(Delivered {
            to,
            body: msg.body.clone(),
            subject: msg.subject.clone(),
            key: msg.idempotency_key.clone(),
            at: self.clock.now(),
        });
        Ok(Accepted {
            provider_message_id: Some(format!("rec-{}", msg.idempotency_key)),
        })
    }
}

// ---------------------------------------------------------------- the world

fn at(s: &str) -> Timestamp {
    s.parse::<jiff::ZonedDateTime>()
        .map(|z| z.timestamp())
        .or_else(|_| s.parse::<Timestamp>())
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn schedule(tz: &str, days: &[(&str, &str)]) -> Schedule {
    let mut map = BTreeMap::new();
    for (day, window) in days {
        map.insert(day.to_string(), vec![window.to_string()]);
    }
    Schedule::parse(&ScheduleInput {
        timezone: tz.to_string(),
        days: map,
        closed_dates: Vec::new(),
    })
    .expect("schedule")
}

fn every_day(tz: &str, window: &str) -> Schedule {
    let days: Vec<(&str, &str)> = herald_core::schedule::WEEKDAYS
        .iter()
        .map(|d| (*d, window))
        .collect();
    schedule(tz, &days)
}

struct World {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    recorder: Arc<Recorder>,
    dispatcher: Arc<Dispatcher>,
    transports: Transports,
    config: DispatchConfig,
    _db: TestStore,
}

struct CampaignOpts {
    channel: Channel,
    schedule: Schedule,
    quiet_hours: bool,
    frequency_cap: Option<FrequencyCap>,
    sender: &'static str,
    body: &'static str,
}

impl Default for CampaignOpts {
    fn default() -> Self {
        Self {
            channel: Channel::Sms,
            schedule: every_day("UTC", "00:00-24:00"),
            quiet_hours: false,
            frequency_cap: None,
            sender: "+14155550100",
            body: "Hi {{ name }}, your order is late.",
        }
    }
}

impl World {
    async fn new(db: TestStore, now: &str, config: DispatchConfig) -> Self {
        let clock = Arc::new(ManualClock::new(at(now)));
        let recorder = Recorder::new(clock.clone());
        let mut transports = Transports::new();
        transports.insert(Provider::File, recorder.clone());
        let store = db.store.clone();
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            transports.clone(),
            clock.clone(),
            config.clone(),
        ));
        Self {
            store,
            clock,
            recorder,
            dispatcher,
            transports,
            config,
            _db: db,
        }
    }

    fn config() -> DispatchConfig {
        DispatchConfig {
            rates: RateConfig {
                sms: f64::INFINITY,
                voice: f64::INFINITY,
                email: f64::INFINITY,
                senders: BTreeMap::new(),
            },
            backoff_base_ms: 1_000,
            backoff_max_secs: 60,
            max_attempts: 3,
            lease_secs: 60,
            ..DispatchConfig::default()
        }
    }

    async fn campaign(&self, name: &str, o: CampaignOpts) -> Uuid {
        let inbox = self
            .store
            .create_inbox(&InboxSpec {
                name: format!("{name} inbox"),
                ..Default::default()
            })
            .await
            .expect("inbox")
            .id;
        let address = match o.channel {
            Channel::Email => Address::Email(EmailAddress::parse(o.sender).unwrap()),
            _ => Address::Phone(E164::parse(o.sender, None).unwrap()),
        };
        let sender = match self
            .store
            .create_sender(&SenderSpec {
                channel: o.channel,
                address,
                inbox_id: inbox,
                provider: Provider::File,
            })
            .await
        {
            Ok(s) => s.id,
            // A second campaign of the same sender.
            Err(_) => {
                let all = self
                    .store
                    .list_senders(herald_core::Page::default())
                    .await
                    .unwrap();
                all.items
                    .into_iter()
                    .find(|s| s.address.as_str() == o.sender)
                    .expect("sender")
                    .id
            }
        };
        let language = Language::parse("en-US").unwrap();
        let answer = self
            .store
            .create_answer(&AnswerSpec {
                name: format!("{name} answer"),
                variants: vec![AnswerVariant {
                    language: language.clone(),
                    subject: (o.channel == Channel::Email)
                        .then(|| Template::parse("About your order").unwrap()),
                    body: Template::parse(o.body).unwrap(),
                    voice: None,
                }],
            })
            .await
            .expect("answer")
            .id;
        self.store
            .create_campaign(&CampaignSpec {
                name: name.to_string(),
                description: String::new(),
                channel: o.channel,
                sender_id: Some(sender),
                language,
                answer_id: answer,
                schedule: o.schedule,
                quiet_hours: o.quiet_hours,
                frequency_cap: o.frequency_cap,
                voice_settings: Default::default(),
            })
            .await
            .expect("campaign")
            .id
    }

    async fn outreach(&self, campaign: Uuid, csv: &str, start: &str, end: Option<&str>) -> Uuid {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(csv.as_bytes()).unwrap();
        let o = import_outreach(
            self.store.clone(),
            OutreachUpload {
                campaign_id: campaign,
                file,
                file_name: "list.csv".into(),
                start_at: at(start),
                end_at: end.map(at),
                default_region: None,
                limits: Default::default(),
            },
            Arc::new(|_| {}),
        )
        .await
        .expect("import");
        o.id
    }

    /// A new dispatcher on the same store and transports: Herald started again.
    fn restart(&mut self) {
        self.dispatcher = Arc::new(Dispatcher::new(
            self.store.clone(),
            self.transports.clone(),
            self.clock.clone(),
            self.config.clone(),
        ));
    }

    async fn tick(&self) -> herald_engine::TickReport {
        self.dispatcher.tick().await.expect("tick")
    }

    /// Ticks until a tick does nothing more (at a fixed instant).
    async fn settle(&self) {
        for _ in 0..50 {
            let r = self.tick().await;
            if !r.more_due
                && r.sent + r.deferred + r.retried + r.failed + r.skipped + r.unknown + r.started
                    == 0
            {
                return;
            }
        }
        panic!("the dispatcher did not settle");
    }

    fn set(&self, now: &str) {
        self.clock.set(at(now));
    }

    async fn status(&self, id: Uuid) -> OutreachStatus {
        self.store.get_outreach(id).await.unwrap().status
    }

    async fn recipients(&self, id: Uuid) -> Vec<RecipientRecord> {
        self.store
            .list_recipients(id, None, 0, 10_000)
            .await
            .expect("recipients")
    }

    async fn states(&self, id: Uuid) -> BTreeMap<String, DeliveryState> {
        self.recipients(id)
            .await
            .into_iter()
            .map(|r| (r.address, r.state))
            .collect()
    }
}

fn phones(n: usize) -> String {
    let mut csv = String::from("phone,name\n");
    for i in 0..n {
        csv.push_str(&format!("+1415555{:04},Customer {i}\n", 1000 + i));
    }
    csv
}

// ---------------------------------------------------------------- the tests

async fn start_outside_the_window_waits_for_it(db: TestStore) {
    // Monday 2026-03-02, 07:00 in New York; office hours open at 09:00.
    let w = World::new(db, "2026-03-02T07:00[America/New_York]", World::config()).await;
    let c = w
        .campaign(
            "Late orders",
            CampaignOpts {
                schedule: Schedule::office_hours("America/New_York").unwrap(),
                ..Default::default()
            },
        )
        .await;
    let o = w
        .outreach(c, &phones(3), "2026-03-02T08:00[America/New_York]", None)
        .await;

    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::Scheduled, "before start");
    assert!(w.recorder.sent().is_empty());

    w.set("2026-03-02T08:00[America/New_York]");
    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::InProgress);
    assert!(w.recorder.sent().is_empty(), "nothing before 09:00");
    for r in w.recipients(o).await {
        assert_eq!(r.state, DeliveryState::Pending);
        assert_eq!(r.attempts, 0, "a deferral is not an attempt");
        assert_eq!(r.due_at, Some(at("2026-03-02T09:00[America/New_York]")));
    }

    w.set("2026-03-02T08:59:59[America/New_York]");
    w.settle().await;
    assert!(w.recorder.sent().is_empty());

    w.set("2026-03-02T09:00[America/New_York]");
    w.settle().await;
    let sent = w.recorder.sent();
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter()
            .all(|d| d.at == at("2026-03-02T09:00[America/New_York]"))
    );
    assert!(
        sent.iter()
            .any(|d| d.body == "Hi Customer 0, your order is late.")
    );
    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
    let p = w.store.get_outreach(o).await.unwrap().progress;
    assert_eq!((p.sent, p.total, p.label()), (3, 3, "3/3".to_string()));
}

async fn window_closing_mid_outreach_defers_the_rest_to_the_next_window(db: TestStore) {
    let mut config = World::config();
    config.rates.sms = 1.0;
    let w = World::new(db, "2026-03-02T16:59:57[America/New_York]", config).await;
    let c = w
        .campaign(
            "Late orders",
            CampaignOpts {
                schedule: Schedule::office_hours("America/New_York").unwrap(),
                ..Default::default()
            },
        )
        .await;
    let o = w
        .outreach(c, &phones(5), "2026-03-02T16:00[America/New_York]", None)
        .await;
    // One a second: 16:59:57, :58, :59 go out; at 17:00 the window is shut.
    for s in ["16:59:57", "16:59:58", "16:59:59"] {
        w.set(&format!("2026-03-02T{s}[America/New_York]"));
        w.settle().await;
    }
    assert_eq!(w.recorder.sent().len(), 3);
    w.set("2026-03-02T17:00[America/New_York]");
    w.settle().await;
    assert_eq!(
        w.recorder.sent().len(),
        3,
        "nothing after the window closed"
    );
    assert_eq!(w.status(o).await, OutreachStatus::InProgress);
    let waiting: Vec<_> = w
        .recipients(o)
        .await
        .into_iter()
        .filter(|r| r.state == DeliveryState::Pending)
        .collect();
    assert_eq!(waiting.len(), 2);
    assert!(
        waiting
            .iter()
            .all(|r| r.due_at == Some(at("2026-03-03T09:00[America/New_York]"))),
        "{waiting:?}"
    );
    // The next morning, one a second again.
    w.set("2026-03-03T09:00[America/New_York]");
    w.settle().await;
    w.set("2026-03-03T09:00:01[America/New_York]");
    w.settle().await;
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 5);
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
}

async fn three_time_zones_each_get_their_own_nine_o_clock(db: TestStore) {
    let w = World::new(db, "2026-03-02T00:00Z", World::config()).await;
    let c = w
        .campaign(
            "Renewals",
            CampaignOpts {
                schedule: every_day("UTC", "09:00-12:00"),
                ..Default::default()
            },
        )
        .await;
    let csv = "phone,name,timezone\n\
               +14155550001,Ann,America/Los_Angeles\n\
               +14155550002,Bo,Europe/Berlin\n\
               +14155550003,Cy,Asia/Tokyo\n\
               +14155550004,Di,\n";
    let o = w.outreach(c, csv, "2026-03-02T00:00Z", None).await;
    w.settle().await;
    // 00:00Z is 09:00 in Tokyo: only Cy.
    assert_eq!(w.recorder.sent_to(), vec!["+14155550003"]);
    let due: BTreeMap<String, Option<Timestamp>> = w
        .recipients(o)
        .await
        .into_iter()
        .map(|r| (r.address, r.due_at))
        .collect();
    assert_eq!(
        due["+14155550002"],
        Some(at("2026-03-02T09:00[Europe/Berlin]"))
    );
    assert_eq!(
        due["+14155550001"],
        Some(at("2026-03-02T09:00[America/Los_Angeles]"))
    );
    // No timezone and a US number (several zones): the schedule's zone, UTC.
    assert_eq!(due["+14155550004"], Some(at("2026-03-02T09:00Z")));

    for (when, expected) in [
        ("2026-03-02T08:00Z", 2), // 09:00 Berlin
        ("2026-03-02T09:00Z", 3), // 09:00 UTC
        ("2026-03-02T17:00Z", 4), // 09:00 Los Angeles
    ] {
        w.set(when);
        w.settle().await;
        assert_eq!(w.recorder.sent().len(), expected, "at {when}");
    }
    for d in w.recorder.sent() {
        let zone = match d.to.as_str() {
            "+14155550001" => "America/Los_Angeles",
            "+14155550002" => "Europe/Berlin",
            "+14155550003" => "Asia/Tokyo",
            _ => "UTC",
        };
        let local =
            d.at.to_zoned_datetime(jiff::tz::TimeZone::get(zone).unwrap());
        assert_eq!(
            (local.hour(), local.minute()),
            (9, 0),
            "{} at {local}",
            d.to
        );
    }
}

async fn dst_change_moves_the_window_in_utc(db: TestStore) {
    // Saturday 2026-03-07; New York springs forward on Sunday 2026-03-08.
    let w = World::new(db, "2026-03-07T12:00Z", World::config()).await;
    let c = w
        .campaign(
            "Renewals",
            CampaignOpts {
                schedule: Schedule::office_hours("America/New_York").unwrap(),
                ..Default::default()
            },
        )
        .await;
    let o = w.outreach(c, &phones(2), "2026-03-07T12:00Z", None).await;
    w.settle().await;
    assert!(w.recorder.sent().is_empty(), "closed at the weekend");
    // Friday's 09:00 was 14:00Z (EST); Monday's is 13:00Z (EDT).
    for r in w.recipients(o).await {
        assert_eq!(r.due_at, Some(at("2026-03-09T13:00Z")));
    }
    w.set("2026-03-09T12:59:59Z");
    w.settle().await;
    assert!(w.recorder.sent().is_empty());
    w.set("2026-03-09T13:00Z");
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 2);
}

async fn end_time_expires_what_is_left(db: TestStore) {
    let w = World::new(db, "2026-03-02T07:00[America/New_York]", World::config()).await;
    let c = w
        .campaign(
            "Flash sale",
            CampaignOpts {
                schedule: Schedule::office_hours("America/New_York").unwrap(),
                ..Default::default()
            },
        )
        .await;
    // Ends at 08:30, before the window opens at 09:00.
    let o = w
        .outreach(
            c,
            &phones(4),
            "2026-03-02T07:00[America/New_York]",
            Some("2026-03-02T08:30[America/New_York]"),
        )
        .await;
    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::InProgress);
    w.set("2026-03-02T08:30[America/New_York]");
    w.settle().await;
    assert!(w.recorder.sent().is_empty());
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
    for r in w.recipients(o).await {
        assert_eq!(
            (r.state, r.skip_reason),
            (DeliveryState::Skipped, Some(SkipReason::Expired))
        );
    }
    // Nothing happens later either.
    w.set("2026-03-02T09:00[America/New_York]");
    w.settle().await;
    assert!(w.recorder.sent().is_empty());
}

async fn stop_skips_the_rest_and_nothing_more_is_sent(db: TestStore) {
    let mut config = World::config();
    config.rates.sms = 2.0;
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let c = w.campaign("Late orders", CampaignOpts::default()).await;
    let o = w.outreach(c, &phones(10), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    // Two a second: the bucket keeps half a second of tokens, so one now and one half a
    // second later.
    assert_eq!(w.recorder.sent().len(), 1, "half a second's worth at once");
    w.set("2026-03-02T12:00:00.5Z");
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 2, "two a second");
    let stopped = w
        .store
        .stop_outreach(o, at("2026-03-02T12:00:00.5Z"))
        .await
        .expect("stop");
    assert_eq!(stopped.status, OutreachStatus::Stopped);
    for s in 1..5 {
        w.set(&format!("2026-03-02T12:00:0{s}Z"));
        w.settle().await;
    }
    assert_eq!(w.recorder.sent().len(), 2, "nothing after the stop");
    let states = w.states(o).await;
    assert_eq!(
        states
            .values()
            .filter(|s| **s == DeliveryState::Sent)
            .count(),
        2
    );
    let skipped: Vec<_> = w
        .recipients(o)
        .await
        .into_iter()
        .filter(|r| r.state == DeliveryState::Skipped)
        .collect();
    assert_eq!(skipped.len(), 8);
    assert!(
        skipped
            .iter()
            .all(|r| r.skip_reason == Some(SkipReason::Stopped))
    );
    assert_eq!(w.status(o).await, OutreachStatus::Stopped);
}

async fn quiet_hours_hold_sms_but_not_email_and_can_be_turned_off(db: TestStore) {
    // 06:00 in Paris; the schedule is open all day, every day.
    let w = World::new(db, "2026-06-01T06:00[Europe/Paris]", World::config()).await;
    let guarded = w
        .campaign(
            "Guarded",
            CampaignOpts {
                schedule: every_day("Europe/Paris", "00:00-24:00"),
                quiet_hours: true,
                ..Default::default()
            },
        )
        .await;
    let unguarded = w
        .campaign(
            "Unguarded",
            CampaignOpts {
                schedule: every_day("Europe/Paris", "00:00-24:00"),
                quiet_hours: false,
                sender: "+14155550199",
                ..Default::default()
            },
        )
        .await;
    let email = w
        .campaign(
            "Email",
            CampaignOpts {
                channel: Channel::Email,
                schedule: every_day("Europe/Paris", "00:00-24:00"),
                quiet_hours: true,
                sender: "support@example.com",
                ..Default::default()
            },
        )
        .await;
    let g = w
        .outreach(
            guarded,
            "phone,name\n+33612345678,Amélie\n",
            "2026-06-01T04:00Z",
            None,
        )
        .await;
    w.outreach(
        unguarded,
        "phone,name\n+33612345679,Bruno\n",
        "2026-06-01T04:00Z",
        None,
    )
    .await;
    w.outreach(
        email,
        "email,name\ncara@example.com,Cara\n",
        "2026-06-01T04:00Z",
        None,
    )
    .await;
    w.settle().await;
    assert_eq!(
        w.recorder.sent_to(),
        vec!["+33612345679", "cara@example.com"],
        "the guarded SMS waits"
    );
    // The French number's zone comes from its region (FR has one zone).
    let due = w.recipients(g).await[0].due_at;
    assert_eq!(due, Some(at("2026-06-01T08:00[Europe/Paris]")));
    w.set("2026-06-01T08:00[Europe/Paris]");
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 3);
    let amelie = w
        .recorder
        .sent()
        .into_iter()
        .find(|d| d.to == "+33612345678")
        .unwrap();
    assert_eq!(amelie.at, at("2026-06-01T08:00[Europe/Paris]"));
    assert_eq!(amelie.body, "Hi Amélie, your order is late.");
    let cara = w
        .recorder
        .sent()
        .into_iter()
        .find(|d| d.to == "cara@example.com")
        .unwrap();
    assert_eq!(cara.subject.as_deref(), Some("About your order"));
}

async fn rate_limit_is_shared_by_outreaches_of_a_sender(db: TestStore) {
    let mut config = World::config();
    config.rates.sms = 1.0;
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let a = w.campaign("A", CampaignOpts::default()).await;
    let b = w.campaign("B", CampaignOpts::default()).await; // same sender
    w.outreach(a, &phones(3), "2026-03-02T12:00Z", None).await;
    w.outreach(
        b,
        "phone,name\n+14155559001,X\n+14155559002,Y\n+14155559003,Z\n",
        "2026-03-02T12:00Z",
        None,
    )
    .await;
    for s in 0..6 {
        w.set(&format!("2026-03-02T12:00:0{s}Z"));
        w.settle().await;
        w.settle().await;
        assert_eq!(w.recorder.sent().len(), s + 1, "one a second at second {s}");
    }
    // Both outreaches got turns.
    let sent = w.recorder.sent_to();
    assert!(sent.iter().any(|t| t.starts_with("+1415555900")));
    assert!(sent.iter().any(|t| t.starts_with("+14155551")));
}

async fn a_daily_cap_holds_the_rest_for_the_next_day(db: TestStore) {
    let mut config = World::config();
    config.daily_caps.zone = "America/New_York".into();
    config.daily_caps.senders.insert("+14155550100".into(), 3);
    // 07:00 in New York.
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let a = w.campaign("A", CampaignOpts::default()).await;
    let o = w.outreach(a, &phones(5), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 3, "three a day");
    // Late that evening in New York (already the next day in UTC): still that day's cap.
    w.set("2026-03-03T04:30Z");
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 3);
    let rows = w.recipients(o).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r.state == DeliveryState::Pending)
            .count(),
        2,
        "the rest wait, not failed: {rows:?}"
    );
    // Past midnight in New York: the rest go.
    w.set("2026-03-03T05:01Z");
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 5);
}

/// At most one message in seven days: a customer another campaign reached yesterday is
/// skipped (and says why), the others are sent, and a week later the customer is due again. A
/// campaign's own cap looser than the workspace's does not lift it: the stricter one decides.
async fn the_frequency_cap_skips_customers_contacted_often_enough(db: TestStore) {
    let mut config = World::config();
    config.frequency_cap = Some(FrequencyCap {
        messages: 1,
        days: 7,
    });
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let a = w.campaign("A", CampaignOpts::default()).await;
    let b = w
        .campaign(
            "B",
            CampaignOpts {
                frequency_cap: Some(FrequencyCap {
                    messages: 5,
                    days: 7,
                }),
                ..Default::default()
            },
        )
        .await;
    w.outreach(a, &phones(2), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 2);

    // A day later, campaign B reaches one of them and a new customer.
    w.set("2026-03-03T12:00Z");
    let csv = "phone,name\n+14155551000,Customer 0\n+14155559000,New\n";
    let o = w.outreach(b, csv, "2026-03-03T12:00Z", None).await;
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 3, "only the new customer");
    let rows = w.recipients(o).await;
    let capped = rows.iter().find(|r| r.address == "+14155551000").unwrap();
    assert_eq!(
        (capped.state, capped.skip_reason),
        (DeliveryState::Skipped, Some(SkipReason::FrequencyCap))
    );
    let why = capped.error_message.as_deref().unwrap_or_default();
    assert!(
        why.contains(
            "already contacted 1 time(s) in the last 7 day(s); the frequency cap allows 1"
        ),
        "{why}"
    );
    let new = rows.iter().find(|r| r.address == "+14155559000").unwrap();
    assert_eq!(new.state, DeliveryState::Sent);

    // Eight days after the first message, the customer may be contacted again.
    w.set("2026-03-10T12:01Z");
    let again = w
        .outreach(
            b,
            "phone,name\n+14155551000,Customer 0\n",
            "2026-03-10T12:01Z",
            None,
        )
        .await;
    w.settle().await;
    assert_eq!(w.states(again).await["+14155551000"], DeliveryState::Sent);
    assert_eq!(w.recorder.sent().len(), 4);
}

/// No workspace cap, one campaign with its own (two messages in three days): its recipients
/// who already had two messages from any campaign in those days are skipped with reason
/// `frequency_cap`, counted in the outreach's figures; a campaign without a cap still reaches
/// them, and once the oldest message is older than three days the capped campaign may again.
async fn a_campaign_frequency_cap_alone_skips_and_is_counted(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let free = w.campaign("Free", CampaignOpts::default()).await;
    let capped = w
        .campaign(
            "Capped",
            CampaignOpts {
                frequency_cap: Some(FrequencyCap {
                    messages: 2,
                    days: 3,
                }),
                ..Default::default()
            },
        )
        .await;
    // Customer 0 gets two messages, customer 1 one.
    w.outreach(free, &phones(2), "2026-03-02T12:00Z", None)
        .await;
    w.settle().await;
    w.set("2026-03-03T12:00Z");
    w.outreach(free, &phones(1), "2026-03-03T12:00Z", None)
        .await;
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 3);

    w.set("2026-03-04T12:00Z");
    let o = w
        .outreach(capped, &phones(2), "2026-03-04T12:00Z", None)
        .await;
    w.settle().await;
    let rows = w.recipients(o).await;
    let zero = rows.iter().find(|r| r.address == "+14155551000").unwrap();
    assert_eq!(
        (zero.state, zero.skip_reason),
        (DeliveryState::Skipped, Some(SkipReason::FrequencyCap))
    );
    let why = zero.error_message.as_deref().unwrap_or_default();
    assert!(
        why.contains(
            "already contacted 2 time(s) in the last 3 day(s); the campaign's frequency cap \
             allows 2"
        ),
        "{why}"
    );
    let one = rows.iter().find(|r| r.address == "+14155551001").unwrap();
    assert_eq!(one.state, DeliveryState::Sent, "one message of two allowed");
    let report = w.store.outreach_report(o).await.unwrap();
    assert_eq!((report.progress.skipped, report.progress.sent), (1, 1));
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|r| (r.reason.as_str(), r.count))
            .collect::<Vec<_>>(),
        vec![("frequency_cap", 1)]
    );

    // The campaign without a cap is not held by another campaign's.
    let o = w
        .outreach(free, &phones(1), "2026-03-04T12:00Z", None)
        .await;
    w.settle().await;
    assert_eq!(w.states(o).await["+14155551000"], DeliveryState::Sent);

    // At 03-06 12:01 the capped campaign's three days go back to 03-03 12:01: of customer 0's
    // three messages only that of 03-04 is in them, one of the two allowed.
    w.set("2026-03-06T12:01Z");
    let o = w
        .outreach(capped, &phones(1), "2026-03-06T12:01Z", None)
        .await;
    w.settle().await;
    assert_eq!(w.states(o).await["+14155551000"], DeliveryState::Sent);
}

async fn transient_failures_retry_with_backoff_then_fail(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let c = w.campaign("Late orders", CampaignOpts::default()).await;
    // +14155551000: two failures, then accepted. +14155551001: always failing (3 attempts).
    w.recorder.fail(
        "+14155551000",
        vec![
            SendError::transient("503", "service unavailable"),
            SendError::Transient {
                code: Some("429".into()),
                message: "too many requests".into(),
                retry_after: Some(Duration::from_secs(30)),
            },
        ],
    );
    w.recorder.fail(
        "+14155551001",
        (0..5)
            .map(|_| SendError::transient("451", "try later"))
            .collect(),
    );
    let o = w.outreach(c, &phones(2), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    let r = w.recipients(o).await;
    assert_eq!(r[0].state, DeliveryState::Pending);
    assert_eq!(r[0].attempts, 1);
    assert_eq!(r[0].error_code.as_deref(), Some("503"));
    // First back-off: between half and all of 1 s.
    let due = r[0].due_at.unwrap();
    let wait = due.duration_since(at("2026-03-02T12:00Z"));
    assert!(
        wait >= SignedDuration::from_millis(500) && wait <= SignedDuration::from_secs(1),
        "{wait:?}"
    );
    w.set("2026-03-02T12:00:01Z");
    w.settle().await;
    let r = w.recipients(o).await;
    assert_eq!(
        (r[0].attempts, r[0].error_code.as_deref()),
        (2, Some("429"))
    );
    // Retry-After: 30 s beats the 2 s back-off.
    assert!(r[0].due_at.unwrap() >= at("2026-03-02T12:00:31Z"));
    assert_eq!(r[1].attempts, 2);
    w.set("2026-03-02T12:01:00Z");
    w.settle().await;
    let r = w.recipients(o).await;
    assert_eq!(r[0].state, DeliveryState::Sent);
    assert_eq!(r[0].attempts, 3);
    assert_eq!(r[1].state, DeliveryState::Failed);
    assert_eq!(r[1].attempts, 3);
    assert!(
        r[1].error_message
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{:?}",
        r[1].error_message
    );
    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
    assert_eq!(w.recorder.sent_to(), vec!["+14155551000"]);
}

async fn retry_failed_sends_the_failed_again(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let c = w.campaign("Late orders", CampaignOpts::default()).await;
    w.recorder.fail(
        "+14155551001",
        vec![SendError::permanent("30003", "unreachable handset")],
    );
    let o = w.outreach(c, &phones(3), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
    let p = w.store.get_outreach(o).await.unwrap().progress;
    assert_eq!((p.sent, p.failed), (2, 1));
    let requeued = w
        .store
        .retry_failed(o, at("2026-03-02T13:00Z"))
        .await
        .expect("retry");
    assert_eq!(requeued, 1);
    assert_eq!(w.status(o).await, OutreachStatus::InProgress);
    w.set("2026-03-02T13:00Z");
    w.settle().await;
    w.settle().await;
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
    let sent = w.recorder.sent_to();
    assert_eq!(sent.len(), 3, "each number once: {sent:?}");
    assert_eq!(w.states(o).await["+14155551001"], DeliveryState::Sent);
}

async fn opted_out_and_invalid_numbers_fail_at_once(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let c = w.campaign("Late orders", CampaignOpts::default()).await;
    w.recorder.fail(
        "+14155551000",
        vec![SendError::permanent(
            "21610",
            "Attempt to send to unsubscribed recipient",
        )],
    );
    w.recorder.fail(
        "+14155551001",
        vec![SendError::permanent("21211", "Invalid 'To' Phone Number")],
    );
    let o = w.outreach(c, &phones(3), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    let r = w.recipients(o).await;
    assert_eq!(
        (r[0].state, r[0].skip_reason, r[0].attempts),
        (DeliveryState::Skipped, Some(SkipReason::OptedOut), 1)
    );
    assert_eq!(
        (r[1].state, r[1].error_code.as_deref(), r[1].attempts),
        (DeliveryState::Failed, Some("21211"), 1)
    );
    assert_eq!(r[2].state, DeliveryState::Sent);
    let campaign = w.store.get_campaign(c).await.unwrap();
    let suppressed = w
        .store
        .suppressed_addresses(campaign.sender_id)
        .await
        .unwrap();
    assert!(suppressed.contains("+14155551000"));
    assert!(!suppressed.contains("+14155551001"));
}

async fn crash_mid_send_never_resends_sms_and_resends_email_with_the_same_key(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let email = w
        .campaign(
            "Mails",
            CampaignOpts {
                channel: Channel::Email,
                sender: "support@example.com",
                ..Default::default()
            },
        )
        .await;
    w.outreach(sms, &phones(2), "2026-03-02T12:00Z", None).await;
    w.outreach(
        email,
        "email,name\na@example.com,A\nb@example.com,B\n",
        "2026-03-02T12:00Z",
        None,
    )
    .await;
    // First, ordinary sends on both channels.
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 4);
    // Then a Herald claims one recipient of each new outreach and dies before it records
    // anything (its claim, made directly here, is all that is left of it).
    let sms2 = w
        .outreach(
            sms,
            "phone,name\n+14155552000,Z\n",
            "2026-03-02T12:00Z",
            None,
        )
        .await;
    let email2 = w
        .outreach(
            email,
            "email,name\nz@example.com,Z\n",
            "2026-03-02T12:00Z",
            None,
        )
        .await;
    let now = at("2026-03-02T12:00Z");
    for o in [sms2, email2] {
        assert!(w.store.start_outreach(o, now).await.unwrap());
        let lease = at("2026-03-02T12:01Z");
        let claimed = w.store.claim_due(o, now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        // It had begun the send when it died.
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        assert_eq!(w.store.start_sends(now, lease, &ids).await.unwrap(), ids);
    }
    // Before the lease ends nothing is touched.
    w.set("2026-03-02T12:00:30Z");
    w.settle().await;
    assert_eq!(w.states(sms2).await["+14155552000"], DeliveryState::Sending);
    assert_eq!(
        w.states(email2).await["z@example.com"],
        DeliveryState::Sending
    );
    // After it: the SMS is unknown and never sent; the email is sent, keyed as the first try was.
    w.set("2026-03-02T12:01:01Z");
    w.settle().await;
    w.settle().await;
    let s = &w.recipients(sms2).await[0];
    assert_eq!(s.state, DeliveryState::Unknown);
    assert_eq!(s.error_code.as_deref(), Some("lease_expired"));
    let e = &w.recipients(email2).await[0];
    assert_eq!(e.state, DeliveryState::Sent);
    assert_eq!(e.attempts, 2);
    let sent = w.recorder.sent();
    assert!(
        !sent.iter().any(|d| d.to == "+14155552000"),
        "no second text"
    );
    let z: Vec<_> = sent.iter().filter(|d| d.to == "z@example.com").collect();
    assert_eq!(z.len(), 1);
    assert_eq!(
        z[0].key,
        herald_core::outreach::idempotency_key(email2, e.id)
    );
    assert_eq!(w.status(sms2).await, OutreachStatus::Completed);
    assert_eq!(w.status(email2).await, OutreachStatus::Completed);
}

async fn render_errors_fail_the_recipient_with_the_reason(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let c = w
        .campaign(
            "Loops",
            CampaignOpts {
                body: "Hi {{ name.first }}",
                ..Default::default()
            },
        )
        .await;
    let o = w
        .outreach(
            c,
            "phone,name\n+14155550001,Ann\n",
            "2026-03-02T12:00Z",
            None,
        )
        .await;
    w.settle().await;
    let r = &w.recipients(o).await[0];
    assert_eq!(r.state, DeliveryState::Failed);
    assert_eq!(r.error_code.as_deref(), Some("render"));
    assert!(r.error_message.as_deref().is_some_and(|m| !m.is_empty()));
    assert!(w.recorder.sent().is_empty());
}

async fn a_two_segment_sms_costs_two_seconds_of_a_long_code(db: TestStore) {
    let mut config = World::config();
    config.rates.sms = 1.0;
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    // 170 GSM-7 characters: two segments.
    let c = w
        .campaign(
            "Long",
            CampaignOpts {
                body: "Hi {{ name }}, we are sorry: your order is running late because of the storm that closed our warehouse this week. We will text you again as soon as it ships. Thank you for your patience with us.",
                ..Default::default()
            },
        )
        .await;
    w.outreach(c, &phones(3), "2026-03-02T12:00Z", None).await;
    let mut sent_at = Vec::new();
    for s in 0..6 {
        w.set(&format!("2026-03-02T12:00:0{s}Z"));
        w.settle().await;
        sent_at.push(w.recorder.sent().len());
    }
    assert_eq!(
        herald_core::sms::analyze(&w.recorder.sent()[0].body).segments,
        2
    );
    assert_eq!(
        sent_at,
        vec![1, 1, 2, 2, 3, 3],
        "one two-part text every two seconds"
    );
}

async fn status_reports_that_never_find_their_send_are_forgotten_after_a_week(db: TestStore) {
    let w = World::new(db, "2026-03-02T09:00:00Z", World::config()).await;
    let report = |sid: &str, at: Timestamp| herald_store::StatusReport {
        provider_message_id: sid.to_string(),
        state: DeliveryState::Delivered,
        error_code: None,
        error_message: None,
        at,
    };
    let kept = herald_store::StatusApplied::Kept;
    assert_eq!(
        w.store
            .apply_status(&report("SMold", w.clock.now()))
            .await
            .unwrap(),
        kept
    );
    w.dispatcher.tick().await.unwrap();
    // A day later a second one arrives; neither is a week old at the next ticks.
    w.clock.advance(SignedDuration::from_hours(24));
    assert_eq!(
        w.store
            .apply_status(&report("SMnew", w.clock.now()))
            .await
            .unwrap(),
        kept
    );
    w.dispatcher.tick().await.unwrap();
    // Six days and two hours after the first: the first is over a week old and goes; the purge
    // runs at most hourly, so the tick a minute later changes nothing more.
    w.clock.advance(SignedDuration::from_hours(24 * 6 + 2));
    w.dispatcher.tick().await.unwrap();
    w.clock.advance(SignedDuration::from_mins(1));
    w.dispatcher.tick().await.unwrap();
    // What is left: only the newer report (purging everything now finds exactly one).
    let far = w.clock.now() + SignedDuration::from_hours(24 * 365);
    assert_eq!(w.store.purge_kept_status_reports(far).await.unwrap(), 1);
}

// ---------------------------------------------------------------- the unit of at-most-once

async fn a_claim_that_died_before_its_sends_began_is_sent_after_all(db: TestStore) {
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w.outreach(sms, &phones(3), "2026-03-02T12:00Z", None).await;
    let now = at("2026-03-02T12:00Z");
    assert!(w.store.start_outreach(o, now).await.unwrap());
    // A Herald claims the batch and dies before any send of it began.
    let claimed = w
        .store
        .claim_due(o, now, at("2026-03-02T12:01Z"), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    w.set("2026-03-02T12:01:01Z");
    w.settle().await;
    let rows = w.recipients(o).await;
    assert!(
        rows.iter().all(|r| r.state == DeliveryState::Sent),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "the dead claim is no attempt"
    );
    assert_eq!(w.recorder.sent().len(), 3);
}

/// A dispatcher with `concurrency` sends in flight, a batch of ten and `grace` seconds to
/// finish at shutdown; its world holds one started outreach of ten recipients.
async fn slow_world(db: TestStore, concurrency: usize, grace: u64) -> (World, Uuid) {
    started_world(db, concurrency, 10, grace, 10).await
}

/// A dispatcher with `concurrency` sends in flight, batches of `batch` and `grace` seconds to
/// finish at shutdown; its world holds one started outreach of `recipients` recipients.
async fn started_world(
    db: TestStore,
    concurrency: usize,
    batch: u32,
    grace: u64,
    recipients: usize,
) -> (World, Uuid) {
    let config = DispatchConfig {
        concurrency,
        batch_size: batch,
        shutdown_grace_secs: grace,
        ..World::config()
    };
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w
        .outreach(sms, &phones(recipients), "2026-03-02T12:00Z", None)
        .await;
    assert!(
        w.store
            .start_outreach(o, at("2026-03-02T12:00Z"))
            .await
            .unwrap()
    );
    (w, o)
}

/// A dispatcher's loop ([`Dispatcher::run`]) running until told to shut down.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(w: &World) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(w.dispatcher.clone().run(async {
            let _ = stopped.await;
        }));
        Self { stop, run }
    }

    /// Signals the shutdown and waits for the loop to return: how long that took.
    async fn shut_down(self) -> Duration {
        let signal = std::time::Instant::now();
        self.stop.send(()).unwrap();
        self.run.await.unwrap();
        signal.elapsed()
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn shutdown_begins_no_send_and_requeues_the_rest_of_the_batch(db: TestStore) {
    let (mut w, o) = slow_world(db, 2, 10).await;
    w.recorder.slow(Duration::from_millis(400));
    let running = Running::start(&w);
    wait_for("the first sends", || w.recorder.begun() >= 1).await;
    let took = running.shut_down().await;
    // Only the sends already begun were waited for (one group of two, 400 ms each).
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let begun = w.recorder.begun();
    assert!((1..=4).contains(&begun), "{begun} sends began");
    assert_eq!(w.recorder.sent().len(), begun, "every begun send finished");
    let rows = w.recipients(o).await;
    let count = |s: DeliveryState| rows.iter().filter(|r| r.state == s).count();
    assert_eq!(count(DeliveryState::Sent), begun);
    // The rest of the batch is back in the queue at once, its claim undone.
    assert_eq!(count(DeliveryState::Pending), 10 - begun, "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r.state == DeliveryState::Pending)
            .all(|r| r.attempts == 0)
    );
    // The next start sends them, and no one twice.
    w.recorder.slow(Duration::ZERO);
    w.restart();
    w.settle().await;
    assert_eq!(w.recorder.sent_to(), {
        let mut all: Vec<String> = rows.iter().map(|r| r.address.clone()).collect();
        all.sort();
        all
    });
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
}

/// The dispatcher claims its next batch as the last one's results are written (on PostgreSQL
/// during the write, on SQLite just before it); either way no send of a batch begins before the
/// batch before it is written, and no batch is claimed while another one's sends run.
async fn a_batch_is_sent_only_once_the_one_before_is_written(db: TestStore) {
    let config = DispatchConfig {
        concurrency: 1,
        batch_size: 5,
        ..World::config()
    };
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w
        .outreach(sms, &phones(20), "2026-03-02T12:00Z", None)
        .await;
    *w.recorder.watch.lock().unwrap() = Some((w.store.clone(), o));
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 20);
    let seen = w.recorder.seen.lock().unwrap().clone();
    // Send k is in batch k / 5: the batches before it are `sent`, its own five `sending`.
    let expected: Vec<(usize, usize)> = (0..20).map(|k| (k / 5 * 5, 5)).collect();
    assert_eq!(seen, expected);
    assert_eq!(w.status(o).await, OutreachStatus::Completed);
}

/// The batch claimed ahead while Herald was told to stop is given back at once: back in the
/// queue, its attempt not counted, not left `sending` until its lease ends.
async fn shutdown_gives_back_a_batch_claimed_ahead(db: TestStore) {
    let (mut w, o) = started_world(db, 5, 5, 10, 20).await;
    w.recorder.slow(Duration::from_millis(300));
    let running = Running::start(&w);
    // The whole first batch is in flight when the signal comes.
    wait_for("the first batch's sends", || w.recorder.begun() >= 5).await;
    running.shut_down().await;
    assert_eq!(w.recorder.begun(), 5, "no send began after the signal");
    let rows = first_batch_sent_rest_given_back(&w, o).await;
    // The next start sends the rest, and no one twice.
    sends_the_rest_once_after_a_restart(&mut w, &rows).await;
}

/// A batch claimed whose opt-outs cannot then be read is given back at once, as one Herald
/// stops before sending: back in the queue, its attempt not counted, not left `sending` until its
/// lease ends. The opt-out list goes away (its table renamed, so every read of it fails) while
/// the first batch is sent; the second batch is claimed ahead of the first one's write.
async fn a_batch_whose_opt_outs_cannot_be_read_is_given_back(db: TestStore) {
    let (backend, url) = (db.store.backend(), db.url.clone());
    let (mut w, o) = started_world(db, 5, 5, 10, 20).await;
    w.recorder.slow(Duration::from_millis(300));
    let running = Running::start(&w);
    wait_for("the first batch's sends", || w.recorder.begun() >= 5).await;
    rename_table(backend, &url, "suppressions", "suppressions_away").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w
        .recipients(o)
        .await
        .iter()
        .filter(|r| r.state == DeliveryState::Sent)
        .count()
        < 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first batch was not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few more ticks: each claims the next batch, fails its read and gives it back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.shut_down().await;
    assert_eq!(
        w.recorder.begun(),
        5,
        "nothing sent without the opt-out list"
    );
    let rows = first_batch_sent_rest_given_back(&w, o).await;
    // With the list back, the next start sends the rest, and no one twice.
    rename_table(backend, &url, "suppressions_away", "suppressions").await;
    sends_the_rest_once_after_a_restart(&mut w, &rows).await;
}

/// The rows of an outreach of 20 whose first batch of five was sent and whose claims after it
/// were given back: 5 `sent`, 15 `pending` with no attempt counted, none left `sending`.
async fn first_batch_sent_rest_given_back(w: &World, o: Uuid) -> Vec<RecipientRecord> {
    let rows = w.recipients(o).await;
    let count = |s: DeliveryState| rows.iter().filter(|r| r.state == s).count();
    assert_eq!(count(DeliveryState::Sent), 5, "{rows:?}");
    assert_eq!(count(DeliveryState::Pending), 15, "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r.state == DeliveryState::Pending)
            .all(|r| r.attempts == 0),
        "{rows:?}"
    );
    rows
}

/// The next start, with a provider that answers at once, sends the rest of `rows`: every
/// recipient once, no one twice.
async fn sends_the_rest_once_after_a_restart(w: &mut World, rows: &[RecipientRecord]) {
    w.recorder.slow(Duration::ZERO);
    w.restart();
    w.settle().await;
    assert_eq!(w.recorder.sent().len(), 20);
    assert_eq!(w.recorder.sent_to(), {
        let mut all: Vec<String> = rows.iter().map(|r| r.address.clone()).collect();
        all.sort();
        all
    });
}

/// Renames a table of the test's database from another connection (a real fault: every
/// statement that names `from` fails until it is renamed back).
async fn rename_table(backend: &str, url: &str, from: &str, to: &str) {
    use sqlx::{Connection, Executor};
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    if backend == "sqlite" {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
    }
}

async fn shutdown_waits_no_longer_than_its_grace(db: TestStore) {
    let (mut w, o) = slow_world(db, 2, 1).await;
    // A provider that takes far longer than the grace.
    w.recorder.slow(Duration::from_secs(30));
    let running = Running::start(&w);
    wait_for("two sends in flight", || w.recorder.begun() >= 2).await;
    let took = running.shut_down().await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "shutdown took {took:?} with a grace of 1 s"
    );
    assert_eq!(w.recorder.begun(), 2, "no send began after the signal");
    assert!(w.recorder.sent().is_empty());
    // What the dead batch left is resolved once its lease ends. Its first group (three: a
    // quarter of the batch, at least the concurrency) was marked begun, so those three are
    // uncertain and never sent again (two were in flight, one about to be); the seven never
    // begun go back to the queue and are sent.
    w.recorder.slow(Duration::ZERO);
    w.restart();
    w.set("2026-03-02T12:01:01Z");
    w.settle().await;
    let rows = w.recipients(o).await;
    let unknown: Vec<_> = rows
        .iter()
        .filter(|r| r.state == DeliveryState::Unknown)
        .collect();
    assert_eq!(unknown.len(), 3, "{rows:?}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.state == DeliveryState::Sent)
            .count(),
        7
    );
    let sent = w.recorder.sent_to();
    assert_eq!(sent.len(), 7);
    assert!(unknown.iter().all(|u| !sent.contains(&u.address)));
}

async fn a_live_slow_batch_keeps_its_lease(db: TestStore) {
    let config = DispatchConfig {
        lease_secs: 1,
        concurrency: 1,
        ..World::config()
    };
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w.outreach(sms, &phones(1), "2026-03-02T12:00Z", None).await;
    assert!(
        w.store
            .start_outreach(o, at("2026-03-02T12:00Z"))
            .await
            .unwrap()
    );
    // One send that takes 3 s against a lease of 1 s.
    w.recorder.slow(Duration::from_secs(3));
    let dispatcher = w.dispatcher.clone();
    let tick = tokio::spawn(async move { dispatcher.tick().await.expect("tick") });
    wait_for("the send", || w.recorder.begun() == 1).await;
    // 0.9 s pass; the dispatcher renews its lease (every third of a second) from there.
    w.set("2026-03-02T12:00:00.9Z");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Past the first lease: another node looking for dead claims finds none.
    w.set("2026-03-02T12:00:01.5Z");
    let taken = w
        .store
        .recover_expired_leases(
            o,
            at("2026-03-02T12:00:01.5Z"),
            herald_core::outreach::CrashPolicy::AtMostOnce,
        )
        .await
        .unwrap();
    assert_eq!(taken, 0, "a live batch was taken for a dead one");
    let report = tick.await.unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(w.states(o).await["+14155551000"], DeliveryState::Sent);
}

// ---------------------------------------------------------------- results never dropped

/// Makes the test's database refuse writes for `hold` (the returned task ends the outage):
/// SQLite by a second connection holding the write lock, PostgreSQL by refusing connections to
/// the database and ending those it has.
async fn outage(backend: &str, url: &str, hold: Duration) -> tokio::task::JoinHandle<()> {
    use sqlx::{Connection, Executor};
    if backend == "sqlite" {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        conn.execute("BEGIN IMMEDIATE").await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            conn.execute("ROLLBACK").await.unwrap();
        })
    } else {
        let admin_url = std::env::var(herald_store::testing::POSTGRES_URL_VAR).unwrap();
        let name = url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string();
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
            )))
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .execute(&mut admin)
            .await
            .unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
                )))
                .await
                .unwrap();
        })
    }
}

async fn a_failed_write_of_results_is_tried_again_until_it_succeeds(db: TestStore) {
    let hold = if db.store.backend() == "sqlite" {
        // Longer than SQLite's busy timeout (5 s): the first write fails with "locked".
        Duration::from_secs(7)
    } else {
        Duration::from_secs(3)
    };
    let (backend, url) = (db.store.backend(), db.url.clone());
    let w = World::new(db, "2026-03-02T12:00Z", World::config()).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w.outreach(sms, &phones(2), "2026-03-02T12:00Z", None).await;
    w.recorder.slow(Duration::from_millis(500));
    let dispatcher = w.dispatcher.clone();
    let started = std::time::Instant::now();
    let tick = tokio::spawn(async move { dispatcher.tick().await });
    wait_for("the sends", || w.recorder.begun() == 2).await;
    // The database goes away while the provider holds the sends.
    let back = outage(backend, &url, hold).await;
    let report = tick
        .await
        .unwrap()
        .expect("the tick ends well: its results were written");
    assert!(
        started.elapsed() >= hold,
        "the write waited for the database ({:?})",
        started.elapsed()
    );
    back.await.unwrap();
    assert_eq!(report.sent, 2);
    let rows = w.recipients(o).await;
    assert!(
        rows.iter().all(|r| r.state == DeliveryState::Sent),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.provider_message_id.is_some()),
        "{rows:?}"
    );
    assert_eq!(w.recorder.sent().len(), 2, "nothing was sent twice");
}

/// Herald must stop while SQLite stays locked: the batch's results go to the journal, and the
/// next start writes them before anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_cannot_be_written_at_shutdown_are_kept_and_written_on_the_next_start() {
    let db = herald_store::testing::sqlite().await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let config = DispatchConfig {
        journal: Some(journal.clone()),
        shutdown_grace_secs: 30,
        ..World::config()
    };
    let mut w = World::new(db, "2026-03-02T12:00Z", config).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w.outreach(sms, &phones(2), "2026-03-02T12:00Z", None).await;
    w.recorder.slow(Duration::from_millis(300));
    let running = Running::start(&w);
    wait_for("the sends", || w.recorder.begun() == 2).await;
    // The database stays locked for a minute: the first write fails after the busy timeout.
    let lock = outage("sqlite", &url, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let took = running.shut_down().await;
    assert!(
        took < Duration::from_secs(2),
        "shutdown waited {took:?} for a database that does not answer"
    );
    let kept = std::fs::read_to_string(&journal).expect("a journal");
    assert_eq!(
        kept.lines().filter(|l| l.starts_with("{\"kept\"")).count(),
        1,
        "{kept}"
    );
    assert!(
        kept.contains("+14155551000") && kept.contains("+14155551001"),
        "{kept}"
    );

    // The database is back; Herald starts again and writes what it kept, then forgets it.
    lock.abort();
    let _ = lock.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        w.recipients(o)
            .await
            .iter()
            .all(|r| r.state == DeliveryState::Sending),
        "nothing was written while the database was locked"
    );
    w.restart();
    assert_eq!(w.dispatcher.replay_journal().await.unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        "",
        "the journal is emptied once written"
    );
    let rows = w.recipients(o).await;
    assert!(
        rows.iter().all(|r| r.state == DeliveryState::Sent),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.provider_message_id.is_some()),
        "{rows:?}"
    );
    // Written twice (a journal whose write had in fact gone through) changes nothing.
    assert_eq!(w.dispatcher.replay_journal().await.unwrap(), 0);
    assert_eq!(w.recorder.sent().len(), 2);
}

async fn metrics_count_what_the_dispatcher_did(db: TestStore) {
    let mut config = World::config();
    config.rates.sms = 2.0;
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    w.outreach(sms, &phones(3), "2026-03-02T12:00Z", None).await;
    w.settle().await;
    let text = w.dispatcher.metrics().render(None);
    // One sent now; the sender (2 a second, one kept) is then out of tokens.
    assert!(
        text.contains(
            "herald_messages_total{channel=\"sms\",provider=\"file\",outcome=\"sent\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("herald_send_duration_seconds_count 1\n"),
        "{text}"
    );
    assert!(
        text.contains("herald_rate_limit_waits_total{sender=\"+14155550100\"}"),
        "{text}"
    );
    for at in ["2026-03-02T12:00:00.5Z", "2026-03-02T12:00:01Z"] {
        w.set(at);
        w.settle().await;
    }
    let text = w.dispatcher.metrics().render(None);
    assert!(text.contains("outcome=\"sent\"} 3\n"), "{text}");
    assert!(
        text.contains("herald_claimed_recipients_total 3\n"),
        "{text}"
    );
}

/// A log sink for one test: what the dispatcher wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of the dispatcher names the node and, inside an outreach's turn, the outreach:
/// an operator of many nodes can tell which one resolved a dead node's claims.
///
/// The check runs in a process of its own (this test binary, started again for this one test).
/// `tracing` caches per call site whether anybody listens; the other tests of this binary run
/// dispatchers at once without a subscriber, and one registering the `outreach` span while this
/// test installs its own can cache "nobody listens" for good, so the line loses its span. That
/// race failed a CI run under load; alone in its process the test has no such neighbour.
#[tokio::test]
async fn the_dispatchers_log_lines_name_the_node_and_the_outreach() {
    const CHILD: &str = "HERALD_TEST_LOG_LINES_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return log_lines_name_the_node_and_the_outreach().await;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_dispatchers_log_lines_name_the_node_and_the_outreach",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The child ran the check: a filter that matched nothing would pass with "0 passed".
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}

async fn log_lines_name_the_node_and_the_outreach() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests of this binary run at once without a subscriber: a span's callsite they
    // registered first may have cached "nobody listens", and the line would lose its span.
    tracing::callsite::rebuild_interest_cache();

    let db = herald_store::testing::sqlite().await;
    let config = DispatchConfig {
        node: Some("node-7".into()),
        ..World::config()
    };
    let w = World::new(db, "2026-03-02T12:00Z", config).await;
    let sms = w.campaign("Texts", CampaignOpts::default()).await;
    let o = w.outreach(sms, &phones(2), "2026-03-02T12:00Z", None).await;
    let now = at("2026-03-02T12:00Z");
    assert!(w.store.start_outreach(o, now).await.unwrap());
    // A node claims the recipients, begins their sends, and dies.
    let lease = at("2026-03-02T12:01Z");
    let ids: Vec<i64> = w
        .store
        .claim_due(o, now, lease, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    w.store.start_sends(now, lease, &ids).await.unwrap();
    w.set("2026-03-02T12:01:01Z");
    let running = Running::start(&w);
    wait_for("the recovery", || {
        String::from_utf8_lossy(&captured.0.lock().unwrap()).contains("resolved sends")
    })
    .await;
    running.shut_down().await;
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    let line = logs
        .lines()
        .find(|l| l.contains("resolved sends"))
        .expect("the recovery is logged");
    assert!(line.contains("node=node-7"), "{line}");
    assert!(line.contains(&format!("outreach={o}")), "{line}");
}
