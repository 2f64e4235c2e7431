// The one module that talks to the Rust side: every Tauri command and event
// name lives here, with a typed wrapper for each.

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type {
  HistoryFilter,
  MessageDetail,
  MessageView,
  Outcome,
  ProfileInput,
  ProfileView,
  RelayStatus,
  Report,
  SaveResult,
  Settings,
} from "./types";

export const COMMANDS = {
  listProfiles: "list_profiles",
  validateProfile: "validate_profile",
  saveProfile: "save_profile",
  deleteProfile: "delete_profile",
  duplicateProfile: "duplicate_profile",
  setDefaultProfile: "set_default_profile",
  checkProfile: "check_profile",
  sendTest: "send_test",
  listHistory: "list_history",
  messageDetail: "message_detail",
  resendMessage: "resend_message",
  sendViaFallback: "send_via_fallback",
  relayStatus: "relay_status",
  relayToken: "relay_token",
  regenerateToken: "regenerate_token",
  setRelayPaused: "set_relay_paused",
  getSettings: "get_settings",
  saveSettings: "save_settings",
} as const;

export const EVENTS = {
  /** Payload: MessageView, sent on every status change of a message. */
  messageUpdated: "message-updated",
  /** Payload: RelayStatus. */
  relayStatus: "relay-status",
  /** Payload: null. The profile list must be loaded again. */
  profilesChanged: "profiles-changed",
} as const;

/** A rejected command. `message` is the Rust side's text, already in the user's language. */
export class CommandError extends Error {
  readonly command: string;

  constructor(command: string, message: string) {
    super(message);
    this.name = "CommandError";
    this.command = command;
  }
}

/** Returns the text to show for an error thrown by a command or by the browser. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === "string") {
    return error;
  }
  return String(error);
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw new CommandError(command, errorMessage(error));
  }
}

export function listProfiles(): Promise<ProfileView[]> {
  return call(COMMANDS.listProfiles);
}

export function validateProfile(input: ProfileInput): Promise<Report> {
  return call(COMMANDS.validateProfile, { input });
}

export function saveProfile(input: ProfileInput): Promise<SaveResult> {
  return call(COMMANDS.saveProfile, { input });
}

export function deleteProfile(name: string): Promise<null> {
  return call(COMMANDS.deleteProfile, { name });
}

export function duplicateProfile(name: string, newName: string): Promise<ProfileView> {
  return call(COMMANDS.duplicateProfile, { name, newName });
}

export function setDefaultProfile(name: string): Promise<null> {
  return call(COMMANDS.setDefaultProfile, { name });
}

/** Checks the profile's credentials with the provider. Sends no message. */
export function checkProfile(name: string): Promise<Outcome> {
  return call(COMMANDS.checkProfile, { name });
}

/** Sends a message through the profile. A null text sends the default test message. */
export function sendTest(name: string, title: string | null, text: string | null): Promise<Outcome> {
  return call(COMMANDS.sendTest, { name, title, text });
}

/** Lists messages, newest first. Filter keys that are undefined are left out. */
export function listHistory(filter: HistoryFilter): Promise<MessageView[]> {
  const sent: HistoryFilter = {};
  if (filter.profile !== undefined) sent.profile = filter.profile;
  if (filter.status !== undefined) sent.status = filter.status;
  if (filter.text !== undefined) sent.text = filter.text;
  if (filter.limit !== undefined) sent.limit = filter.limit;
  return call(COMMANDS.listHistory, { filter: sent });
}

export function messageDetail(id: string): Promise<MessageDetail> {
  return call(COMMANDS.messageDetail, { id });
}

export function resendMessage(id: string): Promise<MessageView> {
  return call(COMMANDS.resendMessage, { id });
}

/** Queues a copy of a failed message on its profile's fallback and returns the copy. */
export function sendViaFallback(id: string): Promise<MessageView> {
  return call(COMMANDS.sendViaFallback, { id });
}

export function relayStatus(): Promise<RelayStatus> {
  return call(COMMANDS.relayStatus);
}

export function relayToken(): Promise<string> {
  return call(COMMANDS.relayToken);
}

export function regenerateToken(): Promise<string> {
  return call(COMMANDS.regenerateToken);
}

export function setRelayPaused(paused: boolean): Promise<RelayStatus> {
  return call(COMMANDS.setRelayPaused, { paused });
}

export function getSettings(): Promise<Settings> {
  return call(COMMANDS.getSettings);
}

export function saveSettings(settings: Settings): Promise<Settings> {
  return call(COMMANDS.saveSettings, { settings });
}

export function onMessageUpdated(handler: (message: MessageView) => void): Promise<UnlistenFn> {
  return listen<MessageView>(EVENTS.messageUpdated, (event) => handler(event.payload));
}

export function onRelayStatus(handler: (status: RelayStatus) => void): Promise<UnlistenFn> {
  return listen<RelayStatus>(EVENTS.relayStatus, (event) => handler(event.payload));
}

export function onProfilesChanged(handler: () => void): Promise<UnlistenFn> {
  return listen<null>(EVENTS.profilesChanged, () => handler());
}
