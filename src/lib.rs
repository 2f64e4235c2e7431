//! Herald: a local relay that delivers trading notices to WeCom (app and
//! group robot) and email, durably and truthfully.
//!
//! - [`profile`]: credential profiles, validation and secret storage.
//! - [`channel`]: delivery to each provider and parsing of its answers.
//! - [`split`]: byte-accurate splitting of long text into numbered parts.
//! - [`diagnosis`]: failure classes and the hints users read, in English
//!   and Chinese.
//! - [`outbox`]: the SQLite outbox and history, and the delivery worker
//!   with retries, rate limits and merging.
//! - [`relay`]: the HTTP relay on loopback.

// A delivery failure carries its explanation in two languages by value. Failures
// are rare and off the hot path, so their size is not worth a box.
#![allow(clippy::result_large_err)]

pub mod channel;
pub mod diagnosis;
pub mod home;
pub mod i18n;
pub mod outbox;
pub mod profile;
pub mod relay;
pub mod split;
