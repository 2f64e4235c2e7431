// Code snippets that post to the local relay, one set per profile.

import type { RelayStatus } from "../types";

export interface SnippetInput {
  /** The relay's base URL, e.g. http://127.0.0.1:7591 (a trailing slash is ignored). */
  url: string;
  token: string;
  profile: string;
  text: string;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** Returns the relay's base URL: the one it reports, else the loopback address on the configured port. */
export function relayBaseUrl(status: RelayStatus | null, port: number): string {
  if (status?.url) return trimSlash(status.url);
  return `http://127.0.0.1:${status?.port ?? port}`;
}

/** Quotes `text` for a POSIX shell: single quotes, with each ' written as '\''. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Builds a curl command that posts one JSON message to the relay. */
export function curlSnippet(input: SnippetInput): string {
  const body = JSON.stringify({ text: input.text, profile: input.profile });
  const authorization = `Authorization: Bearer ${input.token}`;
  // Double quotes match the usual curl examples. A token with a character
  // that a shell expands inside double quotes gets single quotes instead.
  const header = /[$`"\\!]/.test(input.token) ? shellQuote(authorization) : `"${authorization}"`;
  // --noproxy: a proxy set in the environment would turn a loopback call into an error.
  return `curl -s --noproxy '*' -H ${header} ${trimSlash(input.url)}/v1/send -d ${shellQuote(body)}`;
}

/** Builds Python that posts one JSON message with the standard library only, bypassing any proxy. */
export function pythonSnippet(input: SnippetInput): string {
  // A JSON string literal is also a valid Python string literal.
  const url = JSON.stringify(`${trimSlash(input.url)}/v1/send`);
  const text = JSON.stringify(input.text);
  const profile = JSON.stringify(input.profile);
  const authorization = JSON.stringify(`Bearer ${input.token}`);
  return [
    "import json",
    "import urllib.request",
    "",
    "request = urllib.request.Request(",
    `    ${url},`,
    `    data=json.dumps({"text": ${text}, "profile": ${profile}}).encode(),`,
    `    headers={"Authorization": ${authorization}, "Content-Type": "application/json"},`,
    ")",
    "# The relay is on this machine: ignore any proxy set in the environment.",
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))",
    "print(json.load(opener.open(request, timeout=10)))",
    "",
  ].join("\n");
}

/** Builds the URL that takes WeCom group-robot bodies for the profile with this relay key. */
export function robotUrl(url: string, relayKey: string): string {
  return `${trimSlash(url)}/cgi-bin/webhook/send?key=${encodeURIComponent(relayKey)}`;
}
