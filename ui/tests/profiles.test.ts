import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { AppContext } from "../src/context";
import { setLanguage } from "../src/i18n";
import { describeOutcome, lastOutcomeText } from "../src/logic/failure";
import { formatFullTime, formatShortTime } from "../src/logic/format";
import type { Outcome, ProfileView } from "../src/types";
import { createProfilesView, uniqueCopyName } from "../src/views/profiles";
import {
  callsOf,
  click,
  emailProfileFixture,
  failureFixture,
  find,
  flush,
  installBackend,
  profileFixture,
  query,
  resetBackend,
  typeInto,
  type Call,
  type Handler,
} from "./helpers";

let calls: Call[];

async function mount(profiles: ProfileView[], handlers: Record<string, Handler> = {}): Promise<AppContext> {
  calls = installBackend({ list_profiles: () => profiles, ...handlers });
  const ctx = new AppContext({ validateDelayMs: 0, filterDelayMs: 0 });
  document.body.appendChild(createProfilesView(ctx).element);
  await ctx.reloadProfiles();
  return ctx;
}

beforeEach(() => setLanguage("en"));
afterEach(resetBackend);

describe("time formatting", () => {
  const now = new Date(2024, 2, 14, 15, 0).getTime();

  test("same day shows the clock", () => {
    expect(formatShortTime(new Date(2024, 2, 14, 10, 31).getTime(), now)).toBe("10:31");
  });

  test("earlier day shows the date", () => {
    expect(formatShortTime(new Date(2024, 0, 5, 9, 7).getTime(), now)).toBe("01-05 09:07");
    expect(formatShortTime(new Date(2023, 11, 31, 23, 59).getTime(), now)).toBe("2023-12-31 23:59");
  });

  test("full time has seconds", () => {
    expect(formatFullTime(new Date(2024, 2, 14, 10, 31, 5).getTime())).toBe("2024-03-14 10:31:05");
  });
});

describe("last outcome line", () => {
  const now = new Date(2024, 2, 14, 15, 0).getTime();
  const at1031 = new Date(2024, 2, 14, 10, 31).getTime();
  const at1100 = new Date(2024, 2, 14, 11, 0).getTime();

  test("delivered with time", () => {
    const profile = profileFixture({ last_success_at: at1031 });
    expect(lastOutcomeText(profile, "en", now)).toEqual({ tone: "ok", text: "delivered 10:31" });
    expect(lastOutcomeText(profile, "zh", now)).toEqual({ tone: "ok", text: "10:31 已送达" });
  });

  test("failed with the plain message", () => {
    const profile = profileFixture({ last_success_at: at1031, last_error_at: at1100, last_error: failureFixture() });
    expect(lastOutcomeText(profile, "en", now)).toEqual({ tone: "error", text: "failed 11:00: WeCom rejected the app secret (errcode 40001)." });
    expect(lastOutcomeText(profile, "zh", now).text).toBe("11:00 发送失败：企业微信拒绝了应用的 Secret（errcode 40001）。");
  });

  test("older error than success shows delivered", () => {
    const profile = profileFixture({ last_success_at: at1100, last_error_at: at1031, last_error: failureFixture() });
    expect(lastOutcomeText(profile, "en", now).text).toBe("delivered 11:00");
  });

  test("never used", () => {
    expect(lastOutcomeText(profileFixture(), "en", now)).toEqual({ tone: "none", text: "not used yet" });
  });
});

