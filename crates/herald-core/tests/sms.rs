//! SMS encoding and segment counts at every boundary: 160/161 and 153·k GSM-7 septets, 70/71 and
//! 67·k UCS-2 code units, an extension character or an emoji that would straddle two parts, plus
//! properties checked against a reference splitter that builds the parts.

use herald_core::sms::{
    GSM7_PART, GSM7_SINGLE, SmsEncoding, SmsInfo, UCS2_PART, UCS2_SINGLE, analyze, gsm7_septets,
};

fn rep(s: &str, n: usize) -> String {
    s.repeat(n)
}

fn info(encoding: SmsEncoding, segments: u32, units: u32) -> SmsInfo {
    SmsInfo {
        encoding,
        segments,
        units,
    }
}

use SmsEncoding::{Gsm7, Ucs2};

/// A Cyrillic letter: one UTF-16 unit, not in GSM-7.
const ZHE: &str = "ж";

#[test]
fn empty_body_is_one_gsm7_segment() {
    assert_eq!(analyze(""), info(Gsm7, 1, 0));
}

#[test]
fn gsm7_single_boundary() {
    assert_eq!(analyze(&rep("a", 160)), info(Gsm7, 1, 160));
    assert_eq!(analyze(&rep("a", 161)), info(Gsm7, 2, 161));
    assert_eq!(analyze(&rep("a", 1)), info(Gsm7, 1, 1));
}

#[test]
fn gsm7_concatenated_boundaries() {
    assert_eq!(analyze(&rep("a", 306)), info(Gsm7, 2, 306));
    assert_eq!(analyze(&rep("a", 307)), info(Gsm7, 3, 307));
    assert_eq!(analyze(&rep("a", 153 * 3)), info(Gsm7, 3, 459));
    assert_eq!(analyze(&rep("a", 153 * 3 + 1)), info(Gsm7, 4, 460));
}

#[test]
fn extension_characters_count_two_septets() {
    for c in ["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\u{0C}"] {
        assert_eq!(analyze(c), info(Gsm7, 1, 2), "{c:?}");
    }
    // 158 + 2 = 160 fits; 159 + 2 = 161 does not.
    assert_eq!(analyze(&format!("{}€", rep("a", 158))), info(Gsm7, 1, 160));
    assert_eq!(analyze(&format!("{}€", rep("a", 159))), info(Gsm7, 2, 161));
    assert_eq!(analyze(&rep("€", 80)), info(Gsm7, 1, 160));
    assert_eq!(analyze(&rep("€", 81)), info(Gsm7, 2, 162));
}

#[test]
fn an_escape_pair_is_not_split_across_parts() {
    // 152 septets, then € (2) would end at 154 > 153: it moves whole to part 2.
    let fits = format!("{}€{}", rep("a", 152), rep("a", 151));
    assert_eq!(analyze(&fits), info(Gsm7, 2, 305));
    // 306 septets = 2 × 153, but one septet of part 1 stays empty: three parts.
    let straddles = format!("{}€{}", rep("a", 152), rep("a", 152));
    assert_eq!(analyze(&straddles), info(Gsm7, 3, 306));
    // The pair ending exactly at the part boundary is fine.
    let ends_on_boundary = format!("{}€{}", rep("a", 151), rep("a", 153));
    assert_eq!(analyze(&ends_on_boundary), info(Gsm7, 2, 306));
    // All-extension bodies: 76 pairs (152 septets) a part.
    assert_eq!(analyze(&rep("{", 152)), info(Gsm7, 2, 304));
    assert_eq!(analyze(&rep("{", 153)), info(Gsm7, 3, 306));
}

#[test]
fn ucs2_single_boundary() {
    assert_eq!(analyze(&rep(ZHE, 70)), info(Ucs2, 1, 70));
    assert_eq!(analyze(&rep(ZHE, 71)), info(Ucs2, 2, 71));
}

