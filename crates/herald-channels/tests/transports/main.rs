//! The transports against real counterparts: a file on disk, an SMTP server speaking SMTP over
//! TCP, and HTTP servers standing in for Twilio and a webhook gateway (fakes of the providers from
//! herald-testkit, never of Herald's own code).

mod common;
mod config;
mod file;
mod smtp;
mod twilio;
mod webhook;
