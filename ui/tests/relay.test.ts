import { emit } from "@tauri-apps/api/event";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { AppContext } from "../src/context";
import { setLanguage } from "../src/i18n";
import { startApp } from "../src/views/app";
import { callsOf, click, find, flush, installBackend, profileFixture, query, relayFixture, resetBackend, type Call, type Handler } from "./helpers";

let calls: Call[];

async function start(handlers: Record<string, Handler> = {}): Promise<void> {
  calls = installBackend({ list_profiles: () => [profileFixture()], relay_token: () => "tok-1", ...handlers });
  const root = document.createElement("div");
  document.body.appendChild(root);
  await startApp(root, new AppContext({ validateDelayMs: 0, filterDelayMs: 0 }));
  click("tab-relay");
  await flush();
}

beforeEach(() => setLanguage("en"));
afterEach(() => {
  vi.unstubAllGlobals();
  resetBackend();
});

describe("relay view", () => {
  test("shows address and state", async () => {
    await start();
    expect(find("relay-address").textContent).toBe("http://127.0.0.1:7591");
    expect(find("relay-status").textContent).toBe("running");
    expect(find("header-relay-status").textContent).toBe("Relay: running");
    expect(find("relay-pause").textContent).toBe("Pause relay");
  });

  test("token stays hidden until Show", async () => {
    await start();
    expect(find("relay-token").textContent).not.toContain("tok-1");
    expect(find("snippet-curl-ops").textContent).not.toContain("tok-1");
    expect(callsOf(calls, "relay_token")).toHaveLength(0);
    click("relay-token-show");
    await flush();
    expect(find("relay-token").textContent).toBe("tok-1");
    expect(find("relay-token-show").textContent).toBe("Hide");
    expect(find("snippet-curl-ops").textContent).toBe(
      `curl -s --noproxy '*' -H "Authorization: Bearer tok-1" http://127.0.0.1:7591/v1/send -d '{"text":"order filled","profile":"ops"}'`,
    );
    click("relay-token-show");
    await flush();
    expect(find("relay-token").textContent).not.toContain("tok-1");
  });

  test("copy puts the real token in the snippet", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    vi.stubGlobal("navigator", { ...navigator, clipboard: { writeText } });
    await start();
    click("copy-python-ops");
    await flush();
    expect(writeText).toHaveBeenCalledTimes(1);
    expect(writeText.mock.calls[0][0]).toContain('"Authorization": "Bearer tok-1"');
    click("copy-robot-ops");
    await flush();
    expect(writeText.mock.calls[1][0]).toBe("http://127.0.0.1:7591/cgi-bin/webhook/send?key=rk-ops-123");
    expect(find("snippet-robot-ops").textContent).toBe("http://127.0.0.1:7591/cgi-bin/webhook/send?key=rk-ops-123");
  });

  test("regenerate asks first", async () => {
    await start({ regenerate_token: () => "tok-2" });
    click("relay-token-regenerate");
    expect(find("dialog-message").textContent).toContain("Scripts that use the current token get HTTP 401");
    click("dialog-cancel");
    await flush();
    expect(callsOf(calls, "regenerate_token")).toHaveLength(0);
    click("relay-token-regenerate");
    click("dialog-confirm");
    await flush();
    expect(callsOf(calls, "regenerate_token")).toHaveLength(1);
    click("relay-token-show");
    await flush();
    expect(find("relay-token").textContent).toBe("tok-2");
  });

  test("error state shows the fix", async () => {
    await start({
      relay_status: () => relayFixture({ state: "error", url: null, port: 7591, error: { en: "Port 7591 is in use.", zh: "端口 7591 已被占用。" } }),
    });
    expect(find("relay-status").textContent).toBe("error");
    expect(find("relay-error").textContent).toBe("Port 7591 is in use.");
    expect(find("relay-hint").textContent).toBe(
      "If another program uses port 7591, such as `herald serve` in a terminal, stop it or change the port in Settings.",
    );
    click("relay-open-settings");
    expect(find("tab-settings").getAttribute("aria-selected")).toBe("true");
  });

  test("pause and relay-status event", async () => {
    await start({ set_relay_paused: (args) => relayFixture({ state: args.paused ? "paused" : "running" }) });
    click("relay-pause");
    await flush();
    expect(callsOf(calls, "set_relay_paused")[0].args).toEqual({ paused: true });
    expect(find("relay-status").textContent).toBe("paused");
    expect(find("relay-pause").textContent).toBe("Resume relay");
    await emit("relay-status", relayFixture({ state: "running", url: "http://127.0.0.1:7600", port: 7600 }));
    expect(find("relay-status").textContent).toBe("running");
    expect(find("relay-address").textContent).toBe("http://127.0.0.1:7600");
    expect(find("snippet-robot-ops").textContent).toBe("http://127.0.0.1:7600/cgi-bin/webhook/send?key=rk-ops-123");
  });

  test("profiles-changed reloads the snippets", async () => {
    let profiles = [profileFixture()];
    await start({ list_profiles: () => profiles });
    expect(query("snippets-group")).toBeNull();
    profiles = [profileFixture(), profileFixture({ name: "group", kind: "wecom-bot", is_default: false, relay_key: "rk-g" })];
    await emit("profiles-changed", null);
    await flush();
    expect(find("snippet-robot-group").textContent).toBe("http://127.0.0.1:7591/cgi-bin/webhook/send?key=rk-g");
  });
});
