pub mod herald;
pub mod smtp;
