// The state that the main window's views share.

import * as api from "./api";
import { HistoryState } from "./logic/history";
import { Store } from "./store";
import type { MessageView, ProfileView, RelayStatus, Settings } from "./types";

export type TabName = "profiles" | "history" | "relay" | "settings";

export interface Timing {
  /** Pause in typing before the profile form calls `validate_profile`. */
  validateDelayMs: number;
  /** Pause in typing before the History text filter reloads the list. */
  filterDelayMs: number;
}

export const DEFAULT_TIMING: Timing = { validateDelayMs: 400, filterDelayMs: 300 };

export class AppContext {
  readonly profiles = new Store<ProfileView[]>([]);
  readonly profilesError = new Store<string | null>(null);
  readonly relay = new Store<RelayStatus | null>(null);
  readonly settings = new Store<Settings | null>(null);
  readonly history = new HistoryState((filter) => api.listHistory(filter));
  readonly timing: Timing;
  /**
   * A message for the Settings view to show once. It is a function so that a
   * re-render for a new language words it in that language.
   */
  settingsNotice: (() => string) | null = null;

  private readonly messageListeners = new Set<(message: MessageView) => void>();
  private tabSwitcher: (tab: TabName) => void = () => {};

  constructor(timing: Timing = DEFAULT_TIMING) {
    this.timing = timing;
  }

  async reloadProfiles(): Promise<void> {
    try {
      this.profiles.set(await api.listProfiles());
      this.profilesError.set(null);
    } catch (error) {
      this.profilesError.set(api.errorMessage(error));
    }
  }

  async reloadRelay(): Promise<void> {
    try {
      this.relay.set(await api.relayStatus());
    } catch (error) {
      this.relay.set({ state: "error", port: this.settings.value?.port ?? 0, url: null, error: { en: api.errorMessage(error), zh: api.errorMessage(error) } });
    }
  }

  /** Records a changed message, from a `message-updated` event or a command's return value. */
  messageChanged(message: MessageView): void {
    this.history.applyUpdate(message);
    for (const listener of this.messageListeners) listener(message);
  }

  /** Registers a function called with every changed message. Returns a function that removes it. */
  onMessage(listener: (message: MessageView) => void): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  setTabSwitcher(switcher: (tab: TabName) => void): void {
    this.tabSwitcher = switcher;
  }

  showTab(tab: TabName): void {
    this.tabSwitcher(tab);
  }
}
