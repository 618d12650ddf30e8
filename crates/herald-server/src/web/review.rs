//! The review of an upload in the web UI: the upload form's "Review" button posts the form to
//! `POST /campaigns/{id}/outreaches/review`, which reads the file as the launch would (through
//! [`herald_engine::review_outreach`], storing nothing) and answers a fragment shown under the
//! form — the summary, warnings, the forecast, the message for the first rows, the first row
//! errors — with a "Launch" button that posts the same form, carrying the review's digest, to
//! the launch. The file stays in the browser's form between the two, so any node may take
//! either request.

use super::outreaches::{FieldErrors, Receipt, Received, receive, refusal_errors};
use super::render_status;
use super::session::Admin;
use crate::AppState;
use crate::web::session::WebId;
use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herald_engine::OutreachReview;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use uuid::Uuid;

/// The review fragment.
#[derive(Template)]
#[template(path = "outreach_review.html")]
pub(crate) struct ReviewFragment {
    campaign_id: Uuid,
    /// Why the list cannot be launched; the rest is empty then.
    errors: Vec<String>,
    review: Option<ReviewView>,
}

struct ReviewView {
    digest: String,
    file_name: String,
    rows: u64,
    /// Recipients who would be messaged (accepted, less opted out).
    messaged: u64,
    invalid: u64,
    duplicates: u64,
    suppressed: u64,
    columns: String,
    warnings: Vec<String>,
    /// "Monday 7 December 09:00 UTC, in 2 h 30 min", or why nothing would go out.
    first: Option<String>,
    last: Option<String>,
    /// How long sending would take, first to last message.
    spread: Option<String>,
    forecast_sent: u64,
    basis: String,
    zones: Vec<(String, u64)>,
    more_zones: usize,
    samples: Vec<SampleView>,
    row_errors: Vec<(u64, String, String, String)>,
    /// Rows refused or left out as duplicates: what the error report lists.
    left_out: u64,
}

struct SampleView {
    line: u64,
    to: String,
    subject: Option<String>,
    body: String,
    /// "1 segment, GSM-7" for an SMS.
    sms: Option<String>,
}

pub(crate) async fn review(
    Admin(user): Admin,
    State(s): State<AppState>,
    WebId(id): WebId,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    let refused = |campaign_id: Uuid, errors: &FieldErrors| {
        let mut lines = Vec::new();
        for e in &errors.0 {
            let message = super::plain_words(&e.message);
            lines.push(match e.field.as_str() {
                "" | "campaign" => message,
                "file" => format!("The file {message}"),
                f => format!("{}: {message}", f.replace('_', " ")),
            });
        }
        render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ReviewFragment {
                campaign_id,
                errors: lines,
                review: None,
            },
        )
    };
    let r = match receive(user, &s, id, &headers, form).await {
        Receipt::Ready(r) => *r,
        Receipt::Refused(_, errors, busy) => {
            let mut res = refused(id, &errors);
            if let Some(b) = busy {
                *res.status_mut() = b.status;
                b.retry_after_header(&mut res);
            }
            return res;
        }
        Receipt::Answered(res) => return res,
    };
    let Received {
        user,
        campaign,
        upload,
        permit,
        ..
    } = r;
    let now = s.clock.now();
    let reviewed =
        herald_engine::review_outreach(s.store.clone(), upload, &s.dispatch_config(), now).await;
    drop(permit);
    match reviewed {
        Ok(review) => render_status(
            StatusCode::OK,
            &ReviewFragment {
                campaign_id: campaign.id,
                errors: Vec::new(),
                review: Some(ReviewView::new(&review, campaign.schedule.timezone(), now)),
            },
        ),
        Err(e) => match refusal_errors(&user, e) {
            Ok(errors) => refused(campaign.id, &errors),
            Err(res) => *res,
        },
    }
}

/// `at` in `tz`, with the date, and how far from `now`.
fn when(at: Timestamp, tz: &TimeZone, now: Timestamp) -> String {
    let shown = at
        .to_zoned_datetime(tz.clone())
        .strftime("%a %-d %b %H:%M:%S %Z")
        .to_string();
    if at <= now {
        format!("{shown}, now")
    } else {
        format!("{shown}, {}", super::outreaches::relative(now, at))
    }
}

/// A duration in words: "4 min 59 s", "1 h 5 min", "3 d 2 h".
fn span(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min {s} s"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

const SHOWN_ZONES: usize = 5;

impl ReviewView {
    fn new(r: &OutreachReview, tz: &TimeZone, now: Timestamp) -> Self {
        let f = &r.forecast;
        let mut columns = vec![r.contact_column.clone()];
        columns.extend(r.timezone_column.clone());
        columns.extend(r.variables.iter().cloned());
        Self {
            digest: r.digest.clone(),
            file_name: r.file_name.clone(),
            rows: r.summary.rows,
            messaged: r.summary.accepted - r.summary.suppressed.min(r.summary.accepted),
            invalid: r.summary.invalid,
            duplicates: r.summary.duplicates,
            suppressed: r.summary.suppressed,
            columns: columns.join(", "),
            warnings: r
                .warnings
                .iter()
                .map(|w| {
                    let m = super::plain_words(&w.message);
                    let mut c = m.chars();
                    c.next()
                        .map(|first| first.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                        + "."
                })
                .collect(),
            first: f.first_at.map(|t| when(t, tz, now)),
            last: f.last_at.map(|t| when(t, tz, now)),
            spread: f
                .first_at
                .zip(f.last_at)
                .map(|(a, b)| span(b.as_second() - a.as_second())),
            forecast_sent: f.sent,
            basis: r.forecast_basis.clone(),
            zones: r
                .zones
                .iter()
                .take(SHOWN_ZONES)
                .map(|z| (z.zone.clone(), z.recipients))
                .collect(),
            more_zones: r.zones.len().saturating_sub(SHOWN_ZONES),
            samples: r
                .samples
                .iter()
                .map(|s| SampleView {
                    line: s.line,
                    to: s.to.clone(),
                    subject: s.subject.clone(),
                    body: s.body.clone(),
                    sms: s.sms.map(|i| {
                        format!(
                            "{} segment{}, {}",
                            i.segments,
                            if i.segments == 1 { "" } else { "s" },
                            match i.encoding {
                                herald_core::SmsEncoding::Gsm7 => "GSM-7",
                                _ => "UCS-2 (non-GSM characters)",
                            }
                        )
                    }),
                })
                .collect(),
            left_out: r.summary.invalid + r.summary.duplicates,
            row_errors: r
                .errors
                .iter()
                .map(|e| {
                    (
                        e.line,
                        e.column.clone().unwrap_or_default(),
                        e.value.clone(),
                        super::plain_words(&e.reason),
                    )
                })
                .collect(),
        }
    }
}
