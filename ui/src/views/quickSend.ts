// The Quick send window (index.html#quick-send): pick a profile, write a
// title and text, send, and see the outcome.

import * as api from "../api";
import { h, replaceChildren } from "../dom";
import { getLanguage, resolveLanguage, setLanguage, t } from "../i18n";
import { describeOutcome } from "../logic/failure";
import type { ProfileView } from "../types";
import { resultArea, showMessage, showOutcome } from "./components";

export interface QuickSend {
  element: HTMLFormElement;
  /** Loads the profile list again, keeping the selected profile when it still exists. */
  reload(): Promise<void>;
}

export function createQuickSend(): QuickSend {
  const profileSelect = h("select", { testid: "quick-send-profile", id: "quick-send-profile" });
  const title = h("input", { type: "text", testid: "quick-send-title", id: "quick-send-title", autocomplete: "off" });
  const text = h("textarea", { testid: "quick-send-text", id: "quick-send-text", rows: 5 });
  const textError = h("div", { className: "field-error", testid: "quick-send-error", id: "quick-send-error", attrs: { role: "alert" } });
  text.setAttribute("aria-describedby", textError.id);
  const submit = h("button", { type: "submit", testid: "quick-send-submit", className: "primary", text: t("quick.send") });
  const result = resultArea("quick-send-result");

  const element = h(
    "form",
    {
      className: "quick-send",
      testid: "quick-send-form",
      noValidate: true,
      on: {
        submit: (event) => {
          event.preventDefault();
          void send();
        },
      },
    },
    h("h1", { testid: "quick-send-heading", text: t("quick.title") }),
    h("div", { className: "field" }, h("label", { htmlFor: "quick-send-profile", text: t("quick.profile") }), profileSelect),
    h("div", { className: "field" }, h("label", { htmlFor: "quick-send-title", text: t("quick.titleField") }), title),
    h("div", { className: "field" }, h("label", { htmlFor: "quick-send-text", text: t("quick.text") }), text, textError),
    h("div", { className: "actions" }, submit),
    result,
  );

  // Ctrl+Enter or Cmd+Enter in the text sends, as in chat programs.
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      element.requestSubmit();
    }
  });
  text.addEventListener("input", () => {
    if (text.value.trim() !== "") textError.textContent = "";
  });

  function fillProfiles(profiles: ProfileView[]): void {
    const previous = profileSelect.value;
    replaceChildren(profileSelect, ...profiles.map((profile) => h("option", { value: profile.name, text: profile.name })));
    const fallbackChoice = profiles.find((profile) => profile.is_default)?.name ?? profiles[0]?.name ?? "";
    profileSelect.value = profiles.some((profile) => profile.name === previous) ? previous : fallbackChoice;
    submit.disabled = profiles.length === 0;
    if (profiles.length === 0) showMessage(result, "error", t("quick.noProfiles"));
  }

  async function reload(): Promise<void> {
    try {
      fillProfiles(await api.listProfiles());
    } catch (error) {
      showMessage(result, "error", t("app.loadFailed", { what: t("app.what.profiles"), error: api.errorMessage(error) }));
    }
  }

  async function send(): Promise<void> {
    if (text.value.trim() === "") {
      textError.textContent = t("quick.textMissing");
      text.focus();
      return;
    }
    const name = profileSelect.value;
    submit.disabled = true;
    showMessage(result, "pending", t("common.working"));
    try {
      const outcome = await api.sendTest(name, title.value.trim() === "" ? null : title.value.trim(), text.value);
      showOutcome(result, describeOutcome(outcome, "send", getLanguage()));
    } catch (error) {
      showMessage(result, "error", t("common.failed", { error: api.errorMessage(error) }));
    } finally {
      submit.disabled = profileSelect.options.length === 0;
    }
  }

  return { element, reload };
}

/** Starts the Quick send window: settings for the language, then the profiles. */
export async function startQuickSend(root: HTMLElement): Promise<QuickSend> {
  try {
    setLanguage(resolveLanguage(await api.getSettings()));
  } catch {
    // The browser's language set at load stays in force.
  }
  const view = createQuickSend();
  replaceChildren(root, view.element);
  await api.onProfilesChanged(() => void view.reload());
  await view.reload();
  view.element.querySelector<HTMLTextAreaElement>("textarea")?.focus();
  return view;
}
