import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { AppContext } from "../src/context";
import { getLanguage, labelled, languageFromLocale, pickText, resolveLanguage, setLanguage, t, translate } from "../src/i18n";
import { startApp } from "../src/views/app";
import { callsOf, choose, click, find, flush, installBackend, resetBackend, settingsFixture, typeInto, type Call } from "./helpers";

describe("language choice", () => {
  test("saved language wins", () => {
    expect(resolveLanguage({ language: "zh", system_language: "en" })).toBe("zh");
    expect(resolveLanguage({ language: "en", system_language: "zh" })).toBe("en");
  });

  test("null follows the system", () => {
    expect(resolveLanguage({ language: null, system_language: "zh" })).toBe("zh");
    expect(resolveLanguage({ language: null, system_language: "en" })).toBe("en");
  });

  test("browser locale maps to a language", () => {
    expect(languageFromLocale("zh-CN")).toBe("zh");
    expect(languageFromLocale("zh-Hant-TW")).toBe("zh");
    expect(languageFromLocale("en-US")).toBe("en");
    expect(languageFromLocale("de")).toBe("en");
    expect(languageFromLocale(undefined)).toBe("en");
  });
});

describe("translation", () => {
  afterEach(() => setLanguage("en"));

  test("switching changes t()", () => {
    setLanguage("en");
    expect(t("tab.history")).toBe("History");
    expect(document.documentElement.lang).toBe("en");
    setLanguage("zh");
    expect(getLanguage()).toBe("zh");
    expect(t("tab.history")).toBe("发送记录");
    expect(document.documentElement.lang).toBe("zh-CN");
  });

  test("parameters are filled in", () => {
    expect(translate("en", "profiles.deliveredAt", { time: "10:31" })).toBe("delivered 10:31");
    expect(translate("zh", "profiles.deliveredAt", { time: "10:31" })).toBe("10:31 已送达");
    expect(translate("en", "v.tooManyUsers", { count: 1001 })).toBe("Too many users (1001): WeCom takes at most 1,000.");
  });

  test("labels use the language's colon", () => {
    setLanguage("en");
    expect(labelled("banner.route")).toBe("Outbound route: ");
    setLanguage("zh");
    expect(labelled("banner.route")).toBe("出站路线：");
  });

  test("pickText picks the side", () => {
    const text = { en: "system proxy", zh: "系统代理" };
    expect(pickText(text, "en")).toBe("system proxy");
    expect(pickText(text, "zh")).toBe("系统代理");
  });
});

describe("language in the app", () => {
  let calls: Call[];

  beforeEach(() => setLanguage("en"));
  afterEach(resetBackend);

  async function start(settings = settingsFixture()): Promise<void> {
    let saved = settings;
    calls = installBackend({
      get_settings: () => saved,
      save_settings: (args) => {
        saved = args.settings as typeof saved;
        return saved;
      },
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    await startApp(root, new AppContext({ validateDelayMs: 0, filterDelayMs: 0 }));
    await flush();
  }

  test("system language is used when none is saved", async () => {
    await start(settingsFixture({ language: null, system_language: "zh" }));
    expect(find("tab-profiles").textContent).toBe("配置");
    expect(find("tab-settings").textContent).toBe("设置");
  });

  test("saving a language re-renders the window", async () => {
    await start(settingsFixture({ language: null, system_language: "en" }));
    expect(find("tab-profiles").textContent).toBe("Profiles");
    click("tab-settings");
    expect(find<HTMLSelectElement>("settings-language").value).toBe("system");
    choose("settings-language", "zh");
    click("settings-save");
    await flush();
    expect(callsOf(calls, "save_settings")[0].args).toEqual({
      settings: { language: "zh", system_language: "en", autostart: false, notify_on_failure: true, port: 7591 },
    });
    expect(find("tab-profiles").textContent).toBe("配置");
    expect(find("tab-settings").getAttribute("aria-selected")).toBe("true");
    expect(find("settings-result").textContent).toBe("设置已保存。");
    expect(find("settings-save").textContent).toBe("保存");
  });

  test("settings port is checked as you type", async () => {
    await start();
    click("tab-settings");
    typeInto("settings-port", "80");
    expect(find("settings-port-error").textContent).toBe("");
    expect(find("settings-port-warning").textContent).toContain("Ports 1 to 1024 need administrator rights");
    typeInto("settings-port", "70000");
    expect(find("settings-port-error").textContent).toBe("Invalid port '70000': use a whole number from 1 to 65535.");
    click("settings-save");
    await flush();
    expect(callsOf(calls, "save_settings")).toHaveLength(0);
    typeInto("settings-port", "7600");
    expect(find("settings-port-warning").textContent).toBe("Scripts that post to the relay must use the new port.");
    find<HTMLInputElement>("settings-autostart").click();
    click("settings-save");
    await flush();
    expect(callsOf(calls, "save_settings")[0].args).toEqual({
      settings: { language: "en", system_language: "en", autostart: true, notify_on_failure: true, port: 7600 },
    });
  });
});
