// Client-side checks of the profile form, run on every keystroke to catch
// the obvious mistakes at once. `validate_profile` on the Rust side has the
// final word, and it adds warnings such as a From address that differs from
// the login.

import type { MessageKey, Params } from "../i18n";
import type { ProfileKind, TlsMode } from "../types";

/** The form's fields, named as the contract's ProfileInput (plus `proxy_url`). */
export type FormField =
  | "name"
  | "kind"
  | "corp_id"
  | "agent_id"
  | "to_user"
  | "to_party"
  | "to_tag"
  | "secret"
  | "smtp_host"
  | "smtp_port"
  | "tls"
  | "username"
  | "from"
  | "to"
  | "api_base"
  | "proxy"
  | "proxy_url"
  | "fallback"
  | "ca_file";

/** The three outbound routes the form offers. "url" takes its address from `proxy_url`. */
export type ProxyChoice = "system" | "none" | "url";

/** The raw text of every form field, as typed. */
export interface ProfileFormValues {
  name: string;
  kind: ProfileKind;
  corp_id: string;
  agent_id: string;
  to_user: string;
  to_party: string;
  to_tag: string;
  secret: string;
  smtp_host: string;
  smtp_port: string;
  tls: TlsMode;
  username: string;
  from: string;
  to: string;
  api_base: string;
  proxy: ProxyChoice;
  proxy_url: string;
  fallback: string;
  ca_file: string;
}

/** A translatable message for one field. */
export interface FieldMessage {
  key: MessageKey;
  params?: Params;
}

export type FieldErrors = Partial<Record<FormField, FieldMessage>>;

export interface FormContext {
  /** A new profile must have a secret and a name no other profile has. */
  mode: "new" | "edit";
  /** Names of the saved profiles. */
  existingNames: string[];
}

/** The fields each kind of profile shows, in order. */
export const KIND_FIELDS: Record<ProfileKind, FormField[]> = {
  "wecom-app": ["corp_id", "agent_id", "secret", "to_user", "to_party", "to_tag", "api_base"],
  "wecom-bot": ["secret", "api_base"],
  email: ["smtp_host", "smtp_port", "tls", "username", "secret", "from", "to", "ca_file"],
};

// WeCom's limits on the recipients of one app message.
const MAX_USERS = 1000;
const MAX_PARTIES = 100;
const MAX_TAGS = 100;

const MAX_NAME_BYTES = 64;

/** Splits a separated list, trimming each item and dropping empty ones. */
export function splitList(text: string, separator: string): string[] {
  return text
    .split(separator)
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** Parses a TCP port: a whole number from 1 to 65535, or null. */
export function parsePort(text: string): number | null {
  const trimmed = text.trim();
  if (!/^\d{1,5}$/.test(trimmed)) return null;
  const port = Number(trimmed);
  return port >= 1 && port <= 65535 ? port : null;
}

/**
 * Returns whether `text` has the shape of a bare email address (local@domain,
 * no display name, no spaces). The Rust side checks the full syntax.
 */
export function isEmailAddress(text: string): boolean {
  return /^[^\s@<>(),;:"[\]]+@[^\s@<>(),;:"[\]]+$/.test(text) && !text.endsWith(".");
}

/** Returns the TLS mode that a well-known submission port expects: 465 and 994 implicit, 587 STARTTLS. */
export function suggestTls(port: number | null): TlsMode | null {
  if (port === 465 || port === 994) return "implicit";
  if (port === 587) return "starttls";
  return null;
}

/** Returns the TLS mode to suggest when the chosen one does not match the port, else null. */
export function tlsMismatch(values: Pick<ProfileFormValues, "smtp_port" | "tls">): TlsMode | null {
  const suggested = suggestTls(parsePort(values.smtp_port));
  return suggested !== null && suggested !== values.tls ? suggested : null;
}

/** Returns whether `name` is 1 to 64 bytes of letters, digits, '-', '_' or '.', as the Rust side requires. */
export function isValidProfileName(name: string): boolean {
  const bytes = new TextEncoder().encode(name).length;
  return bytes >= 1 && bytes <= MAX_NAME_BYTES && /^[\p{L}\p{N}._-]+$/u.test(name);
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname.length > 0;
  } catch {
    return false;
  }
}

function isProxyUrl(text: string): boolean {
  try {
    const url = new URL(text);
    const schemes = ["http:", "https:", "socks5:", "socks5h:"];
    return schemes.includes(url.protocol) && url.hostname.length > 0;
  } catch {
    return false;
  }
}

function checkName(values: ProfileFormValues, context: FormContext, errors: FieldErrors): void {
  const name = values.name.trim();
  if (name === "") {
    errors.name = { key: "v.nameMissing" };
  } else if (!isValidProfileName(name)) {
    errors.name = { key: "v.nameInvalid" };
  } else if (context.mode === "new" && context.existingNames.includes(name)) {
    errors.name = { key: "v.nameTaken", params: { name } };
  }
}

