//! The fakes against Herald's real transports (and a few raw clients), checking what they record
//! and that their injected failures are reproducible.

mod common;
mod http;
mod smtp;
mod twilio;
