//! Provider rate limits as exact sliding windows over recorded send times.
//!
//! WeCom allows a group robot 20 messages per minute, and an app 30 per
//! minute and 1,000 per hour to each member; an app's messages beyond that
//! are dropped while WeCom still answers errcode 0. A token bucket (GCRA)
//! with a burst of N can pass up to 2N-1 sends in one window, so Herald
//! instead counts the sends recorded in the database within each window.
//! That count is exact, holds across processes (`herald send` beside the
//! relay) and survives a restart.

use crate::channel;
use crate::profile::{Kind, Profile};

/// A limit: at most `max` sends in any window of `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub window_ms: i64,
    pub max: usize,
}

pub const ROBOT: [Window; 1] = [Window {
    window_ms: 60_000,
    max: 20,
}];
pub const APP_MEMBER: [Window; 2] = [
    Window {
        window_ms: 60_000,
        max: 30,
    },
    Window {
        window_ms: 3_600_000,
        max: 1000,
    },
];

/// Returns the rate key and windows of a profile. Profiles that share a robot key or
/// an app and recipients share a key, because the provider counts them
/// together.
pub fn limits_for(profile: &Profile, secret: &str) -> Option<(String, &'static [Window])> {
    match &profile.kind {
        Kind::WecomBot { .. } => Some((
            format!(
                "bot|{}|{:016x}",
                profile.kind.api_base(),
                channel::fingerprint(secret)
            ),
            &ROBOT,
        )),
        Kind::WecomApp {
            corp_id,
            agent_id,
            to_user,
            to_party,
            to_tag,
            ..
        } => Some((
            format!(
                "app|{}|{corp_id}|{agent_id}|{}|{}|{}",
                profile.kind.api_base(),
                to_user.join(","),
                to_party.join(","),
                to_tag.join(",")
            ),
            &APP_MEMBER,
        )),
        Kind::Email { .. } => None,
    }
}

/// Extra time added to every window. Herald records a send when it starts
/// the request and WeCom counts it when the request arrives, a little later,
/// so a window measured without slack lets one send too many through.
pub const MARGIN_MS: i64 = 1_000;

/// How long to wait, in ms, before one more send keeps every window within
/// its limit. `sends` contains the recorded send times, oldest first.
pub fn wait_ms(sends: &[i64], now: i64, windows: &[Window]) -> i64 {
    windows
        .iter()
        .map(|window| {
            let span = window.window_ms + MARGIN_MS;
            let start = now - span;
            let inside: Vec<i64> = sends.iter().copied().filter(|&at| at > start).collect();
            if inside.len() < window.max {
                return 0;
            }
            // The oldest send that must leave the window first.
            let leaving = inside[inside.len() - window.max];
            leaving + span - now + 1
        })
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Returns the maximum window span, for pruning old send records.
pub fn longest_window_ms() -> i64 {
    APP_MEMBER
        .iter()
        .chain(ROBOT.iter())
        .map(|w| w.window_ms)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robot_allows_twenty_per_minute() {
        let sends: Vec<i64> = (0..19).map(|i| 1_000 + i * 10).collect();
        assert_eq!(wait_ms(&sends, 2_000, &ROBOT), 0);
        let sends: Vec<i64> = (0..20).map(|i| 1_000 + i * 10).collect();
        // The first send, at 1,000, leaves the window (with its margin)
        // after 62,000.
        assert_eq!(wait_ms(&sends, 2_000, &ROBOT), 60_001);
    }

    #[test]
    fn no_window_ever_exceeds_its_limit() {
        // Simulate greedy sending for ten minutes and check every window.
        let mut sends = Vec::new();
        let mut now = 0;
        while now < 600_000 {
            let wait = wait_ms(&sends, now, &ROBOT);
            now += wait;
            sends.push(now);
            now += 7;
        }
        for (index, &start) in sends.iter().enumerate() {
            let in_window = sends[index..]
                .iter()
                .filter(|&&at| at < start + 60_000)
                .count();
            assert!(
                in_window <= 20,
                "{in_window} sends in the minute from {start}"
            );
        }
    }

    #[test]
    fn hour_limit_applies() {
        let sends: Vec<i64> = (0..1000).map(|i| i * 3_000).collect();
        let now = 3_000_000;
        let wait = wait_ms(&sends, now, &APP_MEMBER);
        assert_eq!(wait, 3_601_001 - now);
    }
}
