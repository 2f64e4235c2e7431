import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { AppContext } from "../src/context";
import { setLanguage } from "../src/i18n";
import { bannerContent, hasUnresolvedError } from "../src/logic/failure";
import { createBanners } from "../src/views/banners";
import type { ProfileView } from "../src/types";
import {
  callsOf,
  click,
  failureFixture,
  find,
  flush,
  installBackend,
  ipFailureFixture,
  messageFixture,
  profileFixture,
  query,
  resetBackend,
  type Call,
  type Handler,
} from "./helpers";

const SUCCESS_AT = new Date(2024, 2, 14, 9, 0).getTime();
const ERROR_AT = new Date(2024, 2, 14, 10, 31).getTime();
const NOW = new Date(2024, 2, 14, 12, 0).getTime();

function ipProfile(overrides: Partial<ProfileView> = {}): ProfileView {
  return profileFixture({
    last_success_at: SUCCESS_AT,
    last_success_ip: "203.0.113.5",
    last_error_at: ERROR_AT,
    last_error: ipFailureFixture("203.0.113.7"),
    route: { en: "system proxy", zh: "系统代理" },
    fallback: "group",
    ...overrides,
  });
}

describe("bannerContent", () => {
  test("no banner when the last event is a success", () => {
    const profile = profileFixture({ last_success_at: ERROR_AT, last_error_at: SUCCESS_AT, last_error: failureFixture() });
    expect(hasUnresolvedError(profile)).toBe(false);
    expect(bannerContent(profile, "en", NOW)).toBeNull();
    expect(bannerContent(profileFixture(), "en", NOW)).toBeNull();
  });

  test("plain failure has message and hint", () => {
    const content = bannerContent(profileFixture({ last_error_at: ERROR_AT, last_error: failureFixture() }), "en", NOW);
    expect(content).toEqual({
      profile: "ops",
      title: "ops: the last delivery failed (10:31)",
      message: "WeCom rejected the app secret (errcode 40001).",
      hint: "Copy the Secret again from the admin console.",
      ipNotTrusted: null,
      canUseFallback: false,
    });
  });

  test("60020 in English: IPs, route and steps", () => {
    const content = bannerContent(ipProfile(), "en", NOW)!;
    expect(content.message).toContain("203.0.113.7");
    expect(content.canUseFallback).toBe(true);
    expect(content.ipNotTrusted).toEqual({
      ip: "203.0.113.7",
      lastSuccessIp: "203.0.113.5",
      route: "system proxy",
      steps: [
        "Open the WeCom admin console (work.weixin.qq.com) and go to App Management (应用管理) → the app with AgentId 1000002.",
        "If the console asks for it, first set a trusted domain (可信域名) or a message-receiving server URL (接收消息服务器URL) for the app.",
        "Open Trusted IPs (企业可信IP) and add 203.0.113.7.",
        "Come back here and press Resend.",
      ],
    });
  });

  test("60020 in Chinese: IPs, route and steps", () => {
    const content = bannerContent(ipProfile(), "zh", NOW)!;
    expect(content.title).toBe("“ops”最近一次发送失败（10:31）");
    expect(content.message).toBe("企业微信拒绝了这条消息：请求来自 IP 203.0.113.7，该 IP 不在应用的企业可信IP中（errcode 60020）。");
    expect(content.ipNotTrusted).toEqual({
      ip: "203.0.113.7",
      lastSuccessIp: "203.0.113.5",
      route: "系统代理",
      steps: [
        "打开企业微信管理后台（work.weixin.qq.com），进入 应用管理 → AgentId 为 1000002 的应用。",
        "如果后台提示，请先为该应用设置可信域名或接收消息服务器URL。",
        "打开 企业可信IP，添加 203.0.113.7。",
        "回到这里，点击“重新发送”。",
      ],
    });
  });

  test("same IP as last success is not repeated", () => {
    const content = bannerContent(ipProfile({ last_success_ip: "203.0.113.7" }), "en", NOW)!;
    expect(content.ipNotTrusted?.lastSuccessIp).toBeNull();
  });

  test("60020 without a reported IP", () => {
    const failure = { ...ipFailureFixture(), from_ip: undefined };
    const content = bannerContent(ipProfile({ last_error: failure, last_success_ip: null }), "en", NOW)!;
    expect(content.ipNotTrusted?.ip).toBeNull();
    expect(content.ipNotTrusted?.lastSuccessIp).toBeNull();
    expect(content.ipNotTrusted?.steps[2]).toBe("Open Trusted IPs (企业可信IP) and add the IP from the provider's answer.");
  });
});

