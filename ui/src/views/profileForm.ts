// The profile form: one set of fields per kind, checked as the user types.
// Client-side checks run on every keystroke, and `validate_profile` runs
// after a pause in typing to add the Rust side's errors and warnings.

import * as api from "../api";
import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { pickText, t, type MessageKey } from "../i18n";
import { debounce } from "../logic/debounce";
import { emptyFormValues, formValuesFromProfile, toProfileInput } from "../logic/profileForm";
import {
  KIND_FIELDS,
  suggestTls,
  parsePort,
  tlsMismatch,
  validateProfileForm,
  type FieldErrors,
  type FieldMessage,
  type FormField,
  type ProfileFormValues,
} from "../logic/validation";
import type { ProfileKind, ProfileView, SaveResult, Text, TlsMode } from "../types";
import { resultArea, showMessage } from "./components";

export interface ProfileFormOptions {
  /** The profile to edit, or null for a new one. */
  profile: ProfileView | null;
  /** Called after a save (with the result) or on Cancel (with null). */
  onClose: (saved: { result: SaveResult; name: string } | null) => void;
}

export interface ProfileForm {
  element: HTMLFormElement;
  focus(): void;
  destroy(): void;
}

type Control = HTMLInputElement | HTMLSelectElement;

const KINDS: ProfileKind[] = ["wecom-app", "wecom-bot", "email"];
const TLS_MODES: TlsMode[] = ["implicit", "starttls", "none"];
// Fields every kind shows, after the kind's own fields.
const COMMON_FIELDS: FormField[] = ["proxy", "proxy_url", "fallback"];

let formCounter = 0;

function message(field: FieldMessage): string {
  return t(field.key, field.params);
}

function option(value: string, label: string): HTMLOptionElement {
  return h("option", { value, text: label });
}