function checkWecomApp(values: ProfileFormValues, errors: FieldErrors): void {
  if (values.corp_id.trim() === "") {
    errors.corp_id = { key: "v.corpIdMissing" };
  }
  const agentId = values.agent_id.trim();
  if (agentId === "") {
    errors.agent_id = { key: "v.agentIdMissing" };
  } else if (!/^\d+$/.test(agentId) || Number(agentId) <= 0 || !Number.isSafeInteger(Number(agentId))) {
    errors.agent_id = { key: "v.agentIdInvalid", params: { value: agentId } };
  }
  const users = splitList(values.to_user, "|");
  const parties = splitList(values.to_party, "|");
  const tags = splitList(values.to_tag, "|");
  if (users.length === 0 && parties.length === 0 && tags.length === 0) {
    errors.to_user = { key: "v.recipientsMissing" };
  }
  if (users.length > MAX_USERS) {
    errors.to_user = { key: "v.tooManyUsers", params: { count: users.length } };
  }
  if (parties.length > MAX_PARTIES) {
    errors.to_party = { key: "v.tooManyParties", params: { count: parties.length } };
  }
  if (tags.length > MAX_TAGS) {
    errors.to_tag = { key: "v.tooManyTags", params: { count: tags.length } };
  }
}

function checkEmail(values: ProfileFormValues, errors: FieldErrors): void {
  const host = values.smtp_host.trim();
  if (host === "") {
    errors.smtp_host = { key: "v.hostMissing" };
  } else if (/[\s/:]/.test(host)) {
    errors.smtp_host = { key: "v.hostInvalid", params: { value: host } };
  }

  const port = values.smtp_port.trim();
  if (port === "") {
    errors.smtp_port = { key: "v.portMissing" };
  } else if (parsePort(port) === null) {
    errors.smtp_port = { key: "v.portInvalid", params: { value: port } };
  }

  if (values.username.trim() === "") {
    errors.username = { key: "v.usernameMissing" };
  }

  const from = values.from.trim();
  if (from === "") {
    errors.from = { key: "v.fromMissing" };
  } else if (!isEmailAddress(from)) {
    errors.from = { key: "v.addressInvalid", params: { value: from } };
  }

  const recipients = splitList(values.to, ",");
  const invalid = recipients.find((address) => !isEmailAddress(address));
  if (recipients.length === 0) {
    errors.to = { key: "v.toMissing" };
  } else if (invalid !== undefined) {
    errors.to = { key: "v.addressInvalid", params: { value: invalid } };
  }
}

function checkRoute(values: ProfileFormValues, errors: FieldErrors): void {
  const apiBase = values.api_base.trim();
  if (values.kind !== "email" && apiBase !== "" && !isHttpUrl(apiBase)) {
    errors.api_base = { key: "v.urlInvalid", params: { value: apiBase } };
  }
  if (values.proxy === "url" && values.kind !== "email") {
    const proxyUrl = values.proxy_url.trim();
    if (proxyUrl === "") {
      errors.proxy_url = { key: "v.proxyUrlMissing" };
    } else if (!isProxyUrl(proxyUrl)) {
      errors.proxy_url = { key: "v.proxyUrlInvalid", params: { value: proxyUrl } };
    }
  }
  if (values.fallback !== "" && values.fallback === values.name.trim()) {
    errors.fallback = { key: "v.fallbackSelf" };
  }
}

/**
 * Checks the form and returns one message per invalid field (empty when
 * nothing is wrong). Only the fields of the chosen kind are checked.
 */
export function validateProfileForm(values: ProfileFormValues, context: FormContext): FieldErrors {
  const errors: FieldErrors = {};
  checkName(values, context, errors);
  if (values.kind === "wecom-app") checkWecomApp(values, errors);
  if (values.kind === "email") checkEmail(values, errors);
  if (context.mode === "new" && values.secret.trim() === "") {
    errors.secret = { key: "v.secretMissing" };
  }
  checkRoute(values, errors);
  return errors;
}

/** Checks the relay port of the Settings form: an error blocks saving, a warning does not. */
export function checkRelayPort(text: string): { error: FieldMessage | null; warning: FieldMessage | null } {
  const trimmed = text.trim();
  if (trimmed === "") return { error: { key: "v.portMissing" }, warning: null };
  const port = parsePort(trimmed);
  if (port === null) return { error: { key: "v.portInvalid", params: { value: trimmed } }, warning: null };
  if (port <= 1024) return { error: null, warning: { key: "settings.portLow" } };
  return { error: null, warning: null };
}
