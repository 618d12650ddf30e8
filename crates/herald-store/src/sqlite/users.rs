//! Web accounts on SQLite: users, sessions, setup tokens (see [`crate::users`]). The code is the
//! same on both backends and written once, in `../shared/users.rs`.

include!("../shared/users.rs");
