//! Telling a reply from the original it quotes.

/// The reply without the quoted original it ends with.
///
/// The text is cut at the first of:
/// - an attribution line such as Gmail's / Apple Mail's `On <date>, <name> wrote:` (also
///   when wrapped over up to three lines, and its French, German, Spanish, Dutch,
///   Italian, Portuguese and Scandinavian forms);
/// - an Outlook separator: `-----Original Message-----`, a line of underscores followed
///   by a `From:` line, or a `From:` / `Sent:` (or `Date:`) / `To:` (or `Subject:`)
///   header block;
/// - a block of `>`-quoted lines (blank lines allowed) that ends the message, together
///   with an attribution-looking line just before it (one ending in `:` that mentions
///   an address or "wrote").
///
/// Quotes followed by more of the customer's own text (inline answers) are kept.
/// The result is trimmed; if nothing would remain, the whole text is returned trimmed.
pub fn reply_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = (0..lines.len())
        .find(|&i| is_separator(&lines, i))
        .unwrap_or(lines.len());

    // A quoted block that ends what is left.
    let mut start = cut;
    while start > 0 && (is_blank(lines[start - 1]) || is_quoted(lines[start - 1])) {
        start -= 1;
    }
    if lines[start..cut].iter().any(|l| is_quoted(l)) {
        cut = start;
        // ... and the attribution that introduces it, if it looks like one.
        if let Some(prev) = (0..cut).rev().find(|&i| !is_blank(lines[i])) {
            let line = lines[prev].trim();
            let lower = line.to_lowercase();
            if line.ends_with(':') && (line.contains('@') || lower.contains("wrote")) {
                cut = prev;
            }
        }
    }

    let reply = lines[..cut].join("\n");
    let reply = reply.trim();
    if reply.is_empty() {
        text.trim().to_owned()
    } else {
        reply.to_owned()
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// Whether the quoted original starts at `lines[i]`.
fn is_separator(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    if line.is_empty() {
        return false;
    }
    is_original_message(line)
        || is_attribution(lines, i)
        || is_outlook_rule(lines, i)
        || is_header_block(lines, i)
}

/// `-----Original Message-----` and its variants (`----- Original Message -----`).
fn is_original_message(line: &str) -> bool {
    let lower = line.to_lowercase();
    line.starts_with("---")
        && line.ends_with("---")
        && lower.trim_matches(|c: char| c == '-' || c.is_whitespace()) == "original message"
}

/// (first word, word the line must contain) of attribution lines, by language.
const ATTRIBUTIONS: &[(&str, &str)] = &[
    ("On ", "wrote"),
    ("Le ", "écrit"),
    ("Am ", "schrieb"),
    ("El ", "escribió"),
    ("Op ", "schreef"),
    ("Il ", "scritto"),
    ("Em ", "escreveu"),
    ("Den ", "skrev"),
    ("Dne ", "napsal"),
];

/// `On Mon, 3 Mar 2025 at 10:00, Jane <jane@example.com> wrote:` — possibly wrapped
/// over up to three lines.
fn is_attribution(lines: &[&str], i: usize) -> bool {
    let first = lines[i].trim();
    let Some((_, keyword)) = ATTRIBUTIONS
        .iter()
        .find(|(start, _)| first.starts_with(start))
    else {
        return false;
    };
    let mut joined = String::new();
    for line in lines.iter().skip(i).take(3) {
        let line = line.trim();
        if line.is_empty() || (!joined.is_empty() && is_quoted(line)) {
            break;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(line);
        if joined.len() > 400 {
            return false;
        }
        if joined.ends_with(':') {
            return joined.to_lowercase().contains(keyword);
        }
    }
    false
}

fn strip_emphasis(line: &str) -> &str {
    line.trim().trim_start_matches('*').trim()
}

fn header_line(line: &str, names: &[&str]) -> bool {
    let line = strip_emphasis(line).to_lowercase();
    names.iter().any(|name| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start_matches('*').starts_with(':'))
    })
}

/// Outlook's `________________________________` rule above a `From:` line.
fn is_outlook_rule(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    line.len() >= 10
        && line.chars().all(|c| c == '_')
        && lines[i + 1..]
            .iter()
            .find(|l| !is_blank(l))
            .is_some_and(|next| header_line(next, &["from"]))
}

