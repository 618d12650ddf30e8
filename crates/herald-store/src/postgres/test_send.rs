//! Test sends on PostgreSQL (see [`crate::test_send`]). The code is the same on both backends and
//! written once, in `../shared/test_send.rs`.

include!("../shared/test_send.rs");
