//! From raw RFC 5322 bytes to a [`ReceivedMail`], with `mail-parser` doing the MIME work.

use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use crate::{
    ReceivedMail,
    auth::{MAX_RESULTS_BYTES, MAX_RESULTS_HEADERS},
    html::html_to_text,
    reply::reply_text,
};

/// Parses a raw message (headers and body, as received after `DATA`).
///
/// The envelope fields (`envelope_from`, `recipients`) are left empty and
/// `auto_submitted` looks at the headers only (a bounce is recognised by its empty
/// envelope sender, which only the server knows). Never fails: what cannot be parsed
/// is left empty, and bytes that are not a message at all end up in `text` as they are.
pub fn parse(raw: &[u8]) -> ReceivedMail {
    let mut mail = ReceivedMail {
        size: raw.len(),
        ..ReceivedMail::default()
    };
    match MessageParser::default().parse(raw) {
        Some(message) => fill(&mut mail, &message),
        None => mail.text = String::from_utf8_lossy(raw).trim().to_owned(),
    }
    mail.reply_text = reply_text(&mail.text);
    mail
}

fn fill(mail: &mut ReceivedMail, message: &Message<'_>) {
    mail.from = message
        .from()
        .and_then(|from| from.iter().find_map(|addr| addr.address()))
        .map(|addr| addr.trim().to_lowercase())
        .filter(|addr| !addr.is_empty());
    mail.multiple_from = message
        .from()
        .is_some_and(|from| from.iter().filter(|a| a.address().is_some()).count() > 1);
    mail.authentication_results = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .take(MAX_RESULTS_HEADERS)
        .map(|(_, value)| {
            let mut end = value.len().min(MAX_RESULTS_BYTES);
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value[..end].trim().to_owned()
        })
        .collect();
    mail.subject = message.subject().map(|s| s.trim().to_owned());
    mail.message_id = message.message_id().and_then(clean_id);
    mail.in_reply_to = ids(message.in_reply_to());
    mail.references = ids(message.references());
    mail.auto_submitted = is_automatic(message);
    mail.text = body_text(message);
}

/// The ids of an `In-Reply-To` / `References` header, without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => clean_id(id).into_iter().collect(),
        HeaderValue::TextList(ids) => ids.iter().filter_map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    }
}

fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Whether no person wrote this: RFC 3834 `Auto-Submitted`, the older auto-responder
/// markers, or a delivery / disposition report.
fn is_automatic(message: &Message<'_>) -> bool {
    let flagged = message.headers().iter().any(|header| {
        let name = header.name();
        let value = || {
            header
                .value()
                .as_text()
                .unwrap_or_default()
                .trim()
                .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        if name.eq_ignore_ascii_case("auto-submitted") {
            value() != "no"
        } else if name.eq_ignore_ascii_case("x-autoreply")
            || name.eq_ignore_ascii_case("x-autorespond")
        {
            !matches!(value().as_str(), "no" | "false" | "0")
        } else if name.eq_ignore_ascii_case("precedence") {
            matches!(value().as_str(), "bulk" | "junk" | "auto_reply")
        } else {
            false
        }
    });
    flagged
        || message.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
}

/// The message's readable text: its inline text/plain parts, else its HTML rendered.
fn body_text(message: &Message<'_>) -> String {
    let mut pieces: Vec<String> = message
        .text_bodies()
        .filter_map(|part| match &part.body {
            PartType::Text(text) => {
                let flowed = part.content_type().and_then(|ct| {
                    ct.attribute("format")
                        .filter(|f| f.eq_ignore_ascii_case("flowed"))
                        .map(|_| {
                            ct.attribute("delsp")
                                .is_some_and(|d| d.eq_ignore_ascii_case("yes"))
                        })
                });
                Some(match flowed {
                    Some(delsp) => unflow(text, delsp),
                    None => text.to_string(),
                })
            }
            PartType::Html(html) => Some(html_to_text(html)),
            _ => None,
        })
        .filter(|piece| !piece.trim().is_empty())
        .collect();
    if pieces.is_empty() {
        pieces = message
            .html_bodies()
            .filter_map(|part| match &part.body {
                PartType::Html(html) => Some(html_to_text(html)),
                PartType::Text(text) => Some(text.to_string()),
                _ => None,
            })
            .filter(|piece| !piece.trim().is_empty())
            .collect();
    }
    let joined = pieces
        .iter()
        .map(|piece| piece.trim_matches(['\r', '\n']))
        .collect::<Vec<_>>()
        .join("\n\n");
    normalize_newlines(joined.trim())
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Joins the soft line breaks of a `format=flowed` body (RFC 3676): a line ending in a
/// space continues on the next line of the same quote depth.
fn unflow(text: &str, delsp: bool) -> String {
    let text = normalize_newlines(text);
    let mut out = String::with_capacity(text.len());
    // The logical line being joined, with its quote depth.
    let mut current: Option<(usize, String)> = None;
    for line in text.split('\n') {
        let depth = line.bytes().take_while(|&b| b == b'>').count();
        let mut content = &line[depth..];
        // Space-stuffing: one leading space after the quote marks is not content.
        if let Some(rest) = content.strip_prefix(' ') {
            content = rest;
        }
        let soft = content.ends_with(' ') && content != "-- ";
        let content = if soft && delsp {
            &content[..content.len() - 1]
        } else {
            content
        };
        match &mut current {
            Some((d, buf)) if *d == depth => buf.push_str(content),
            _ => {
                if let Some((d, buf)) = current.take() {
                    push_flowed_line(&mut out, d, &buf);
                }
                current = Some((depth, content.to_owned()));
            }
        }
        if !soft && let Some((d, buf)) = current.take() {
            push_flowed_line(&mut out, d, &buf);
        }
    }
    if let Some((d, buf)) = current.take() {
        push_flowed_line(&mut out, d, &buf);
    }
    out
}

fn push_flowed_line(out: &mut String, depth: usize, content: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    if depth > 0 {
        out.extend(std::iter::repeat_n('>', depth));
        out.push(' ');
    }
    out.push_str(content.trim_end_matches(' '));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_threading_ids() {
        let raw = b"From: \"Jane Doe\" <Jane.Doe@Example.COM>\r\n\
To: support@example.com\r\n\
Subject: Re: your appointment\r\n\
Message-ID: <reply-1@mail.example.com>\r\n\
In-Reply-To: <out-42@herald.example>\r\n\
References: <out-41@herald.example>\r\n <out-42@herald.example>\r\n\
\r\n\
Yes, Tuesday works.\r\n";
        let mail = parse(raw);
        assert_eq!(mail.from.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(mail.subject.as_deref(), Some("Re: your appointment"));
        assert_eq!(mail.message_id.as_deref(), Some("reply-1@mail.example.com"));
        assert_eq!(mail.in_reply_to, vec!["out-42@herald.example"]);
        assert_eq!(
            mail.references,
            vec!["out-41@herald.example", "out-42@herald.example"]
        );
        assert_eq!(mail.text, "Yes, Tuesday works.");
        assert_eq!(mail.reply_text, "Yes, Tuesday works.");
        assert!(!mail.auto_submitted);
        assert!(!mail.multiple_from);
        assert!(mail.authentication_results.is_empty());
        assert_eq!(mail.size, raw.len());
        assert!(mail.envelope_from.is_empty() && mail.recipients.is_empty());
    }

    #[test]
    fn authentication_results_are_kept_topmost_first() {
        let raw = b"Authentication-Results: mx.herald.example;\r\n\tdmarc=pass header.from=example.com\r\n\
Received: from x by y\r\n\
authentication-results: forged.example; dmarc=pass\r\n\
From: a@example.com, b@example.com\r\n\
\r\n\
body\r\n";
        let mail = parse(raw);
        assert_eq!(
            mail.authentication_results,
            vec![
                "mx.herald.example;\r\n\tdmarc=pass header.from=example.com",
                "forged.example; dmarc=pass"
            ]
        );
        assert!(mail.multiple_from);
        assert_eq!(mail.from.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn rfc2047_subject_and_latin1_quoted_printable_body() {
        let raw = b"From: a@example.com\r\n\
Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?= =?UTF-8?B?4pyT?=\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=FC=DFe aus M=FCnchen, a very long line that is soft-=\r\n\
wrapped by quoted printable.\r\n";
        let mail = parse(raw);
        assert_eq!(mail.subject.as_deref(), Some("Café crème✓"));
        assert_eq!(
            mail.text,
            "Grüße aus München, a very long line that is soft-wrapped by quoted printable."
        );
    }

    #[test]
    fn base64_utf8_body() {
        // "Ça marche — merci !\n"
        let raw = b"From: a@example.com\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
w4dhIG1hcmNoZSDigJQgbWVyY2kgIQo=\r\n";
        assert_eq!(parse(raw).text, "Ça marche — merci !");
    }

    #[test]
    fn multipart_alternative_prefers_plain_text() {
        let raw = b"From: a@example.com\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
plain version\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>html <b>version</b></p>\r\n\
--b1--\r\n";
        assert_eq!(parse(raw).text, "plain version");
    }

    #[test]
    fn empty_plain_alternative_falls_back_to_html() {
        let raw = b"From: a@example.com\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<div>only in html</div>\r\n\
--b1--\r\n";
        assert_eq!(parse(raw).text, "only in html");
    }

    #[test]
    fn text_parts_around_an_attachment_are_joined() {
        let raw = b"From: a@example.com\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\
\r\n\
--m\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
See the photo:\r\n\
--m\r\n\
Content-Type: image/png\r\n\
Content-Disposition: attachment; filename=a.png\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--m\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Thanks!\r\n\
--m--\r\n";
        assert_eq!(parse(raw).text, "See the photo:\n\nThanks!");
    }

    #[test]
    fn html_only_body_is_rendered_as_text() {
        let raw = b"From: a@example.com\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><style>p { color: red }</style></head><body>\r\n\
<p>Hello&nbsp;there &amp; thanks!</p><div>Line&nbsp;two<br>Line three</div>\r\n\
</body></html>\r\n";
        let mail = parse(raw);
        assert_eq!(mail.text, "Hello there & thanks!\n\nLine two\nLine three");
        assert!(!mail.text.contains('<'));
        assert!(!mail.text.contains("color"));
    }

    #[test]
    fn html_only_gmail_reply_strips_quote() {
        let raw = b"From: a@example.com\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<div dir=\"ltr\">Sounds good, see you then.</div><br><div class=\"gmail_quote\">\
<div dir=\"ltr\" class=\"gmail_attr\">On Mon, 3 Mar 2025 at 10:00, Herald &lt;support@example.com&gt; wrote:<br></div>\
<blockquote class=\"gmail_quote\">Your appointment is on Tuesday.</blockquote></div>\r\n";
        let mail = parse(raw);
        assert!(
            mail.text.contains("> Your appointment is on Tuesday."),
            "{:?}",
            mail.text
        );
        assert_eq!(mail.reply_text, "Sounds good, see you then.");
    }

    #[test]
    fn auto_submitted_markers() {
        let base = "From: a@example.com\r\nSubject: x\r\n";
        let with =
            |header: &str| parse(format!("{base}{header}\r\nbody\r\n").as_bytes()).auto_submitted;
        assert!(!with(""));
        assert!(!with("Auto-Submitted: no"));
        assert!(!with("Auto-Submitted: No (comment)"));
        assert!(with("Auto-Submitted: auto-replied"));
        assert!(with(
            "Auto-Submitted: auto-generated; owner-email=x@example.com"
        ));
        assert!(with("X-Autoreply: yes"));
        assert!(with("Precedence: bulk"));
        assert!(!with("Precedence: first-class"));
        assert!(with(
            "Content-Type: multipart/report; report-type=delivery-status; boundary=x"
        ));
    }

    #[test]
    fn format_flowed_is_joined() {
        let raw = b"From: a@example.com\r\n\
Content-Type: text/plain; charset=utf-8; format=flowed\r\n\
\r\n\
This is one long paragraph that the \r\n\
client wrapped.\r\n\
\r\n\
> quoted and \r\n\
> wrapped\r\n";
        assert_eq!(
            parse(raw).text,
            "This is one long paragraph that the client wrapped.\n\n> quoted and wrapped"
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        assert_eq!(parse(b"").text, "");
        let mail = parse(b"\xff\xfe not a message");
        assert!(mail.from.is_none());
        let mail = parse(b"Subject: only headers\r\n");
        assert_eq!(mail.subject.as_deref(), Some("only headers"));
        assert_eq!(mail.text, "");
    }
}