export function createProfileForm(ctx: AppContext, options: ProfileFormOptions): ProfileForm {
  const mode = options.profile === null ? "new" : "edit";
  const values: ProfileFormValues = options.profile === null ? emptyFormValues() : formValuesFromProfile(options.profile);
  const touched = new Set<FormField>();
  let submitted = mode === "edit";
  let tlsChosenByUser = mode === "edit";
  let fromTypedByUser = mode === "edit";
  let validateSequence = 0;
  let destroyed = false;
  let clientErrors: FieldErrors = {};
  const idPrefix = `profile-form-${++formCounter}`;

  const controls = new Map<FormField, Control>();
  const rows = new Map<FormField, HTMLElement>();
  const errorSlots = new Map<FormField, HTMLElement>();

  const serverErrors = h("ul", { className: "report errors", testid: "form-errors", attrs: { role: "alert" } });
  const serverWarnings = h("ul", { className: "report warnings", testid: "form-warnings" });
  const saveResult = resultArea("save-result");
  const secretNote = h("div", { className: "field-note", testid: "secret-note" });
  const secretLabel = h("span");
  const tlsSuggestion = h("div", { className: "suggestion", testid: "tls-suggestion", hidden: true });

  function existingNames(): string[] {
    return ctx.profiles.value.map((profile) => profile.name);
  }

  function addRow(field: FormField, label: string | HTMLElement, control: Control, ...extra: Array<Node | false>): HTMLElement {
    const id = `${idPrefix}-${field}`;
    control.id = id;
    control.dataset.testid = `field-${field}`;
    control.name = field;
    const error = h("div", { className: "field-error", testid: `error-${field}`, id: `${id}-error` });
    control.setAttribute("aria-describedby", error.id);
    const row = h(
      "div",
      { className: "field", testid: `row-${field}` },
      h("label", { htmlFor: id }, label),
      control,
      error,
      ...extra.filter((node): node is Node => node !== false),
    );
    controls.set(field, control);
    rows.set(field, row);
    errorSlots.set(field, error);
    return row;
  }

  function textInput(field: FormField, extra: Partial<HTMLInputElement> = {}): HTMLInputElement {
    const input = h("input", { type: "text", value: values[field] as string, autocomplete: "off", spellcheck: false, ...extra });
    input.addEventListener("input", () => fieldChanged(field, input.value));
    input.addEventListener("blur", () => fieldBlurred(field));
    return input;
  }

  function select(field: FormField, choices: HTMLOptionElement[]): HTMLSelectElement {
    const element = h("select", {}, ...choices);
    element.value = values[field] as string;
    element.addEventListener("change", () => fieldChanged(field, element.value));
    return element;
  }

  // --- controls ---
  const nameInput = textInput("name", { readOnly: mode === "edit", maxLength: 64 });
  const kindSelect = select("kind", KINDS.map((kind) => option(kind, t(`kind.${kind}`))));
  kindSelect.disabled = mode === "edit";
  const secretInput = textInput("secret", { type: "password", placeholder: options.profile?.secret_masked ?? "" });
  const portInput = textInput("smtp_port", { inputMode: "numeric", maxLength: 5 });
  const tlsSelect = select("tls", TLS_MODES.map((mode) => option(mode, t(`tls.${mode}`))));
  const proxySelect = select("proxy", []);
  const fallbackSelect = select("fallback", []);

  const fieldsBox = h(
    "div",
    { className: "fields" },
    addRow("name", t("field.name"), nameInput),
    addRow("kind", t("field.kind"), kindSelect),
    addRow("corp_id", t("field.corp_id"), textInput("corp_id")),
    addRow("agent_id", t("field.agent_id"), textInput("agent_id", { inputMode: "numeric" })),
    addRow("smtp_host", t("field.smtp_host"), textInput("smtp_host", { placeholder: "smtp.qq.com" })),
    addRow("smtp_port", t("field.smtp_port"), portInput),
    addRow("tls", t("field.tls"), tlsSelect, tlsSuggestion),
    addRow("username", t("field.username"), textInput("username", { placeholder: "name@qq.com" })),
    addRow("secret", secretLabel, secretInput, secretNote),
    addRow("from", t("field.from"), textInput("from", { placeholder: "name@qq.com" })),
    addRow("to", t("field.to"), textInput("to")),
    addRow("to_user", t("field.to_user"), textInput("to_user", { placeholder: "zhangsan|lisi" })),
    addRow("to_party", t("field.to_party"), textInput("to_party")),
    addRow("to_tag", t("field.to_tag"), textInput("to_tag")),
    addRow("api_base", t("field.api_base"), textInput("api_base", { placeholder: "https://qyapi.weixin.qq.com" })),
    addRow("ca_file", t("field.ca_file"), textInput("ca_file")),
    addRow("proxy", t("field.proxy"), proxySelect),
    addRow("proxy_url", t("field.proxy_url"), textInput("proxy_url", { placeholder: "http://127.0.0.1:7890" })),
    addRow("fallback", t("field.fallback"), fallbackSelect),
  );

  const saveButton = h("button", { type: "submit", testid: "save-profile", className: "primary", text: t("common.save") });
  const element = h(
    "form",
    {
      className: "profile-form",
      testid: "profile-form",
      noValidate: true,
      on: {
        submit: (event) => {
          event.preventDefault();
          void save();
        },
      },
    },
    h("h2", { testid: "profile-form-title", text: mode === "new" ? t("form.titleNew") : t("form.titleEdit", { name: values.name }) }),
    fieldsBox,
    serverErrors,
    serverWarnings,
    h(
      "div",
      { className: "actions" },
      saveButton,
      h("button", { type: "button", testid: "cancel-profile", className: "secondary", text: t("common.cancel"), on: { click: () => options.onClose(null) } }),
    ),
    saveResult,
  );

  // --- behaviour ---
  function fillProxyChoices(): void {
    const choices = values.kind === "email" ? ["system", "none"] : ["system", "none", "url"];
    if (!choices.includes(values.proxy)) values.proxy = "system";
    replaceChildren(proxySelect, ...choices.map((choice) => option(choice, t(`proxy.${choice}` as MessageKey))));
    proxySelect.value = values.proxy;
  }

  function fillFallbackChoices(): void {
    const names = existingNames().filter((name) => mode === "new" || name !== values.name);
    if (values.fallback !== "" && !names.includes(values.fallback)) names.push(values.fallback);
    replaceChildren(fallbackSelect, option("", t("fallback.none")), ...names.map((name) => option(name, name)));
    fallbackSelect.value = values.fallback;
  }

  function updateVisibleFields(): void {
    const visibleFields = new Set<FormField>(["name", "kind", ...KIND_FIELDS[values.kind], ...COMMON_FIELDS]);
    if (values.proxy !== "url") visibleFields.delete("proxy_url");
    for (const [field, row] of rows) row.hidden = !visibleFields.has(field);
    secretLabel.textContent = t(`field.secret.${values.kind}`);
    const notes: string[] = [];
    if (options.profile !== null) notes.push(t("form.secretKeep", { masked: options.profile.secret_masked }));
    if (values.kind === "email") notes.push(t("form.secretHelp.email"));
    if (values.kind === "wecom-bot") notes.push(t("form.secretHelp.wecom-bot"));
    secretNote.textContent = notes.join(" ");
  }

  function updateTlsSuggestion(): void {
    const suggested = values.kind === "email" ? tlsMismatch(values) : null;
    tlsSuggestion.hidden = suggested === null;
    if (suggested === null) {
      replaceChildren(tlsSuggestion);
      return;
    }
    const modeName = t(`tls.${suggested}`);
    replaceChildren(
      tlsSuggestion,
      h("span", { text: t("form.tlsSuggestion", { port: values.smtp_port.trim(), mode: modeName }) }),
      " ",
      h("button", {
        type: "button",
        testid: "apply-tls",
        className: "secondary small",
        text: t("form.applyTls", { mode: modeName }),
        on: { click: () => setControl("tls", suggested) },
      }),
    );
  }

  function setControl(field: FormField, value: string): void {
    const control = controls.get(field);
    if (control !== undefined) control.value = value;
    fieldChanged(field, value, false);
  }

  function showErrors(): void {
    clientErrors = validateProfileForm(values, { mode, existingNames: existingNames() });
    for (const [field, slot] of errorSlots) {
      const error = clientErrors[field];
      const visible = error !== undefined && (submitted || touched.has(field));
      slot.textContent = visible ? message(error) : "";
      controls.get(field)?.setAttribute("aria-invalid", String(visible));
    }
  }

  function renderReport(list: HTMLElement, texts: Text[]): void {
    replaceChildren(list, ...texts.map((text) => h("li", { text: pickText(text) })));
  }

  async function validateOnServer(): Promise<void> {
    const sequence = ++validateSequence;
    try {
      const report = await api.validateProfile(toProfileInput(values));
      if (destroyed || sequence !== validateSequence) return;
      // Client-side messages already cover the fields they mark, so the Rust
      // side's errors are shown once the client finds nothing.
      renderReport(serverErrors, Object.keys(clientErrors).length === 0 ? report.errors : []);
      renderReport(serverWarnings, report.warnings);
    } catch (error) {
      if (destroyed || sequence !== validateSequence) return;
      replaceChildren(serverErrors, h("li", { text: t("common.failed", { error: api.errorMessage(error) }) }));
    }
  }
  const validateLater = debounce(() => void validateOnServer(), ctx.timing.validateDelayMs);

  function fieldChanged(field: FormField, value: string, byUser = true): void {
    (values as unknown as Record<string, string>)[field] = value;
    if (byUser) touched.add(field);
    if (field === "tls" && byUser) tlsChosenByUser = true;
    if (field === "from" && byUser) fromTypedByUser = true;
    if (field === "kind") {
      fillProxyChoices();
      updateVisibleFields();
    }
    if (field === "proxy") updateVisibleFields();
    if (field === "smtp_port" && !tlsChosenByUser) {
      const suggested = suggestTls(parsePort(value));
      if (suggested !== null && suggested !== values.tls) setControl("tls", suggested);
    }
    // QQ and 163 mail require From to be the login, so From follows the login until typed.
    if (field === "username" && !fromTypedByUser && value.includes("@")) setControl("from", value.trim());
    if (field === "name") fillFallbackChoices();
    updateTlsSuggestion();
    showErrors();
    saveResult.textContent = "";
    validateLater();
  }

  function fieldBlurred(field: FormField): void {
    if (controls.get(field)?.value === "" && !touched.has(field)) return;
    touched.add(field);
    showErrors();
  }

  async function save(): Promise<void> {
    submitted = true;
    showErrors();
    const firstInvalid = [...rows.keys()].find((field) => clientErrors[field] !== undefined && !rows.get(field)?.hidden);
    if (firstInvalid !== undefined) {
      showMessage(saveResult, "error", t("form.saveBlocked"));
      controls.get(firstInvalid)?.focus();
      return;
    }
    validateLater.cancel();
    validateSequence++;
    saveButton.disabled = true;
    showMessage(saveResult, "pending", t("common.working"));
    try {
      const result = await api.saveProfile(toProfileInput(values));
      if (destroyed) return;
      if (result.saved) {
        options.onClose({ result, name: values.name.trim() });
        return;
      }
      renderReport(serverErrors, result.errors);
      renderReport(serverWarnings, result.warnings);
      showMessage(saveResult, "error", t("form.saveBlocked"));
    } catch (error) {
      if (!destroyed) showMessage(saveResult, "error", t("common.failed", { error: api.errorMessage(error) }));
    } finally {
      saveButton.disabled = false;
    }
  }

  fillProxyChoices();
  fillFallbackChoices();
  updateVisibleFields();
  updateTlsSuggestion();
  showErrors();
  const unsubscribe = ctx.profiles.subscribe(() => fillFallbackChoices());
  if (mode === "edit") validateLater();

  return {
    element,
    focus: () => (mode === "new" ? nameInput : controls.get(KIND_FIELDS[values.kind][0]))?.focus(),
    destroy: () => {
      destroyed = true;
      validateLater.cancel();
      unsubscribe();
    },
  };
}
