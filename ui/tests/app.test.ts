import { emit } from "@tauri-apps/api/event";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { AppContext } from "../src/context";
import { setLanguage } from "../src/i18n";
import type { ProfileView } from "../src/types";
import { startApp } from "../src/views/app";
import { click, find, flush, installBackend, ipFailureFixture, profileFixture, query, resetBackend, settingsFixture, type Call, type Handler } from "./helpers";

let calls: Call[];

async function start(handlers: Record<string, Handler> = {}): Promise<void> {
  calls = installBackend(handlers);
  const root = document.createElement("div");
  document.body.appendChild(root);
  await startApp(root, new AppContext({ validateDelayMs: 0, filterDelayMs: 0 }));
  await flush();
}

function failing(): ProfileView {
  return profileFixture({ last_error_at: Date.now(), last_error: ipFailureFixture() });
}

beforeEach(() => setLanguage("en"));
afterEach(resetBackend);

describe("main window", () => {
  test("start loads settings first, then data", async () => {
    await start();
    const commands = calls.map((call) => call.cmd);
    expect(commands[0]).toBe("get_settings");
    expect(commands).toContain("list_profiles");
    expect(commands).toContain("relay_status");
    expect(find("tab-profiles").getAttribute("aria-selected")).toBe("true");
    expect(find("view-profiles").hidden).toBe(false);
  });

  test("window focus reloads profiles", async () => {
    let profiles: ProfileView[] = [];
    await start({ list_profiles: () => profiles });
    expect(query("profile-row-ops")).toBeNull();

    profiles = [profileFixture()];
    window.dispatchEvent(new Event("focus"));
    await flush();
    expect(query("profile-row-ops")).not.toBeNull();
  });

  test("tabs switch views and keep them", async () => {
    await start({ list_profiles: () => [profileFixture()] });
    click("edit-profile-ops");
    click("tab-history");
    expect(find("view-profiles").hidden).toBe(true);
    expect(find("view-history").hidden).toBe(false);
    expect(find("tab-history").getAttribute("aria-selected")).toBe("true");
    click("tab-profiles");
    expect(find("profile-form")).toBeTruthy();
  });

  test("banners show above profiles and history only", async () => {
    await start({ list_profiles: () => [failing()] });
    const banner = find("banner-ops");
    const visible = (): boolean => banner.closest("[hidden]") === null;
    expect(visible()).toBe(true);
    click("tab-history");
    expect(visible()).toBe(true);
    click("tab-relay");
    expect(visible()).toBe(false);
    click("tab-settings");
    expect(visible()).toBe(false);
  });

  test("profiles-changed brings a new banner", async () => {
    let profiles = [profileFixture()];
    await start({ list_profiles: () => profiles });
    expect(query("banner-ops")).toBeNull();
    profiles = [failing()];
    await emit("profiles-changed", null);
    await flush();
    expect(find("banner-ip-ops").textContent).toBe("203.0.113.7");
    expect(find("profile-outcome-ops").textContent).toContain("failed");
  });

  test("failed settings load keeps the page usable", async () => {
    await start({
      get_settings: () => {
        throw "settings.json is not valid JSON";
      },
    });
    expect(find("tab-profiles").textContent).toBe("Profiles");
    click("tab-settings");
    expect(find("settings-result").textContent).toBe("Could not load the settings: settings.json is not valid JSON");
    expect(find<HTMLButtonElement>("settings-save").disabled).toBe(true);
    expect(find("settings-retry").hidden).toBe(false);
  });

  test("settings retry loads them", async () => {
    let fail = true;
    await start({
      get_settings: () => {
        if (fail) throw "locked";
        return settingsFixture({ port: 7600 });
      },
    });
    click("tab-settings");
    fail = false;
    click("settings-retry");
    await flush();
    expect(find<HTMLInputElement>("settings-port").value).toBe("7600");
    expect(find<HTMLButtonElement>("settings-save").disabled).toBe(false);
    expect(find("settings-retry").hidden).toBe(true);
  });
});
