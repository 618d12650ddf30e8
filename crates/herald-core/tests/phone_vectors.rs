//! Herald reads phone numbers as Google's libphonenumber does.
//!
//! The oracle is `tests/data/phone_vectors.tsv`, written by `scripts/phone_vectors.py` from
//! libphonenumber's own metadata and code (the maintained Python port `phonenumbers`, at the
//! metadata version of the `phonenumber` crate Herald takes its numbering plans from): every
//! region's example numbers of every type, in the shapes people write them, each with the E.164
//! form libphonenumber reads or `invalid`. Both ways into `E164::parse` — the fast one for
//! common shapes and the general one for everything — must give exactly that.

use herald_core::E164;

struct Vector {
    line: usize,
    input: String,
    region: Option<String>,
    want: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/phone_vectors.tsv");
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(input), Some(region), Some(want), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            panic!(
                "line {}: not three tab-separated fields: {line:?}",
                index + 1
            );
        };
        out.push(Vector {
            line: index + 1,
            input: input.to_owned(),
            region: (!region.is_empty()).then(|| region.to_owned()),
            want: (want != "invalid").then(|| want.to_owned()),
        });
    }
    out
}

fn check(
    name: &str,
    read: impl Fn(&str, Option<&str>) -> Option<Option<String>>,
) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for v in vectors() {
        let Some(got) = read(&v.input, v.region.as_deref()) else {
            continue;
        };
        checked += 1;
        if got != v.want {
            wrong.push(format!(
                "{name}: line {}: {:?} (region {:?}): libphonenumber {:?}, Herald {:?}",
                v.line, v.input, v.region, v.want, got
            ));
        }
    }
    (checked, wrong)
}

fn assert_all_agree(name: &str, checked: usize, wrong: &[String], at_least: usize) {
    assert!(
        checked >= at_least,
        "{name}: only {checked} vectors took this path (expected at least {at_least})"
    );
    assert!(
        wrong.is_empty(),
        "{} of {checked} vectors disagree with libphonenumber, first ones:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_vector_file_covers_every_region_in_thousands_of_shapes() {
    let all = vectors();
    assert!(all.len() > 20_000, "{} vectors", all.len());
    let valid = all.iter().filter(|v| v.want.is_some()).count();
    assert!(valid > 15_000 && all.len() - valid > 1_000);
    // A number of every calling code libphonenumber knows, e.g. +1, +49, +86, +800, +979.
    for code in [
        "+1", "+49", "+86", "+55", "+39", "+7", "+800", "+979", "+247", "+995",
    ] {
        assert!(
            all.iter()
                .any(|v| v.want.as_deref().is_some_and(|w| w.starts_with(code))),
            "no vector for {code}"
        );
    }
}

#[test]
fn parse_agrees_with_libphonenumber_on_every_vector() {
    let (checked, wrong) = check("parse", |input, region| {
        Some(
            E164::parse(input, region)
                .ok()
                .map(|n| n.as_str().to_owned()),
        )
    });
    assert_all_agree("parse", checked, &wrong, 20_000);
}

#[test]
fn the_fast_path_agrees_with_libphonenumber_on_every_vector_it_takes() {
    let (checked, wrong) = check("fast", |input, region| {
        E164::parse_fast_only(input, region).map(|r| r.ok().map(|n| n.as_str().to_owned()))
    });
    // Every shape but the unusual ones (extensions, tel: URIs, full-width digits, text around
    // the number) takes the fast path.
    assert_all_agree("fast", checked, &wrong, 18_000);
}

#[test]
fn the_general_path_agrees_with_libphonenumber_on_every_vector() {
    let (checked, wrong) = check("general", |input, region| {
        Some(
            E164::parse_general(input, region)
                .ok()
                .map(|n| n.as_str().to_owned()),
        )
    });
    assert_all_agree("general", checked, &wrong, 20_000);
}

#[test]
fn the_numbers_of_the_bug_report_are_their_own_numbers_with_region_us() {
    for (input, want) in [
        ("+49 1512 3456789", "+4915123456789"),
        ("+86 139 1234 5678", "+8613912345678"),
        ("+55 11 91234 5678", "+5511912345678"),
        ("+39 391 231 2312", "+393912312312"),
    ] {
        assert_eq!(E164::parse(input, Some("US")).unwrap().as_str(), want);
        assert_eq!(E164::parse(input, Some("us")).unwrap().as_str(), want);
        assert_eq!(E164::parse(input, None).unwrap().as_str(), want);
    }
}