#[test]
fn ucs2_concatenated_boundaries() {
    assert_eq!(analyze(&rep(ZHE, 134)), info(Ucs2, 2, 134));
    assert_eq!(analyze(&rep(ZHE, 135)), info(Ucs2, 3, 135));
    assert_eq!(analyze(&rep(ZHE, 67 * 3)), info(Ucs2, 3, 201));
    assert_eq!(analyze(&rep(ZHE, 67 * 3 + 1)), info(Ucs2, 4, 202));
}

#[test]
fn one_non_gsm_character_switches_the_whole_body_to_ucs2() {
    // 160 GSM characters fit one SMS; add a curly apostrophe and it takes three.
    let plain = rep("a", 159);
    assert_eq!(analyze(&format!("{plain}'")), info(Gsm7, 1, 160));
    assert_eq!(analyze(&format!("{plain}’")), info(Ucs2, 3, 160));
    // In UCS-2 an extension character is one unit like any other.
    assert_eq!(analyze("€ж"), info(Ucs2, 1, 2));
    // Characters near GSM ones that are not in it.
    for c in ["ç", "À", "`", "\t", "Ω\u{0301}", "\u{2126}"] {
        assert_eq!(analyze(c).encoding, Ucs2, "{c:?}");
    }
}

#[test]
fn emoji_count_two_units() {
    assert_eq!(analyze("😀"), info(Ucs2, 1, 2));
    assert_eq!(analyze("hello 😀"), info(Ucs2, 1, 8));
    // A family emoji: 4 people + 3 zero-width joiners = 11 code units.
    assert_eq!(analyze("👨‍👩‍👧‍👦"), info(Ucs2, 1, 11));
    assert_eq!(analyze(&format!("{}😀", rep(ZHE, 68))), info(Ucs2, 1, 70));
    assert_eq!(analyze(&format!("{}😀", rep(ZHE, 69))), info(Ucs2, 2, 71));
    assert_eq!(analyze(&rep("😀", 35)), info(Ucs2, 1, 70));
    assert_eq!(analyze(&rep("😀", 36)), info(Ucs2, 2, 72));
}

#[test]
fn a_surrogate_pair_is_not_split_across_parts() {
    let fits = format!("{}😀{}", rep(ZHE, 66), rep(ZHE, 65));
    assert_eq!(analyze(&fits), info(Ucs2, 2, 133));
    // 134 units = 2 × 67, but the emoji cannot start at unit 67 of part 1.
    let straddles = format!("{}😀{}", rep(ZHE, 66), rep(ZHE, 66));
    assert_eq!(analyze(&straddles), info(Ucs2, 3, 134));
    let ends_on_boundary = format!("{}😀{}", rep(ZHE, 65), rep(ZHE, 67));
    assert_eq!(analyze(&ends_on_boundary), info(Ucs2, 2, 134));
    // All-emoji: 33 (66 units) a part.
    assert_eq!(analyze(&rep("😀", 66)), info(Ucs2, 2, 132));
    assert_eq!(analyze(&rep("😀", 67)), info(Ucs2, 3, 134));
}

#[test]
fn line_breaks_and_accents_in_the_basic_set() {
    assert_eq!(analyze("a\r\nb"), info(Gsm7, 1, 4));
    assert_eq!(analyze("Grüße aus München, Ñandú, ¿qué?"), {
        let n = "Grüße aus München, Ñandú, ¿qué?".chars().count() as u32;
        // `ú` is not in GSM-7.
        info(Ucs2, 1, n)
    });
    assert_eq!(analyze("Grüße aus München, ¿Qué tal? £5 §3"), {
        let n = "Grüße aus München, ¿Qué tal? £5 §3".chars().count() as u32;
        info(Gsm7, 1, n)
    });
}

