// Types shared with the Rust side of the desktop app. Field names are the
// snake_case JSON that the Tauri commands and events carry.

export type Language = "zh" | "en";

/** A text in both languages. */
export interface Text {
  en: string;
  zh: string;
}

export type FailureClass = "permanent" | "transient" | "rate_limited" | "token_rejected";

/** A failed delivery or check, explained in both languages. */
export interface Failure {
  code: string;
  class: FailureClass;
  message: string;
  hint: string;
  message_zh: string;
  hint_zh: string;
  upstream_errcode?: number;
  upstream_message?: string;
  from_ip?: string;
}

export type ProfileKind = "wecom-app" | "wecom-bot" | "email";
export type TlsMode = "implicit" | "starttls" | "none";

/** A saved profile as the UI shows it. The secret is only present masked. */
export interface ProfileView {
  name: string;
  kind: ProfileKind;
  is_default: boolean;
  corp_id?: string;
  agent_id?: number;
  to_user?: string[];
  to_party?: string[];
  to_tag?: string[];
  api_base?: string | null;
  smtp_host?: string;
  smtp_port?: number;
  tls?: TlsMode;
  username?: string;
  from?: string;
  to?: string[];
  ca_file?: string | null;
  /** "system", "none" or a proxy URL. */
  proxy: string;
  fallback: string | null;
  relay_key: string;
  /** The secret with its middle replaced by stars, e.g. "ab****yz". */
  secret_masked: string;
  secret_store: "keyring" | "file";
  /** Milliseconds since the Unix epoch. */
  last_success_at: number | null;
  last_success_ip: string | null;
  last_error: Failure | null;
  /** Milliseconds since the Unix epoch. */
  last_error_at: number | null;
  /** The outbound route in words. */
  route: Text;
}

/** A profile as the form submits it. */
export interface ProfileInput {
  name: string;
  kind: ProfileKind;
  corp_id?: string;
  agent_id?: number;
  /** User IDs separated by '|'. */
  to_user?: string;
  /** Department IDs separated by '|'. */
  to_party?: string;
  /** Tag IDs separated by '|'. */
  to_tag?: string;
  api_base?: string;
  smtp_host?: string;
  smtp_port?: number;
  tls?: string;
  username?: string;
  from?: string;
  /** Addresses separated by ','. */
  to?: string;
  ca_file?: string;
  proxy: string;
  fallback?: string | null;
  /** Null or absent keeps the saved secret. A new profile requires one. */
  secret?: string | null;
}

/** Server-side checks of a profile: errors block saving, warnings do not. */
export interface Report {
  errors: Text[];
  warnings: Text[];
}

export interface SaveResult {
  saved: boolean;
  errors: Text[];
  warnings: Text[];
  /** Reason the secret was stored in a file instead of the system keyring. */
  keyring_fallback: string | null;
  profile: ProfileView | null;
}

export interface Outcome {
  ok: boolean;
  status: "delivered" | "failed" | "queued";
  id: string | null;
  /** The provider's response body, as received. */
  answer: string | null;
  failure: Failure | null;
}

export type MessageStatus = "queued" | "sending" | "delivered" | "failed";

export interface MessageView {
  id: string;
  profile: string;
  status: MessageStatus;
  attempts: number;
  parts: number;
  parts_delivered: number;
  error?: Failure;
  fallback_id?: string;
  fallback_of?: string;
  merged_with?: string;
  title: string | null;
  text: string;
  format: "text" | "markdown";
  source: string;
  /** Milliseconds since the Unix epoch. */
  created_at: number;
  /** Milliseconds since the Unix epoch. */
  updated_at: number;
}

export interface AttemptView {
  /** Milliseconds since the Unix epoch. */
  at: number;
  part: number;
  parts: number;
  outcome: "accepted" | "failed";
  answer: string | null;
  error: Failure | null;
}

export interface MessageDetail {
  message: MessageView;
  attempts: AttemptView[];
}

export interface HistoryFilter {
  profile?: string;
  status?: string;
  text?: string;
  limit?: number;
}

export type RelayState = "starting" | "running" | "paused" | "error";

export interface RelayStatus {
  state: RelayState;
  port: number;
  url: string | null;
  error: Text | null;
}

export interface Settings {
  /** Null follows the system language. */
  language: Language | null;
  system_language: Language;
  autostart: boolean;
  notify_on_failure: boolean;
  port: number;
  /** The port that HERALD_PORT sets, which wins over `port`; null when unset. */
  port_from_env?: number | null;
}