/// Outlook's quoted header block: `From:` then, within the next lines, `Sent:`/`Date:`
/// and `To:`/`Subject:`.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    if !header_line(lines[i], &["from"]) {
        return false;
    }
    let next = &lines[i + 1..(i + 5).min(lines.len())];
    next.iter().any(|l| header_line(l, &["sent", "date"]))
        && next.iter().any(|l| header_line(l, &["to", "subject"]))
}

#[cfg(test)]
mod tests {
    use super::reply_text;

    #[test]
    fn gmail_attribution() {
        let text = "Tuesday at 3 works for me.\n\nThanks,\nJane\n\n\
            On Mon, Mar 3, 2025 at 10:00 AM Herald <support@example.com> wrote:\n\n\
            > Hi Jane, when can we call?\n> Herald";
        assert_eq!(
            reply_text(text),
            "Tuesday at 3 works for me.\n\nThanks,\nJane"
        );
    }

    #[test]
    fn gmail_attribution_wrapped_over_two_lines() {
        let text = "Yes please.\n\nOn Mon, Mar 3, 2025 at 10:00 AM Herald Outreach Team <\nsupport@example.com> wrote:\n\nOriginal text without quote marks";
        assert_eq!(reply_text(text), "Yes please.");
    }

    #[test]
    fn other_languages() {
        let fr = "Oui.\n\nLe lun. 3 mars 2025 à 10:00, Herald <support@example.com> a écrit :\n> Bonjour";
        assert_eq!(reply_text(fr), "Oui.");
        let de = "Ja.\n\nAm Mo., 3. März 2025 um 10:00 Uhr schrieb Herald <support@example.com>:\n> Hallo";
        assert_eq!(reply_text(de), "Ja.");
    }

    #[test]
    fn outlook_original_message() {
        let text = "Please call me tomorrow.\r\n\r\n-----Original Message-----\r\nFrom: Herald <support@example.com>\r\nSent: Monday, March 3, 2025 10:00 AM\r\nTo: Jane\r\nSubject: Your appointment\r\n\r\nHi Jane";
        assert_eq!(reply_text(text), "Please call me tomorrow.");
        let spaced = "Ok\n----- Original Message -----\nFrom: x";
        assert_eq!(reply_text(spaced), "Ok");
    }

    #[test]
    fn outlook_rule_and_header_block() {
        let rule = "Sure.\n\n________________________________\nFrom: Herald <support@example.com>\nSent: Monday\nTo: Jane\nSubject: Hi\n\nHi Jane";
        assert_eq!(reply_text(rule), "Sure.");
        let block = "Sure thing.\n\n*From:* Herald <support@example.com>\n*Sent:* Monday, March 3, 2025\n*To:* Jane\n*Subject:* Hi\n\nHi Jane";
        assert_eq!(reply_text(block), "Sure thing.");
        // A lone "From:" line in the customer's text is not a header block.
        let lone = "From: the team at ACME\nWe agree.";
        assert_eq!(reply_text(lone), lone);
    }

    #[test]
    fn trailing_quoted_block() {
        let text = "Sounds good.\n\n> When can we call?\n>\n> Herald\n";
        assert_eq!(reply_text(text), "Sounds good.");
        // An unrecognised attribution just before the quote goes with it.
        let text =
            "Sounds good.\n\n2025-03-03 10:00 GMT+01:00 support@example.com:\n> When can we call?";
        assert_eq!(reply_text(text), "Sounds good.");
    }

    #[test]
    fn inline_answers_are_kept() {
        let text = "> Can you do Tuesday?\nYes.\n> And Wednesday?\nNo.";
        assert_eq!(reply_text(text), text);
        // Only the final quoted block goes.
        let text = "> Can you do Tuesday?\nYes.\n\n> Best,\n> Herald";
        assert_eq!(reply_text(text), "> Can you do Tuesday?\nYes.");
    }

    #[test]
    fn falls_back_to_whole_text_when_all_quoted() {
        let text = "  > only a quote\n> nothing else\n";
        assert_eq!(reply_text(text), "> only a quote\n> nothing else");
        assert_eq!(reply_text(""), "");
        assert_eq!(
            reply_text("On Mon, Herald wrote:\n> x"),
            "On Mon, Herald wrote:\n> x"
        );
    }

    #[test]
    fn plain_text_without_quotes_is_unchanged() {
        let text = "On Monday I will be away.\nCall me on Tuesday: 555-0100.";
        assert_eq!(reply_text(text), text);
    }
}
