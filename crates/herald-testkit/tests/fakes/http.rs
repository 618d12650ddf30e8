use crate::common::raw_http;
use herald_testkit::{FakeHttp, Reply};
use std::time::{Duration, Instant};

#[test]
fn queued_replies_then_the_default_and_every_request_recorded() {
    let fake = FakeHttp::start(Reply::new(200, r#"{"ok":true}"#));
    fake.then(Reply::new(503, "busy").header("retry-after", "2"));
    fake.then(Reply::new(201, "{}").delayed(Duration::from_millis(200)));

    let (status, headers, body) = raw_http(fake.addr(), "POST", "/send?x=1", &[], "a=1&b=2");
    assert_eq!((status, body.as_str()), (503, "busy"));
    assert!(headers.contains(&("retry-after".to_string(), "2".to_string())));
    let started = Instant::now();
    let (status, _, _) = raw_http(fake.addr(), "PUT", "/other", &[("X-Test", "yes")], "{}");
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let (status, _, body) = raw_http(fake.addr(), "GET", "/", &[], "");
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/send");
    assert_eq!(requests[0].query.as_deref(), Some("x=1"));
    assert_eq!(
        requests[0].form(),
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string())
        ]
    );
    assert_eq!(requests[1].header("x-test").as_deref(), Some("yes"));
    assert_eq!(requests[1].json(), serde_json::json!({}));
    assert_eq!(fake.url("/send"), format!("{}/send", fake.base_url()));
}
