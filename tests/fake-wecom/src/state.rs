//! Server state and the WeCom rules that act on it, free of HTTP concerns.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use serde_json::Value;

use crate::{Config, Fault, Received, Route, Stats};

/// Maximum number of content bytes that the app message API keeps. Longer
/// text and markdown content is truncated to this length, not rejected.
pub(crate) const APP_CONTENT_MAX_BYTES: usize = 2048;
/// Maximum text content length of a group robot message. Longer content is rejected.
pub(crate) const ROBOT_TEXT_MAX_BYTES: usize = 2048;
/// Maximum markdown content length of a group robot message. Longer content is rejected.
pub(crate) const ROBOT_MARKDOWN_MAX_BYTES: usize = 4096;
/// Messages one app may send to one member within `Config::window`.
pub(crate) const MEMBER_LIMIT_PER_WINDOW: usize = 30;
/// Messages one app may send to one member within `Config::hour_window`.
pub(crate) const MEMBER_LIMIT_PER_HOUR_WINDOW: usize = 1000;
/// Messages one robot key may send within `Config::window`.
pub(crate) const ROBOT_LIMIT_PER_WINDOW: usize = 20;

/// A WeCom API error: the code and the errmsg before the common suffix.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub errcode: i64,
    pub errmsg: String,
    /// Invalid recipients, reported alongside errcode 81013.
    pub invalid: Option<InvalidRecipients>,
}

impl ApiError {
    /// Creates the error with WeCom's errmsg for `errcode`.
    pub(crate) fn new(errcode: i64) -> ApiError {
        ApiError::with_message(errcode, default_errmsg(errcode))
    }

    pub(crate) fn with_message(errcode: i64, errmsg: impl Into<String>) -> ApiError {
        ApiError {
            errcode,
            errmsg: errmsg.into(),
            invalid: None,
        }
    }
}

/// Returns the errmsg that WeCom sends for `errcode`, without the common suffix.
pub(crate) fn default_errmsg(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system busy",
        0 => "ok",
        40001 => "invalid credential",
        40008 => "invalid message type",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40056 => "invalid agentid",
        40058 => "Warning: wrong json format. invalid json input",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        42001 => "access_token expired",
        44004 => "empty content",
        45009 => "api freq out of limit",
        60020 => "not allow to access from your ip",
        81013 => "user & party & tag all invalid",
        93000 => "invalid webhook url",
        _ => "unknown error",
    }
}

/// Recipients of an app message that are not known to the app, each list
/// joined with `|`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct InvalidRecipients {
    pub users: String,
    pub parties: String,
    pub tags: String,
}

struct App {
    corp_id: String,
    secret: String,
    agent_id: i64,
    /// Lowercase userids, in the order they were added.
    users: Vec<String>,
    parties: HashSet<String>,
    tags: HashSet<String>,
    /// Delivery times per lowercase userid, for the per-member rate limits.
    deliveries: HashMap<String, VecDeque<Instant>>,
    /// Token that gettoken returns again while it is valid.
    current_token: Option<String>,
}

struct Token {
    app: usize,
    expires_at: Instant,
    /// Errcode that every later use of the token gets, set by `invalidate_tokens`.
    revoked_with: Option<i64>,
}

struct PendingFault {
    fault: Fault,
    remaining: usize,
}

/// Everything the fake server stores. Guarded by a std `Mutex`, which no
/// code keeps locked across an `.await`.
pub(crate) struct State {
    pub config: Config,
    /// Reported caller IP while the trusted-IP check is on. An empty string
    /// turns the check on and reports the caller's peer IP.
    pub trusted_ip: Option<String>,
    pub received: Vec<Received>,
    pub dropped: Vec<Received>,
    pub stats: Stats,
    apps: Vec<App>,
    /// Delivery times per robot key, for the robot rate limit.
    robots: HashMap<String, VecDeque<Instant>>,
    tokens: HashMap<String, Token>,
    faults: HashMap<Route, VecDeque<PendingFault>>,
}

/// Request parameters of `message/send` after validation.
struct AppMessage<'a> {
    msgtype: &'a str,
    content: &'a str,
    touser: &'a str,
    toparty: &'a str,
    totag: &'a str,
}

impl State {
    pub(crate) fn new(config: Config) -> State {
        State {
            config,
            trusted_ip: None,
            received: Vec::new(),
            dropped: Vec::new(),
            stats: Stats::default(),
            apps: Vec::new(),
            robots: HashMap::new(),
            tokens: HashMap::new(),
            faults: HashMap::new(),
        }
    }