describe("outcome words", () => {
  test("check success", () => {
    const outcome: Outcome = { ok: true, status: "delivered", id: null, answer: '{"errcode":0,"errmsg":"ok"}', failure: null };
    const text = describeOutcome(outcome, "check", "en");
    expect(text.tone).toBe("ok");
    expect(text.headline).toBe("Check passed: the provider accepted the credentials.");
    expect(text.providerAnswer).toBe('{"errcode":0,"errmsg":"ok"}');
  });

  test("send failure has message and hint", () => {
    const outcome: Outcome = { ok: false, status: "failed", id: "m9", answer: null, failure: failureFixture() };
    const en = describeOutcome(outcome, "send", "en");
    expect(en).toEqual({
      tone: "error",
      headline: "Delivery failed.",
      message: "WeCom rejected the app secret (errcode 40001).",
      hint: "Copy the Secret again from the admin console.",
      providerAnswer: "invalid credential",
    });
    const zh = describeOutcome(outcome, "send", "zh");
    expect(zh.headline).toBe("发送失败。");
    expect(zh.hint).toBe("请在管理后台重新复制 Secret。");
  });

  test("queued names the id", () => {
    const outcome: Outcome = { ok: true, status: "queued", id: "m7", answer: null, failure: null };
    expect(describeOutcome(outcome, "send", "en").headline).toBe("Queued as m7. The History tab shows when it is delivered.");
  });

  test("queued after a transient failure is pending", () => {
    const busy = failureFixture({ code: "wecom_busy", class: "transient", message: "WeCom answered that it is busy (errcode -1).", hint: "Herald retries with backoff." });
    const outcome: Outcome = { ok: false, status: "queued", id: "m8", answer: null, failure: busy };
    const text = describeOutcome(outcome, "send", "en");
    expect(text.tone).toBe("pending");
    expect(text.headline).toBe("Queued as m8. The History tab shows when it is delivered.");
    expect(text.message).toBe("WeCom answered that it is busy (errcode -1).");
    expect(text.hint).toBe("Herald retries with backoff.");
  });
});

