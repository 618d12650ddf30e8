//! SMS keywords: the single-word replies carriers treat as opt-out, opt-in and help requests.
//!
//! A keyword is the whole message: one word, any case, with surrounding white space and
//! trailing punctuation (`Stop.`, `STOP!`) ignored. "Please stop texting me" is a message for an
//! agent, not an opt-out: carriers and Twilio read it the same way.

/// What a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT: no more messages from this
    /// sender.
    OptOut,
    /// START, YES, UNSTOP: messages from this sender again.
    OptIn,
    /// HELP, INFO: the sender's help text.
    Help,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::OptOut => "opt_out",
            Keyword::OptIn => "opt_in",
            Keyword::Help => "help",
        }
    }
}

const OPT_OUT: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN: [&str; 3] = ["START", "YES", "UNSTOP"];
const HELP: [&str; 2] = ["HELP", "INFO"];

/// The keyword an SMS body is, if it is one (see the module docs).
pub fn classify(body: &str) -> Option<Keyword> {
    let word = body
        .trim()
        .trim_end_matches(['.', '!', '?', ','])
        .trim_end();
    if word.is_empty() || word.len() > 16 || word.chars().any(char::is_whitespace) {
        return None;
    }
    let is = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(word));
    if is(&OPT_OUT) {
        Some(Keyword::OptOut)
    } else if is(&OPT_IN) {
        Some(Keyword::OptIn)
    } else if is(&HELP) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opt_out_word_in_any_case_and_padding() {
        for word in OPT_OUT {
            for body in [
                word.to_string(),
                word.to_lowercase(),
                format!("  {word}\n"),
                format!("\t{}  ", word.to_lowercase()),
                format!("{word}."),
                format!("{word}!"),
            ] {
                assert_eq!(classify(&body), Some(Keyword::OptOut), "{body:?}");
            }
        }
        assert_eq!(classify("Stop"), Some(Keyword::OptOut));
        assert_eq!(classify("sToPaLl"), Some(Keyword::OptOut));
    }

    #[test]
    fn opt_in_and_help() {
        for body in ["START", "start", " Yes ", "unstop", "UNSTOP."] {
            assert_eq!(classify(body), Some(Keyword::OptIn), "{body:?}");
        }
        for body in ["HELP", "help", " Info\r\n", "HELP?"] {
            assert_eq!(classify(body), Some(Keyword::Help), "{body:?}");
        }
    }

    #[test]
    fn messages_that_merely_contain_a_keyword_are_not_keywords() {
        for body in [
            "please stop texting me",
            "STOP IT",
            "stop stop",
            "I want to cancel my order",
            "yes please",
            "help me with my bill",
            "STOPPED",
            "stops",
            "non-stop",
            "",
            "   ",
            ".",
            "S T O P",
        ] {
            assert_eq!(classify(body), None, "{body:?}");
        }
    }
}