    /// Adds an app, or replaces the app with the same corp id and agent id.
    pub(crate) fn add_app(
        &mut self,
        corp_id: &str,
        secret: &str,
        agent_id: i64,
        users: &[&str],
        parties: &[&str],
        tags: &[&str],
    ) {
        let mut member_ids: Vec<String> = Vec::new();
        for user in users {
            let userid = user.trim().to_lowercase();
            if !userid.is_empty() && !member_ids.contains(&userid) {
                member_ids.push(userid);
            }
        }
        let app = App {
            corp_id: corp_id.to_string(),
            secret: secret.to_string(),
            agent_id,
            users: member_ids,
            parties: parties.iter().map(|p| p.trim().to_string()).collect(),
            tags: tags.iter().map(|t| t.trim().to_string()).collect(),
            deliveries: HashMap::new(),
            current_token: None,
        };
        let existing = self
            .apps
            .iter()
            .position(|a| a.corp_id == corp_id && a.agent_id == agent_id);
        match existing {
            Some(index) => self.apps[index] = app,
            None => self.apps.push(app),
        }
    }

    pub(crate) fn add_robot(&mut self, key: &str) {
        self.robots.entry(key.to_string()).or_default();
    }

    pub(crate) fn has_robot(&self, key: Option<&str>) -> bool {
        key.is_some_and(|key| self.robots.contains_key(key))
    }

    pub(crate) fn push_fault(&mut self, route: Route, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        self.faults
            .entry(route)
            .or_default()
            .push_back(PendingFault {
                fault,
                remaining: times,
            });
    }

    /// Removes one use of the oldest fault queued for `route` and returns it.
    pub(crate) fn take_fault(&mut self, route: Route) -> Option<Fault> {
        let queue = self.faults.get_mut(&route)?;
        let front = queue.front_mut()?;
        let fault = front.fault.clone();
        front.remaining -= 1;
        if front.remaining == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    /// Makes every token issued so far fail with `errcode` from now on, and
    /// makes the next gettoken issue a new token.
    pub(crate) fn invalidate_tokens(&mut self, errcode: i64) {
        for token in self.tokens.values_mut() {
            token.revoked_with.get_or_insert(errcode);
        }
        for app in &mut self.apps {
            app.current_token = None;
        }
    }

    /// Clears received and dropped messages, stats, faults and rate-limit
    /// history. Apps, robots, tokens, the trusted-IP check and the delay stay.
    pub(crate) fn reset(&mut self) {
        self.received.clear();
        self.dropped.clear();
        self.stats = Stats::default();
        self.faults.clear();
        for app in &mut self.apps {
            app.deliveries.clear();
        }
        for deliveries in self.robots.values_mut() {
            deliveries.clear();
        }
    }

    /// Returns the IP address that error messages report as the caller's.
    pub(crate) fn reported_ip(&self, peer_ip: std::net::IpAddr) -> String {
        match &self.trusted_ip {
            Some(ip) if !ip.is_empty() => ip.clone(),
            _ => peer_ip.to_string(),
        }
    }

    /// Issues an access token, returning it with its remaining lifetime in
    /// seconds. While the app's last token is valid, returns that token again,
    /// as WeCom does.
    pub(crate) fn issue_token(
        &mut self,
        corp_id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<(String, u64), ApiError> {
        let corp_id = corp_id
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::new(41002))?;
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::new(41004))?;
        if !self.apps.iter().any(|a| a.corp_id == corp_id) {
            return Err(ApiError::new(40013));
        }
        let app_index = self
            .apps
            .iter()
            .position(|a| a.corp_id == corp_id && a.secret == secret)
            .ok_or_else(|| ApiError::new(40001))?;

        let now = Instant::now();
        if let Some(current) = &self.apps[app_index].current_token {
            if let Some(token) = self.tokens.get(current) {
                if token.revoked_with.is_none() && token.expires_at > now {
                    // NOTE: whether WeCom sends the remaining lifetime or the
                    // full lifetime for a reused token is unverified.
                    let remaining = token.expires_at - now;
                    return Ok((current.clone(), remaining.as_secs_f64().ceil() as u64));
                }
            }
        }

        let ttl = self.config.token_ttl_secs;
        let access_token = Alphanumeric.sample_string(&mut rand::rng(), 64);
        self.tokens.insert(
            access_token.clone(),
            Token {
                app: app_index,
                expires_at: now + Duration::from_secs(ttl),
                revoked_with: None,
            },
        );
        self.apps[app_index].current_token = Some(access_token.clone());
        Ok((access_token, ttl))
    }

