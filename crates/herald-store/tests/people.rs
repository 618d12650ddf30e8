//! People and access (issue #17 item 2) on both backends: users deactivated and their sessions
//! ended, roles changed without losing the last admin, invitations sent again, API tokens listed
//! with their last use and revoked, opt-outs added and removed with the reason, and the audit log
//! of all of it (who, what, when, from which address).
//!
//! The Postgres half needs `HERALD_TEST_POSTGRES_URL`, as `conformance.rs`.

#![allow(clippy::disallowed_methods)] // the suite sets up data relative to the real time

use herald_core::{Page, Role};
use herald_store::users::action;
use herald_store::{Actor, AuditContext, NewToken, Store, StoreError, UserChange};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

herald_store::on_both_backends!(
    store:
    deactivating_ends_sessions_and_sign_in_and_is_audited,
    the_last_admin_cannot_be_demoted_or_deactivated,
    inviting_again_replaces_the_link_and_refuses_existing_users,
    tokens_are_listed_with_their_last_use_and_revoked_at_once,
    opt_outs_added_and_removed_are_audited_with_their_reason,
    the_audit_log_pages_newest_first,
);

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn ctx(actor: Actor, client: &str) -> AuditContext {
    AuditContext {
        actor,
        client_addr: Some(client.to_string()),
        at: Timestamp::now(),
    }
}

fn admin_ctx() -> AuditContext {
    ctx(Actor::User("ann@example.org".into()), "192.0.2.7")
}

fn in_hours(h: i64) -> Timestamp {
    Timestamp::now()
        .checked_add(SignedDuration::from_hours(h))
        .unwrap()
}

fn all() -> Page {
    Page::new(Some(500), None).unwrap()
}

