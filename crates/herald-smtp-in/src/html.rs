//! A plain-text rendering of an HTML mail body, as a mail client's "view as text" would.

/// Renders an HTML body as plain text.
///
/// Tags are dropped (the content of `<script>`, `<style>`, `<title>` and `<template>`
/// with them, and comments), character references are decoded (named, decimal, hex),
/// whitespace collapses as a browser would except inside `<pre>`, and the layout becomes
/// line breaks: `<br>` ends a line, block elements (`<div>`, `<tr>`, `<li>`, …) start a
/// new one, paragraphs and headings stand apart by a blank line, list items get `- `,
/// and the lines of a `<blockquote>` are prefixed with `> ` (one per level) the way a
/// plain-text reply quotes. The result is trimmed.
pub fn html_to_text(html: &str) -> String {
    let mut out = Renderer::default();
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        let Some(tag) = Tag::at(html, i) else {
            i += 1;
            continue;
        };
        out.text(&html[text_start..i]);
        i = tag.end;
        match tag.kind {
            TagKind::Skip => {}
            TagKind::Element { ref name, closing } => {
                if !closing && RAW_TEXT.contains(&name.as_str()) {
                    i = skip_raw_text(html, i, name);
                } else {
                    out.element(name, closing, tag.self_closing);
                }
            }
        }
        text_start = i;
    }
    out.text(&html[text_start..]);
    out.finish()
}

/// Elements whose content is not shown.
const RAW_TEXT: &[&str] = &["script", "style", "title", "template"];

/// Elements that start and end a line.
const BLOCK: &[&str] = &[
    "div",
    "tr",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "address",
    "center",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "hr",
    "caption",
    "body",
    "html",
];

/// Elements that stand apart from their neighbours by a blank line.
const PARAGRAPH: &[&str] = &["p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"];

enum TagKind {
    /// A comment, doctype or processing instruction.
    Skip,
    Element {
        name: String,
        closing: bool,
    },
}

struct Tag {
    kind: TagKind,
    self_closing: bool,
    /// Index just past the tag's `>`.
    end: usize,
}

impl Tag {
    /// The tag starting at `html[start] == '<'`, if it is one (else the `<` is text).
    fn at(html: &str, start: usize) -> Option<Tag> {
        let rest = &html[start + 1..];
        if let Some(comment) = rest.strip_prefix("!--") {
            let end = comment
                .find("-->")
                .map_or(html.len(), |p| start + 4 + p + 3);
            return Some(Tag {
                kind: TagKind::Skip,
                self_closing: false,
                end,
            });
        }
        let first = *rest.as_bytes().first()?;
        if first == b'!' || first == b'?' {
            let end = rest.find('>').map_or(html.len(), |p| start + 1 + p + 1);
            return Some(Tag {
                kind: TagKind::Skip,
                self_closing: false,
                end,
            });
        }
        let (closing, name_start) = if first == b'/' { (true, 1) } else { (false, 0) };
        let name_len = rest[name_start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b':')
            .count();
        if name_len == 0 || !rest.as_bytes()[name_start].is_ascii_alphabetic() {
            return None;
        }
        let name = rest[name_start..name_start + name_len].to_ascii_lowercase();
        // Find the closing '>' outside quoted attribute values.
        let mut quote = None;
        let mut end = None;
        for (p, b) in rest.bytes().enumerate().skip(name_start + name_len) {
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(b),
                (None, b'>') => {
                    end = Some(p);
                    break;
                }
                _ => {}
            }
        }
        let end_rel = end.unwrap_or(rest.len());
        let self_closing = rest[..end_rel].ends_with('/');
        Some(Tag {
            kind: TagKind::Element { name, closing },
            self_closing,
            end: (start + 1 + end_rel + 1).min(html.len()),
        })
    }
}

