//! Email bodies: an answer's body is Markdown, sent as HTML and as plain text.
//!
//! The order is what keeps a recipient's values from becoming markup: the template is rendered
//! first with every substituted value escaped *for Markdown* ([`escape_value`]: each ASCII
//! punctuation character gets a backslash, line breaks become spaces), so a value is always
//! literal text to the Markdown parser, whatever it holds (`**`, `[link](…)`, `<script>`, `&amp;`).
//! The result is then parsed once (CommonMark with strikethrough, by `pulldown-cmark`) and
//! written twice:
//!
//! - [`to_html`]: HTML where text is HTML-escaped by the writer, raw HTML in the answer is shown
//!   as text (never passed through), and links and images keep only `http`, `https`, `mailto`
//!   and `tel` targets (any other, `javascript:` say, leaves the link's text without the link);
//! - [`to_text`]: readable plain text, without Markdown's marks (`**`, `_`, `#`), lists as
//!   `- ` and `1. ` lines, a link as `text (url)`.
//!
//! A plain-text answer is valid Markdown, and its text part reads as it was written: line breaks
//! stay where they were, paragraphs stay apart.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// The Markdown features answers may use: CommonMark plus `~~strikethrough~~`.
fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH
}

/// Appends `value` to `out` so that Markdown reads it as literal text: ASCII punctuation is
/// backslash-escaped (CommonMark lets any of it be), and line breaks and tabs become spaces, so
/// a value cannot start a heading, a list or a new paragraph.
pub fn escape_value(value: &str, out: &mut String) {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push(' ');
                }
            }
            '\n' | '\t' => out.push(' '),
            c if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Whether a link or image target may stay: web, mail and phone links only.
fn allowed_target(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:", "tel:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// The HTML of a Markdown body (a fragment: no `<html>` or `<body>`), as described in the
/// module docs.
pub fn to_html(markdown: &str) -> String {
    // Per open link or image: whether it was dropped (its end must be dropped too).
    let mut dropped: Vec<bool> = Vec::new();
    // Inside a dropped image: its alt text is shown as text.
    let events = Parser::new_ext(markdown, options()).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { ref dest_url, .. })
        | Event::Start(Tag::Image { ref dest_url, .. }) => {
            let keep = allowed_target(dest_url);
            dropped.push(!keep);
            keep.then_some(event)
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            let was_dropped = dropped.pop().unwrap_or(false);
            (!was_dropped).then_some(event)
        }
        other => Some(other),
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2 + 16);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// The plain text of a Markdown body, as described in the module docs.
pub fn to_text(markdown: &str) -> String {
    let mut w = TextWriter::default();
    for event in Parser::new_ext(markdown, options()) {
        w.event(event);
    }
    let mut out = w.out;
    out.truncate(out.trim_end().len());
    out
}

/// One open list: `Some(next number)` for an ordered list.
type List = Option<u64>;

#[derive(Default)]
struct TextWriter {
    out: String,
    lists: Vec<List>,
    /// Link targets of the open links, to write after their text.
    links: Vec<CowStr<'static>>,
    /// Where the current link's text begins in `out`.
    link_starts: Vec<usize>,
    /// Inside a block quote (its lines get `> `).
    quote_depth: usize,
}

