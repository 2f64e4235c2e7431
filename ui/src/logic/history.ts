// The History tab's state: the filter, the loaded messages, and the live
// updates that `message-updated` events bring.

import type { HistoryFilter, MessageStatus, MessageView } from "../types";

/** The maximum number of messages loaded and kept in the list. */
export const HISTORY_LIMIT = 200;

export const STATUSES: MessageStatus[] = ["queued", "sending", "delivered", "failed"];

/** The filter as the user set it. An empty string means "any". */
export interface HistoryQuery {
  profile: string;
  status: string;
  text: string;
}

export function emptyQuery(): HistoryQuery {
  return { profile: "", status: "", text: "" };
}

/** Builds the `list_history` filter, leaving out the parts that are "any". */
export function toHistoryFilter(query: HistoryQuery, limit: number = HISTORY_LIMIT): HistoryFilter {
  const filter: HistoryFilter = { limit };
  if (query.profile !== "") filter.profile = query.profile;
  if (query.status !== "") filter.status = query.status;
  const text = query.text.trim();
  if (text !== "") filter.text = text;
  return filter;
}

/**
 * Returns whether a message passes the filter. As in the Rust side's
 * `list_history`, the text filter matches the title or the text, ignoring case.
 */
export function matchesQuery(message: MessageView, query: HistoryQuery): boolean {
  if (query.profile !== "" && message.profile !== query.profile) return false;
  if (query.status !== "" && message.status !== query.status) return false;
  const needle = query.text.trim().toLowerCase();
  if (needle === "") return true;
  const haystack = `${message.title ?? ""}\n${message.text}`.toLowerCase();
  return haystack.includes(needle);
}

function newestFirst(a: MessageView, b: MessageView): number {
  return b.created_at - a.created_at;
}

export type HistoryFetcher = (filter: HistoryFilter) => Promise<MessageView[]>;

/** The loaded list of messages, kept newest first and in step with the filter. */
export class HistoryState {
  messages: MessageView[] = [];
  query: HistoryQuery = emptyQuery();
  loading = false;
  error: string | null = null;

  private readonly fetcher: HistoryFetcher;
  private readonly limit: number;
  private readonly listeners = new Set<() => void>();
  // Updates that arrive while a load is under way, merged into its result.
  private pending = new Map<string, MessageView>();
  private loadSequence = 0;

  constructor(fetcher: HistoryFetcher, limit: number = HISTORY_LIMIT) {
    this.fetcher = fetcher;
    this.limit = limit;
  }

  /** Registers a function called after every change. Returns a function that removes it. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  /** Sets the filter and loads the matching messages. */
  setQuery(query: HistoryQuery): Promise<void> {
    this.query = { ...query };
    return this.load();
  }

  /** Loads the messages that match the filter. A newer load makes an older one's result be dropped. */
  async load(): Promise<void> {
    const sequence = ++this.loadSequence;
    this.loading = true;
    this.error = null;
    this.pending = new Map();
    this.changed();
    try {
      const messages = await this.fetcher(toHistoryFilter(this.query, this.limit));
      if (sequence !== this.loadSequence) return;
      this.messages = [...messages].sort(newestFirst);
      const pending = [...this.pending.values()];
      this.pending = new Map();
      this.loading = false;
      for (const message of pending) this.merge(message);
    } catch (error) {
      if (sequence !== this.loadSequence) return;
      this.loading = false;
      this.error = error instanceof Error ? error.message : String(error);
    }
    this.changed();
  }

  /**
   * Applies a `message-updated` payload: replaces the message, adds it when
   * it now matches the filter, or removes it when it no longer does. An update
   * older than the message already held is ignored.
   */
  applyUpdate(message: MessageView): void {
    if (this.loading) {
      const existing = this.pending.get(message.id);
      if (existing === undefined || existing.updated_at <= message.updated_at) {
        this.pending.set(message.id, message);
      }
      return;
    }
    if (this.merge(message)) this.changed();
  }

  private merge(message: MessageView): boolean {
    const index = this.messages.findIndex((existing) => existing.id === message.id);
    if (index >= 0 && this.messages[index].updated_at > message.updated_at) return false;
    const matches = matchesQuery(message, this.query);
    if (index >= 0 && !matches) {
      this.messages.splice(index, 1);
      return true;
    }
    if (!matches) return false;
    if (index >= 0) {
      this.messages[index] = message;
      return true;
    }
    let position = this.messages.findIndex((existing) => existing.created_at < message.created_at);
    if (position < 0) position = this.messages.length;
    this.messages.splice(position, 0, message);
    if (this.messages.length > this.limit) this.messages.length = this.limit;
    return true;
  }
}