    /// Returns the index of the app that owns `access_token`.
    pub(crate) fn check_token(&self, access_token: Option<&str>) -> Result<usize, ApiError> {
        let access_token = access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::new(41001))?;
        let token = self
            .tokens
            .get(access_token)
            .ok_or_else(|| ApiError::new(40014))?;
        if let Some(errcode) = token.revoked_with {
            return Err(ApiError::new(errcode));
        }
        if Instant::now() >= token.expires_at {
            return Err(ApiError::new(42001));
        }
        Ok(token.app)
    }

    /// Applies `message/send` to an app message: validates it, records it as
    /// received or dropped, and returns the invalid recipients.
    pub(crate) fn send_app_message(
        &mut self,
        app_index: usize,
        body: &Value,
    ) -> Result<InvalidRecipients, ApiError> {
        let agent_id = self.apps[app_index].agent_id;
        // NOTE: WeCom may report a missing agentid with a code of its own.
        // This fake sends 40056 for a missing, non-integer or wrong agentid.
        if body.get("agentid").and_then(Value::as_i64) != Some(agent_id) {
            return Err(ApiError::new(40056));
        }
        let message = parse_app_message(body)?;

        let app = &mut self.apps[app_index];
        let recipients = app.resolve_recipients(message.touser, message.toparty, message.totag);
        // NOTE: a message with no recipients at all also gets 81013 here;
        // WeCom's code for that case is unverified.
        if !recipients.any_valid() {
            return Err(ApiError {
                invalid: Some(recipients.invalid),
                ..ApiError::new(81013)
            });
        }

        let (delivered, limited) = app.apply_member_limits(
            &recipients.members,
            self.config.window,
            self.config.hour_window,
        );

        let content_bytes =
            &message.content.as_bytes()[..message.content.len().min(APP_CONTENT_MAX_BYTES)];
        let record = |touser: String, toparty: String, totag: String| Received {
            kind: "app".to_string(),
            target: agent_id.to_string(),
            msgtype: message.msgtype.to_string(),
            content: String::from_utf8_lossy(content_bytes).into_owned(),
            content_bytes: content_bytes.len(),
            touser,
            toparty,
            totag,
            at_ms: unix_millis(),
        };

        // `@all` to an app without members still counts as delivered.
        let delivered_to_anyone = !delivered.is_empty()
            || (recipients.all_members && limited.is_empty())
            || !recipients.parties.is_empty()
            || !recipients.tags.is_empty();
        if delivered_to_anyone {
            let touser = if recipients.all_members && limited.is_empty() {
                "@all".to_string()
            } else {
                delivered.join("|")
            };
            self.received.push(record(
                touser,
                recipients.parties.join("|"),
                recipients.tags.join("|"),
            ));
        }
        if !limited.is_empty() {
            self.dropped
                .push(record(limited.join("|"), String::new(), String::new()));
            self.stats.dropped += 1;
        }
        Ok(recipients.invalid)
    }

    /// Applies `webhook/send` to a group robot message.
    pub(crate) fn send_robot_message(
        &mut self,
        key: Option<&str>,
        body: &Value,
    ) -> Result<(), ApiError> {
        let key = match key {
            Some(key) if self.robots.contains_key(key) => key,
            _ => return Err(ApiError::new(93000)),
        };
        let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
        let max_bytes = match msgtype {
            "text" => ROBOT_TEXT_MAX_BYTES,
            "markdown" => ROBOT_MARKDOWN_MAX_BYTES,
            _ => return Err(ApiError::new(40008)),
        };
        let content = body
            .get(msgtype)
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if content.is_empty() {
            return Err(ApiError::new(44004));
        }
        if content.len() > max_bytes {
            return Err(ApiError::with_message(
                40058,
                format!(
                    "{msgtype}.content exceed max length {max_bytes}. invalid Request Parameter"
                ),
            ));
        }

        let window = self.config.window;
        let deliveries = self.robots.get_mut(key).expect("robot key checked above");
        let now = Instant::now();
        prune_older_than(deliveries, now, window);
        if deliveries.len() >= ROBOT_LIMIT_PER_WINDOW {
            return Err(ApiError::new(45009));
        }
        deliveries.push_back(now);

        self.received.push(Received {
            kind: "robot".to_string(),
            target: key.to_string(),
            msgtype: msgtype.to_string(),
            content: content.to_string(),
            content_bytes: content.len(),
            touser: String::new(),
            toparty: String::new(),
            totag: String::new(),
            at_ms: unix_millis(),
        });
        Ok(())
    }
}

