//! The fast path of `E164::parse` (src/phone_fast.rs) must give exactly what the `phonenumber`
//! crate gives (`E164::parse_reference`): same value, same error variant.

use herald_core::E164;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use proptest::prelude::*;

const REGIONS: &[&str] = &[
    "US", "CA", "GB", "DE", "FR", "IT", "ES", "NL", "BR", "MX", "IN", "CN", "JP", "AU", "NZ", "ZA",
    "NG", "RU", "AR", "CH", "AT", "BE", "SE", "NO", "DK", "PL", "IE", "SG", "HK", "AE",
];

fn check(input: &str, region: Option<&str>) -> Result<(), TestCaseError> {
    let fast = E164::parse(input, region);
    let slow = E164::parse_reference(input, region);
    prop_assert_eq!(
        &fast,
        &slow,
        "input {:?} region {:?} (fast path: {:?})",
        input,
        region,
        E164::parse_fast_only(input, region)
    );
    Ok(())
}

fn descriptors(meta: &Metadata) -> Vec<&Descriptor> {
    let d = meta.descriptors();
    [
        Some(d.general()),
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// (country code, national prefix, example national numbers) of every metadata entry.
fn metadata() -> Vec<(String, u16, Option<String>, Vec<String>)> {
    // Every entry, including all the non-geographic "001" ones (`Database::iter` keeps one).
    let mut all: Vec<_> = (1..=999u16)
        .filter_map(|code| DATABASE.by_code(&code))
        .flatten()
        .map(|m| {
            let examples = descriptors(m)
                .into_iter()
                .filter_map(|d| d.example().map(str::to_owned))
                .collect();
            (
                m.id().to_owned(),
                m.country_code(),
                m.national_prefix().map(str::to_owned),
                examples,
            )
        })
        .collect();
    all.sort();
    all
}

/// A tiny deterministic generator, so one proptest seed describes one whole input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Writes digits as people do: groups split by separators, maybe an area code in parentheses.
fn render(rng: &mut Rng, digits: &str) -> String {
    const SEPS: &[&str] = &[" ", "-", ".", "", " ", "-", "  ", " - ", "/", ")", "("];
    let style = rng.below(4);
    let sep = *rng.pick(SEPS);
    let mut out = String::new();
    let mut i = 0;
    let chars: Vec<char> = digits.chars().collect();
    let mut first = true;
    while i < chars.len() {
        let len = 1 + rng.below(4);
        let group: String = chars[i..(i + len).min(chars.len())].iter().collect();
        i += len;
        if first && style == 1 {
            out.push('(');
            out.push_str(&group);
            out.push_str(if rng.chance(50) { ") " } else { ")" });
        } else {
            if !first {
                let between = match style {
                    0 => "",
                    3 => *rng.pick(SEPS),
                    _ => sep,
                };
                out.push_str(between);
            }
            out.push_str(&group);
        }
        first = false;
    }
    out
}

/// Occasional noise: characters the fast path must refuse or handle exactly as the original.
fn garnish(rng: &mut Rng, s: String) -> String {
    const NOISE: &[&str] = &[
        " ext. 12", " x123", ";ext=5", "#", "*", "a", "tel:", " ", "(", ")", "-", ".", "+",
        "\u{FF11}", "٣", "\u{00A0}", "/", ",", "ABC", "00",
    ];
    if !rng.chance(8) {
        return s;
    }
    let noise = *rng.pick(NOISE);
    match rng.below(3) {
        0 => format!("{noise}{s}"),
        1 => format!("{s}{noise}"),
        _ => {
            let mut at = rng.below(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{noise}{}", &s[..at], &s[at..])
        }
    }
}

fn generate(
    seed: u64,
    meta: &[(String, u16, Option<String>, Vec<String>)],
) -> (String, Option<String>) {
    let mut rng = Rng(seed);
    let region = if rng.chance(25) {
        None
    } else {
        Some((*rng.pick(REGIONS)).to_owned())
    };
    // The number's own country: often the default region, sometimes any entry of the metadata.
    let own = match &region {
        Some(r) if rng.chance(60) => meta.iter().find(|m| &m.0 == r).unwrap_or(&meta[0]),
        _ => rng.pick(meta),
    };
    let (_, code, national_prefix, examples) = own;
    // A national number: an example with its tail rewritten (mostly valid), or random digits.
    let national = if !examples.is_empty() && rng.chance(75) {
        let example = rng.pick(examples).clone();
        let keep = example.len().saturating_sub(rng.below(5));
        let mut n = example[..keep].to_owned();
        n.push_str(&rng.digits(example.len() - keep));
        match rng.below(10) {
            0 => n.push_str(&rng.digits(1)),
            1 => {
                n.pop();
            }
            _ => {}
        }
        n
    } else {
        let len = 2 + rng.below(14);
        rng.digits(len)
    };
    let input = match rng.below(10) {
        // +CC national
        0..=3 => {
            let cc = code.to_string();
            let body = if rng.chance(50) {
                format!("{cc} {}", render(&mut rng, &national))
            } else {
                render(&mut rng, &format!("{cc}{national}"))
            };
            format!("+{body}")
        }
        // 00 CC national
        4 => format!("00{} {}", code, render(&mut rng, &national)),
        // national with the trunk prefix
        5..=6 => {
            let np = national_prefix.clone().unwrap_or_default();
            render(&mut rng, &format!("{np}{national}"))
        }
        // national without the trunk prefix
        7 => render(&mut rng, &national),
        // CC national without +
        8 => render(&mut rng, &format!("{code}{national}")),
        // +CC with a (0) written in
        _ => format!("+{code} (0){}", render(&mut rng, &national)),
    };
    (garnish(&mut rng, input), region)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn fast_path_equals_phonenumber(seed in any::<u64>()) {
        thread_local! {
            static META: Vec<(String, u16, Option<String>, Vec<String>)> = metadata();
        }
        let (input, region) = META.with(|m| generate(seed, m));
        check(&input, region.as_deref())?;
    }

    #[test]
    fn fast_path_equals_phonenumber_on_any_ascii(
        input in "[0-9 +()./x#*a-z-]{0,20}",
        region in prop::option::of(prop::sample::select(REGIONS)),
    ) {
        check(&input, region)?;
    }
}

/// Every example number of the metadata, written in E.164, international and national formats
/// and with the trunk prefix, read with and without a default region.
#[test]
fn metadata_examples_agree() {
    let mut inputs: Vec<(String, Option<String>)> = Vec::new();
    for (id, code, national_prefix, examples) in metadata() {
        let region = id
            .parse::<phonenumber::country::Id>()
            .ok()
            .map(|_| id.clone());
        for example in examples {
            let e164 = format!("+{code}{example}");
            inputs.push((e164.clone(), None));
            inputs.push((format!("00{code}{example}"), None));
            if let Ok(number) = phonenumber::parse(None, &e164) {
                for mode in [
                    phonenumber::Mode::International,
                    phonenumber::Mode::National,
                ] {
                    let written = number.format().mode(mode).to_string();
                    inputs.push((written.clone(), None));
                    inputs.push((written.clone(), region.clone()));
                    inputs.push((written, Some("US".to_owned())));
                }
            }
            if let Some(region) = &region {
                inputs.push((e164.clone(), Some(region.clone())));
                inputs.push((example.clone(), Some(region.clone())));
                if let Some(np) = &national_prefix {
                    inputs.push((format!("{np}{example}"), Some(region.clone())));
                    inputs.push((format!("{np} {example}"), Some(region.clone())));
                }
            }
            for other in ["US", "GB", "DE"] {
                inputs.push((e164.clone(), Some(other.to_owned())));
            }
        }
    }
    let (mut fast, mut ok, mut mismatches) = (0usize, 0usize, Vec::new());
    for (input, region) in &inputs {
        let got = E164::parse(input, region.as_deref());
        let want = E164::parse_reference(input, region.as_deref());
        if E164::parse_fast_only(input, region.as_deref()).is_some() {
            fast += 1;
        }
        if want.is_ok() {
            ok += 1;
        }
        if got != want {
            mismatches.push(format!(
                "{input:?} {region:?}: fast {got:?}, phonenumber {want:?}"
            ));
        }
    }
    println!(
        "{} inputs, {ok} valid, {fast} answered by the fast path, {} mismatches",
        inputs.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(40)].join("\n")
    );
    assert!(
        fast * 10 >= inputs.len() * 7,
        "the fast path answered only {fast} of {}",
        inputs.len()
    );
}

#[test]
fn common_shapes_take_the_fast_path() {
    for (input, region, want) in [
        ("+1 (415) 555-2671", None, "+14155552671"),
        ("+14155552671", None, "+14155552671"),
        ("(415) 555-2671", Some("US"), "+14155552671"),
        ("415.555.2671", Some("US"), "+14155552671"),
        ("1-415-555-2671", Some("US"), "+14155552671"),
        ("+1 415 555 2671", Some("US"), "+14155552671"),
        ("030 901820", Some("DE"), "+4930901820"),
        ("+49 30 901820", Some("DE"), "+4930901820"),
        ("0044 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", Some("GB"), "+442079460958"),
        ("+44 7911 123456", Some("US"), "+447911123456"),
        ("06 12 34 56 78", Some("FR"), "+33612345678"),
    ] {
        let fast = E164::parse_fast_only(input, region)
            .unwrap_or_else(|| panic!("{input:?} fell back"))
            .map(|n| n.as_str().to_owned());
        assert_eq!(fast.as_deref(), Ok(want), "{input:?} {region:?}");
        assert_eq!(
            E164::parse_reference(input, region).map(|n| n.as_str().to_owned()),
            Ok(want.to_owned())
        );
    }
}
