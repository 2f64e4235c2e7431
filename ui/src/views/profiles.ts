// The Profiles tab: the list of profiles with their last outcome, and the
// actions on each (check, send test, edit, duplicate, make default, delete).

import * as api from "../api";
import type { AppContext } from "../context";
import { byTestId, h, replaceChildren } from "../dom";
import { getLanguage, pickText, t } from "../i18n";
import { describeOutcome, lastOutcomeText, type OutcomeText } from "../logic/failure";
import { isValidProfileName } from "../logic/validation";
import type { ProfileView, SaveResult } from "../types";
import type { View } from "./app";
import { openDialog, resultArea, showMessage, showOutcome } from "./components";
import { createProfileForm } from "./profileForm";

/** The last result shown under a profile, kept across re-renders of the list. */
type RowResult = { kind: "outcome"; outcome: OutcomeText } | { kind: "text"; tone: "ok" | "error" | "pending"; text: string };

export function createProfilesView(ctx: AppContext): View {
  const results = new Map<string, RowResult>();
  // When each result was shown (ms), so a later delivery clears a stale failure.
  const resultTimes = new Map<string, number>();
  const resultAreas = new Map<string, HTMLElement>();
  // Profiles with a check or test send under way: their two buttons stay disabled.
  const busy = new Set<string>();
  const notice = resultArea("profiles-notice");
  const list = h("ul", { className: "profile-list", testid: "profile-list" });
  const listPanel = h(
    "div",
    { className: "profiles-panel" },
    h(
      "div",
      { className: "toolbar" },
      h("button", { type: "button", testid: "add-profile", className: "primary", text: t("profiles.add"), on: { click: () => openForm(null) } }),
    ),
    notice,
    list,
  );
  const formPanel = h("div", { className: "form-panel", hidden: true });
  const element = h("section", { className: "profiles-view" }, listPanel, formPanel);
  let closeForm: (() => void) | null = null;

  function showResult(area: HTMLElement, result: RowResult | undefined): void {
    if (result === undefined) return;
    if (result.kind === "outcome") showOutcome(area, result.outcome);
    else showMessage(area, result.tone, result.text);
  }

  function setResult(name: string, result: RowResult): void {
    results.set(name, result);
    resultTimes.set(name, Date.now());
    const area = resultAreas.get(name);
    if (area !== undefined) showResult(area, result);
  }

  function setBusy(name: string, value: boolean): void {
    if (value) busy.add(name);
    else busy.delete(name);
    for (const testid of [`check-profile-${name}`, `send-test-${name}`]) {
      const button = byTestId<HTMLButtonElement>(list, testid);
      if (button !== null) button.disabled = value;
    }
  }

  async function runProbe(name: string, action: "check" | "send"): Promise<void> {
    if (busy.has(name)) return;
    setBusy(name, true);
    setResult(name, { kind: "text", tone: "pending", text: t("common.working") });
    try {
      const outcome = action === "check" ? await api.checkProfile(name) : await api.sendTest(name, null, null);
      setResult(name, { kind: "outcome", outcome: describeOutcome(outcome, action, getLanguage()) });
    } catch (error) {
      setResult(name, { kind: "text", tone: "error", text: t("common.failed", { error: api.errorMessage(error) }) });
    } finally {
      setBusy(name, false);
    }
  }

  async function runMutation(action: () => Promise<unknown>, success: string): Promise<void> {
    try {
      await action();
      showMessage(notice, "ok", success);
    } catch (error) {
      showMessage(notice, "error", t("common.failed", { error: api.errorMessage(error) }));
    }
    await ctx.reloadProfiles();
  }

  async function confirmDelete(name: string): Promise<void> {
    const confirmed = await openDialog({ message: t("profiles.confirmDelete", { name }), confirmLabel: t("profiles.delete"), danger: true });
    if (confirmed === null) return;
    results.delete(name);
    await runMutation(() => api.deleteProfile(name), t("profiles.deleted", { name }));
  }

  async function askDuplicate(name: string): Promise<void> {
    const names = ctx.profiles.value.map((profile) => profile.name);
    const newName = await openDialog({
      message: t("profiles.duplicatePrompt", { name }),
      confirmLabel: t("profiles.duplicate"),
      input: {
        label: t("field.name"),
        value: uniqueCopyName(name, names),
        validate: (value) => {
          if (value === "") return t("v.nameMissing");
          if (!isValidProfileName(value)) return t("v.nameInvalid");
          if (names.includes(value)) return t("v.nameTaken", { name: value });
          return null;
        },
      },
    });
    if (typeof newName !== "string") return;
    await runMutation(() => api.duplicateProfile(name, newName), t("profiles.duplicated", { name: newName, source: name }));
  }

  function renderRow(profile: ProfileView): HTMLLIElement {
    const name = profile.name;
    const last = lastOutcomeText(profile, getLanguage());
    const result = resultArea(`result-${name}`);
    resultAreas.set(name, result);
    const shown = results.get(name);
    const failed = shown !== undefined && (shown.kind === "outcome" ? shown.outcome.tone === "error" : shown.tone === "error");
    if (failed && profile.last_success_at !== null && profile.last_success_at > (resultTimes.get(name) ?? 0)) {
      // A delivery after this failure (a resend, a fallback) makes it stale.
      results.delete(name);
    } else {
      showResult(result, shown);
    }
    const button = (testid: string, label: string, onClick: () => void, className = "secondary small"): HTMLButtonElement =>
      h("button", { type: "button", testid, className, text: label, on: { click: onClick } });
    const probeButton = (testid: string, label: string, action: "check" | "send"): HTMLButtonElement => {
      const element = button(testid, label, () => void runProbe(name, action));
      element.disabled = busy.has(name);
      return element;
    };
    return h(
      "li",
      { className: "profile-row", testid: `profile-row-${name}` },
      h(
        "div",
        { className: "profile-heading" },
        h("strong", { className: "profile-name", testid: `profile-name-${name}`, text: name }),
        h("span", { className: "kind", testid: `profile-kind-${name}`, text: t(`kind.${profile.kind}`) }),
        profile.is_default && h("span", { className: "badge", testid: `profile-default-${name}`, text: t("profiles.default") }),
      ),
      h("div", { className: `profile-outcome tone-${last.tone}`, testid: `profile-outcome-${name}`, text: last.text }),
      h(
        "div",
        { className: "profile-meta" },
        h("span", { text: t("profiles.route", { route: pickText(profile.route) }) }),
        profile.fallback !== null && h("span", { text: t("profiles.fallback", { name: profile.fallback }) }),
        h("span", { text: t(`profiles.secretStore.${profile.secret_store}`) }),
      ),
      h(
        "div",
        { className: "actions" },
        probeButton(`check-profile-${name}`, t("profiles.check"), "check"),
        probeButton(`send-test-${name}`, t("profiles.sendTest"), "send"),
        button(`edit-profile-${name}`, t("profiles.edit"), () => openForm(profile)),
        button(`duplicate-profile-${name}`, t("profiles.duplicate"), () => void askDuplicate(name)),
        !profile.is_default &&
          button(`set-default-${name}`, t("profiles.setDefault"), () =>
            void runMutation(() => api.setDefaultProfile(name), t("profiles.defaultSet", { name })),
          ),
        button(`delete-profile-${name}`, t("profiles.delete"), () => void confirmDelete(name), "danger small"),
      ),
      result,
    );
  }

  function renderList(): void {
    const profiles = ctx.profiles.value;
    const error = ctx.profilesError.value;
    resultAreas.clear();
    const rows: Node[] = profiles.map(renderRow);
    if (error !== null) {
      rows.unshift(h("li", { className: "load-error tone-error", testid: "profiles-error", text: t("app.loadFailed", { what: t("app.what.profiles"), error }) }));
    } else if (profiles.length === 0) {
      rows.push(h("li", { className: "empty", testid: "profiles-empty", text: t("profiles.empty") }));
    }
    replaceChildren(list, ...rows);
  }

  function openForm(profile: ProfileView | null): void {
    closeForm?.();
    const form = createProfileForm(ctx, {
      profile,
      onClose: (saved) => {
        closeForm?.();
        if (saved !== null) showSaveNotice(notice, saved.result, saved.name);
        void ctx.reloadProfiles();
      },
    });
    replaceChildren(formPanel, form.element);
    formPanel.hidden = false;
    listPanel.hidden = true;
    closeForm = () => {
      form.destroy();
      replaceChildren(formPanel);
      formPanel.hidden = true;
      listPanel.hidden = false;
      closeForm = null;
    };
    form.focus();
  }

  renderList();
  const unsubscribe = [ctx.profiles.subscribe(renderList), ctx.profilesError.subscribe(renderList)];
  return {
    element,
    destroy: () => {
      closeForm?.();
      for (const stop of unsubscribe) stop();
    },
  };
}

/** Shows that a profile was saved, with the Rust side's warnings and where the secret went. */
function showSaveNotice(notice: HTMLElement, saved: SaveResult, name: string): void {
  notice.dataset.tone = saved.warnings.length > 0 || saved.keyring_fallback !== null ? "warning" : "ok";
  replaceChildren(
    notice,
    h("div", { className: "tone-ok", text: t("profiles.saved", { name }) }),
    saved.keyring_fallback !== null &&
      h("div", { className: "tone-warning", testid: "keyring-fallback", text: t("profiles.keyringFallback", { reason: saved.keyring_fallback }) }),
    ...saved.warnings.map((warning) => h("div", { className: "tone-warning", text: pickText(warning) })),
  );
}

/** Picks "NAME-copy", then "NAME-copy-2" and so on, whichever is free. */
export function uniqueCopyName(name: string, existingNames: string[]): string {
  let candidate = `${name}-copy`;
  for (let n = 2; existingNames.includes(candidate); n++) candidate = `${name}-copy-${n}`;
  return candidate;
}
