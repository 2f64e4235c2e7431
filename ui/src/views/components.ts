// Pieces that several views share: result blocks, copy buttons and the
// confirmation dialog.

import { errorMessage } from "../api";
import { h, replaceChildren } from "../dom";
import { labelled, t } from "../i18n";
import type { OutcomeText, Tone } from "../logic/failure";

/** Copies text to the clipboard. Rejects when the clipboard is unavailable or rejects the write. */
export async function copyText(text: string): Promise<void> {
  const clipboard = typeof navigator === "undefined" ? undefined : navigator.clipboard;
  if (clipboard === undefined || typeof clipboard.writeText !== "function") {
    throw new Error("clipboard unavailable");
  }
  await clipboard.writeText(text);
}

/**
 * Creates a Copy button that copies the text `source` returns and reports
 * success or failure in `status`.
 */
export function copyButton(testid: string, source: () => string | Promise<string>, status: HTMLElement): HTMLButtonElement {
  return h("button", {
    type: "button",
    testid,
    className: "secondary small",
    text: t("common.copy"),
    on: {
      click: async () => {
        try {
          await copyText(await source());
          showMessage(status, "ok", t("common.copied"));
        } catch (error) {
          showMessage(status, "error", t("common.copyFailed", { error: errorMessage(error) }));
        }
      },
    },
  });
}

/** Replaces the content of a result area with one line of text in the given tone. */
export function showMessage(area: HTMLElement, tone: Tone | "none", text: string): void {
  area.dataset.tone = tone;
  replaceChildren(area, h("span", { className: `tone-${tone}`, text }));
}

/** Fills a result area with a check or send outcome: headline, message, hint and the provider's response. */
export function showOutcome(area: HTMLElement, outcome: OutcomeText): void {
  area.dataset.tone = outcome.tone;
  replaceChildren(
    area,
    h("div", { className: `headline tone-${outcome.tone}`, text: outcome.headline }),
    outcome.message !== null && h("div", { className: "failure-message", text: outcome.message }),
    outcome.hint !== null &&
      h("div", { className: "failure-hint" }, h("strong", { text: labelled("common.whatToDo") }), outcome.hint),
    outcome.providerAnswer !== null &&
      outcome.providerAnswer !== "" &&
      h("div", { className: "provider-answer" }, h("span", { text: labelled("common.providerAnswer") }), h("code", { text: outcome.providerAnswer })),
  );
}

/** Creates an empty result area that screen readers announce when it changes. */
export function resultArea(testid: string): HTMLDivElement {
  return h("div", { testid, className: "result", attrs: { role: "status", "aria-live": "polite" } });
}

export interface DialogOptions {
  message: string;
  confirmLabel: string;
  danger?: boolean;
  /** Asks for a line of text, checked by `validate` (which returns an error message or null). */
  input?: { label: string; value: string; validate?: (value: string) => string | null };
}

/**
 * Opens a modal dialog in the page. Resolves to the typed text (with `input`)
 * or true when confirmed, and to null when cancelled.
 */
export function openDialog(options: DialogOptions): Promise<string | true | null> {
  return new Promise((resolve) => {
    const previousFocus = document.activeElement as HTMLElement | null;
    const error = h("div", { testid: "dialog-error", className: "field-error", attrs: { role: "alert" } });
    const input =
      options.input === undefined
        ? null
        : h("input", { type: "text", testid: "dialog-input", value: options.input.value, attrs: { "aria-label": options.input.label } });

    const close = (result: string | true | null): void => {
      overlay.remove();
      previousFocus?.focus?.();
      resolve(result);
    };
    const confirm = (): void => {
      if (input === null) {
        close(true);
        return;
      }
      const value = input.value.trim();
      const problem = options.input?.validate?.(value) ?? null;
      if (problem !== null) {
        error.textContent = problem;
        input.focus();
        return;
      }
      close(value);
    };

    const form = h(
      "form",
      {
        className: "dialog",
        testid: "dialog",
        attrs: { role: "dialog", "aria-modal": "true", "aria-labelledby": "dialog-message" },
        on: {
          submit: (event) => {
            event.preventDefault();
            confirm();
          },
          keydown: (event) => {
            if (event.key === "Escape") close(null);
          },
        },
      },
      h("p", { id: "dialog-message", testid: "dialog-message", text: options.message }),
      input !== null && h("label", { className: "field" }, h("span", { text: options.input?.label ?? "" }), input),
      error,
      h(
        "div",
        { className: "actions" },
        h("button", { type: "submit", testid: "dialog-confirm", className: options.danger ? "danger" : "primary", text: options.confirmLabel }),
        h("button", { type: "button", testid: "dialog-cancel", className: "secondary", text: t("common.cancel"), on: { click: () => close(null) } }),
      ),
    );
    const overlay = h("div", { className: "overlay" }, form);
    document.body.appendChild(overlay);
    (input ?? (form.querySelector("[data-testid=dialog-confirm]") as HTMLElement)).focus();
  });
}
