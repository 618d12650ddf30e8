//! The outreach state machine, delivery states and callbacks, the progress figure, the decision for
//! a due outreach, crash policies and idempotency keys.

use herald_core::Channel;
use herald_core::outreach::{
    CrashPolicy, DeliveryState, OutreachAction, OutreachClock, OutreachStatus, Progress,
    SkipReason, decide, idempotency_key, parse_idempotency_key,
};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use DeliveryState::*;
use OutreachStatus::*;

// ---------------------------------------------------------------- outreach status

#[test]
fn outreach_transitions_exhaustively() {
    let allowed = [
        (Scheduled, InProgress),
        (Scheduled, Completed),
        (Scheduled, Stopped),
        (InProgress, Completed),
        (InProgress, Stopped),
    ];
    for from in OutreachStatus::ALL {
        for to in OutreachStatus::ALL {
            let ok = allowed.contains(&(from, to));
            assert_eq!(from.can_transition(to), ok, "{from} -> {to}");
            match from.transition(to) {
                Ok(s) => {
                    assert!(ok, "{from} -> {to}");
                    assert_eq!(s, to);
                }
                Err(e) => {
                    assert!(!ok, "{from} -> {to}");
                    assert_eq!((e.from, e.to), (from, to));
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}

#[test]
fn final_statuses_say_what_to_do_instead() {
    assert_eq!(
        Stopped.start().unwrap_err().to_string(),
        "a stopped outreach cannot be restarted; upload the recipients again in a new outreach"
    );
    assert_eq!(
        Completed.start().unwrap_err().to_string(),
        "a completed outreach cannot be restarted; upload the recipients again in a new outreach"
    );
    assert_eq!(
        Stopped.stop().unwrap_err().to_string(),
        "the outreach is already stopped"
    );
    assert!(
        Completed
            .stop()
            .unwrap_err()
            .to_string()
            .contains("already completed")
    );
    assert!(
        Stopped
            .complete()
            .unwrap_err()
            .to_string()
            .contains("stays stopped")
    );
    assert!(Stopped.is_final() && Completed.is_final());
    assert!(!Scheduled.is_final() && !InProgress.is_final());
    assert_eq!(Scheduled.start(), Ok(InProgress));
    assert_eq!(InProgress.stop(), Ok(Stopped));
    assert_eq!(Scheduled.complete(), Ok(Completed));
}

#[test]
fn statuses_serialize_snake_case() {
    assert_eq!(
        serde_json::to_string(&InProgress).unwrap(),
        "\"in_progress\""
    );
    assert_eq!(
        serde_json::from_str::<OutreachStatus>("\"scheduled\"").unwrap(),
        Scheduled
    );
    assert_eq!("In_Progress".parse::<OutreachStatus>().unwrap(), InProgress);
    let err = "running".parse::<OutreachStatus>().unwrap_err();
    assert!(err.to_string().contains("in_progress"), "{err}");
}

// ---------------------------------------------------------------- delivery

#[test]
fn delivery_moves_exhaustively() {
    let allowed: &[(DeliveryState, &[DeliveryState])] = &[
        (Pending, &[Sending, Skipped]),
        (
            Sending,
            &[
                Sent,
                Failed,
                Pending,
                Unknown,
                Skipped,
                Delivered,
                Undelivered,
                Replied,
            ],
        ),
        (Sent, &[Delivered, Undelivered, Failed, Replied]),
        (Delivered, &[Replied]),
        (Undelivered, &[Delivered, Replied]),
        (Unknown, &[Sent, Delivered, Undelivered, Failed, Replied]),
        (Failed, &[Pending]),
        (Skipped, &[]),
        (Replied, &[]),
    ];
    for from in DeliveryState::ALL {
        let to_list = allowed
            .iter()
            .find(|(f, _)| *f == from)
            .map(|(_, t)| *t)
            .unwrap();
        for to in DeliveryState::ALL {
            let ok = to_list.contains(&to);
            assert_eq!(from.can_move_to(to), ok, "{from} -> {to}");
            assert_eq!(from.transition(to).is_ok(), ok, "{from} -> {to}");
        }
    }
    assert_eq!(
        Delivered.transition(Sent).unwrap_err().to_string(),
        "a recipient that is delivered cannot become sent"
    );
}

#[test]
fn terminal_and_sent_states() {
    let terminal: Vec<_> = DeliveryState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
    assert_eq!(
        terminal,
        [
            Sent,
            Delivered,
            Failed,
            Undelivered,
            Skipped,
            Replied,
            Unknown
        ]
    );
    let sent: Vec<_> = DeliveryState::ALL
        .into_iter()
        .filter(|s| s.counts_as_sent())
        .collect();
    assert_eq!(sent, [Sent, Delivered, Undelivered, Replied, Unknown]);
    // Skipped and replied are the end of the road.
    for s in [Skipped, Replied] {
        assert!(DeliveryState::ALL.iter().all(|&t| !s.can_move_to(t)), "{s}");
    }
}

#[test]
fn callbacks_never_move_a_recipient_back() {
    // A late `sent` after `delivered` is ignored; so is a repeat.
    assert_eq!(Delivered.apply_callback(Sent), None);
    assert_eq!(Delivered.apply_callback(Delivered), None);
    assert_eq!(Delivered.apply_callback(Undelivered), None);
    assert_eq!(Delivered.apply_callback(Failed), None);
    assert_eq!(Sent.apply_callback(Sent), None);
    assert_eq!(Replied.apply_callback(Delivered), None);
    // Forward moves are recorded.
    assert_eq!(Sent.apply_callback(Delivered), Some(Delivered));
    assert_eq!(Sent.apply_callback(Undelivered), Some(Undelivered));
    assert_eq!(Sent.apply_callback(Failed), Some(Failed));
    assert_eq!(Delivered.apply_callback(Replied), Some(Replied));
    // A callback that overtakes the send's own result.
    assert_eq!(Sending.apply_callback(Delivered), Some(Delivered));
    assert_eq!(Sending.apply_callback(Sent), Some(Sent));
    // A late callback resolves an unknown send.
    assert_eq!(Unknown.apply_callback(Sent), Some(Sent));
    assert_eq!(Unknown.apply_callback(Delivered), Some(Delivered));
    // Never handed to a provider (or re-queued by a person): callbacks do not touch it.
    for s in [Pending, Skipped, Failed] {
        for r in DeliveryState::ALL {
            assert_eq!(s.apply_callback(r), None, "{s} <- {r}");
        }
    }
    // Providers do not report these.
    for r in [Pending, Sending, Skipped, Unknown] {
        for s in DeliveryState::ALL {
            assert_eq!(s.apply_callback(r), None, "{s} <- {r}");
        }
    }
}

#[test]
fn skip_reasons_serialize_snake_case() {
    assert_eq!(
        serde_json::to_string(&SkipReason::OptedOut).unwrap(),
        "\"opted_out\""
    );
    assert_eq!(
        serde_json::to_string(&Undelivered).unwrap(),
        "\"undelivered\""
    );
    assert_eq!(
        "opted_out".parse::<SkipReason>().unwrap(),
        SkipReason::OptedOut
    );
    assert!("bounced".parse::<SkipReason>().is_err());
    assert!("bounced".parse::<DeliveryState>().is_err());
}

// ---------------------------------------------------------------- progress

#[test]
fn seven_of_eleven() {
    let p = Progress::from_counts([
        (Sent, 3),
        (Delivered, 2),
        (Replied, 1),
        (Undelivered, 1),
        (Failed, 1),
        (Skipped, 1),
        (Pending, 1),
        (Sending, 1),
    ]);
    assert_eq!(
        p,
        Progress {
            total: 11,
            sent: 7,
            delivered: 3,
            failed: 1,
            skipped: 1,
            pending: 2,
            replied: 1,
            uncertain: 0,
        }
    );
    assert_eq!(p.label(), "7/11");
    assert!(!p.is_done());
    assert_eq!(
        serde_json::to_value(p).unwrap(),
        serde_json::json!({"total": 11, "sent": 7, "delivered": 3, "failed": 1, "skipped": 1, "pending": 2, "replied": 1, "uncertain": 0})
    );
    // A send a crash cut short is its own figure, never counted as sent.
    let crashed = Progress::from_counts([(Sent, 3), (Unknown, 2), (Pending, 1)]);
    assert_eq!((crashed.sent, crashed.uncertain, crashed.total), (3, 2, 6));
    assert_eq!(crashed.label(), "3/6");
    assert!(!crashed.is_done());
    assert_eq!(Progress::default().label(), "0/0");
    assert!(Progress::default().is_done());
    assert_eq!(Progress::from_counts([(Undelivered, 4)]).label(), "4/4");
}

// ---------------------------------------------------------------- decide

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn clock(status: OutreachStatus, end: Option<&str>, pending: u64, in_flight: u64) -> OutreachClock {
    OutreachClock {
        status,
        start_at: t("2026-03-02T09:00:00Z"),
        end_at: end.map(t),
        pending,
        in_flight,
    }
}

#[test]
fn decisions_for_a_due_outreach() {
    use OutreachAction::*;
    let before = t("2026-03-02T08:59:59Z");
    let start = t("2026-03-02T09:00:00Z");
    let later = t("2026-03-02T12:00:00Z");
    let end = "2026-03-02T17:00:00Z";
    let after_end = t("2026-03-02T17:00:00Z");

    // Scheduled: wait for the start, then start.
    assert_eq!(
        decide(&clock(Scheduled, None, 5, 0), before),
        Wait { until: Some(start) }
    );
    assert_eq!(decide(&clock(Scheduled, None, 5, 0), start), Start);
    assert_eq!(decide(&clock(Scheduled, Some(end), 5, 0), later), Start);
    // ...or complete at once when nobody is left to send.
    assert_eq!(decide(&clock(Scheduled, None, 0, 0), start), Complete);
    assert_eq!(
        decide(&clock(Scheduled, None, 0, 0), before),
        Wait { until: Some(start) }
    );
    // An end before the start (should not be saved, but) wakes the scheduler at the end.
    let odd = OutreachClock {
        end_at: Some(t("2026-03-02T08:00:00Z")),
        ..clock(Scheduled, None, 5, 0)
    };
    assert_eq!(
        decide(&odd, t("2026-03-02T07:00:00Z")),
        Wait {
            until: Some(t("2026-03-02T08:00:00Z"))
        }
    );
    assert_eq!(decide(&odd, t("2026-03-02T08:00:00Z")), ExpirePending);

    // In progress: wait (for the end, if any) while recipients are open; complete when none is.
    assert_eq!(
        decide(&clock(InProgress, None, 5, 2), later),
        Wait { until: None }
    );
    assert_eq!(
        decide(&clock(InProgress, Some(end), 5, 2), later),
        Wait {
            until: Some(t(end))
        }
    );
    assert_eq!(
        decide(&clock(InProgress, None, 0, 1), later),
        Wait { until: None }
    );
    assert_eq!(decide(&clock(InProgress, None, 0, 0), later), Complete);

    // End passed: expire the pending, wait for the in-flight, then complete.
    assert_eq!(
        decide(&clock(InProgress, Some(end), 5, 2), after_end),
        ExpirePending
    );
    assert_eq!(
        decide(&clock(InProgress, Some(end), 0, 2), after_end),
        Wait { until: None }
    );
    assert_eq!(
        decide(&clock(InProgress, Some(end), 0, 0), after_end),
        Complete
    );
    assert_eq!(
        decide(&clock(Scheduled, Some(end), 5, 0), after_end),
        ExpirePending
    );

    // Final outreaches never do anything.
    for s in [Completed, Stopped] {
        for now in [before, later, after_end] {
            assert_eq!(
                decide(&clock(s, Some(end), 5, 2), now),
                Wait { until: None }
            );
        }
    }
}

// ---------------------------------------------------------------- crash safety

#[test]
fn crash_policy_per_channel() {
    assert_eq!(
        CrashPolicy::for_channel(Channel::Sms),
        CrashPolicy::AtMostOnce
    );
    assert_eq!(
        CrashPolicy::for_channel(Channel::Voice),
        CrashPolicy::AtMostOnce
    );
    assert_eq!(
        CrashPolicy::for_channel(Channel::Email),
        CrashPolicy::AtLeastOnce
    );
    assert_eq!(
        CrashPolicy::for_channel(Channel::Chat),
        CrashPolicy::AtLeastOnce
    );
    assert_eq!(CrashPolicy::AtMostOnce.resolve_expired_lease(), Unknown);
    assert_eq!(CrashPolicy::AtLeastOnce.resolve_expired_lease(), Pending);
    // Both resolutions are allowed moves out of `sending`.
    for p in [CrashPolicy::AtMostOnce, CrashPolicy::AtLeastOnce] {
        assert!(Sending.can_move_to(p.resolve_expired_lease()));
    }
    assert_eq!(
        serde_json::to_string(&CrashPolicy::AtMostOnce).unwrap(),
        "\"at_most_once\""
    );
}

#[test]
fn idempotency_keys_are_deterministic() {
    let o = Uuid::parse_str("0190f1c2-0000-7000-8000-000000000001").unwrap();
    let key = idempotency_key(o, 255);
    assert_eq!(key, "0190f1c2000070008000000000000001-255");
    assert_eq!(key, idempotency_key(o, 255));
    assert_ne!(key, idempotency_key(o, 256));
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    assert_eq!(parse_idempotency_key(&key), Some((o, 255)));
    let padded = format!("{}-0255", o.simple());
    for bad in [
        "",
        "-",
        "abc-def",
        &o.to_string(),
        &format!("{key}x"),
        &padded,
    ] {
        assert_eq!(parse_idempotency_key(bad), None, "{bad}");
    }
}

#[test]
fn only_a_completed_outreach_reopens_for_a_retry() {
    assert_eq!(Completed.reopen(), Ok(InProgress));
    assert_eq!(InProgress.reopen(), Ok(InProgress));
    assert!(
        Stopped
            .reopen()
            .unwrap_err()
            .to_string()
            .contains("cannot be restarted")
    );
    assert!(Scheduled.reopen().is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    fn state() -> impl Strategy<Value = DeliveryState> {
        select(DeliveryState::ALL.to_vec())
    }

    fn status() -> impl Strategy<Value = OutreachStatus> {
        select(OutreachStatus::ALL.to_vec())
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn progress_adds_up(counts in prop::collection::vec((state(), 0u64..1_000_000), 0..20)) {
            let p = Progress::from_counts(counts.iter().copied());
            prop_assert_eq!(p.total, counts.iter().map(|(_, n)| n).sum::<u64>());
            prop_assert_eq!(p.total, p.sent + p.failed + p.skipped + p.pending + p.uncertain);
            prop_assert!(p.replied <= p.delivered && p.delivered <= p.sent);
            // Order does not matter.
            let mut reversed = counts.clone();
            reversed.reverse();
            prop_assert_eq!(Progress::from_counts(reversed), p);
            prop_assert_eq!(p.label(), format!("{}/{}", p.sent, p.total));
        }

        /// Whatever callbacks arrive, in whatever order, a recipient that reached `delivered`
        /// stays delivered or replied, and one that reached a state a callback set never goes back
        /// to `pending` or `sending`.
        #[test]
        fn callbacks_only_move_forward(start in state(), reports in prop::collection::vec(state(), 0..30)) {
            let mut s = start;
            let mut seen_delivered = s == Delivered;
            for r in reports {
                if let Some(next) = s.apply_callback(r) {
                    prop_assert!(s.can_move_to(next));
                    prop_assert_eq!(next, r);
                    prop_assert!(next.is_terminal());
                    s = next;
                }
                if seen_delivered {
                    prop_assert!(matches!(s, Delivered | Replied), "{}", s);
                }
                seen_delivered |= s == Delivered;
            }
            if start.is_terminal() {
                prop_assert!(s.is_terminal());
            }
        }

        /// `completed` and `stopped` refuse every move, and `transition` agrees with
        /// `can_transition`.
        #[test]
        fn final_outreach_statuses_never_change(from in status(), to in status()) {
            if from.is_final() {
                prop_assert!(from.transition(to).is_err());
            }
            prop_assert_eq!(from.transition(to).is_ok(), from.can_transition(to));
        }

        #[test]
        fn idempotency_keys_round_trip(o in uuid(), r in 0i64.., o2 in uuid(), r2 in 0i64..) {
            let key = idempotency_key(o, r);
            prop_assert_eq!(parse_idempotency_key(&key), Some((o, r)));
            prop_assert_eq!(&key, &idempotency_key(o, r));
            if (o, r) != (o2, r2) {
                prop_assert_ne!(key, idempotency_key(o2, r2));
            }
        }

        #[test]
        fn decide_is_consistent(
            st in status(),
            start_off in -100_000i64..100_000,
            end_off in prop::option::of(-100_000i64..200_000),
            pending in 0u64..3,
            in_flight in 0u64..3,
        ) {
            let now = t("2026-03-02T12:00:00Z");
            let o = OutreachClock {
                status: st,
                start_at: now + SignedDuration::from_secs(start_off),
                end_at: end_off.map(|e| now + SignedDuration::from_secs(e)),
                pending,
                in_flight,
            };
            match decide(&o, now) {
                OutreachAction::Start => {
                    prop_assert_eq!(st, Scheduled);
                    prop_assert!(now >= o.start_at);
                    prop_assert!(st.start().is_ok());
                }
                OutreachAction::Complete => {
                    prop_assert_eq!(pending + in_flight, 0);
                    prop_assert!(st.complete().is_ok());
                }
                OutreachAction::ExpirePending => {
                    prop_assert!(pending > 0);
                    prop_assert!(o.end_at.is_some_and(|e| now >= e));
                    prop_assert!(!st.is_final());
                }
                OutreachAction::Wait { until } => {
                    if let Some(u) = until {
                        prop_assert!(u > now);
                    }
                }
            }
        }
    }
}
