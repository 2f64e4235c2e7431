//! Delivery to providers: one module per channel behind [`Channels`].
//!
//! A channel sends one rendered part and parses the provider's answer every
//! time. It returns [`Accepted`] only when the provider accepted the part for
//! at least one recipient, and a [`Failure`] otherwise.

mod email;
mod lenient;
mod token;
mod wecom;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diagnosis::{Context, Failure};
use crate::home::Home;
use crate::profile::{Kind, Profile, Proxy};

pub use token::TokenCache;

/// A stable 64-bit fingerprint of a secret, for cache and rate keys that
/// must change with the secret without containing it.
pub fn fingerprint(secret: &str) -> u64 {
    token::fnv1a(secret.as_bytes())
}

/// A provider's acceptance of one part.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The provider's answer in short, e.g. `errcode 0, msgid …` or `250 OK`.
    pub answer: String,
    /// Recipients the provider rejected while accepting the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_recipients: Vec<String>,
    /// The caller's IP as WeCom reported it during this delivery, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ip: Option<String>,
}

pub type Outcome = Result<Accepted, Failure>;

/// Content to deliver: already split to the channel's size limit.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    pub title: Option<&'a str>,
    pub content: &'a str,
    pub markdown: bool,
}

/// Returns the largest content, in UTF-8 bytes, a channel takes in one
/// message.
pub fn max_part_bytes(kind: &Kind, markdown: bool) -> usize {
    match kind {
        // WeCom silently truncates app text and markdown beyond 2,048 bytes.
        Kind::WecomApp { .. } => 2048,
        // The robot rejects markdown beyond 4,096 bytes (errcode 40058) and
        // takes at most 2,048 bytes of text.
        Kind::WecomBot { .. } if markdown => 4096,
        Kind::WecomBot { .. } => 2048,
        // Mail bodies have no practical limit for notices; 1 MiB keeps a
        // runaway message from becoming a runaway email.
        Kind::Email { .. } => 1 << 20,
    }
}

/// The most parts one message may be split into. More would hold the
/// profile's queue behind the provider's rate limit for minutes (a robot
/// takes 20 messages a minute), delaying every later notice.
pub const MAX_PARTS: usize = 10;

/// Counts the parts `text` needs on this channel.
pub fn parts_needed(kind: &Kind, title: Option<&str>, text: &str, markdown: bool) -> usize {
    if !title_in_content(kind) {
        return 1;
    }
    crate::split::render_parts(title, text, markdown, max_part_bytes(kind, markdown)).len()
}

/// Tells whether the title travels inside the content (WeCom) or
/// separately as the email subject.
pub fn title_in_content(kind: &Kind) -> bool {
    !matches!(kind, Kind::Email { .. })
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared delivery machinery: HTTP clients per outbound route and the
/// WeCom token cache.
#[derive(Clone)]
pub struct Channels {
    clients: Arc<Mutex<HashMap<Proxy, reqwest::Client>>>,
    tokens: TokenCache,
}

impl Channels {
    pub fn new(home: &Home) -> Channels {
        Channels {
            clients: Arc::default(),
            tokens: TokenCache::new(Some(home.clone())),
        }
    }

    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// Sends one part through the profile's channel.
    pub async fn send(
        &self,
        profile: &Profile,
        secret: &str,
        part: Part<'_>,
        context: &Context,
    ) -> Outcome {
        match &profile.kind {
            Kind::WecomApp { .. } => {
                let client = self.client(&profile.proxy, context)?;
                wecom::send_app(&client, &self.tokens, profile, secret, part, context).await
            }
            Kind::WecomBot { .. } => {
                let client = self.client(&profile.proxy, context)?;
                wecom::send_bot(&client, profile, secret, part, context).await
            }
            Kind::Email { .. } => email::send(profile, secret, part).await,
        }
    }

    /// Verifies credentials without sending a message: a WeCom app token, a
    /// robot key (through the robot's media upload), or an SMTP connection,
    /// TLS and login.
    pub async fn check(&self, profile: &Profile, secret: &str, context: &Context) -> Outcome {
        match &profile.kind {
            Kind::WecomApp { .. } => {
                let client = self.client(&profile.proxy, context)?;
                wecom::check_app(&client, &self.tokens, profile, secret, context).await
            }
            Kind::WecomBot { .. } => {
                let client = self.client(&profile.proxy, context)?;
                wecom::check_bot(&client, profile, secret, context).await
            }
            Kind::Email { .. } => email::check(profile, secret).await,
        }
    }

    fn client(&self, proxy: &Proxy, context: &Context) -> Result<reqwest::Client, Failure> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(proxy) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")));
        builder = match proxy {
            Proxy::System => builder,
            Proxy::None => builder.no_proxy(),
            Proxy::Url(url) => {
                let proxy = reqwest::Proxy::all(url).map_err(|e| {
                    crate::diagnosis::network("the proxy", &e.to_string(), &context.route)
                })?;
                builder.proxy(proxy)
            }
        };
        let client = builder
            .build()
            .map_err(|e| crate::diagnosis::network("WeCom", &e.to_string(), &context.route))?;
        clients.insert(proxy.clone(), client.clone());
        Ok(client)
    }
}
