// Fixtures and a fake Rust side for the UI tests.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import type { InvokeArgs } from "@tauri-apps/api/core";

import { byTestId } from "../src/dom";
import type { Failure, MessageView, ProfileView, RelayStatus, Settings } from "../src/types";

export interface Call {
  cmd: string;
  args: Record<string, unknown>;
}

export type Handler = (args: Record<string, unknown>) => unknown;

/**
 * Installs a fake Rust side: each command returns what its handler in
 * `handlers` returns, else what the default below returns. Every call is
 * recorded, except the event plugin's.
 */
export function installBackend(handlers: Record<string, Handler> = {}): Call[] {
  const calls: Call[] = [];
  const defaults: Record<string, Handler> = {
    get_settings: () => settingsFixture(),
    list_profiles: () => [],
    relay_status: () => relayFixture(),
    list_history: () => [],
    validate_profile: () => ({ errors: [], warnings: [] }),
  };
  mockIPC(
    (cmd: string, payload?: InvokeArgs) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      calls.push({ cmd, args });
      const handler = handlers[cmd] ?? defaults[cmd];
      if (handler === undefined) throw `no fake for command ${cmd}`;
      return handler(args);
    },
    { shouldMockEvents: true },
  );
  return calls;
}

export function resetBackend(): void {
  clearMocks();
  document.body.replaceChildren();
}

export function callsOf(calls: Call[], cmd: string): Call[] {
  return calls.filter((call) => call.cmd === cmd);
}

/** Lets pending promises and zero-delay timers run. */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

export function find<T extends HTMLElement = HTMLElement>(testid: string, root: ParentNode = document): T {
  const element = byTestId<T>(root, testid);
  if (element === null) throw new Error(`no element with data-testid '${testid}'`);
  return element;
}

export function query(testid: string, root: ParentNode = document): HTMLElement | null {
  return byTestId(root, testid);
}

/** Types into an input as a user would: sets the value and fires `input`. */
export function typeInto(testid: string, value: string, root: ParentNode = document): void {
  const input = find<HTMLInputElement>(testid, root);
  input.value = value;
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

export function choose(testid: string, value: string, root: ParentNode = document): void {
  const select = find<HTMLSelectElement>(testid, root);
  select.value = value;
  select.dispatchEvent(new Event("change", { bubbles: true }));
}

export function click(testid: string, root: ParentNode = document): void {
  find(testid, root).click();
}

export function settingsFixture(overrides: Partial<Settings> = {}): Settings {
  return { language: "en", system_language: "en", autostart: false, notify_on_failure: true, port: 7591, ...overrides };
}

export function relayFixture(overrides: Partial<RelayStatus> = {}): RelayStatus {
  return { state: "running", port: 7591, url: "http://127.0.0.1:7591", error: null, ...overrides };
}

export function profileFixture(overrides: Partial<ProfileView> = {}): ProfileView {
  return {
    name: "ops",
    kind: "wecom-app",
    is_default: true,
    corp_id: "ww0123456789",
    agent_id: 1000002,
    to_user: ["zhangsan", "lisi"],
    to_party: [],
    to_tag: [],
    api_base: null,
    proxy: "system",
    fallback: null,
    relay_key: "rk-ops-123",
    secret_masked: "ab****yz",
    secret_store: "keyring",
    last_success_at: null,
    last_success_ip: null,
    last_error: null,
    last_error_at: null,
    route: { en: "system proxy", zh: "系统代理" },
    ...overrides,
  };
}

export function emailProfileFixture(overrides: Partial<ProfileView> = {}): ProfileView {
  return profileFixture({
    name: "mail",
    kind: "email",
    is_default: false,
    corp_id: undefined,
    agent_id: undefined,
    to_user: undefined,
    to_party: undefined,
    to_tag: undefined,
    smtp_host: "smtp.qq.com",
    smtp_port: 465,
    tls: "implicit",
    username: "me@qq.com",
    from: "me@qq.com",
    to: ["me@qq.com", "partner@163.com"],
    ca_file: null,
    relay_key: "rk-mail-456",
    route: { en: "direct", zh: "直连" },
    ...overrides,
  });
}

export function failureFixture(overrides: Partial<Failure> = {}): Failure {
  return {
    code: "wecom_bad_secret",
    class: "permanent",
    message: "WeCom rejected the app secret (errcode 40001).",
    hint: "Copy the Secret again from the admin console.",
    message_zh: "企业微信拒绝了应用的 Secret（errcode 40001）。",
    hint_zh: "请在管理后台重新复制 Secret。",
    upstream_errcode: 40001,
    upstream_message: "invalid credential",
    ...overrides,
  };
}

/** Returns the failure that the Rust side builds for WeCom's errcode 60020. */
export function ipFailureFixture(ip = "203.0.113.7"): Failure {
  return {
    code: "wecom_ip_not_trusted",
    class: "permanent",
    message: `WeCom refused the message because it came from IP ${ip}, which is not in the app's trusted IPs (errcode 60020).`,
    hint: `In the WeCom admin console open App Management (应用管理) → this app → Trusted IPs (企业可信IP) and add ${ip}.`,
    message_zh: `企业微信拒绝了这条消息：请求来自 IP ${ip}，该 IP 不在应用的企业可信IP中（errcode 60020）。`,
    hint_zh: `请在企业微信管理后台打开 应用管理 → 该应用 → 企业可信IP，添加 ${ip}。`,
    upstream_errcode: 60020,
    upstream_message: `not allow to access from your ip, hint: [1658286717354964018506079], from ip: ${ip}, more info at https://open.work.weixin.qq.com/devtool/query?e=60020`,
    from_ip: ip,
  };
}

export function messageFixture(overrides: Partial<MessageView> = {}): MessageView {
  return {
    id: "m1",
    profile: "ops",
    status: "queued",
    attempts: 0,
    parts: 1,
    parts_delivered: 0,
    title: "Risk",
    text: "stop triggered on 600519",
    format: "text",
    source: "relay",
    created_at: Date.UTC(2024, 2, 14, 2, 31),
    updated_at: Date.UTC(2024, 2, 14, 2, 31),
    ...overrides,
  };
}
