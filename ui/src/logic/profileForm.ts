// Conversion between a saved profile, the form's raw text and the
// ProfileInput that `validate_profile` and `save_profile` take.

import type { ProfileInput, ProfileKind, ProfileView } from "../types";
import type { ProfileFormValues, ProxyChoice } from "./validation";

export function emptyFormValues(kind: ProfileKind = "wecom-app"): ProfileFormValues {
  return {
    name: "",
    kind,
    corp_id: "",
    agent_id: "",
    to_user: "",
    to_party: "",
    to_tag: "",
    secret: "",
    smtp_host: "",
    smtp_port: "465",
    tls: "implicit",
    username: "",
    from: "",
    to: "",
    api_base: "",
    proxy: "system",
    proxy_url: "",
    fallback: "",
    ca_file: "",
  };
}

/** Fills the form from a saved profile. The secret field starts empty: empty keeps the saved secret. */
export function formValuesFromProfile(profile: ProfileView): ProfileFormValues {
  const values = emptyFormValues(profile.kind);
  values.name = profile.name;
  values.corp_id = profile.corp_id ?? "";
  values.agent_id = profile.agent_id === undefined ? "" : String(profile.agent_id);
  values.to_user = (profile.to_user ?? []).join("|");
  values.to_party = (profile.to_party ?? []).join("|");
  values.to_tag = (profile.to_tag ?? []).join("|");
  values.smtp_host = profile.smtp_host ?? "";
  values.smtp_port = profile.smtp_port === undefined ? values.smtp_port : String(profile.smtp_port);
  values.tls = profile.tls ?? values.tls;
  values.username = profile.username ?? "";
  values.from = profile.from ?? "";
  values.to = (profile.to ?? []).join(",");
  values.api_base = profile.api_base ?? "";
  values.ca_file = profile.ca_file ?? "";
  values.fallback = profile.fallback ?? "";
  const route = proxyChoice(profile.proxy);
  values.proxy = route.choice;
  values.proxy_url = route.url;
  return values;
}

function proxyChoice(proxy: string): { choice: ProxyChoice; url: string } {
  if (proxy === "system" || proxy === "none") return { choice: proxy, url: "" };
  return { choice: "url", url: proxy };
}

/**
 * Extracts the key from a pasted group-robot webhook URL
 * (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY). Any other text
 * is returned trimmed.
 */
export function robotKeyFromInput(text: string): string {
  const trimmed = text.trim();
  const match = /[?&]key=([^&#\s]+)/.exec(trimmed);
  if (match !== null && /^https?:\/\//i.test(trimmed)) {
    return decodeURIComponent(match[1]);
  }
  return trimmed;
}

function secretFromInput(values: ProfileFormValues): string | null {
  const secret = values.kind === "wecom-bot" ? robotKeyFromInput(values.secret) : values.secret.trim();
  return secret === "" ? null : secret;
}

function optional(text: string): string | undefined {
  const trimmed = text.trim();
  return trimmed === "" ? undefined : trimmed;
}

/**
 * Builds the ProfileInput for the chosen kind. Fields of other kinds are left
 * out. An empty secret becomes null, which keeps the saved secret.
 */
export function toProfileInput(values: ProfileFormValues): ProfileInput {
  let proxy: string = values.proxy;
  if (values.proxy === "url") proxy = values.proxy_url.trim();
  const input: ProfileInput = {
    name: values.name.trim(),
    kind: values.kind,
    proxy,
    fallback: values.fallback === "" ? null : values.fallback,
    secret: secretFromInput(values),
  };
  if (values.kind === "wecom-app") {
    input.corp_id = values.corp_id.trim();
    const agentId = values.agent_id.trim();
    if (/^\d+$/.test(agentId)) input.agent_id = Number(agentId);
    input.to_user = values.to_user.trim();
    input.to_party = values.to_party.trim();
    input.to_tag = values.to_tag.trim();
  }
  if (values.kind === "email") {
    input.smtp_host = values.smtp_host.trim();
    const port = values.smtp_port.trim();
    if (/^\d+$/.test(port)) input.smtp_port = Number(port);
    input.tls = values.tls;
    input.username = values.username.trim();
    input.from = values.from.trim();
    input.to = values.to.trim();
    const caFile = optional(values.ca_file);
    if (caFile !== undefined) input.ca_file = caFile;
  } else {
    const apiBase = optional(values.api_base);
    if (apiBase !== undefined) input.api_base = apiBase;
  }
  return input;
}
