// The main window: tabs, the last-error banners and the active view.

import * as api from "../api";
import type { AppContext, TabName } from "../context";
import { h, replaceChildren } from "../dom";
import { getLanguage, labelled, resolveLanguage, setLanguage, t } from "../i18n";
import { createBanners } from "./banners";
import { createHistoryView } from "./history";
import { createProfilesView } from "./profiles";
import { createRelayView } from "./relay";
import { createSettingsView } from "./settings";

export interface View {
  element: HTMLElement;
  destroy(): void;
}

const TABS: TabName[] = ["profiles", "history", "relay", "settings"];

// The last-error banners sit above these tabs, where their Resend buttons belong.
const TABS_WITH_BANNERS = new Set<TabName>(["profiles", "history"]);

const FACTORIES: Record<TabName, (ctx: AppContext) => View> = {
  profiles: createProfilesView,
  history: createHistoryView,
  relay: createRelayView,
  settings: createSettingsView,
};

export class App {
  private readonly root: HTMLElement;
  private readonly ctx: AppContext;
  private active: TabName = "profiles";
  // Views are created on first display and kept, so a half-filled form survives a tab switch.
  private views = new Map<TabName, View>();
  private banners: View | null = null;
  private tabButtons = new Map<TabName, HTMLButtonElement>();
  private main: HTMLElement | null = null;
  private bannerSlot: HTMLElement | null = null;
  private relayChip: HTMLButtonElement | null = null;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(root: HTMLElement, ctx: AppContext) {
    this.root = root;
    this.ctx = ctx;
    ctx.setTabSwitcher((tab) => this.show(tab));
    this.unsubscribe.push(ctx.relay.subscribe(() => this.updateRelayChip()));
    this.unsubscribe.push(
      ctx.settings.subscribe((settings) => {
        if (settings !== null && resolveLanguage(settings) !== getLanguage()) {
          setLanguage(resolveLanguage(settings));
          this.render();
        }
      }),
    );
  }

  /** Registers a function that `destroy()` calls, such as an event unlisten function. */
  addCleanup(cleanup: () => void): void {
    this.unsubscribe.push(cleanup);
  }

  get activeTab(): TabName {
    return this.active;
  }

  /** Builds the whole window again, as after a change of language. The active tab stays. */
  render(): void {
    this.destroyViews();
    this.tabButtons.clear();
    const nav = h("nav", { className: "tabs", attrs: { role: "tablist" } });
    for (const tab of TABS) {
      const button = h("button", {
        type: "button",
        testid: `tab-${tab}`,
        className: "tab",
        text: t(`tab.${tab}`),
        attrs: { role: "tab", "aria-selected": "false", "aria-controls": `view-${tab}` },
        on: { click: () => this.show(tab) },
      });
      this.tabButtons.set(tab, button);
      nav.appendChild(button);
    }
    this.relayChip = h("button", {
      type: "button",
      testid: "header-relay-status",
      className: "relay-chip",
      on: { click: () => this.show("relay") },
    });
    this.banners = createBanners(this.ctx);
    this.bannerSlot = h("div", {}, this.banners.element);
    this.main = h("main", { className: "content" });
    replaceChildren(this.root, h("header", { className: "app-header" }, nav, this.relayChip), this.bannerSlot, this.main);
    this.updateRelayChip();
    this.show(this.active);
  }

  show(tab: TabName): void {
    this.active = tab;
    if (this.main === null) return;
    let view = this.views.get(tab);
    if (view === undefined) {
      view = FACTORIES[tab](this.ctx);
      view.element.id = `view-${tab}`;
      view.element.dataset.testid = `view-${tab}`;
      view.element.setAttribute("role", "tabpanel");
      this.views.set(tab, view);
      this.main.appendChild(view.element);
    }
    if (this.bannerSlot !== null) this.bannerSlot.hidden = !TABS_WITH_BANNERS.has(tab);
    for (const [name, other] of this.views) {
      other.element.hidden = name !== tab;
    }
    for (const [name, button] of this.tabButtons) {
      button.setAttribute("aria-selected", String(name === tab));
      button.classList.toggle("active", name === tab);
    }
  }

  private updateRelayChip(): void {
    if (this.relayChip === null) return;
    const status = this.ctx.relay.value;
    const state = status?.state ?? "starting";
    this.relayChip.textContent = `${labelled("tab.relay")}${t(`relay.state.${state}`)}`;
    this.relayChip.dataset.state = state;
  }

  private destroyViews(): void {
    for (const view of this.views.values()) view.destroy();
    this.views.clear();
    this.banners?.destroy();
    this.banners = null;
  }

  destroy(): void {
    this.destroyViews();
    for (const stop of this.unsubscribe) stop();
  }
}

/**
 * Loads the settings and sets the language from them. Returns null, or the
 * error message when loading failed and the browser's language stays.
 */
export async function loadSettings(ctx: AppContext): Promise<string | null> {
  try {
    const settings = await api.getSettings();
    setLanguage(resolveLanguage(settings));
    ctx.settings.set(settings);
    return null;
  } catch (error) {
    return api.errorMessage(error);
  }
}

/** Starts the main window: settings and language first, then the event listeners, then the data. */
export async function startApp(root: HTMLElement, ctx: AppContext): Promise<App> {
  const settingsError = await loadSettings(ctx);
  const app = new App(root, ctx);
  app.render();
  if (settingsError !== null) {
    ctx.settingsNotice = () => t("app.loadFailed", { what: t("app.what.settings"), error: settingsError });
  }
  const unlisten = await Promise.all([
    api.onMessageUpdated((message) => ctx.messageChanged(message)),
    api.onRelayStatus((status) => ctx.relay.set(status)),
    api.onProfilesChanged(() => void ctx.reloadProfiles()),
  ]);
  for (const stop of unlisten) app.addCleanup(stop);
  // The command line may change profiles while the window is open but out
  // of sight; reading them again when the window comes back shows those.
  const onFocus = (): void => void ctx.reloadProfiles();
  window.addEventListener("focus", onFocus);
  app.addCleanup(() => window.removeEventListener("focus", onFocus));
  await Promise.all([ctx.reloadProfiles(), ctx.reloadRelay()]);
  return app;
}
