//! Whether a message's `From` is authenticated, by the `Authentication-Results` header
//! (RFC 8601) a trusted MX added.
//!
//! The listener checks neither SPF nor DKIM itself: it sits behind an MX that does and records
//! the outcome in an `Authentication-Results` header named by its authserv-id. Any client can
//! write such a header, so only the one carrying the configured authserv-id counts, and of
//! those only the topmost (the MX prepends its own above whatever the message came with; RFC
//! 8601 section 5 also has it remove copies that claim its id).

use crate::ReceivedMail;

/// Most `Authentication-Results` headers kept from one message, and most bytes of each.
pub(crate) const MAX_RESULTS_HEADERS: usize = 32;
pub(crate) const MAX_RESULTS_BYTES: usize = 8 * 1024;

/// Whether the topmost `Authentication-Results` header with `authserv_id` says the `From`
/// domain is authenticated: `dmarc=pass`, or `spf=pass` for an aligned `smtp.mailfrom`, or
/// `dkim=pass` for an aligned `header.d` (`header.i`). Aligned means the same domain or one a
/// subdomain of the other (DMARC's relaxed alignment, without the public suffix list: never
/// looser than it). False without a `From`, with more than one `From` address, or without such
/// a header.
pub fn from_authenticated(mail: &ReceivedMail, authserv_id: &str) -> bool {
    let authserv_id = authserv_id.trim();
    if authserv_id.is_empty() || mail.multiple_from {
        return false;
    }
    let Some(from_domain) = mail.from.as_deref().and_then(domain) else {
        return false;
    };
    let Some(results) = mail
        .authentication_results
        .iter()
        .map(|h| parse(h))
        .find(|r| r.authserv_id.eq_ignore_ascii_case(authserv_id))
    else {
        return false;
    };
    results.methods.iter().any(|m| {
        if m.result != "pass" {
            return false;
        }
        match m.method.as_str() {
            "dmarc" => m
                .prop("header.from")
                .is_none_or(|d| d.eq_ignore_ascii_case(&from_domain)),
            "spf" => m
                .prop("smtp.mailfrom")
                .and_then(|v| domain(v).or_else(|| Some(v.to_ascii_lowercase())))
                .is_some_and(|d| aligned(&from_domain, &d)),
            "dkim" => m
                .prop("header.d")
                .map(str::to_ascii_lowercase)
                .or_else(|| m.prop("header.i").and_then(domain))
                .is_some_and(|d| aligned(&from_domain, &d)),
            _ => false,
        }
    })
}