/// Validates the message type, the content and the recipient fields.
fn parse_app_message(body: &Value) -> Result<AppMessage<'_>, ApiError> {
    let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
    if msgtype != "text" && msgtype != "markdown" {
        return Err(ApiError::new(40008));
    }
    let content = body
        .get(msgtype)
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if content.is_empty() {
        return Err(ApiError::new(44004));
    }
    Ok(AppMessage {
        msgtype,
        content,
        touser: string_field(body, "touser")?,
        toparty: string_field(body, "toparty")?,
        totag: string_field(body, "totag")?,
    })
}

/// Returns the string field `name` of `body`, or "" when it is absent or null.
fn string_field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(ApiError::with_message(
            40058,
            format!("Warning: wrong json format. {name} must be a string"),
        )),
    }
}

/// Recipients of one app message, checked against the app's members,
/// parties and tags.
struct Recipients {
    /// Whether touser was `@all`, which also makes WeCom ignore toparty and totag.
    all_members: bool,
    /// Valid members that the message goes to, as lowercase userids.
    members: Vec<String>,
    parties: Vec<String>,
    tags: Vec<String>,
    invalid: InvalidRecipients,
}

impl Recipients {
    fn any_valid(&self) -> bool {
        self.all_members
            || !self.members.is_empty()
            || !self.parties.is_empty()
            || !self.tags.is_empty()
    }
}

impl App {
    fn resolve_recipients(&self, touser: &str, toparty: &str, totag: &str) -> Recipients {
        if touser.trim() == "@all" {
            return Recipients {
                all_members: true,
                members: self.users.clone(),
                parties: Vec::new(),
                tags: Vec::new(),
                invalid: InvalidRecipients::default(),
            };
        }

        let mut members = Vec::new();
        let mut invalid_users = Vec::new();
        for userid in split_ids(touser).map(str::to_lowercase) {
            let bucket = if self.users.contains(&userid) {
                &mut members
            } else {
                &mut invalid_users
            };
            if !bucket.contains(&userid) {
                bucket.push(userid);
            }
        }
        let (parties, invalid_parties) = partition_ids(toparty, &self.parties);
        let (tags, invalid_tags) = partition_ids(totag, &self.tags);
        Recipients {
            all_members: false,
            members,
            parties,
            tags,
            invalid: InvalidRecipients {
                users: invalid_users.join("|"),
                parties: invalid_parties.join("|"),
                tags: invalid_tags.join("|"),
            },
        }
    }

    /// Splits `members` into those that may receive one more message and
    /// those over a per-member limit, and counts the delivery for the former.
    fn apply_member_limits(
        &mut self,
        members: &[String],
        window: Duration,
        hour_window: Duration,
    ) -> (Vec<String>, Vec<String>) {
        let now = Instant::now();
        let mut delivered = Vec::new();
        let mut limited = Vec::new();
        for userid in members {
            let deliveries = self.deliveries.entry(userid.clone()).or_default();
            prune_older_than(deliveries, now, window.max(hour_window));
            let in_window = deliveries
                .iter()
                .filter(|&&at| now.duration_since(at) < window)
                .count();
            let in_hour_window = deliveries
                .iter()
                .filter(|&&at| now.duration_since(at) < hour_window)
                .count();
            if in_window >= MEMBER_LIMIT_PER_WINDOW
                || in_hour_window >= MEMBER_LIMIT_PER_HOUR_WINDOW
            {
                limited.push(userid.clone());
            } else {
                deliveries.push_back(now);
                delivered.push(userid.clone());
            }
        }
        (delivered, limited)
    }
}

fn split_ids(joined: &str) -> impl Iterator<Item = &str> {
    joined.split('|').map(str::trim).filter(|id| !id.is_empty())
}

/// Splits the `|`-joined ids into (known, unknown), without duplicates.
fn partition_ids(joined: &str, known: &HashSet<String>) -> (Vec<String>, Vec<String>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for id in split_ids(joined) {
        let bucket = if known.contains(id) {
            &mut valid
        } else {
            &mut invalid
        };
        if !bucket.iter().any(|seen| seen == id) {
            bucket.push(id.to_string());
        }
    }
    (valid, invalid)
}

/// Removes the times at the front of `times` that lie `window` or more before `now`.
fn prune_older_than(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while let Some(&oldest) = times.front() {
        if now.duration_since(oldest) >= window {
            times.pop_front();
        } else {
            break;
        }
    }
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Returns `count` random decimal digits, the first of them not zero.
pub(crate) fn random_digits(count: usize) -> String {
    let mut rng = rand::rng();
    let mut digits = String::with_capacity(count);
    for position in 0..count {
        let low = if position == 0 { 1 } else { 0 };
        digits.push(char::from(b'0' + rng.random_range(low..10u8)));
    }
    digits
}

/// Returns a random message id for a successful `message/send`.
pub(crate) fn random_msgid() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 43)
}
