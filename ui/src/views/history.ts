// The History tab: messages newest first, filtered by profile, status and
// text, kept current by `message-updated` events, with a detail panel.

import * as api from "../api";
import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { getLanguage, labelled, t } from "../i18n";
import { failureWords } from "../logic/failure";
import { debounce } from "../logic/debounce";
import { formatFullTime, formatShortTime } from "../logic/format";
import { STATUSES } from "../logic/history";
import type { AttemptView, Failure, MessageDetail, MessageView } from "../types";
import type { View } from "./app";
import { resultArea, showMessage } from "./components";

function failureBlock(failure: Failure, testid: string): HTMLElement {
  const words = failureWords(failure, getLanguage());
  return h(
    "div",
    { className: "failure", testid },
    h("div", { className: "failure-message", text: words.message }),
    words.hint !== "" && h("div", { className: "failure-hint" }, h("strong", { text: labelled("common.whatToDo") }), words.hint),
    failure.upstream_message !== undefined &&
      h("div", { className: "provider-answer" }, h("span", { text: labelled("common.providerAnswer") }), h("code", { text: failure.upstream_message })),
  );
}

function statusText(message: MessageView): string {
  const status = t(`status.${message.status}`);
  if (message.parts <= 1) return status;
  return `${status} · ${t("history.parts", { done: message.parts_delivered, total: message.parts })}`;
}

function summary(message: MessageView): string {
  const firstLine = message.text.split("\n", 1)[0];
  return message.title ? `${message.title} — ${firstLine}` : firstLine;
}