/// Splits a body into parts the way a gateway does: whole characters, each part within capacity.
fn reference_parts(body: &str) -> (SmsEncoding, Vec<Vec<char>>) {
    let gsm = body.chars().all(|c| gsm7_septets(c).is_some());
    let (width, single, part): (Box<dyn Fn(char) -> u32>, u32, u32) = if gsm {
        (
            Box::new(|c| gsm7_septets(c).unwrap()),
            GSM7_SINGLE,
            GSM7_PART,
        )
    } else {
        (Box::new(|c| c.len_utf16() as u32), UCS2_SINGLE, UCS2_PART)
    };
    let total: u32 = body.chars().map(&width).sum();
    let encoding = if gsm { Gsm7 } else { Ucs2 };
    if total <= single {
        return (encoding, vec![body.chars().collect()]);
    }
    let mut parts: Vec<Vec<char>> = vec![Vec::new()];
    let mut used = 0;
    for c in body.chars() {
        let w = width(c);
        if used + w > part {
            parts.push(Vec::new());
            used = 0;
        }
        parts.last_mut().unwrap().push(c);
        used += w;
    }
    (encoding, parts)
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Bodies mixing plain GSM, extension characters, non-GSM BMP characters and emoji, long
    /// enough to cross several part boundaries.
    fn body() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            8 => prop::sample::select(vec!['a', 'Z', '0', ' ', '.', '\n', 'é', 'Ä', '£', 'Ω']),
            2 => prop::sample::select(vec!['€', '{', '}', '[', ']', '~', '^', '|', '\\', '\u{0C}']),
            1 => prop::sample::select(vec!['ж', '’', 'ç', '中', '\t']),
            1 => prop::sample::select(vec!['😀', '🎉', '𝄞']),
        ];
        let gsm_only = prop::collection::vec(
            prop::sample::select(vec!['a', 'b', ' ', '€', '{', '\n']),
            0..500,
        );
        prop_oneof![
            prop::collection::vec(ch, 0..500).prop_map(|v| v.into_iter().collect()),
            gsm_only.prop_map(|v| v.into_iter().collect()),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn agrees_with_a_reference_splitter(b in body()) {
            let got = analyze(&b);
            let (encoding, parts) = reference_parts(&b);
            prop_assert_eq!(got.encoding, encoding);
            prop_assert_eq!(got.segments as usize, parts.len());
            // The parts hold the whole body, in order.
            let joined: String = parts.iter().flatten().collect();
            prop_assert_eq!(&joined, &b);
        }

        #[test]
        fn units_and_encoding(b in body()) {
            let got = analyze(&b);
            if b.chars().all(|c| gsm7_septets(c).is_some()) {
                prop_assert_eq!(got.encoding, Gsm7);
                let septets: u32 = b.chars().map(|c| gsm7_septets(c).unwrap()).sum();
                prop_assert_eq!(got.units, septets);
            } else {
                prop_assert_eq!(got.encoding, Ucs2);
                prop_assert_eq!(got.units as usize, b.encode_utf16().count());
            }
        }

        #[test]
        fn one_segment_exactly_when_it_fits_a_single_message(b in body()) {
            let got = analyze(&b);
            prop_assert_eq!(got.segments == 1, got.units <= got.encoding.single_capacity());
        }

        #[test]
        fn segments_are_within_bounds(b in body()) {
            let got = analyze(&b);
            if got.segments > 1 {
                let part = got.encoding.part_capacity();
                // At least as many parts as the units need; at most one unit wasted a part.
                prop_assert!(got.segments >= got.units.div_ceil(part));
                prop_assert!(got.segments <= got.units.div_ceil(part - 1));
            }
        }

        #[test]
        fn segments_never_fall_as_the_body_grows(b in body(), extra in body()) {
            let mut prefix = String::new();
            let mut last = analyze("").segments;
            for c in b.chars().chain(extra.chars()).take(400) {
                prefix.push(c);
                let now = analyze(&prefix).segments;
                prop_assert!(now >= last, "{} then {} at {:?}", last, now, prefix);
                last = now;
            }
        }

        #[test]
        fn serializes_and_reads_back(b in body()) {
            let got = analyze(&b);
            let json = serde_json::to_string(&got).unwrap();
            let back: SmsInfo = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, got);
        }
    }
}
