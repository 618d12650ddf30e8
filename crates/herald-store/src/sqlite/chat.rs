//! Chat sites and chat settings on SQLite: written once for both backends, in
//! `../shared/chat.rs`.

include!("../shared/chat.rs");