export function createHistoryView(ctx: AppContext): View {
  const state = ctx.history;
  const result = resultArea("history-result");

  const profileFilter = h("select", { testid: "history-filter-profile", attrs: { "aria-label": t("history.filterProfile") } });
  const statusFilter = h(
    "select",
    { testid: "history-filter-status", attrs: { "aria-label": t("history.filterStatus") } },
    h("option", { value: "", text: t("history.allStatuses") }),
    ...STATUSES.map((status) => h("option", { value: status, text: t(`status.${status}`) })),
  );
  statusFilter.value = state.query.status;
  const textFilter = h("input", {
    type: "search",
    testid: "history-filter-text",
    value: state.query.text,
    placeholder: t("history.filterText"),
    attrs: { "aria-label": t("history.filterText") },
  });

  const loadStatus = h("div", { className: "load-status", testid: "history-load-status", attrs: { role: "status" } });
  const body = h("tbody", { testid: "history-list" });
  const table = h(
    "table",
    { className: "history" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { text: t("history.col.time") }),
        h("th", { text: t("history.col.profile") }),
        h("th", { text: t("history.col.status") }),
        h("th", { text: t("history.col.message") }),
        h("th", {}),
      ),
    ),
    body,
  );
  const empty = h("div", { className: "empty", testid: "history-empty", text: t("history.empty"), hidden: true });
  const detailPanel = h("section", { className: "detail", testid: "history-detail", hidden: true });
  let detailId: string | null = null;
  let detailSequence = 0;

  const element = h(
    "section",
    { className: "history-view" },
    h("div", { className: "filters" }, profileFilter, statusFilter, textFilter),
    loadStatus,
    result,
    table,
    empty,
    detailPanel,
  );

  function fillProfileFilter(): void {
    const names = ctx.profiles.value.map((profile) => profile.name);
    if (state.query.profile !== "" && !names.includes(state.query.profile)) names.push(state.query.profile);
    replaceChildren(
      profileFilter,
      h("option", { value: "", text: t("history.allProfiles") }),
      ...names.map((name) => h("option", { value: name, text: name })),
    );
    profileFilter.value = state.query.profile;
  }

  function hasFallback(profileName: string): boolean {
    const profile = ctx.profiles.value.find((candidate) => candidate.name === profileName);
    return profile !== undefined && profile.fallback !== null && profile.fallback !== "";
  }

  async function resend(id: string, area: HTMLElement): Promise<void> {
    showMessage(area, "pending", t("common.working"));
    try {
      const message = await api.resendMessage(id);
      ctx.messageChanged(message);
      showMessage(area, "ok", t("history.resent", { id: message.id }));
    } catch (error) {
      showMessage(area, "error", t("common.failed", { error: api.errorMessage(error) }));
    }
  }

  async function viaFallback(id: string, area: HTMLElement): Promise<void> {
    showMessage(area, "pending", t("common.working"));
    try {
      const copy = await api.sendViaFallback(id);
      ctx.messageChanged(copy);
      showMessage(area, "ok", t("history.fallbackQueued", { profile: copy.profile, id: copy.id }));
    } catch (error) {
      showMessage(area, "error", t("common.failed", { error: api.errorMessage(error) }));
    }
  }

  function renderRow(message: MessageView): HTMLTableRowElement {
    const id = message.id;
    return h(
      "tr",
      { testid: `history-row-${id}`, className: `status-${message.status}` },
      h("td", { testid: `history-time-${id}`, text: formatShortTime(message.created_at), title: formatFullTime(message.created_at) }),
      h("td", { testid: `history-profile-${id}`, text: message.profile }),
      h("td", {}, h("span", { className: `status status-${message.status}`, testid: `history-status-${id}`, text: statusText(message) })),
      h(
        "td",
        { className: "message-cell" },
        h("div", { testid: `history-text-${id}`, text: summary(message) }),
        message.status === "failed" &&
          message.error !== undefined &&
          h("div", { className: "tone-error", testid: `history-error-${id}`, text: failureWords(message.error, getLanguage()).message }),
      ),
      h(
        "td",
        {},
        h(
          "div",
          { className: "row-actions" },
          h("button", { type: "button", testid: `history-open-${id}`, className: "secondary small", text: t("history.open"), on: { click: () => void openDetail(id) } }),
          message.status === "failed" &&
            h("button", { type: "button", testid: `history-resend-${id}`, className: "secondary small", text: t("history.resend"), on: { click: () => void resend(id, result) } }),
        ),
      ),
    );
  }

  function renderList(): void {
    if (state.loading) showMessage(loadStatus, "pending", t("history.loading"));
    else if (state.error !== null) showMessage(loadStatus, "error", t("app.loadFailed", { what: t("app.what.history"), error: state.error }));
    else replaceChildren(loadStatus);
    replaceChildren(body, ...state.messages.map(renderRow));
    empty.hidden = state.loading || state.messages.length > 0;
  }

  function renderAttempt(attempt: AttemptView, index: number): HTMLLIElement {
    return h(
      "li",
      { testid: `detail-attempt-${index}`, className: `attempt attempt-${attempt.outcome}` },
      h(
        "div",
        {},
        h("span", { text: formatFullTime(attempt.at) }),
        " · ",
        h("span", { text: t("detail.part", { part: attempt.part, parts: attempt.parts }) }),
        " · ",
        h("span", { testid: `detail-attempt-outcome-${index}`, className: attempt.outcome === "accepted" ? "tone-ok" : "tone-error", text: t(`detail.${attempt.outcome}`) }),
      ),
      attempt.answer !== null &&
        h("div", { className: "provider-answer" }, h("span", { text: labelled("common.providerAnswer") }), h("code", { testid: `detail-answer-${index}`, text: attempt.answer })),
      attempt.error !== null && failureBlock(attempt.error, `detail-attempt-error-${index}`),
    );
  }

  function linkTo(id: string): HTMLButtonElement {
    return h("button", { type: "button", className: "link", testid: `detail-open-${id}`, text: id, on: { click: () => void openDetail(id) } });
  }

  function renderDetail(detail: MessageDetail): void {
    const message = detail.message;
    const detailResult = resultArea("detail-result");
    const field = (label: string, value: Node | string, testid?: string): HTMLElement[] => [
      h("dt", { text: label }),
      h("dd", { testid }, value),
    ];
    replaceChildren(
      detailPanel,
      h("h3", { testid: "detail-title", text: t("detail.title", { id: message.id }) }),
      h(
        "dl",
        {},
        ...field(t("detail.profile"), message.profile, "detail-profile"),
        ...field(t("detail.status"), statusText(message), "detail-status"),
        ...field(t("detail.source"), message.source, "detail-source"),
        ...field(t("detail.created"), formatFullTime(message.created_at)),
        ...field(t("detail.updated"), formatFullTime(message.updated_at)),
        ...field(t("detail.format"), message.format),
        ...(message.title !== null ? field(t("detail.titleField"), message.title, "detail-title-field") : []),
      ),
      h("pre", { className: "message-text", testid: "detail-text", text: message.text }),
      message.error !== undefined && failureBlock(message.error, "detail-error"),
      message.fallback_of !== undefined && h("p", { testid: "detail-fallback-of" }, `${t("detail.fallbackOf")} `, linkTo(message.fallback_of)),
      message.fallback_id !== undefined && h("p", { testid: "detail-fallback-id" }, `${t("detail.fallbackId")} `, linkTo(message.fallback_id)),
      message.merged_with !== undefined && h("p", { testid: "detail-merged-with" }, `${t("detail.mergedWith")} `, linkTo(message.merged_with)),
      h("h4", { text: t("detail.attempts") }),
      detail.attempts.length === 0
        ? h("p", { testid: "detail-no-attempts", text: t("detail.noAttempts") })
        : h("ol", { className: "attempts", testid: "detail-attempts" }, ...detail.attempts.map(renderAttempt)),
      h(
        "div",
        { className: "actions" },
        message.status === "failed" &&
          h("button", { type: "button", testid: "detail-resend", className: "primary", text: t("history.resend"), on: { click: () => void resend(message.id, detailResult) } }),
        message.status === "failed" &&
          message.fallback_id === undefined &&
          hasFallback(message.profile) &&
          h("button", { type: "button", testid: "detail-fallback", className: "secondary", text: t("history.viaFallback"), on: { click: () => void viaFallback(message.id, detailResult) } }),
        h("button", { type: "button", testid: "detail-close", className: "secondary", text: t("common.close"), on: { click: closeDetail } }),
      ),
      detailResult,
    );
  }

  async function openDetail(id: string): Promise<void> {
    // A live update reloads the open message and must not move the page.
    const newlyOpened = detailId !== id;
    detailId = id;
    const sequence = ++detailSequence;
    detailPanel.hidden = false;
    try {
      const detail = await api.messageDetail(id);
      if (sequence !== detailSequence) return;
      renderDetail(detail);
      if (newlyOpened) detailPanel.scrollIntoView?.({ block: "nearest" });
    } catch (error) {
      if (sequence !== detailSequence) return;
      replaceChildren(detailPanel, h("p", { className: "tone-error", text: t("common.failed", { error: api.errorMessage(error) }) }));
    }
  }

  function closeDetail(): void {
    detailId = null;
    detailSequence++;
    detailPanel.hidden = true;
    replaceChildren(detailPanel);
  }

  const query = () => ({ profile: profileFilter.value, status: statusFilter.value, text: textFilter.value });
  const reloadForText = debounce(() => void state.setQuery(query()), ctx.timing.filterDelayMs);
  profileFilter.addEventListener("change", () => void state.setQuery(query()));
  statusFilter.addEventListener("change", () => void state.setQuery(query()));
  textFilter.addEventListener("input", () => reloadForText());

  fillProfileFilter();
  renderList();
  const unsubscribe = [
    state.subscribe(renderList),
    ctx.profiles.subscribe(fillProfileFilter),
    // The open detail is loaded again when its message changes, so new attempts appear.
    ctx.onMessage((message) => {
      if (message.id === detailId) void openDetail(message.id);
    }),
  ];
  void state.load();

  return {
    element,
    destroy: () => {
      reloadForText.cancel();
      for (const stop of unsubscribe) stop();
    },
  };
}