describe("banner view", () => {
  let calls: Call[];
  let ctx: AppContext;

  function mount(profiles: ProfileView[], handlers: Record<string, Handler> = {}): void {
    calls = installBackend(handlers);
    ctx = new AppContext();
    ctx.profiles.set(profiles);
    document.body.appendChild(createBanners(ctx).element);
  }

  beforeEach(() => setLanguage("en"));
  afterEach(() => {
    vi.unstubAllGlobals();
    resetBackend();
  });

  test("60020 banner shows IP, last IP, route and steps", () => {
    mount([ipProfile()]);
    expect(find("banner-ops")).toBeTruthy();
    expect(find("banner-ip-ops").textContent).toBe("203.0.113.7");
    expect(find("banner-last-ip-ops").textContent).toBe("203.0.113.5");
    expect(find("banner-route-ops").textContent).toBe("system proxy");
    const steps = [...find("banner-steps-ops").querySelectorAll("li")].map((li) => li.textContent);
    expect(steps).toHaveLength(4);
    expect(steps[2]).toBe("Open Trusted IPs (企业可信IP) and add 203.0.113.7.");
    expect(find("banner-hint-ops").textContent).toContain("What to do: In the WeCom admin console");
    expect(find("banner-fallback-ops")).toBeTruthy();
  });

  test("banner follows the language", () => {
    setLanguage("zh");
    mount([ipProfile()]);
    expect(find("banner-message-ops").textContent).toContain("该 IP 不在应用的企业可信IP中");
    expect(find("banner-hint-ops").textContent).toContain("处理办法：请在企业微信管理后台打开");
    expect(find("banner-route-ops").textContent).toBe("系统代理");
    expect(find("banner-steps-ops").textContent).toContain("打开 企业可信IP，添加 203.0.113.7。");
    expect(find("banner-resend-ops").textContent).toBe("重新发送");
  });

  test("banner disappears after a success", () => {
    mount([ipProfile()]);
    ctx.profiles.set([ipProfile({ last_success_at: ERROR_AT + 1 })]);
    expect(query("banner-ops")).toBeNull();
    expect(find("banners").hidden).toBe(true);
  });

  test("no fallback button without a fallback", () => {
    mount([ipProfile({ fallback: null })]);
    expect(query("banner-fallback-ops")).toBeNull();
  });

  test("copy puts the IP on the clipboard", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    vi.stubGlobal("navigator", { ...navigator, clipboard: { writeText } });
    mount([ipProfile()]);
    click("banner-copy-ip-ops");
    await flush();
    expect(writeText).toHaveBeenCalledWith("203.0.113.7");
    expect(find("banner-copy-status-ops").textContent).toBe("Copied.");
  });

  test("refused copy says to copy by hand", async () => {
    const writeText = vi.fn().mockRejectedValue(new Error("Document is not focused."));
    vi.stubGlobal("navigator", { ...navigator, clipboard: { writeText } });
    mount([ipProfile()]);
    click("banner-copy-ip-ops");
    await flush();
    expect(find("banner-copy-status-ops").textContent).toBe("Copying failed (Document is not focused.). Select the text and copy it by hand.");
  });

  test("resend picks the latest failed message", async () => {
    mount([ipProfile()], {
      list_history: () => [messageFixture({ id: "m42", status: "failed" })],
      resend_message: () => messageFixture({ id: "m42", status: "queued" }),
    });
    click("banner-resend-ops");
    await flush();
    expect(callsOf(calls, "list_history")[0].args).toEqual({ filter: { profile: "ops", status: "failed", limit: 1 } });
    expect(callsOf(calls, "resend_message")[0].args).toEqual({ id: "m42" });
    expect(find("banner-result-ops").textContent).toBe("Queued again as m42.");
  });

  test("fallback sends a copy", async () => {
    mount([ipProfile()], {
      list_history: () => [messageFixture({ id: "m42", status: "failed" })],
      send_via_fallback: () => messageFixture({ id: "m43", profile: "group", fallback_of: "m42" }),
    });
    click("banner-fallback-ops");
    await flush();
    expect(callsOf(calls, "send_via_fallback")[0].args).toEqual({ id: "m42" });
    expect(find("banner-result-ops").textContent).toBe("Queued on group as m43.");
  });

  test("resend with no failed message says so", async () => {
    mount([ipProfile()], { list_history: () => [] });
    click("banner-resend-ops");
    await flush();
    expect(callsOf(calls, "resend_message")).toHaveLength(0);
    expect(find("banner-result-ops").textContent).toBe("The history holds no failed message of ops.");
  });
});