impl TextWriter {
    /// Ends the current line and leaves one blank line before the next block (none at the start).
    fn block_break(&mut self) {
        if self.out.is_empty() {
            return;
        }
        self.out
            .truncate(self.out.trim_end_matches([' ', '\t']).len());
        while !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn line_break(&mut self) {
        self.out
            .truncate(self.out.trim_end_matches([' ', '\t']).len());
        self.out.push('\n');
        self.indent();
    }

    /// The prefix of a new line: quote marks and list indentation.
    fn indent(&mut self) {
        for _ in 0..self.quote_depth {
            self.out.push_str("> ");
        }
        for _ in 0..self.lists.len().saturating_sub(1) {
            self.out.push_str("   ");
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                // Text inside a code block or a quote keeps the prefix of each line.
                let mut lines = t.split('\n').peekable();
                while let Some(line) = lines.next() {
                    self.out.push_str(line);
                    if lines.peek().is_some_and(|next| !next.is_empty()) {
                        self.line_break();
                    } else if lines.peek().is_some() {
                        self.out.push('\n');
                    }
                }
            }
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.block_break();
                self.out.push_str("----");
                self.block_break();
            }
            Event::TaskListMarker(done) => self.out.push_str(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(name) => {
                self.out.push('[');
                self.out.push_str(&name);
                self.out.push(']');
            }
            Event::InlineMath(t) | Event::DisplayMath(t) => self.out.push_str(&t),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::CodeBlock(_) | Tag::HtmlBlock => {
                if self.out.ends_with('\n') || self.out.is_empty() {
                    // Already at a line start inside a list item: stay on it.
                    if !self.in_fresh_item() {
                        self.block_break();
                        self.indent();
                    }
                } else {
                    self.block_break();
                    self.indent();
                }
            }
            Tag::Heading { .. } => {
                self.block_break();
                self.indent();
            }
            Tag::BlockQuote(_) => {
                self.block_break();
                self.quote_depth += 1;
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.block_break();
                }
                self.lists.push(first);
            }
            Tag::Item => {
                if !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.out.push('\n');
                }
                self.indent();
                match self.lists.last_mut() {
                    Some(Some(n)) => {
                        self.out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => self.out.push_str("- "),
                }
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push(CowStr::from(dest_url.into_string()));
                self.link_starts.push(self.out.len());
            }
            _ => {}
        }
    }

    /// Just after an item's `- ` marker, where its first paragraph goes on the same line.
    fn in_fresh_item(&self) -> bool {
        !self.lists.is_empty() && (self.out.ends_with("- ") || self.out.ends_with(". "))
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            // Inside a list an item's paragraphs stay on its lines.
            TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::HtmlBlock if self.lists.is_empty() => {
                self.block_break()
            }
            // A heading's text stands on its own line.
            TagEnd::Heading(_) => self.block_break(),
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.block_break();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.block_break();
                }
            }
            TagEnd::Item if !self.out.ends_with('\n') => self.out.push('\n'),
            TagEnd::Link | TagEnd::Image => {
                let (Some(url), Some(start)) = (self.links.pop(), self.link_starts.pop()) else {
                    return;
                };
                let text = self.out.get(start..).unwrap_or_default();
                let bare = url.strip_prefix("mailto:").unwrap_or(&url);
                if !url.is_empty() && text != &*url && text != bare {
                    self.out.push_str(" (");
                    self.out.push_str(&url);
                    self.out.push(')');
                }
            }
            _ => {}
        }
    }
}

/// The line the text part ends with when a message has an unsubscribe link.
pub fn footer_text(unsubscribe_url: &str) -> String {
    format!("--\nTo stop receiving these emails, unsubscribe: {unsubscribe_url}")
}

/// The paragraph the HTML part ends with when a message has an unsubscribe link.
pub fn footer_html(unsubscribe_url: &str) -> String {
    // The URL is Herald's own, but it is escaped as any link's target is (`&` as `&amp;`,
    // quotes and spaces percent-encoded).
    let mut escaped = String::new();
    pulldown_cmark_escape::escape_href(&mut escaped, unsubscribe_url).ok();
    format!("<hr>\n<p>To stop receiving these emails, <a href=\"{escaped}\">unsubscribe</a>.</p>\n")
}

/// Appends the unsubscribe footer to both parts of a rendered email.
pub fn add_footer(text: &mut String, html: &mut String, unsubscribe_url: &str) {
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(&footer_text(unsubscribe_url));
    html.push_str(&footer_html(unsubscribe_url));
}