/// Skips past `</name ...>` (case-insensitively), or to the end if it never comes.
fn skip_raw_text(html: &str, from: usize, name: &str) -> usize {
    let bytes = html.as_bytes();
    let mut i = from;
    while let Some(p) = html[i..].find("</") {
        let at = i + p;
        let candidate = &bytes[at + 2..];
        if candidate.len() >= name.len()
            && candidate[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && candidate
                .get(name.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric())
        {
            return html[at..].find('>').map_or(html.len(), |q| at + q + 1);
        }
        i = at + 2;
    }
    html.len()
}

#[derive(Default)]
struct Renderer {
    out: String,
    /// Newlines at the end of `out` (0 when it ends in text).
    trailing_newlines: usize,
    /// Collapsed whitespace waiting to become one space before the next text.
    pending_space: bool,
    quote_depth: usize,
    pre_depth: usize,
}

impl Renderer {
    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.trailing_newlines > 0
    }

    fn text(&mut self, raw: &str) {
        if raw.is_empty() {
            return;
        }
        let mut chars = raw.char_indices();
        while let Some((idx, c)) = chars.next() {
            let c = if c == '&' {
                match decode_entity(&raw[idx..]) {
                    Some((decoded, len)) => {
                        // Skip the rest of the reference.
                        for _ in 1..raw[idx..idx + len].chars().count() {
                            chars.next();
                        }
                        self.literal(decoded);
                        continue;
                    }
                    None => c,
                }
            } else {
                c
            };
            self.char(c);
        }
    }

    /// A character from the source text: whitespace collapses outside `<pre>`.
    fn char(&mut self, c: char) {
        if self.pre_depth > 0 {
            match c {
                '\n' => self.newline(),
                '\r' => {}
                _ => self.literal(c),
            }
        } else if c.is_whitespace() && c != '\u{a0}' {
            if !self.at_line_start() {
                self.pending_space = true;
            }
        } else {
            self.literal(c);
        }
    }

    /// A character shown as it is (no-break spaces become spaces).
    fn literal(&mut self, c: char) {
        let c = if c == '\u{a0}' { ' ' } else { c };
        if c == '\u{ad}' || c == '\u{200b}' || c == '\u{feff}' {
            return;
        }
        if self.at_line_start() {
            for _ in 0..self.quote_depth {
                self.out.push_str("> ");
            }
        } else if self.pending_space {
            self.out.push(' ');
        }
        self.pending_space = false;
        self.out.push(c);
        self.trailing_newlines = 0;
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.trailing_newlines += 1;
        self.pending_space = false;
    }

    fn line_break(&mut self) {
        if !self.at_line_start() {
            self.newline();
        }
        self.pending_space = false;
    }

    fn paragraph_break(&mut self) {
        self.line_break();
        if !self.out.is_empty() && self.trailing_newlines < 2 {
            self.newline();
        }
    }

    fn element(&mut self, name: &str, closing: bool, self_closing: bool) {
        match name {
            "br" => self.newline(),
            "li" => {
                self.line_break();
                if !closing {
                    self.literal('-');
                    self.pending_space = true;
                }
            }
            "td" | "th" if !closing && !self.at_line_start() => self.pending_space = true,
            "blockquote" => {
                self.paragraph_break();
                if closing {
                    self.quote_depth = self.quote_depth.saturating_sub(1);
                } else if !self_closing {
                    self.quote_depth += 1;
                }
            }
            "pre" => {
                self.paragraph_break();
                if closing {
                    self.pre_depth = self.pre_depth.saturating_sub(1);
                } else if !self_closing {
                    self.pre_depth += 1;
                }
            }
            _ if PARAGRAPH.contains(&name) => self.paragraph_break(),
            _ if BLOCK.contains(&name) => self.line_break(),
            _ => {}
        }
    }

    fn finish(self) -> String {
        let mut result = String::with_capacity(self.out.len());
        let mut blank_run = 0;
        for line in self.out.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            result.push_str(line);
            result.push('\n');
        }
        result.trim().to_owned()
    }
}

