// Words for failures, outcomes and the last-error banners, in either language.

import { translate } from "../i18n";
import type { Failure, Language, Outcome, ProfileView } from "../types";
import { formatShortTime } from "./format";

export const IP_NOT_TRUSTED = "wecom_ip_not_trusted";

/** Returns the message and hint of a failure in `language`. */
export function failureWords(failure: Failure, language: Language): { message: string; hint: string } {
  if (language === "zh") {
    return { message: failure.message_zh, hint: failure.hint_zh };
  }
  return { message: failure.message, hint: failure.hint };
}

export type Tone = "ok" | "pending" | "error";

/** Text that the UI shows for the result of a check or a send. */
export interface OutcomeText {
  tone: Tone;
  headline: string;
  message: string | null;
  hint: string | null;
  /** The provider's own words: the failure's upstream text, or the response to a success. */
  providerAnswer: string | null;
}

/** Describes the outcome of `check_profile` ("check") or `send_test` ("send"). */
export function describeOutcome(outcome: Outcome, action: "check" | "send", language: Language): OutcomeText {
  // A queued message is retried by the outbox, so a transient failure is shown as pending.
  if (outcome.status === "queued") {
    const words = outcome.failure === null ? null : failureWords(outcome.failure, language);
    return {
      tone: "pending",
      headline: translate(language, "outcome.queued", { id: outcome.id ?? "?" }),
      message: words?.message ?? null,
      hint: words === null || words.hint === "" ? null : words.hint,
      providerAnswer: outcome.failure?.upstream_message ?? null,
    };
  }
  if (outcome.ok) {
    return {
      tone: "ok",
      headline: translate(language, action === "check" ? "outcome.checkOk" : "outcome.delivered"),
      message: null,
      hint: null,
      providerAnswer: outcome.answer,
    };
  }
  const headline = translate(language, action === "check" ? "outcome.checkFailed" : "outcome.failed");
  if (outcome.failure === null) {
    return { tone: "error", headline, message: null, hint: null, providerAnswer: outcome.answer };
  }
  const words = failureWords(outcome.failure, language);
  return {
    tone: "error",
    headline,
    message: words.message,
    hint: words.hint === "" ? null : words.hint,
    providerAnswer: outcome.failure.upstream_message ?? outcome.answer,
  };
}

/** Returns whether the profile's latest recorded event is a failure. */
export function hasUnresolvedError(profile: ProfileView): boolean {
  if (profile.last_error === null || profile.last_error_at === null) return false;
  return profile.last_success_at === null || profile.last_error_at > profile.last_success_at;
}

/** Returns the profile list's last-outcome line: "delivered 10:31" or "failed 10:31: <message>". */
export function lastOutcomeText(
  profile: ProfileView,
  language: Language,
  now: number = Date.now(),
): { tone: Tone | "none"; text: string } {
  if (hasUnresolvedError(profile)) {
    const failure = profile.last_error as Failure;
    const time = formatShortTime(profile.last_error_at as number, now);
    const { message } = failureWords(failure, language);
    return { tone: "error", text: translate(language, "profiles.failedAt", { time, message }) };
  }
  if (profile.last_success_at !== null) {
    const time = formatShortTime(profile.last_success_at, now);
    return { tone: "ok", text: translate(language, "profiles.deliveredAt", { time }) };
  }
  return { tone: "none", text: translate(language, "profiles.neverUsed") };
}

/** The extra facts a banner shows for WeCom's errcode 60020 (IP not trusted). */
export interface IpNotTrustedDetails {
  /** The IP that WeCom reported, or null when its response named none. */
  ip: string | null;
  /** The IP of the last successful send, only when it differs from `ip`. */
  lastSuccessIp: string | null;
  route: string;
  steps: string[];
}

export interface BannerContent {
  profile: string;
  title: string;
  message: string;
  hint: string;
  ipNotTrusted: IpNotTrustedDetails | null;
  canUseFallback: boolean;
}

function ipSteps(profile: ProfileView, ip: string | null, language: Language): string[] {
  const app =
    profile.agent_id === undefined
      ? translate(language, "banner.step1.anyApp")
      : translate(language, "banner.step1.app", { agentId: profile.agent_id });
  const shownIp = ip ?? translate(language, "banner.step3.unknownIp");
  return [
    translate(language, "banner.step1", { app }),
    translate(language, "banner.step2"),
    translate(language, "banner.step3", { ip: shownIp }),
    translate(language, "banner.step4"),
  ];
}

/** Builds the last-error banner of a profile. Returns null when its last event is not a failure. */
export function bannerContent(profile: ProfileView, language: Language, now: number = Date.now()): BannerContent | null {
  if (!hasUnresolvedError(profile)) return null;
  const failure = profile.last_error as Failure;
  const words = failureWords(failure, language);
  const time = formatShortTime(profile.last_error_at as number, now);
  let ipNotTrusted: IpNotTrustedDetails | null = null;
  if (failure.code === IP_NOT_TRUSTED) {
    const ip = failure.from_ip ?? null;
    const lastIp = profile.last_success_ip;
    ipNotTrusted = {
      ip,
      lastSuccessIp: lastIp !== null && lastIp !== ip ? lastIp : null,
      route: language === "zh" ? profile.route.zh : profile.route.en,
      steps: ipSteps(profile, ip, language),
    };
  }
  return {
    profile: profile.name,
    title: translate(language, "banner.title", { name: profile.name, time }),
    message: words.message,
    hint: words.hint,
    ipNotTrusted,
    canUseFallback: profile.fallback !== null && profile.fallback !== "",
  };
}