/// A whole HTML document around a body fragment, in `lang`, declared UTF-8.
pub fn html_document(lang: &crate::Language, fragment: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"></head>\n<body>\n{fragment}</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        escape_value(value, &mut out);
        out
    }

    #[test]
    fn an_escaped_value_is_literal_text_in_both_parts() {
        for value in [
            "<script>alert(1)</script>",
            "Tom & Jerry &amp; co",
            "**bold** _it_ `code`",
            "[click](https://evil.example)",
            "# heading\n- item\n\n1. first",
            "<https://evil.example>",
            "a\\b",
            "![x](https://evil.example/p.png)",
        ] {
            let md = format!("Hello {}!", escaped(value));
            let html = to_html(&md);
            let flat = value.replace(['\n', '\t'], " ");
            let mut want = String::new();
            pulldown_cmark_escape::escape_html_body_text(&mut want, &flat).unwrap();
            assert_eq!(html, format!("<p>Hello {want}!</p>\n"), "{value:?}");
            assert!(!html.contains("<script") && !html.contains("<a "), "{html}");
            assert_eq!(to_text(&md), format!("Hello {flat}!"), "{value:?}");
        }
    }

    #[test]
    fn raw_html_in_the_answer_is_shown_as_text() {
        let html = to_html("Hi <b onclick=\"x()\">there</b>\n\n<div>block</div>");
        assert!(!html.contains("<b") && !html.contains("<div"), "{html}");
        assert!(html.contains("&lt;b onclick=\"x()\"&gt;there"), "{html}");
    }

    #[test]
    fn only_web_mail_and_phone_links_are_kept() {
        let html = to_html(
            "[a](https://ok.example/x) [b](javascript:alert(1)) [c](mailto:help@ok.example) \
             [d](data:text/html,hi) ![e](https://ok.example/i.png) ![f](vbscript:x)",
        );
        assert!(
            html.contains("<a href=\"https://ok.example/x\">a</a>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"mailto:help@ok.example\">c</a>"),
            "{html}"
        );
        assert!(
            html.contains("<img src=\"https://ok.example/i.png\""),
            "{html}"
        );
        assert!(
            !html.contains("javascript") && !html.contains("data:"),
            "{html}"
        );
        assert!(!html.contains("vbscript"), "{html}");
        assert!(html.contains(" b ") && html.contains(" d "), "{html}");
    }

    #[test]
    fn plain_text_answers_read_as_written() {
        let body = "Hi Jane,\nyour order A-17 ships today.\n\nThanks,\nAcme";
        assert_eq!(to_text(body), body);
        assert_eq!(
            to_html(body),
            "<p>Hi Jane,\nyour order A-17 ships today.</p>\n<p>Thanks,\nAcme</p>\n"
        );
    }

    #[test]
    fn the_text_part_has_no_markdown_marks() {
        let md = "# Your order\n\nIt is **late**, _sorry_.\n\n- one\n- two\n\n1. first\n2. second\n\n\
                  See [the tracker](https://t.example/1) or <https://t.example/2>.";
        let text = to_text(md);
        assert_eq!(
            text,
            "Your order\n\nIt is late, sorry.\n\n- one\n- two\n\n1. first\n2. second\n\n\
             See the tracker (https://t.example/1) or https://t.example/2."
        );
        let html = to_html(md);
        assert!(html.contains("<h1>Your order</h1>"), "{html}");
        assert!(html.contains("<strong>late</strong>"), "{html}");
        assert!(html.contains("<li>two</li>"), "{html}");
    }

    #[test]
    fn the_footer_is_a_link_in_html_and_a_url_in_text() {
        let (mut text, mut html) = ("Hi".to_string(), "<p>Hi</p>\n".to_string());
        add_footer(
            &mut text,
            &mut html,
            "https://h.example/unsubscribe/k-1?sig=ab&x=\"y\"",
        );
        assert!(
            text.ends_with("unsubscribe: https://h.example/unsubscribe/k-1?sig=ab&x=\"y\""),
            "{text}"
        );
        assert!(
            html.contains("<a href=\"https://h.example/unsubscribe/k-1?sig=ab&amp;x=%22y%22\">"),
            "{html}"
        );
    }
}
