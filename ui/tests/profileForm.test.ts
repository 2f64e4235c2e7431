import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { AppContext } from "../src/context";
import { setLanguage } from "../src/i18n";
import type { ProfileInput, ProfileView } from "../src/types";
import { createProfilesView } from "../src/views/profiles";
import {
  callsOf,
  choose,
  click,
  emailProfileFixture,
  find,
  flush,
  installBackend,
  profileFixture,
  query,
  resetBackend,
  typeInto,
  type Call,
  type Handler,
} from "./helpers";

let calls: Call[];

function mount(profiles: ProfileView[], handlers: Record<string, Handler> = {}): AppContext {
  calls = installBackend({ list_profiles: () => profiles, ...handlers });
  const ctx = new AppContext({ validateDelayMs: 0, filterDelayMs: 0 });
  ctx.profiles.set(profiles);
  document.body.appendChild(createProfilesView(ctx).element);
  return ctx;
}

function errorText(field: string): string {
  return find(`error-${field}`).textContent ?? "";
}

beforeEach(() => setLanguage("en"));
afterEach(resetBackend);

describe("new profile form", () => {
  test("shows the fields of the chosen kind", () => {
    mount([]);
    click("add-profile");
    expect(find("profile-form")).toBeTruthy();
    expect(find("row-corp_id").hidden).toBe(false);
    expect(find("row-smtp_host").hidden).toBe(true);
    choose("field-kind", "email");
    expect(find("row-corp_id").hidden).toBe(true);
    expect(find("row-smtp_host").hidden).toBe(false);
    expect(find("row-tls").hidden).toBe(false);
    choose("field-kind", "wecom-bot");
    expect(find("row-secret").hidden).toBe(false);
    expect(find("row-to_user").hidden).toBe(true);
    expect(find("row-smtp_port").hidden).toBe(true);
  });

  test("errors appear only for typed fields", () => {
    mount([]);
    click("add-profile");
    expect(errorText("corp_id")).toBe("");
    typeInto("field-name", "bad name");
    expect(errorText("name")).toBe("Invalid name: use 1 to 64 letters, digits, '-', '_' or '.'.");
    expect(errorText("corp_id")).toBe("");
    typeInto("field-name", "desk");
    expect(errorText("name")).toBe("");
    expect(find("field-name").getAttribute("aria-invalid")).toBe("false");
  });

  test("missing recipients are reported", () => {
    mount([]);
    click("add-profile");
    typeInto("field-to_user", "zhangsan");
    expect(errorText("to_user")).toBe("");
    typeInto("field-to_user", "");
    expect(errorText("to_user")).toBe("Recipients are missing: give at least one user, department or tag.");
  });

  test("bad port and bad address are reported", () => {
    mount([]);
    click("add-profile");
    choose("field-kind", "email");
    typeInto("field-smtp_port", "99999");
    expect(errorText("smtp_port")).toBe("Invalid port '99999': use a whole number from 1 to 65535.");
    typeInto("field-to", "a@qq.com, nobody");
    expect(errorText("to")).toBe("Invalid address 'nobody': use a bare address such as name@qq.com.");
    typeInto("field-from", "me at qq");
    expect(errorText("from")).toBe("Invalid address 'me at qq': use a bare address such as name@qq.com.");
  });

  test("name of an existing profile is rejected", () => {
    mount([profileFixture()]);
    click("add-profile");
    typeInto("field-name", "ops");
    expect(errorText("name")).toBe("A profile named ops already exists.");
  });

  test("port sets the TLS mode until TLS is chosen", () => {
    mount([]);
    click("add-profile");
    choose("field-kind", "email");
    const tls = find<HTMLSelectElement>("field-tls");
    typeInto("field-smtp_port", "587");
    expect(tls.value).toBe("starttls");
    typeInto("field-smtp_port", "465");
    expect(tls.value).toBe("implicit");
    expect(find("tls-suggestion").hidden).toBe(true);
  });

  test("TLS mismatch suggests the mode from the port", () => {
    mount([]);
    click("add-profile");
    choose("field-kind", "email");
    choose("field-tls", "implicit");
    typeInto("field-smtp_port", "587");
    const suggestion = find("tls-suggestion");
    expect(suggestion.hidden).toBe(false);
    expect(suggestion.textContent).toContain("Port 587 usually expects STARTTLS.");
    click("apply-tls");
    expect(find<HTMLSelectElement>("field-tls").value).toBe("starttls");
    expect(find("tls-suggestion").hidden).toBe(true);
  });

  test("From follows the login until typed", () => {
    mount([]);
    click("add-profile");
    choose("field-kind", "email");
    typeInto("field-username", "me@qq.com");
    expect(find<HTMLInputElement>("field-from").value).toBe("me@qq.com");
    typeInto("field-from", "other@qq.com");
    typeInto("field-username", "me2@qq.com");
    expect(find<HTMLInputElement>("field-from").value).toBe("other@qq.com");
  });

  test("server warnings appear after a pause", async () => {
    mount([], {
      validate_profile: () => ({
        errors: [],
        warnings: [{ en: "The From address other@qq.com differs from the login me@qq.com.", zh: "发件地址与登录账号不同。" }],
      }),
    });
    click("add-profile");
    choose("field-kind", "email");
    typeInto("field-username", "me@qq.com");
    typeInto("field-from", "other@qq.com");
    await flush();
    const validations = callsOf(calls, "validate_profile");
    expect(validations.length).toBeGreaterThanOrEqual(1);
    const input = validations[validations.length - 1].args.input as ProfileInput;
    expect(input.kind).toBe("email");
    expect(input.from).toBe("other@qq.com");
    expect(input.username).toBe("me@qq.com");
    expect(find("form-warnings").textContent).toBe("The From address other@qq.com differs from the login me@qq.com.");
  });

  test("server errors show once client checks pass", async () => {
    mount([profileFixture({ name: "group", kind: "wecom-bot" })], {
      validate_profile: () => ({ errors: [{ en: "The fallback chain loops: a → group → a.", zh: "备用配置形成了循环。" }], warnings: [] }),
    });
    click("add-profile");
    choose("field-kind", "wecom-bot");
    typeInto("field-name", "a");
    typeInto("field-secret", "key-1");
    choose("field-fallback", "group");
    await flush();
    expect(find("form-errors").textContent).toBe("The fallback chain loops: a → group → a.");
  });

  test("save is blocked while fields are invalid", async () => {
    mount([]);
    click("add-profile");
    click("save-profile");
    await flush();
    expect(callsOf(calls, "save_profile")).toHaveLength(0);
    expect(find("save-result").textContent).toBe("Fix the fields marked above before saving.");
    expect(errorText("name")).toBe("The name is missing.");
    expect(errorText("secret")).toBe("The secret is missing: a new profile needs one.");
  });

  test("new robot profile saves with its key", async () => {
    mount([], {
      save_profile: (args) => ({
        saved: true,
        errors: [],
        warnings: [],
        keyring_fallback: "no keyring service is running",
        profile: profileFixture({ name: (args.input as ProfileInput).name, kind: "wecom-bot" }),
      }),
    });
    click("add-profile");
    choose("field-kind", "wecom-bot");
    typeInto("field-name", "group");
    typeInto("field-secret", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-42");
    choose("field-proxy", "none");
    find<HTMLFormElement>("profile-form").requestSubmit();
    await flush();
    const saves = callsOf(calls, "save_profile");
    expect(saves).toHaveLength(1);
    expect(saves[0].args.input).toEqual({ name: "group", kind: "wecom-bot", proxy: "none", fallback: null, secret: "k-42" });
    expect(query("profile-form")).toBeNull();
    expect(find("profiles-notice").textContent).toContain("Saved profile group.");
    expect(find("keyring-fallback").textContent).toBe(
      "The secret was saved to a file instead of the system keyring: no keyring service is running",
    );
  });

  test("rejected save shows the server's errors", async () => {
    mount([], {
      save_profile: () => ({ saved: false, errors: [{ en: "Invalid SMTP port 0.", zh: "SMTP 端口 0 无效。" }], warnings: [], keyring_fallback: null, profile: null }),
    });
    click("add-profile");
    choose("field-kind", "wecom-bot");
    typeInto("field-name", "group");
    typeInto("field-secret", "k");
    click("save-profile");
    await flush();
    expect(find("form-errors").textContent).toBe("Invalid SMTP port 0.");
    expect(query("profile-form")).not.toBeNull();
  });
});

describe("edit profile form", () => {
  test("masked secret is kept when untouched", async () => {
    mount([profileFixture()], {
      save_profile: () => ({ saved: true, errors: [], warnings: [], keyring_fallback: null, profile: profileFixture() }),
    });
    click("edit-profile-ops");
    const secret = find<HTMLInputElement>("field-secret");
    expect(secret.value).toBe("");
    expect(secret.type).toBe("password");
    expect(secret.placeholder).toBe("ab****yz");
    expect(find("secret-note").textContent).toContain("Saved secret: ab****yz. Leave empty to keep it.");
    expect(find<HTMLInputElement>("field-name").readOnly).toBe(true);
    typeInto("field-to_user", "zhangsan|wangwu");
    click("save-profile");
    await flush();
    const saves = callsOf(calls, "save_profile");
    expect(saves).toHaveLength(1);
    const input = saves[0].args.input as ProfileInput;
    expect(input.secret).toBeNull();
    expect(input.to_user).toBe("zhangsan|wangwu");
    expect(input.name).toBe("ops");
  });

  test("typed secret replaces the saved one", async () => {
    mount([emailProfileFixture()], {
      save_profile: () => ({ saved: true, errors: [], warnings: [], keyring_fallback: null, profile: emailProfileFixture() }),
    });
    click("edit-profile-mail");
    typeInto("field-secret", "newauthcode");
    click("save-profile");
    await flush();
    const input = callsOf(calls, "save_profile")[0].args.input as ProfileInput;
    expect(input.secret).toBe("newauthcode");
    expect(input.smtp_port).toBe(465);
    expect(input.tls).toBe("implicit");
  });

  test("email profile offers no proxy URL", () => {
    mount([emailProfileFixture()]);
    click("edit-profile-mail");
    const options = [...find<HTMLSelectElement>("field-proxy").options].map((option) => option.value);
    expect(options).toEqual(["system", "none"]);
  });

  test("fallback choices exclude the profile itself", () => {
    mount([profileFixture(), emailProfileFixture()]);
    click("edit-profile-ops");
    const options = [...find<HTMLSelectElement>("field-fallback").options].map((option) => option.value);
    expect(options).toEqual(["", "mail"]);
  });

  test("cancel returns to the list", () => {
    mount([profileFixture()]);
    click("edit-profile-ops");
    click("cancel-profile");
    expect(query("profile-form")).toBeNull();
    expect(find("profile-row-ops")).toBeTruthy();
  });
});
