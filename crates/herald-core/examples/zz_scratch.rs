use minijinja::value::Value;
use std::hint::black_box;
use std::time::Instant;
fn m(name: &str, n: u32, mut f: impl FnMut()) {
    let mut best = f64::INFINITY;
    for _ in 0..5 { let s = Instant::now(); for _ in 0..n { f(); } best = best.min(s.elapsed().as_nanos() as f64 / n as f64); }
    println!("{name:<40} {best:>8.0} ns");
}
fn main() {
    let body = "Hi {{ first_name }}, your order {{ order_id }} ships {{ day }}. Questions? Reply to this text. Reply STOP to opt out.";
    let mut env = herald_core::template::environment();
    env.add_template("b", body).unwrap();
    env.add_template("x", "x").unwrap();
    let mut env2 = minijinja::Environment::new();
    env2.add_template("b", body).unwrap();
    let ctx = Value::from_pairs([("first_name", "Jane"), ("order_id", "A-1"), ("day", "Tuesday")]);
    m("trivial template", 200000, || { black_box(env.get_template("x").unwrap().render(&ctx).unwrap()); });
    m("body, prebuilt ctx", 200000, || { black_box(env.get_template("b").unwrap().render(&ctx).unwrap()); });
    m("body, no fuel/strict env", 200000, || { black_box(env2.get_template("b").unwrap().render(&ctx).unwrap()); });
    m("ctx build from_pairs", 200000, || { black_box(Value::from_pairs([("first_name", "Jane"), ("order_id", "A-1"), ("day", "Tuesday")])); });
    m("json -> Value", 200000, || { black_box(serde_json::from_str::<Value>(r#"{"first_name":"Jane0","order_id":"A-0","day":"Tuesday","city":"Berlin"}"#).unwrap()); });
}
