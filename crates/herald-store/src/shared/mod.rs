// Never compiled as a module (see `mod shared` in `lib.rs`): lists the files for rustfmt.
mod catalog;
mod chat;
mod conversation;
mod dispatch;
mod outreach;
mod sql;
mod test_send;
mod users;