async fn deactivating_ends_sessions_and_sign_in_and_is_audited(store: &dyn Store) {
    let ann = store
        .create_user("ann@example.org", Role::Admin, "$argon2id$ann")
        .await
        .unwrap();
    let bob = store
        .create_user("bob@example.org", Role::Agent, "$argon2id$bob")
        .await
        .unwrap();
    store
        .create_session(&hash(1), bob.id, "csrf-1", in_hours(1))
        .await
        .unwrap();
    store
        .create_session(&hash(2), bob.id, "csrf-2", in_hours(1))
        .await
        .unwrap();
    store
        .create_session(&hash(3), ann.id, "csrf-3", in_hours(1))
        .await
        .unwrap();
    let now = Timestamp::now();
    assert!(store.find_session(&hash(1), now).await.unwrap().is_some());

    // The sign-in was recorded on the user.
    let listed = store.list_users(all()).await.unwrap().items;
    assert_eq!(
        listed.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
        ["ann@example.org", "bob@example.org"]
    );
    assert!(
        listed
            .iter()
            .all(|u| u.active && u.last_sign_in_at.is_some())
    );

    let c = admin_ctx();
    let bob_after = store
        .update_user(
            bob.id,
            UserChange {
                role: None,
                active: Some(false),
            },
            &c,
        )
        .await
        .unwrap();
    assert!(!bob_after.active);
    assert!(bob_after.deactivated_at.is_some());
    // Both of bob's sessions are gone, ann's stays; bob cannot sign in.
    assert!(store.find_session(&hash(1), now).await.unwrap().is_none());
    assert!(store.find_session(&hash(2), now).await.unwrap().is_none());
    assert!(store.find_session(&hash(3), now).await.unwrap().is_some());
    assert!(
        store
            .find_user_by_email("bob@example.org")
            .await
            .unwrap()
            .is_none()
    );
    // A session made for him afterwards (a race with sign-in) does not let him in either.
    store
        .create_session(&hash(4), bob.id, "csrf-4", in_hours(1))
        .await
        .unwrap();
    assert!(store.find_session(&hash(4), now).await.unwrap().is_none());
    // Nor can he be invited again: he has an account.
    let msg = match store
        .invite_user("BOB@example.org", Role::Agent, &hash(9), in_hours(1), &c)
        .await
    {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert!(
        msg.contains("deactivated") && msg.contains("reactivate"),
        "{msg}"
    );

    let log = store.list_audit(all()).await.unwrap().items;
    assert_eq!(log.len(), 1, "{log:?}");
    let e = &log[0];
    assert_eq!(e.action, action::USER_DEACTIVATED);
    assert_eq!(e.subject, "bob@example.org");
    assert_eq!(e.actor, "ann@example.org");
    assert_eq!(e.actor_kind, "user");
    assert_eq!(e.client_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(e.detail, "2 session(s) ended");

    // Reactivated, and made an admin in the same change: two entries, he can sign in again.
    let bob_back = store
        .update_user(
            bob.id,
            UserChange {
                role: Some(Role::Admin),
                active: Some(true),
            },
            &c,
        )
        .await
        .unwrap();
    assert!(bob_back.active && bob_back.deactivated_at.is_none());
    assert_eq!(bob_back.role, Role::Admin);
    assert!(
        store
            .find_user_by_email("bob@example.org")
            .await
            .unwrap()
            .is_some()
    );
    let actions: Vec<String> = store
        .list_audit(all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.detail))
        .collect();
    assert_eq!(
        actions,
        [
            "user.reactivated ",
            "user.role_changed agent → admin",
            "user.deactivated 2 session(s) ended"
        ]
    );
    // A change that changes nothing writes nothing.
    store
        .update_user(bob.id, UserChange::default(), &c)
        .await
        .unwrap();
    assert_eq!(store.list_audit(all()).await.unwrap().items.len(), 3);
    let missing = Uuid::now_v7();
    assert!(matches!(
        store.update_user(missing, UserChange::default(), &c).await,
        Err(StoreError::NotFound { entity: "user", id }) if id == missing
    ));
}

async fn the_last_admin_cannot_be_demoted_or_deactivated(store: &dyn Store) {
    let ann = store
        .create_user("ann@example.org", Role::Admin, "h")
        .await
        .unwrap();
    let cy = store
        .create_user("cy@example.org", Role::Agent, "h")
        .await
        .unwrap();
    let c = admin_ctx();
    for change in [
        UserChange {
            role: Some(Role::Agent),
            active: None,
        },
        UserChange {
            role: None,
            active: Some(false),
        },
    ] {
        match store.update_user(ann.id, change, &c).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("last active admin"), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.get_user(ann.id).await.unwrap().role, Role::Admin);
    assert!(store.list_audit(all()).await.unwrap().items.is_empty());
    // With a second admin, the first may step down.
    store
        .update_user(
            cy.id,
            UserChange {
                role: Some(Role::Admin),
                active: None,
            },
            &c,
        )
        .await
        .unwrap();
    let ann = store
        .update_user(
            ann.id,
            UserChange {
                role: Some(Role::Agent),
                active: None,
            },
            &c,
        )
        .await
        .unwrap();
    assert_eq!(ann.role, Role::Agent);
    // A deactivated admin does not count as one.
    let dee = store
        .create_user("dee@example.org", Role::Admin, "h")
        .await
        .unwrap();
    store
        .update_user(
            dee.id,
            UserChange {
                role: None,
                active: Some(false),
            },
            &c,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_user(
                cy.id,
                UserChange {
                    role: None,
                    active: Some(false)
                },
                &c
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn inviting_again_replaces_the_link_and_refuses_existing_users(store: &dyn Store) {
    let c = ctx(Actor::Token("ops".into()), "2001:db8::1");
    let now = Timestamp::now();
    let resent = store
        .invite_user(" Eve@Example.org", Role::Agent, &hash(1), in_hours(48), &c)
        .await
        .unwrap();
    assert!(!resent);
    assert_eq!(
        store.find_setup_token(&hash(1), now).await.unwrap(),
        Some((Some("eve@example.org".into()), Role::Agent))
    );
    let invites = store.list_invitations().await.unwrap();
    assert_eq!(invites.len(), 1);
    assert_eq!(
        (invites[0].email.as_str(), invites[0].role),
        ("eve@example.org", Role::Agent)
    );
    // Sent again: the first link stops working, the second works.
    let resent = store
        .invite_user("eve@example.org", Role::Agent, &hash(2), in_hours(48), &c)
        .await
        .unwrap();
    assert!(resent);
    assert_eq!(store.find_setup_token(&hash(1), now).await.unwrap(), None);
    assert!(
        store
            .find_setup_token(&hash(2), now)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.list_invitations().await.unwrap().len(), 1);
    let log = store.list_audit(all()).await.unwrap().items;
    let got: Vec<(&str, &str, &str, &str, Option<&str>)> = log
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.subject.as_str(),
                e.actor_kind.as_str(),
                e.actor.as_str(),
                e.client_addr.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                action::USER_INVITATION_RESENT,
                "eve@example.org",
                "token",
                "ops",
                Some("2001:db8::1")
            ),
            (
                action::USER_INVITED,
                "eve@example.org",
                "token",
                "ops",
                Some("2001:db8::1")
            ),
        ]
    );
    // Taken: no longer an invitation. An existing user cannot be invited.
    store.take_setup_token(&hash(2), now).await.unwrap();
    assert!(store.list_invitations().await.unwrap().is_empty());
    store
        .create_user("eve@example.org", Role::Agent, "h")
        .await
        .unwrap();
    match store
        .invite_user("eve@example.org", Role::Admin, &hash(3), in_hours(1), &c)
        .await
    {
        Err(StoreError::Conflict(m)) => assert!(m.contains("already has an account"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.find_setup_token(&hash(3), now).await.unwrap(), None);
    assert_eq!(store.list_audit(all()).await.unwrap().items.len(), 2);
}

async fn tokens_are_listed_with_their_last_use_and_revoked_at_once(store: &dyn Store) {
    let c = admin_ctx();
    let token = store
        .create_token_audited(
            &NewToken {
                name: "deploy".into(),
                role: Role::Agent,
                hash_hex: hash(7),
            },
            &c,
        )
        .await
        .unwrap();
    let listed = store.list_tokens(all()).await.unwrap().items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "deploy");
    assert_eq!(listed[0].last_used_at, None);

    // A use is recorded; another within the minute is not written again; one later is.
    let t0 = Timestamp::now();
    let used = store.use_token(&hash(7), t0).await.unwrap().expect("known");
    assert_eq!(used.id, token.id);
    let first = store.list_tokens(all()).await.unwrap().items[0].last_used_at;
    assert_eq!(first.map(|t| t.as_microsecond()), Some(t0.as_microsecond()));
    let t1 = t0.checked_add(SignedDuration::from_secs(30)).unwrap();
    store.use_token(&hash(7), t1).await.unwrap().expect("known");
    assert_eq!(
        store.list_tokens(all()).await.unwrap().items[0].last_used_at,
        first
    );
    let t2 = t0.checked_add(SignedDuration::from_secs(61)).unwrap();
    store.use_token(&hash(7), t2).await.unwrap().expect("known");
    assert_eq!(
        store.list_tokens(all()).await.unwrap().items[0]
            .last_used_at
            .map(|t| t.as_microsecond()),
        Some(t2.as_microsecond())
    );
    assert!(store.use_token(&hash(8), t2).await.unwrap().is_none());

    let revoked = store.revoke_token(token.id, &c).await.unwrap();
    assert_eq!(revoked.name, "deploy");
    assert!(store.use_token(&hash(7), t2).await.unwrap().is_none());
    assert!(store.find_token(&hash(7)).await.unwrap().is_none());
    assert!(store.list_tokens(all()).await.unwrap().items.is_empty());
    assert!(matches!(
        store.revoke_token(token.id, &c).await,
        Err(StoreError::NotFound {
            entity: "token",
            ..
        })
    ));
    let log: Vec<(String, String, String)> = store
        .list_audit(all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.action, e.subject, e.detail))
        .collect();
    assert_eq!(
        log,
        [
            (
                "token.revoked".to_string(),
                "deploy".to_string(),
                "role: agent".to_string()
            ),
            (
                "token.created".to_string(),
                "deploy".to_string(),
                "role: agent".to_string()
            ),
        ]
    );
}

async fn opt_outs_added_and_removed_are_audited_with_their_reason(store: &dyn Store) {
    let c = ctx(Actor::User("ann@example.org".into()), "198.51.100.4");
    assert!(
        store
            .add_suppression_audited("+14155550111", None, "asked by phone", &c)
            .await
            .unwrap()
    );
    // Already there: nothing new, nothing audited.
    assert!(
        !store
            .add_suppression_audited("+14155550111", None, "again", &c)
            .await
            .unwrap()
    );
    let listed = store
        .list_suppressions(Some("+14155550111"), all())
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason, "asked by phone");
    assert_eq!(listed[0].added_by.as_deref(), Some("ann@example.org"));
    // One that came from elsewhere (a STOP) says nobody.
    store
        .add_suppression("+14155550112", None, "STOP")
        .await
        .unwrap();
    let stop = store
        .list_suppressions(Some("+14155550112"), all())
        .await
        .unwrap()
        .items;
    assert_eq!(stop[0].added_by, None);
    let gone = store
        .delete_suppression_audited(listed[0].id, &c)
        .await
        .unwrap();
    assert_eq!(gone.address, "+14155550111");
    assert!(
        store
            .list_suppressions(Some("+14155550111"), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        store.delete_suppression_audited(gone.id, &c).await,
        Err(StoreError::NotFound {
            entity: "suppression",
            ..
        })
    ));
    let log: Vec<String> = store
        .list_audit(all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            format!(
                "{} {} {} by {} from {}",
                e.action,
                e.subject,
                e.detail,
                e.actor,
                e.client_addr.unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        log,
        [
            "suppression.removed +14155550111 asked by phone (every sender) by ann@example.org from 198.51.100.4",
            "suppression.added +14155550111 asked by phone (every sender) by ann@example.org from 198.51.100.4",
        ]
    );
}

async fn the_audit_log_pages_newest_first(store: &dyn Store) {
    let cli = AuditContext {
        actor: Actor::Cli,
        client_addr: None,
        at: Timestamp::now(),
    };
    for i in 0..5 {
        store
            .record_audit(&cli, "user.invited", &format!("u{i}@example.org"), "")
            .await
            .unwrap();
    }
    let first = store
        .list_audit(Page::new(Some(2), None).unwrap())
        .await
        .unwrap();
    let subjects: Vec<&str> = first.items.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["u4@example.org", "u3@example.org"]);
    assert_eq!(first.items[0].actor_kind, "cli");
    assert_eq!(first.items[0].client_addr, None);
    let rest = store
        .list_audit(Page::new(Some(10), first.next_after).unwrap())
        .await
        .unwrap();
    let subjects: Vec<&str> = rest.items.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["u2@example.org", "u1@example.org", "u0@example.org"]
    );
    assert_eq!(rest.next_after, None);
}
