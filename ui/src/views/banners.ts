// Last-error banners: one for each profile whose latest recorded event is a
// failure. For WeCom's errcode 60020 the banner also shows the IP that WeCom
// saw, the IP of the last success, the outbound route and the steps to add
// the IP as a trusted IP.

import * as api from "../api";
import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { getLanguage, labelled, t } from "../i18n";
import { bannerContent, type BannerContent } from "../logic/failure";
import type { View } from "./app";
import { copyButton, resultArea, showMessage } from "./components";

type Action = "resend" | "fallback";

export function createBanners(ctx: AppContext): View {
  const element = h("div", { className: "banners", testid: "banners" });
  // Results stay visible when a profiles-changed event re-renders the banners.
  const results = new Map<string, { tone: "ok" | "error" | "pending"; text: string }>();

  async function act(profile: string, action: Action, area: HTMLElement): Promise<void> {
    const show = (tone: "ok" | "error" | "pending", text: string): void => {
      results.set(profile, { tone, text });
      showMessage(area, tone, text);
    };
    show("pending", t("common.working"));
    try {
      const [latest] = await api.listHistory({ profile, status: "failed", limit: 1 });
      if (latest === undefined) {
        show("error", t("banner.noFailedMessage", { name: profile }));
        return;
      }
      if (action === "resend") {
        const message = await api.resendMessage(latest.id);
        ctx.messageChanged(message);
        show("ok", t("history.resent", { id: message.id }));
      } else {
        const copy = await api.sendViaFallback(latest.id);
        ctx.messageChanged(copy);
        show("ok", t("history.fallbackQueued", { profile: copy.profile, id: copy.id }));
      }
    } catch (error) {
      show("error", t("common.failed", { error: api.errorMessage(error) }));
    }
  }

  function renderIpDetails(content: BannerContent, copyStatus: HTMLElement): HTMLElement | false {
    const details = content.ipNotTrusted;
    if (details === null) return false;
    const name = content.profile;
    const ip = details.ip;
    return h(
      "div",
      { className: "ip-details" },
      h(
        "div",
        { className: "ip-line" },
        h("span", { className: "label", text: labelled("banner.ip") }),
        ip !== null
          ? h("code", { testid: `banner-ip-${name}`, text: ip })
          : h("span", { testid: `banner-ip-${name}`, text: t("banner.ipUnknown") }),
        ip !== null && copyButton(`banner-copy-ip-${name}`, () => ip, copyStatus),
        copyStatus,
      ),
      details.lastSuccessIp !== null &&
        h(
          "div",
          { className: "ip-line" },
          h("span", { className: "label", text: labelled("banner.lastSuccessIp") }),
          h("code", { testid: `banner-last-ip-${name}`, text: details.lastSuccessIp }),
        ),
      h(
        "div",
        { className: "ip-line" },
        h("span", { className: "label", text: labelled("banner.route") }),
        h("span", { testid: `banner-route-${name}`, text: details.route }),
      ),
      h("div", { className: "label", text: t("banner.stepsTitle") }),
      h("ol", { testid: `banner-steps-${name}` }, ...details.steps.map((step) => h("li", { text: step }))),
    );
  }

  function renderBanner(content: BannerContent): HTMLElement {
    const name = content.profile;
    const result = resultArea(`banner-result-${name}`);
    const previous = results.get(name);
    if (previous !== undefined) showMessage(result, previous.tone, previous.text);
    const copyStatus = h("span", { className: "copy-status", testid: `banner-copy-status-${name}`, attrs: { role: "status" } });
    return h(
      "section",
      { className: "banner", testid: `banner-${name}`, attrs: { "aria-label": content.title } },
      h("strong", { testid: `banner-title-${name}`, text: content.title }),
      h("p", { testid: `banner-message-${name}`, text: content.message }),
      content.hint !== "" &&
        h("p", { className: "failure-hint", testid: `banner-hint-${name}` }, h("strong", { text: labelled("common.whatToDo") }), content.hint),
      renderIpDetails(content, copyStatus),
      h(
        "div",
        { className: "actions" },
        h("button", { type: "button", testid: `banner-resend-${name}`, className: "primary small", text: t("history.resend"), on: { click: () => void act(name, "resend", result) } }),
        content.canUseFallback &&
          h("button", { type: "button", testid: `banner-fallback-${name}`, className: "secondary small", text: t("history.viaFallback"), on: { click: () => void act(name, "fallback", result) } }),
      ),
      result,
    );
  }

  function render(): void {
    const contents = ctx.profiles.value
      .map((profile) => bannerContent(profile, getLanguage()))
      .filter((content): content is BannerContent => content !== null);
    replaceChildren(element, ...contents.map(renderBanner));
    element.hidden = contents.length === 0;
  }

  render();
  const unsubscribe = ctx.profiles.subscribe(render);
  return { element, destroy: unsubscribe };
}
