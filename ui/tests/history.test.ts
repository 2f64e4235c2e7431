import { emit } from "@tauri-apps/api/event";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { AppContext } from "../src/context";
import { setLanguage } from "../src/i18n";
import { HistoryState, emptyQuery, matchesQuery, toHistoryFilter } from "../src/logic/history";
import type { HistoryFilter, MessageView } from "../src/types";
import { startApp } from "../src/views/app";
import {
  callsOf,
  choose,
  click,
  failureFixture,
  find,
  flush,
  installBackend,
  messageFixture,
  profileFixture,
  query,
  resetBackend,
  typeInto,
  type Call,
  type Handler,
} from "./helpers";

const T0 = Date.UTC(2024, 2, 14, 2, 0);

function at(minutes: number): number {
  return T0 + minutes * 60_000;
}

describe("history filter", () => {
  test("toHistoryFilter leaves out any", () => {
    expect(toHistoryFilter(emptyQuery())).toEqual({ limit: 200 });
    expect(toHistoryFilter({ profile: "ops", status: "failed", text: " 600519 " }, 50)).toEqual({
      profile: "ops",
      status: "failed",
      text: "600519",
      limit: 50,
    });
  });

  test("matchesQuery checks profile, status and text", () => {
    const message = messageFixture({ profile: "ops", status: "failed", title: "Risk", text: "Stop triggered on 600519" });
    expect(matchesQuery(message, emptyQuery())).toBe(true);
    expect(matchesQuery(message, { profile: "ops", status: "failed", text: "stop TRIGGERED" })).toBe(true);
    expect(matchesQuery(message, { profile: "ops", status: "failed", text: "risk" })).toBe(true);
    expect(matchesQuery(message, { profile: "mail", status: "", text: "" })).toBe(false);
    expect(matchesQuery(message, { profile: "", status: "delivered", text: "" })).toBe(false);
    expect(matchesQuery(message, { profile: "", status: "", text: "000001" })).toBe(false);
  });
});

describe("HistoryState", () => {
  function stateWith(messages: MessageView[], limit = 200): { state: HistoryState; filters: HistoryFilter[] } {
    const filters: HistoryFilter[] = [];
    const state = new HistoryState(async (filter) => {
      filters.push(filter);
      return messages;
    }, limit);
    return { state, filters };
  }

  test("load sorts newest first", async () => {
    const { state, filters } = stateWith([messageFixture({ id: "a", created_at: at(1) }), messageFixture({ id: "b", created_at: at(5) })]);
    await state.load();
    expect(state.messages.map((m) => m.id)).toEqual(["b", "a"]);
    expect(filters).toEqual([{ limit: 200 }]);
  });

  test("setQuery sends the filter", async () => {
    const { state, filters } = stateWith([]);
    await state.setQuery({ profile: "ops", status: "failed", text: "" });
    expect(filters).toEqual([{ profile: "ops", status: "failed", limit: 200 }]);
  });

  test("update replaces a held message", async () => {
    const { state } = stateWith([messageFixture({ id: "a", status: "queued", updated_at: at(1) })]);
    await state.load();
    state.applyUpdate(messageFixture({ id: "a", status: "delivered", updated_at: at(2) }));
    expect(state.messages).toHaveLength(1);
    expect(state.messages[0].status).toBe("delivered");
  });

  test("older update is ignored", async () => {
    const { state } = stateWith([messageFixture({ id: "a", status: "delivered", updated_at: at(5) })]);
    await state.load();
    state.applyUpdate(messageFixture({ id: "a", status: "sending", updated_at: at(4) }));
    expect(state.messages[0].status).toBe("delivered");
  });

  test("new message goes in by creation time", async () => {
    const { state } = stateWith([messageFixture({ id: "new", created_at: at(10) }), messageFixture({ id: "old", created_at: at(1) })]);
    await state.load();
    state.applyUpdate(messageFixture({ id: "mid", created_at: at(5), updated_at: at(5) }));
    state.applyUpdate(messageFixture({ id: "newest", created_at: at(20), updated_at: at(20) }));
    expect(state.messages.map((m) => m.id)).toEqual(["newest", "new", "mid", "old"]);
  });

  test("update outside the filter is left out or removed", async () => {
    const { state } = stateWith([messageFixture({ id: "a", status: "failed", updated_at: at(1) })]);
    await state.setQuery({ profile: "", status: "failed", text: "" });
    state.applyUpdate(messageFixture({ id: "b", status: "delivered", updated_at: at(2) }));
    expect(state.messages.map((m) => m.id)).toEqual(["a"]);
    state.applyUpdate(messageFixture({ id: "a", status: "queued", updated_at: at(3) }));
    expect(state.messages).toEqual([]);
  });

  test("list is cut to the limit", async () => {
    const { state } = stateWith([messageFixture({ id: "a", created_at: at(2) }), messageFixture({ id: "b", created_at: at(1) })], 2);
    await state.load();
    state.applyUpdate(messageFixture({ id: "c", created_at: at(3), updated_at: at(3) }));
    expect(state.messages.map((m) => m.id)).toEqual(["c", "a"]);
  });

  test("update during a load is merged", async () => {
    let release: (messages: MessageView[]) => void = () => {};
    const state = new HistoryState(() => new Promise((resolve) => (release = resolve)));
    const loading = state.load();
    expect(state.loading).toBe(true);
    state.applyUpdate(messageFixture({ id: "a", status: "delivered", updated_at: at(9) }));
    release([messageFixture({ id: "a", status: "sending", updated_at: at(8) })]);
    await loading;
    expect(state.loading).toBe(false);
    expect(state.messages.map((m) => m.status)).toEqual(["delivered"]);
  });

  test("stale load result is dropped", async () => {
    const releases: Array<(messages: MessageView[]) => void> = [];
    const state = new HistoryState(() => new Promise((resolve) => releases.push(resolve)));
    const first = state.setQuery({ profile: "ops", status: "", text: "" });
    const second = state.setQuery({ profile: "mail", status: "", text: "" });
    releases[1]([messageFixture({ id: "mail-1", profile: "mail" })]);
    releases[0]([messageFixture({ id: "ops-1", profile: "ops" })]);
    await Promise.all([first, second]);
    expect(state.messages.map((m) => m.id)).toEqual(["mail-1"]);
  });

  test("failed load keeps the error", async () => {
    const state = new HistoryState(async () => {
      throw new Error("database is locked");
    });
    await state.load();
    expect(state.error).toBe("database is locked");
    expect(state.loading).toBe(false);
  });
});