/// Decodes the character reference at the start of `s` (which starts with `&`):
/// the character and the reference's length in bytes.
fn decode_entity(s: &str) -> Option<(char, usize)> {
    let body = &s[1..];
    let semi = body.bytes().take(33).position(|b| b == b';')?;
    let name = &body[..semi];
    let len = semi + 2;
    let c = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        match code {
            0 => '\u{fffd}',
            // Windows-1252 code points that HTML maps for compatibility.
            0x80..=0x9f => windows_1252(code).unwrap_or('\u{fffd}'),
            _ => char::from_u32(code).unwrap_or('\u{fffd}'),
        }
    } else {
        named_entity(name)?
    };
    Some((c, len))
}

fn windows_1252(code: u32) -> Option<char> {
    Some(match code {
        0x80 => '€',
        0x85 => '…',
        0x91 => '\u{2018}',
        0x92 => '\u{2019}',
        0x93 => '\u{201c}',
        0x94 => '\u{201d}',
        0x95 => '•',
        0x96 => '–',
        0x97 => '—',
        0x99 => '™',
        _ => return None,
    })
}

/// Latin-1 letters from U+00C0, by name (the lower-case forms are 0x20 above).
const LATIN1_UPPER: [&str; 31] = [
    "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute",
    "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute",
    "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute",
    "THORN",
];

fn named_entity(name: &str) -> Option<char> {
    let c = match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "zwnj" | "zwj" | "shy" => '\u{ad}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "sbquo" => '\u{201a}',
        "ldquo" => '\u{201c}',
        "rdquo" => '\u{201d}',
        "bdquo" => '\u{201e}',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "divide" => '÷',
        "plusmn" => '±',
        "iexcl" => '¡',
        "iquest" => '¿',
        "szlig" => 'ß',
        "yuml" => 'ÿ',
        "ordf" => 'ª',
        "ordm" => 'º',
        "micro" => 'µ',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        _ => {
            if let Some(i) = LATIN1_UPPER.iter().position(|n| *n == name) {
                return char::from_u32(0xc0 + i as u32);
            }
            let i = LATIN1_UPPER
                .iter()
                .position(|n| *n != "times" && n.to_ascii_lowercase() == name)?;
            return char::from_u32(0xe0 + i as u32);
        }
    };
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn strips_tags_and_decodes_entities() {
        assert_eq!(
            html_to_text(
                "<p>Fish &amp; chips &lt;3 &quot;yum&quot; &#233;t&#xE9; &eacute;&Uuml;&euro;</p>"
            ),
            "Fish & chips <3 \"yum\" été éÜ€"
        );
        assert_eq!(html_to_text("a &unknown; b & c"), "a &unknown; b & c");
        assert_eq!(html_to_text("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
    }

    #[test]
    fn keeps_line_breaks_and_collapses_whitespace() {
        let html = "<html><head><title>T</title><style>div{}</style></head><body>\n\
            <div>First   line\n continues</div><div>Second<br/>Third</div>\
            <p>Para</p><p>Other para</p><!-- hidden --><script>alert('x')</script>\
            <ul><li>one</li><li>two</li></ul>\
            <table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>\
            </body></html>";
        assert_eq!(
            html_to_text(html),
            "First line continues\nSecond\nThird\n\nPara\n\nOther para\n\n- one\n- two\na b\nc d"
        );
    }

    #[test]
    fn pre_keeps_whitespace_and_nbsp_is_a_space() {
        assert_eq!(
            html_to_text("<pre>a  b\n  c</pre>x&nbsp;&nbsp;y"),
            "a  b\n  c\n\nx  y"
        );
    }

    #[test]
    fn blockquote_lines_are_quoted() {
        assert_eq!(
            html_to_text(
                "Yes!<blockquote>Line one<br>Line two<blockquote>older</blockquote></blockquote>"
            ),
            "Yes!\n\n> Line one\n> Line two\n\n> > older"
        );
    }

    #[test]
    fn attributes_with_gt_and_broken_markup() {
        assert_eq!(
            html_to_text("<a href=\"x?a>b\" title='>'>link</a> <img alt=\"pic\" src=x> end <b"),
            "link end"
        );
    }
}
