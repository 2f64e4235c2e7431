import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { setLanguage } from "../src/i18n";
import { startQuickSend } from "../src/views/quickSend";
import {
  callsOf,
  emailProfileFixture,
  failureFixture,
  find,
  flush,
  installBackend,
  profileFixture,
  resetBackend,
  settingsFixture,
  typeInto,
  type Call,
  type Handler,
} from "./helpers";

let calls: Call[];

async function start(handlers: Record<string, Handler> = {}): Promise<void> {
  calls = installBackend({
    list_profiles: () => [emailProfileFixture(), profileFixture({ name: "ops", is_default: true })],
    ...handlers,
  });
  const root = document.createElement("div");
  document.body.appendChild(root);
  await startQuickSend(root);
}

beforeEach(() => setLanguage("en"));
afterEach(resetBackend);

describe("quick send", () => {
  test("default profile is preselected", async () => {
    await start();
    const select = find<HTMLSelectElement>("quick-send-profile");
    expect([...select.options].map((option) => option.value)).toEqual(["mail", "ops"]);
    expect(select.value).toBe("ops");
  });

  test("empty text is not sent", async () => {
    await start();
    find<HTMLFormElement>("quick-send-form").requestSubmit();
    await flush();
    expect(callsOf(calls, "send_test")).toHaveLength(0);
    expect(find("quick-send-error").textContent).toBe("Write the text to send.");
  });

  test("send passes title and text", async () => {
    await start({ send_test: () => ({ ok: true, status: "delivered", id: "m1", answer: '{"errcode":0,"errmsg":"ok"}', failure: null }) });
    typeInto("quick-send-title", "Risk");
    typeInto("quick-send-text", "止损触发 600519");
    find("quick-send-submit").click();
    await flush();
    expect(callsOf(calls, "send_test")[0].args).toEqual({ name: "ops", title: "Risk", text: "止损触发 600519" });
    expect(find("quick-send-result").textContent).toContain("Delivered.");
  });

  test("empty title is sent as null", async () => {
    await start({ send_test: () => ({ ok: true, status: "queued", id: "m2", answer: null, failure: null }) });
    const select = find<HTMLSelectElement>("quick-send-profile");
    select.value = "mail";
    typeInto("quick-send-text", "filled");
    find("quick-send-submit").click();
    await flush();
    expect(callsOf(calls, "send_test")[0].args).toEqual({ name: "mail", title: null, text: "filled" });
    expect(find("quick-send-result").textContent).toBe("Queued as m2. The History tab shows when it is delivered.");
  });

  test("failure shows message and hint in Chinese", async () => {
    await start({
      get_settings: () => settingsFixture({ language: "zh" }),
      send_test: () => ({ ok: false, status: "failed", id: "m3", answer: null, failure: failureFixture() }),
    });
    expect(find("quick-send-heading").textContent).toBe("快速发送");
    typeInto("quick-send-text", "filled");
    find("quick-send-submit").click();
    await flush();
    const result = find("quick-send-result").textContent;
    expect(result).toContain("发送失败。");
    expect(result).toContain("企业微信拒绝了应用的 Secret（errcode 40001）。");
    expect(result).toContain("处理办法：请在管理后台重新复制 Secret。");
  });

  test("no profiles disables Send", async () => {
    await start({ list_profiles: () => [] });
    expect(find<HTMLButtonElement>("quick-send-submit").disabled).toBe(true);
    expect(find("quick-send-result").textContent).toBe("No profiles yet: add one in the main window.");
  });
});