describe("history view", () => {
  let calls: Call[];

  async function start(messages: MessageView[], handlers: Record<string, Handler> = {}): Promise<void> {
    calls = installBackend({
      list_profiles: () => [profileFixture({ fallback: "group" }), profileFixture({ name: "group", kind: "wecom-bot", is_default: false })],
      list_history: () => messages,
      ...handlers,
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    await startApp(root, new AppContext({ validateDelayMs: 0, filterDelayMs: 0 }));
    click("tab-history");
    await flush();
  }

  beforeEach(() => setLanguage("en"));
  afterEach(resetBackend);

  test("rows show newest first with status", async () => {
    await start([messageFixture({ id: "m2", created_at: at(2), status: "delivered" }), messageFixture({ id: "m1", created_at: at(1), status: "failed", error: failureFixture() })]);
    const rows = [...find("history-list").querySelectorAll("tr")].map((row) => row.dataset.testid);
    expect(rows).toEqual(["history-row-m2", "history-row-m1"]);
    expect(find("history-status-m2").textContent).toBe("delivered");
    expect(find("history-status-m1").textContent).toBe("failed");
    expect(find("history-error-m1").textContent).toBe("WeCom rejected the app secret (errcode 40001).");
    expect(find("history-resend-m1")).toBeTruthy();
    expect(query("history-resend-m2")).toBeNull();
    expect(find("history-text-m2").textContent).toBe("Risk — stop triggered on 600519");
  });

  test("live update changes the status", async () => {
    await start([messageFixture({ id: "m1", status: "queued", created_at: at(1), updated_at: at(1) })]);
    expect(find("history-status-m1").textContent).toBe("queued");
    await emit("message-updated", messageFixture({ id: "m1", status: "sending", created_at: at(1), updated_at: at(2) }));
    expect(find("history-status-m1").textContent).toBe("sending");
    await emit("message-updated", messageFixture({ id: "m1", status: "delivered", created_at: at(1), updated_at: at(3), parts: 2, parts_delivered: 2 }));
    expect(find("history-status-m1").textContent).toBe("delivered · 2 of 2 parts");
    await emit("message-updated", messageFixture({ id: "m2", status: "queued", created_at: at(5), updated_at: at(5) }));
    const rows = [...find("history-list").querySelectorAll("tr")].map((row) => row.dataset.testid);
    expect(rows).toEqual(["history-row-m2", "history-row-m1"]);
    expect(callsOf(calls, "list_history")).toHaveLength(1);
  });

  test("filters reload with the chosen values", async () => {
    await start([]);
    expect(find("history-empty").hidden).toBe(false);
    choose("history-filter-profile", "ops");
    await flush();
    choose("history-filter-status", "failed");
    await flush();
    typeInto("history-filter-text", "600519");
    await flush();
    const filters = callsOf(calls, "list_history").map((call) => call.args.filter);
    expect(filters).toEqual([
      { limit: 200 },
      { profile: "ops", limit: 200 },
      { profile: "ops", status: "failed", limit: 200 },
      { profile: "ops", status: "failed", text: "600519", limit: 200 },
    ]);
  });

  test("live update respects the filter", async () => {
    await start([]);
    choose("history-filter-status", "failed");
    await flush();
    await emit("message-updated", messageFixture({ id: "m5", status: "delivered", updated_at: at(5) }));
    expect(query("history-row-m5")).toBeNull();
    await emit("message-updated", messageFixture({ id: "m6", status: "failed", updated_at: at(6), error: failureFixture() }));
    expect(find("history-status-m6").textContent).toBe("failed");
  });

  test("detail lists every attempt and the answer", async () => {
    const failed = messageFixture({ id: "m1", status: "failed", attempts: 2, error: failureFixture() });
    await start([failed], {
      message_detail: () => ({
        message: failed,
        attempts: [
          { at: at(1), part: 1, parts: 1, outcome: "failed", answer: '{"errcode":-1,"errmsg":"system busy"}', error: failureFixture({ message: "WeCom answered that it is busy (errcode -1)." }) },
          { at: at(2), part: 1, parts: 1, outcome: "failed", answer: '{"errcode":40001,"errmsg":"invalid credential"}', error: failureFixture() },
        ],
      }),
      send_via_fallback: () => messageFixture({ id: "m1-fb", profile: "group", fallback_of: "m1", created_at: at(3), updated_at: at(3) }),
    });
    click("history-open-m1");
    await flush();
    expect(callsOf(calls, "message_detail")[0].args).toEqual({ id: "m1" });
    expect(find("detail-title").textContent).toBe("Message m1");
    expect(find("detail-answer-0").textContent).toBe('{"errcode":-1,"errmsg":"system busy"}');
    expect(find("detail-answer-1").textContent).toBe('{"errcode":40001,"errmsg":"invalid credential"}');
    expect(find("detail-attempt-error-0").textContent).toContain("WeCom answered that it is busy (errcode -1).");
    expect(find("detail-attempt-outcome-1").textContent).toBe("failed");
    expect(find("detail-error").textContent).toContain("What to do: Copy the Secret again from the admin console.");
    click("detail-fallback");
    await flush();
    expect(callsOf(calls, "send_via_fallback")[0].args).toEqual({ id: "m1" });
    expect(find("detail-result").textContent).toBe("Queued on group as m1-fb.");
    expect(find("history-row-m1-fb")).toBeTruthy();
  });

  test("open detail reloads on update", async () => {
    const queued = messageFixture({ id: "m1", status: "queued", updated_at: at(1) });
    let detailStatus: MessageView["status"] = "queued";
    await start([queued], {
      message_detail: () => ({ message: { ...queued, status: detailStatus }, attempts: [] }),
    });
    click("history-open-m1");
    await flush();
    expect(find("detail-status").textContent).toBe("queued");
    expect(find("detail-no-attempts").textContent).toBe("No attempts yet.");
    detailStatus = "delivered";
    await emit("message-updated", { ...queued, status: "delivered", updated_at: at(2) });
    await flush();
    expect(find("detail-status").textContent).toBe("delivered");
    expect(callsOf(calls, "message_detail")).toHaveLength(2);
  });

  test("resend queues the failed message", async () => {
    await start([messageFixture({ id: "m1", status: "failed", updated_at: at(1), error: failureFixture() })], {
      resend_message: () => messageFixture({ id: "m1", status: "queued", updated_at: at(2) }),
    });
    click("history-resend-m1");
    await flush();
    expect(callsOf(calls, "resend_message")[0].args).toEqual({ id: "m1" });
    expect(find("history-result").textContent).toBe("Queued again as m1.");
    expect(find("history-status-m1").textContent).toBe("queued");
  });
});