describe("profile list", () => {
  test("rows show kind, default marker and outcome", async () => {
    const at = new Date().setHours(10, 31, 0, 0);
    await mount([profileFixture({ last_success_at: at }), emailProfileFixture()]);
    expect(find("profile-kind-ops").textContent).toBe("WeCom app");
    expect(find("profile-default-ops").textContent).toBe("default");
    expect(query("profile-default-mail")).toBeNull();
    expect(find("profile-outcome-ops").textContent).toBe("delivered 10:31");
    expect(find("profile-outcome-mail").textContent).toBe("not used yet");
    expect(query("set-default-ops")).toBeNull();
    expect(find("set-default-mail")).toBeTruthy();
  });

  test("empty list says how to start", async () => {
    await mount([]);
    expect(find("profiles-empty").textContent).toBe("No profiles yet. Add one to start sending notices.");
  });

  test("check shows the result inline", async () => {
    await mount([profileFixture()], {
      check_profile: () => ({ ok: false, status: "failed", id: null, answer: null, failure: failureFixture() }),
    });
    click("check-profile-ops");
    await flush();
    expect(callsOf(calls, "check_profile")[0].args).toEqual({ name: "ops" });
    const result = find("result-ops");
    expect(result.dataset.tone).toBe("error");
    expect(result.textContent).toContain("Check failed.");
    expect(result.textContent).toContain("WeCom rejected the app secret (errcode 40001).");
    expect(result.textContent).toContain("What to do: Copy the Secret again from the admin console.");
    expect(result.textContent).toContain("Provider's answer: invalid credential");
  });

  test("send test result survives a list reload", async () => {
    const ctx = await mount([profileFixture()], {
      send_test: () => ({ ok: true, status: "delivered", id: "m1", answer: "ok", failure: null }),
    });
    click("send-test-ops");
    await flush();
    expect(callsOf(calls, "send_test")[0].args).toEqual({ name: "ops", title: null, text: null });
    expect(find("result-ops").textContent).toContain("Delivered.");
    await ctx.reloadProfiles();
    expect(find("result-ops").textContent).toContain("Delivered.");
  });

  test("failed result cleared by later delivery", async () => {
    let profiles = [profileFixture()];
    calls = installBackend({
      list_profiles: () => profiles,
      send_test: () => ({ ok: false, status: "failed", id: "m1", answer: null, failure: failureFixture() }),
    });
    const ctx = new AppContext({ validateDelayMs: 0, filterDelayMs: 0 });
    document.body.appendChild(createProfilesView(ctx).element);
    await ctx.reloadProfiles();
    click("send-test-ops");
    await flush();
    expect(find("result-ops").textContent).toContain("errcode 40001");

    await ctx.reloadProfiles();
    expect(find("result-ops").textContent).toContain("errcode 40001");

    profiles = [profileFixture({ last_success_at: Date.now() + 1000 })];
    await ctx.reloadProfiles();
    expect(find("result-ops").textContent).not.toContain("errcode 40001");
  });

  test("command rejection shows its message", async () => {
    await mount([profileFixture()], {
      check_profile: () => {
        throw "the system keyring is locked";
      },
    });
    click("check-profile-ops");
    await flush();
    expect(find("result-ops").textContent).toBe("Failed: the system keyring is locked");
  });

  test("delete asks first", async () => {
    await mount([profileFixture()], { delete_profile: () => null });
    click("delete-profile-ops");
    expect(find("dialog-message").textContent).toBe("Delete profile ops? This cannot be undone.");
    click("dialog-cancel");
    await flush();
    expect(callsOf(calls, "delete_profile")).toHaveLength(0);
    expect(query("dialog")).toBeNull();
    click("delete-profile-ops");
    click("dialog-confirm");
    await flush();
    expect(callsOf(calls, "delete_profile")[0].args).toEqual({ name: "ops" });
    expect(find("profiles-notice").textContent).toBe("Deleted profile ops.");
  });

  test("duplicate asks for a free name", async () => {
    await mount([profileFixture(), profileFixture({ name: "ops-copy", is_default: false })], {
      duplicate_profile: () => profileFixture({ name: "ops-night" }),
    });
    click("duplicate-profile-ops");
    const input = find<HTMLInputElement>("dialog-input");
    expect(input.value).toBe("ops-copy-2");
    typeInto("dialog-input", "ops-copy");
    click("dialog-confirm");
    expect(find("dialog-error").textContent).toBe("A profile named ops-copy already exists.");
    typeInto("dialog-input", "ops-night");
    click("dialog-confirm");
    await flush();
    expect(callsOf(calls, "duplicate_profile")[0].args).toEqual({ name: "ops", newName: "ops-night" });
    expect(find("profiles-notice").textContent).toBe("Created ops-night as a copy of ops.");
  });

  test("make default calls the command", async () => {
    await mount([profileFixture(), emailProfileFixture()], { set_default_profile: () => null });
    click("set-default-mail");
    await flush();
    expect(callsOf(calls, "set_default_profile")[0].args).toEqual({ name: "mail" });
    expect(find("profiles-notice").textContent).toBe("mail is now the default profile.");
  });

  test("uniqueCopyName skips taken names", () => {
    expect(uniqueCopyName("ops", [])).toBe("ops-copy");
    expect(uniqueCopyName("ops", ["ops-copy", "ops-copy-2"])).toBe("ops-copy-3");
  });
});

describe("probe buttons", () => {
  afterEach(resetBackend);

  test("buttons are disabled while a check runs", async () => {
    let finish: (value: unknown) => void = () => {};
    await mount([profileFixture()], { check_profile: () => new Promise((resolve) => (finish = resolve)) });
    click("check-profile-ops");
    await flush();
    expect(find<HTMLButtonElement>("check-profile-ops").disabled).toBe(true);
    expect(find<HTMLButtonElement>("send-test-ops").disabled).toBe(true);
    expect(find("result-ops").textContent).toBe("Working…");
    click("check-profile-ops");
    finish({ ok: true, status: "delivered", id: null, answer: null, failure: null });
    await flush();
    expect(callsOf(calls, "check_profile")).toHaveLength(1);
    expect(find<HTMLButtonElement>("check-profile-ops").disabled).toBe(false);
    expect(find("result-ops").textContent).toBe("Check passed: the provider accepted the credentials.");
  });
});
