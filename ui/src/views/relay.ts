// The Relay tab: the relay's address and state, its access token, and
// copyable snippets that post to it for each profile.

import * as api from "../api";
import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { pickText, t } from "../i18n";
import { curlSnippet, pythonSnippet, relayBaseUrl, robotUrl } from "../logic/snippets";
import type { ProfileView } from "../types";
import type { View } from "./app";
import { copyButton, openDialog, resultArea, showMessage } from "./components";

const MASKED_TOKEN = "••••••••••••••••";

export function createRelayView(ctx: AppContext): View {
  let token: string | null = null;
  let tokenShown = false;

  const address = h("code", { testid: "relay-address" });
  const status = h("span", { testid: "relay-status", className: "relay-state" });
  const errorBox = h("div", { className: "relay-error", hidden: true });
  const pauseButton = h("button", { type: "button", testid: "relay-pause", className: "secondary", on: { click: () => void togglePause() } });
  const pauseResult = resultArea("relay-pause-result");

  const tokenText = h("code", { testid: "relay-token", text: MASKED_TOKEN });
  const tokenResult = resultArea("relay-token-result");
  const showButton = h("button", { type: "button", testid: "relay-token-show", className: "secondary small", text: t("relay.show"), on: { click: () => void toggleToken() } });
  const snippets = h("div", { className: "snippets", testid: "relay-snippets" });

  const element = h(
    "section",
    { className: "relay-view" },
    h(
      "dl",
      {},
      h("dt", { text: t("relay.address") }),
      h("dd", {}, address),
      h("dt", { text: t("relay.status") }),
      h("dd", {}, status),
    ),
    errorBox,
    h("div", { className: "actions" }, pauseButton),
    pauseResult,
    h("h3", { text: t("relay.token") }),
    h(
      "div",
      { className: "token-line" },
      tokenText,
      showButton,
      copyButton("relay-token-copy", () => fetchToken(), tokenResult),
      h("button", { type: "button", testid: "relay-token-regenerate", className: "danger small", text: t("relay.regenerate"), on: { click: () => void regenerate() } }),
    ),
    tokenResult,
    h("h3", { text: t("relay.snippets") }),
    h("p", { className: "field-note", text: t("relay.snippetsNote") }),
    snippets,
  );

  async function fetchToken(): Promise<string> {
    if (token === null) token = await api.relayToken();
    return token;
  }

  async function toggleToken(): Promise<void> {
    if (tokenShown) {
      tokenShown = false;
    } else {
      try {
        await fetchToken();
        tokenShown = true;
      } catch (error) {
        showMessage(tokenResult, "error", t("common.failed", { error: api.errorMessage(error) }));
      }
    }
    renderToken();
    renderSnippets();
  }

  function renderToken(): void {
    tokenText.textContent = tokenShown && token !== null ? token : MASKED_TOKEN;
    showButton.textContent = tokenShown ? t("relay.hide") : t("relay.show");
  }

  async function regenerate(): Promise<void> {
    const confirmed = await openDialog({ message: t("relay.confirmRegenerate"), confirmLabel: t("relay.regenerate"), danger: true });
    if (confirmed === null) return;
    try {
      token = await api.regenerateToken();
      showMessage(tokenResult, "ok", t("relay.regenerated"));
    } catch (error) {
      showMessage(tokenResult, "error", t("common.failed", { error: api.errorMessage(error) }));
    }
    renderToken();
    renderSnippets();
  }

  async function togglePause(): Promise<void> {
    const paused = ctx.relay.value?.state === "paused";
    pauseButton.disabled = true;
    try {
      ctx.relay.set(await api.setRelayPaused(!paused));
      replaceChildren(pauseResult);
    } catch (error) {
      showMessage(pauseResult, "error", t("common.failed", { error: api.errorMessage(error) }));
    }
    renderStatus();
  }

  function baseUrl(): string {
    return relayBaseUrl(ctx.relay.value, ctx.settings.value?.port ?? 7591);
  }

  function renderStatus(): void {
    const relay = ctx.relay.value;
    const state = relay?.state ?? "starting";
    address.textContent = baseUrl();
    status.textContent = t(`relay.state.${state}`);
    status.dataset.state = state;
    pauseButton.textContent = state === "paused" ? t("relay.resume") : t("relay.pause");
    pauseButton.disabled = state !== "running" && state !== "paused";
    errorBox.hidden = state !== "error";
    if (state === "error") {
      replaceChildren(
        errorBox,
        relay?.error != null && h("p", { className: "tone-error", testid: "relay-error", text: pickText(relay.error) }),
        h("p", { testid: "relay-hint", text: t("relay.errorHint", { port: relay?.port ?? ctx.settings.value?.port ?? "" }) }),
        h("button", { type: "button", testid: "relay-open-settings", className: "secondary small", text: t("relay.openSettings"), on: { click: () => ctx.showTab("settings") } }),
      );
    } else {
      replaceChildren(errorBox);
    }
  }

  function snippetBlock(kind: "curl" | "python" | "robot", profile: ProfileView, label: string, build: (realToken: string) => string, note?: string): HTMLElement {
    const name = profile.name;
    const copyStatus = h("span", { className: "copy-status", testid: `copy-status-${kind}-${name}`, attrs: { role: "status" } });
    const displayed = build(tokenShown && token !== null ? token : MASKED_TOKEN);
    return h(
      "div",
      { className: "snippet" },
      h(
        "div",
        { className: "snippet-heading" },
        h("span", { text: label }),
        copyButton(`copy-${kind}-${name}`, async () => build(kind === "robot" ? "" : await fetchToken()), copyStatus),
        copyStatus,
      ),
      kind === "robot" ? h("code", { testid: `snippet-${kind}-${name}`, text: displayed }) : h("pre", { testid: `snippet-${kind}-${name}`, text: displayed }),
      note !== undefined && h("p", { className: "field-note", text: note }),
    );
  }

  function renderSnippets(): void {
    const profiles = ctx.profiles.value;
    if (profiles.length === 0) {
      replaceChildren(snippets, h("p", { className: "empty", testid: "relay-no-profiles", text: t("relay.noProfiles") }));
      return;
    }
    const url = baseUrl();
    const text = t("relay.sampleText");
    replaceChildren(
      snippets,
      ...profiles.map((profile) =>
        h(
          "div",
          { className: "snippet-group", testid: `snippets-${profile.name}` },
          h("h4", { text: profile.name }),
          snippetBlock("curl", profile, t("relay.curl"), (realToken) => curlSnippet({ url, token: realToken, profile: profile.name, text })),
          snippetBlock("python", profile, t("relay.python"), (realToken) => pythonSnippet({ url, token: realToken, profile: profile.name, text })),
          // The robot URL carries the profile's relay key, not the token.
          snippetBlock("robot", profile, t("relay.robot"), () => robotUrl(url, profile.relay_key), t("relay.robotNote")),
        ),
      ),
    );
  }

  renderStatus();
  renderToken();
  renderSnippets();
  const unsubscribe = [
    ctx.relay.subscribe(() => {
      renderStatus();
      renderSnippets();
    }),
    ctx.profiles.subscribe(renderSnippets),
  ];
  return {
    element,
    destroy: () => {
      for (const stop of unsubscribe) stop();
    },
  };
}
