import { emit } from "@tauri-apps/api/event";
import { afterEach, describe, expect, test } from "vitest";

import * as api from "../src/api";
import { COMMANDS, CommandError, EVENTS } from "../src/api";
import type { MessageView, ProfileInput, RelayStatus } from "../src/types";
import { installBackend, messageFixture, relayFixture, resetBackend, settingsFixture } from "./helpers";

afterEach(resetBackend);

describe("command names", () => {
  test("match the contract", () => {
    expect(Object.values(COMMANDS).sort()).toEqual(
      [
        "check_profile",
        "delete_profile",
        "duplicate_profile",
        "get_settings",
        "list_history",
        "list_profiles",
        "message_detail",
        "regenerate_token",
        "relay_status",
        "relay_token",
        "resend_message",
        "save_profile",
        "save_settings",
        "send_test",
        "send_via_fallback",
        "set_default_profile",
        "set_relay_paused",
        "validate_profile",
      ].sort(),
    );
  });

  test("event names match the contract", () => {
    expect(EVENTS).toEqual({ messageUpdated: "message-updated", relayStatus: "relay-status", profilesChanged: "profiles-changed" });
  });
});

describe("command wrappers", () => {
  const input: ProfileInput = { name: "ops", kind: "wecom-bot", proxy: "none", secret: null };

  // Each row: the wrapper call, the command it must invoke, and the arguments it must pass.
  const cases: Array<[string, () => Promise<unknown>, string, Record<string, unknown>]> = [
    ["listProfiles", () => api.listProfiles(), "list_profiles", {}],
    ["validateProfile", () => api.validateProfile(input), "validate_profile", { input }],
    ["saveProfile", () => api.saveProfile(input), "save_profile", { input }],
    ["deleteProfile", () => api.deleteProfile("ops"), "delete_profile", { name: "ops" }],
    ["duplicateProfile", () => api.duplicateProfile("ops", "ops-copy"), "duplicate_profile", { name: "ops", newName: "ops-copy" }],
    ["setDefaultProfile", () => api.setDefaultProfile("ops"), "set_default_profile", { name: "ops" }],
    ["checkProfile", () => api.checkProfile("ops"), "check_profile", { name: "ops" }],
    ["sendTest default text", () => api.sendTest("ops", null, null), "send_test", { name: "ops", title: null, text: null }],
    ["sendTest with text", () => api.sendTest("ops", "Risk", "stop hit"), "send_test", { name: "ops", title: "Risk", text: "stop hit" }],
    ["messageDetail", () => api.messageDetail("m1"), "message_detail", { id: "m1" }],
    ["resendMessage", () => api.resendMessage("m1"), "resend_message", { id: "m1" }],
    ["sendViaFallback", () => api.sendViaFallback("m1"), "send_via_fallback", { id: "m1" }],
    ["relayStatus", () => api.relayStatus(), "relay_status", {}],
    ["relayToken", () => api.relayToken(), "relay_token", {}],
    ["regenerateToken", () => api.regenerateToken(), "regenerate_token", {}],
    ["setRelayPaused", () => api.setRelayPaused(true), "set_relay_paused", { paused: true }],
    ["getSettings", () => api.getSettings(), "get_settings", {}],
    ["saveSettings", () => api.saveSettings(settingsFixture({ port: 8000 })), "save_settings", { settings: settingsFixture({ port: 8000 }) }],
  ];

  test.each(cases)("%s invokes its command", async (_label, run, command, args) => {
    const calls = installBackend({ [command]: () => "answer" });
    await expect(run()).resolves.toBe("answer");
    expect(calls).toHaveLength(1);
    expect(calls[0].cmd).toBe(command);
    expect(calls[0].args).toEqual(args);
  });

  test("listHistory leaves out unset filter keys", async () => {
    const calls = installBackend({ list_history: () => [] });
    await api.listHistory({ profile: "ops", limit: 50 });
    expect(calls[0].cmd).toBe("list_history");
    expect(calls[0].args).toEqual({ filter: { profile: "ops", limit: 50 } });
  });

  test("listHistory passes every filter key", async () => {
    const calls = installBackend({ list_history: () => [] });
    await api.listHistory({ profile: "ops", status: "failed", text: "600519", limit: 1 });
    expect(calls[0].args).toEqual({ filter: { profile: "ops", status: "failed", text: "600519", limit: 1 } });
  });

  test("rejection becomes CommandError with the message", async () => {
    installBackend({
      delete_profile: () => {
        throw "profile 'ghost' not found";
      },
    });
    const error = await api.deleteProfile("ghost").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).message).toBe("profile 'ghost' not found");
    expect((error as CommandError).command).toBe("delete_profile");
  });

  test("errorMessage reads strings and errors", () => {
    expect(api.errorMessage("端口已被占用")).toBe("端口已被占用");
    expect(api.errorMessage(new Error("boom"))).toBe("boom");
    expect(api.errorMessage(42)).toBe("42");
  });
});

describe("event wrappers", () => {
  test("onMessageUpdated passes the payload", async () => {
    installBackend();
    const received: MessageView[] = [];
    await api.onMessageUpdated((message) => received.push(message));
    const message = messageFixture({ status: "delivered" });
    await emit("message-updated", message);
    expect(received).toEqual([message]);
  });

  test("onRelayStatus passes the payload", async () => {
    installBackend();
    const received: RelayStatus[] = [];
    await api.onRelayStatus((status) => received.push(status));
    await emit("relay-status", relayFixture({ state: "paused" }));
    expect(received).toHaveLength(1);
    expect(received[0].state).toBe("paused");
  });

  test("onProfilesChanged calls the handler", async () => {
    installBackend();
    let count = 0;
    const unlisten = await api.onProfilesChanged(() => count++);
    await emit("profiles-changed", null);
    expect(count).toBe(1);
    unlisten();
    await emit("profiles-changed", null);
    expect(count).toBe(1);
  });
});
