//! Chat sites and chat settings on PostgreSQL: written once for both backends, in
//! `../shared/chat.rs`.

include!("../shared/chat.rs");
