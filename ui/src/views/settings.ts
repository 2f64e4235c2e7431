// The Settings tab: language, start at login, failure notifications and the
// relay port.

import * as api from "../api";
import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { t } from "../i18n";
import { checkRelayPort, parsePort } from "../logic/validation";
import type { Language, Settings } from "../types";
import type { View } from "./app";
import { resultArea, showMessage } from "./components";

type LanguageChoice = Language | "system";

export function createSettingsView(ctx: AppContext): View {
  const result = resultArea("settings-result");
  const language = h("select", { testid: "settings-language", id: "settings-language" });
  const autostart = h("input", { type: "checkbox", testid: "settings-autostart", id: "settings-autostart" });
  const notify = h("input", { type: "checkbox", testid: "settings-notify", id: "settings-notify" });
  const port = h("input", { type: "text", inputMode: "numeric", maxLength: 5, testid: "settings-port", id: "settings-port", autocomplete: "off" });
  const portError = h("div", { className: "field-error", testid: "settings-port-error", id: "settings-port-error" });
  const portWarning = h("div", { className: "field-warning", testid: "settings-port-warning" });
  port.setAttribute("aria-describedby", portError.id);
  const saveButton = h("button", { type: "submit", testid: "settings-save", className: "primary", text: t("common.save") });
  const retry = h("button", { type: "button", testid: "settings-retry", className: "secondary", text: t("common.retry"), hidden: true });

  const element = h(
    "form",
    {
      className: "settings-view",
      testid: "settings-form",
      noValidate: true,
      on: {
        submit: (event) => {
          event.preventDefault();
          void save();
        },
      },
    },
    h("div", { className: "field" }, h("label", { htmlFor: "settings-language", text: t("settings.language") }), language),
    h("div", { className: "field checkbox" }, autostart, h("label", { htmlFor: "settings-autostart", text: t("settings.autostart") })),
    h("div", { className: "field checkbox" }, notify, h("label", { htmlFor: "settings-notify", text: t("settings.notify") })),
    h("div", { className: "field" }, h("label", { htmlFor: "settings-port", text: t("settings.port") }), port, portError, portWarning),
    h("div", { className: "actions" }, saveButton, retry),
    result,
  );

  function fill(settings: Settings | null): void {
    const systemName = settings === null ? "" : t(`settings.lang.${settings.system_language}`);
    replaceChildren(
      language,
      h("option", { value: "system", text: t("settings.lang.system", { language: systemName }) }),
      h("option", { value: "zh", text: t("settings.lang.zh") }),
      h("option", { value: "en", text: t("settings.lang.en") }),
    );
    saveButton.disabled = settings === null;
    if (settings === null) return;
    language.value = settings.language ?? "system";
    autostart.checked = settings.autostart;
    notify.checked = settings.notify_on_failure;
    port.value = String(settings.port);
    checkPort();
  }

  function checkPort(): boolean {
    const { error, warning } = checkRelayPort(port.value);
    portError.textContent = error === null ? "" : t(error.key, error.params);
    port.setAttribute("aria-invalid", String(error !== null));
    const changed = ctx.settings.value !== null && parsePort(port.value) !== null && parsePort(port.value) !== ctx.settings.value.port;
    const fromEnv = ctx.settings.value?.port_from_env ?? null;
    const notes = [
      warning === null ? "" : t(warning.key, warning.params),
      changed ? t("settings.portChanged") : "",
      fromEnv === null ? "" : t("settings.portFromEnv", { port: fromEnv }),
    ];
    portWarning.textContent = notes.filter((note) => note !== "").join(" ");
    return error === null;
  }

  async function save(): Promise<void> {
    const current = ctx.settings.value;
    if (current === null || !checkPort()) {
      if (current !== null) port.focus();
      return;
    }
    const choice = language.value as LanguageChoice;
    const next: Settings = {
      ...current,
      language: choice === "system" ? null : choice,
      autostart: autostart.checked,
      notify_on_failure: notify.checked,
      port: parsePort(port.value) as number,
    };
    saveButton.disabled = true;
    try {
      const saved = await api.saveSettings(next);
      // A new language re-renders the whole window, so the notice is kept in the context.
      ctx.settingsNotice = () => t("settings.saved");
      ctx.settings.set(saved);
      if (ctx.settingsNotice !== null) {
        showMessage(result, "ok", ctx.settingsNotice());
        ctx.settingsNotice = null;
      }
      fill(saved);
    } catch (error) {
      showMessage(result, "error", t("common.failed", { error: api.errorMessage(error) }));
    } finally {
      saveButton.disabled = ctx.settings.value === null;
    }
  }

  async function reload(): Promise<void> {
    try {
      ctx.settings.set(await api.getSettings());
      replaceChildren(result);
      retry.hidden = true;
    } catch (error) {
      showMessage(result, "error", t("app.loadFailed", { what: t("app.what.settings"), error: api.errorMessage(error) }));
    }
  }

  port.addEventListener("input", checkPort);
  retry.addEventListener("click", () => void reload());
  fill(ctx.settings.value);
  if (ctx.settingsNotice !== null) {
    showMessage(result, ctx.settings.value === null ? "error" : "ok", ctx.settingsNotice());
    ctx.settingsNotice = null;
  }
  if (ctx.settings.value === null) retry.hidden = false;
  const unsubscribe = ctx.settings.subscribe(fill);
  return { element, destroy: unsubscribe };
}