/// The lower-cased domain of an address (after its last `@`).
fn domain(address: &str) -> Option<String> {
    let (_, domain) = address.trim().rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

fn aligned(a: &str, b: &str) -> bool {
    let b = b.trim_end_matches('.');
    !b.is_empty()
        && b.contains('.')
        && (a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}")))
}

struct Results {
    authserv_id: String,
    methods: Vec<MethodResult>,
}

struct MethodResult {
    method: String,
    result: String,
    props: Vec<(String, String)>,
}

impl MethodResult {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An `Authentication-Results` value: `authserv-id [version]; method=result prop=value ...; ...`.
fn parse(value: &str) -> Results {
    let text = without_comments(value);
    let mut segments = text.split(';');
    let authserv_id = segments
        .next()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    let methods = segments
        .filter_map(|segment| {
            let mut tokens = segment.split_whitespace();
            let (method, result) = tokens.next()?.split_once('=')?;
            let method = method.split('/').next()?.to_ascii_lowercase();
            let props = tokens
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            Some(MethodResult {
                method,
                result: result.trim_matches('"').to_ascii_lowercase(),
                props,
            })
        })
        .collect();
    Results {
        authserv_id,
        methods,
    }
}

/// The value unfolded, with `(comments)` (nested, outside quoted strings) removed.
fn without_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        let c = if c == '\r' || c == '\n' || c == '\t' {
            ' '
        } else {
            c
        };
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(from: &str, headers: &[&str]) -> ReceivedMail {
        ReceivedMail {
            from: Some(from.to_owned()),
            authentication_results: headers.iter().map(|h| (*h).to_owned()).collect(),
            ..ReceivedMail::default()
        }
    }

    const MX: &str = "mx.herald.example";

    #[test]
    fn dmarc_pass_from_the_trusted_mx() {
        let m = mail(
            "jane@customer.example",
            &[
                " mx.herald.example;\r\n dkim=pass header.d=customer.example header.s=s1;\r\n spf=pass smtp.mailfrom=jane@customer.example;\r\n dmarc=pass (p=reject) header.from=customer.example",
            ],
        );
        assert!(from_authenticated(&m, MX));
        assert!(from_authenticated(&m, "MX.Herald.Example"));
        // Another authserv-id is not trusted.
        assert!(!from_authenticated(&m, "mx.other.example"));
        assert!(!from_authenticated(&m, ""));
    }

    #[test]
    fn spf_or_dkim_pass_counts_only_when_aligned_with_from() {
        let spf = |mailfrom: &str| {
            mail(
                "jane@customer.example",
                &[&format!(
                    "mx.herald.example; spf=pass smtp.mailfrom={mailfrom}"
                )],
            )
        };
        assert!(from_authenticated(&spf("bounce@customer.example"), MX));
        assert!(from_authenticated(&spf("b@mail.customer.example"), MX));
        assert!(from_authenticated(&spf("customer.example"), MX));
        assert!(!from_authenticated(&spf("attacker@attacker.example"), MX));
        assert!(!from_authenticated(&spf("x@example"), MX));
        let dkim = |d: &str| {
            mail(
                "jane@customer.example",
                &[&format!("mx.herald.example; dkim=pass header.d={d}")],
            )
        };
        assert!(from_authenticated(&dkim("customer.example"), MX));
        assert!(!from_authenticated(&dkim("attacker.example"), MX));
        assert!(!from_authenticated(&dkim("notcustomer.example"), MX));
        let i = mail(
            "jane@customer.example",
            &["mx.herald.example; dkim=pass header.i=@customer.example"],
        );
        assert!(from_authenticated(&i, MX));
    }

    #[test]
    fn failures_and_mismatches_are_not_authenticated() {
        for header in [
            "mx.herald.example; dmarc=fail header.from=customer.example",
            "mx.herald.example; dmarc=pass header.from=attacker.example",
            "mx.herald.example; spf=softfail smtp.mailfrom=customer.example",
            "mx.herald.example; dkim=none",
            "mx.herald.example; none",
            "mx.herald.example 1; dmarc=temperror",
            // The result in a comment does not count.
            "mx.herald.example; dmarc=fail (dmarc=pass) header.from=customer.example",
            "garbage",
            "",
        ] {
            let m = mail("jane@customer.example", &[header]);
            assert!(!from_authenticated(&m, MX), "{header}");
        }
        let none = mail("jane@customer.example", &[]);
        assert!(!from_authenticated(&none, MX));
        let mut two_from = mail(
            "jane@customer.example",
            &["mx.herald.example; dmarc=pass header.from=customer.example"],
        );
        two_from.multiple_from = true;
        assert!(!from_authenticated(&two_from, MX));
    }

    #[test]
    fn only_the_topmost_header_of_the_trusted_mx_counts() {
        // The MX said fail; a forged header further down says pass.
        let m = mail(
            "jane@customer.example",
            &[
                "mx.herald.example; dmarc=fail header.from=customer.example",
                "mx.herald.example; dmarc=pass header.from=customer.example",
            ],
        );
        assert!(!from_authenticated(&m, MX));
        // Headers of other ids above it are skipped.
        let m = mail(
            "jane@customer.example",
            &[
                "relay.example; dmarc=fail",
                "mx.herald.example; dmarc=pass header.from=customer.example",
            ],
        );
        assert!(from_authenticated(&m, MX));
    }
}
