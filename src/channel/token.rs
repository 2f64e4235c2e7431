//! The WeCom access token cache.
//!
//! WeCom asks callers to cache the token (it is valid for `expires_in`
//! seconds, normally 7,200) and throttles callers that fetch it too often.
//! Tokens are cached per API base, corp id and secret in memory and in
//! `HERALD_HOME/tokens.json` (owner-only), so separate `herald send`
//! processes share them. One refresh runs at a time: inside a process an
//! async lock per key, across processes a file lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::diagnosis::{self, Context, Failure};
use crate::home::{now_ms, write_private, Home};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Token {
    value: String,
    /// When to stop using the token (ms since the epoch): the moment the
    /// gettoken request was sent plus `expires_in`, which is never later
    /// than the expiry WeCom counts from when it issued the token.
    use_until_ms: i64,
}

/// Cached WeCom access tokens.
#[derive(Clone, Default)]
pub struct TokenCache {
    home: Option<Home>,
    memory: Arc<Mutex<HashMap<String, Token>>>,
    refresh_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

/// An access token ready to use.
pub struct Fetched {
    pub value: String,
}

impl TokenCache {
    pub fn new(home: Option<Home>) -> TokenCache {
        TokenCache {
            home,
            ..TokenCache::default()
        }
    }

    /// Returns the number of gettoken calls this cache made.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns a valid token, fetching one when none is cached. A token
    /// equal to `rejected` (one WeCom just refused) is never returned.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        api_base: &str,
        corp_id: &str,
        secret: &str,
        rejected: Option<&str>,
        context: &Context,
    ) -> Result<Fetched, Failure> {
        let key = cache_key(api_base, corp_id, secret);
        if let Some(token) = self.usable(&key, rejected) {
            return Ok(Fetched { value: token });
        }

        let lock = {
            let mut locks = self.refresh_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        let _in_process = lock.lock().await;
        if let Some(token) = self.usable(&key, rejected) {
            return Ok(Fetched { value: token });
        }

        let _across_processes = self.lock_file().await;
        if let Some(token) = self.read_cached(&key, rejected) {
            self.remember(&key, token.clone());
            return Ok(Fetched { value: token.value });
        }

        let token = self
            .fetch(client, api_base, corp_id, secret, context)
            .await?;
        self.remember(&key, token.clone());
        self.save_to_file(&key, &token);
        Ok(Fetched { value: token.value })
    }

    /// Drops the cached token of this API base, corp id and secret, in
    /// memory and in the cache file, so the next `get` fetches a new one.
    pub async fn forget(&self, api_base: &str, corp_id: &str, secret: &str) {
        let key = cache_key(api_base, corp_id, secret);
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if self.home.is_none() {
            return;
        }
        let _across_processes = self.lock_file().await;
        let mut tokens = self.read_file();
        if tokens.remove(&key).is_some() {
            self.write_file(&tokens);
        }
    }

    fn usable(&self, key: &str, rejected: Option<&str>) -> Option<String> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let token = memory.get(key)?;
        (token.use_until_ms > now_ms() && Some(token.value.as_str()) != rejected)
            .then(|| token.value.clone())
    }

    fn remember(&self, key: &str, token: Token) {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), token);
    }

    async fn lock_file(&self) -> Option<std::fs::File> {
        let home = self.home.clone()?;
        let locked = tokio::task::spawn_blocking(move || home.lock("tokens")).await;
        match locked {
            Ok(Ok(file)) => Some(file),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not lock the token cache; refreshing without it");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "token cache lock task failed");
                None
            }
        }
    }

    fn read_file(&self) -> HashMap<String, Token> {
        let Some(home) = &self.home else {
            return HashMap::new();
        };
        std::fs::read(home.tokens())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn read_cached(&self, key: &str, rejected: Option<&str>) -> Option<Token> {
        let token = self.read_file().remove(key)?;
        (token.use_until_ms > now_ms() && Some(token.value.as_str()) != rejected).then_some(token)
    }

    fn save_to_file(&self, key: &str, token: &Token) {
        if self.home.is_none() {
            return;
        }
        let mut tokens = self.read_file();
        let now = now_ms();
        tokens.retain(|_, t| t.use_until_ms > now);
        tokens.insert(key.to_owned(), token.clone());
        self.write_file(&tokens);
    }

    fn write_file(&self, tokens: &HashMap<String, Token>) {
        let Some(home) = &self.home else { return };
        let written = serde_json::to_vec(tokens)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| write_private(&home.tokens(), &bytes));
        if let Err(error) = written {
            tracing::warn!(%error, "could not save the WeCom token cache");
        }
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        api_base: &str,
        corp_id: &str,
        secret: &str,
        context: &Context,
    ) -> Result<Token, Failure> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{}/cgi-bin/gettoken", api_base.trim_end_matches('/'));
        tracing::debug!(corp_id, "fetching a WeCom access token");
        // No refresh ahead of expiry: WeCom may hand back the same token
        // before it expires, which would cost a call and gain nothing. A
        // token WeCom drops early is refreshed on 40014 or 42001.
        let sent_at = now_ms();
        let response = client
            .get(&url)
            .query(&[("corpid", corp_id), ("corpsecret", secret)])
            .send()
            .await
            .map_err(|e| diagnosis::network("WeCom", &describe_reqwest(&e), &context.route))?;
        let answer: GetTokenAnswer = super::wecom::read_json(response).await?;
        if answer.errcode != 0 {
            return Err(diagnosis::wecom(answer.errcode, &answer.errmsg, context));
        }
        let value = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                diagnosis::wecom_unreadable(
                    200,
                    "gettoken answered errcode 0 without an access_token",
                )
            })?;
        let lifetime_ms = answer.expires_in.unwrap_or(7200).max(1) * 1000;
        Ok(Token {
            value,
            use_until_ms: sent_at + lifetime_ms,
        })
    }
}

#[derive(Deserialize)]
struct GetTokenAnswer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<i64>,
}

/// Keys the cache by API base, corp id and a fingerprint of the secret, so
/// that a changed secret never reuses the old token and the secret itself is
/// not written to the cache file.
fn cache_key(api_base: &str, corp_id: &str, secret: &str) -> String {
    format!(
        "{}|{corp_id}|{:016x}",
        api_base.trim_end_matches('/'),
        fnv1a(secret.as_bytes())
    )
}

/// FNV-1a, 64-bit: stable across Rust versions, unlike `DefaultHasher`.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Describes a reqwest error by its kind and cause chain. The error's own
/// text is left out because it contains the URL, which carries the access
/// token or the robot key.
pub fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_body() || error.is_decode() {
        "reading the answer failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_secret_changes_key() {
        assert_ne!(cache_key("b", "ww1", "one"), cache_key("b", "ww1", "two"));
        assert_eq!(cache_key("b/", "ww1", "one"), cache_key("b", "ww1", "one"));
        assert!(!cache_key("b", "ww1", "secret-value").contains("secret-value"));
    }
}
