import { describe, expect, test } from "vitest";

import { translate } from "../src/i18n";
import { emptyFormValues, formValuesFromProfile, robotKeyFromInput, toProfileInput } from "../src/logic/profileForm";
import {
  checkRelayPort,
  isEmailAddress,
  isValidProfileName,
  parsePort,
  suggestTls,
  tlsMismatch,
  validateProfileForm,
  type FormContext,
  type ProfileFormValues,
} from "../src/logic/validation";
import { emailProfileFixture, profileFixture } from "./helpers";

const NEW: FormContext = { mode: "new", existingNames: ["ops"] };
const EDIT: FormContext = { mode: "edit", existingNames: ["ops"] };

function appValues(overrides: Partial<ProfileFormValues> = {}): ProfileFormValues {
  return { ...emptyFormValues("wecom-app"), name: "desk", corp_id: "ww1", agent_id: "1000002", to_user: "zhangsan", secret: "s3cret", ...overrides };
}

function emailValues(overrides: Partial<ProfileFormValues> = {}): ProfileFormValues {
  return {
    ...emptyFormValues("email"),
    name: "mail",
    smtp_host: "smtp.qq.com",
    smtp_port: "465",
    tls: "implicit",
    username: "me@qq.com",
    from: "me@qq.com",
    to: "me@qq.com, partner@163.com",
    secret: "authcode",
    ...overrides,
  };
}

describe("validateProfileForm", () => {
  test("complete app profile has no errors", () => {
    expect(validateProfileForm(appValues(), NEW)).toEqual({});
  });

  test("app without recipients is rejected", () => {
    const errors = validateProfileForm(appValues({ to_user: " | ", to_party: "", to_tag: "" }), NEW);
    expect(errors.to_user?.key).toBe("v.recipientsMissing");
    expect(translate("en", errors.to_user!.key)).toBe("Recipients are missing: give at least one user, department or tag.");
  });

  test("a department alone is enough", () => {
    expect(validateProfileForm(appValues({ to_user: "", to_party: "2" }), NEW).to_user).toBeUndefined();
  });

  test("app missing corp id and bad agent id", () => {
    const errors = validateProfileForm(appValues({ corp_id: "  ", agent_id: "12a" }), NEW);
    expect(errors.corp_id?.key).toBe("v.corpIdMissing");
    expect(errors.agent_id).toEqual({ key: "v.agentIdInvalid", params: { value: "12a" } });
    expect(validateProfileForm(appValues({ agent_id: "0" }), NEW).agent_id?.key).toBe("v.agentIdInvalid");
    expect(validateProfileForm(appValues({ agent_id: "" }), NEW).agent_id?.key).toBe("v.agentIdMissing");
  });

  test("too many users", () => {
    const users = Array.from({ length: 1001 }, (_, i) => `u${i}`).join("|");
    expect(validateProfileForm(appValues({ to_user: users }), NEW).to_user).toEqual({ key: "v.tooManyUsers", params: { count: 1001 } });
  });

  test("names: missing, invalid, taken", () => {
    expect(validateProfileForm(appValues({ name: "" }), NEW).name?.key).toBe("v.nameMissing");
    expect(validateProfileForm(appValues({ name: "a b" }), NEW).name?.key).toBe("v.nameInvalid");
    expect(validateProfileForm(appValues({ name: "ops" }), NEW).name).toEqual({ key: "v.nameTaken", params: { name: "ops" } });
    expect(validateProfileForm(appValues({ name: "ops" }), EDIT).name).toBeUndefined();
  });

  test("profile name rules follow the Rust side", () => {
    expect(isValidProfileName("交易-1")).toBe(true);
    expect(isValidProfileName("a.b_c-1")).toBe(true);
    expect(isValidProfileName("x/y")).toBe(false);
    expect(isValidProfileName("n".repeat(64))).toBe(true);
    expect(isValidProfileName("n".repeat(65))).toBe(false);
    // 22 three-byte characters are 66 bytes, over the 64-byte limit.
    expect(isValidProfileName("交".repeat(22))).toBe(false);
  });

  test("new profile needs a secret, edit keeps it", () => {
    expect(validateProfileForm(appValues({ secret: "" }), NEW).secret?.key).toBe("v.secretMissing");
    expect(validateProfileForm(appValues({ name: "ops", secret: "" }), EDIT).secret).toBeUndefined();
  });

  test("robot needs only the key", () => {
    const values = { ...emptyFormValues("wecom-bot"), name: "group", secret: "k-123" };
    expect(validateProfileForm(values, NEW)).toEqual({});
  });

  test("complete email profile has no errors", () => {
    expect(validateProfileForm(emailValues(), NEW)).toEqual({});
  });

  test("email with bad port", () => {
    expect(validateProfileForm(emailValues({ smtp_port: "70000" }), NEW).smtp_port).toEqual({ key: "v.portInvalid", params: { value: "70000" } });
    expect(validateProfileForm(emailValues({ smtp_port: "0" }), NEW).smtp_port?.key).toBe("v.portInvalid");
    expect(validateProfileForm(emailValues({ smtp_port: "46a" }), NEW).smtp_port?.key).toBe("v.portInvalid");
    expect(validateProfileForm(emailValues({ smtp_port: "" }), NEW).smtp_port?.key).toBe("v.portMissing");
  });

  test("email with bad addresses", () => {
    const errors = validateProfileForm(emailValues({ from: "张三 <me@qq.com>", to: "me@qq.com, not-an-address" }), NEW);
    expect(errors.from).toEqual({ key: "v.addressInvalid", params: { value: "张三 <me@qq.com>" } });
    expect(errors.to).toEqual({ key: "v.addressInvalid", params: { value: "not-an-address" } });
    expect(translate("zh", errors.to!.key, errors.to!.params)).toBe("地址“not-an-address”无效：请填写类似 name@qq.com 的纯邮箱地址。");
  });

  test("email with no recipients or host", () => {
    const errors = validateProfileForm(emailValues({ to: " , ", smtp_host: "", username: "" }), NEW);
    expect(errors.to?.key).toBe("v.toMissing");
    expect(errors.smtp_host?.key).toBe("v.hostMissing");
    expect(errors.username?.key).toBe("v.usernameMissing");
  });

  test("email host given as a URL", () => {
    const errors = validateProfileForm(emailValues({ smtp_host: "smtp://smtp.qq.com" }), NEW);
    expect(errors.smtp_host).toEqual({ key: "v.hostInvalid", params: { value: "smtp://smtp.qq.com" } });
  });

  test("fields of other kinds are not checked", () => {
    // An email profile ignores the empty WeCom fields, and the reverse.
    expect(validateProfileForm(emailValues({ corp_id: "", to_user: "" }), NEW)).toEqual({});
    expect(validateProfileForm(appValues({ smtp_port: "bad", from: "bad" }), NEW)).toEqual({});
  });

  test("proxy URL and API base are checked", () => {
    const errors = validateProfileForm(appValues({ proxy: "url", proxy_url: "127.0.0.1:7890", api_base: "qyapi" }), NEW);
    expect(errors.proxy_url?.key).toBe("v.proxyUrlInvalid");
    expect(errors.api_base?.key).toBe("v.urlInvalid");
    expect(validateProfileForm(appValues({ proxy: "url", proxy_url: "" }), NEW).proxy_url?.key).toBe("v.proxyUrlMissing");
    expect(validateProfileForm(appValues({ proxy: "url", proxy_url: "socks5://127.0.0.1:1080" }), NEW)).toEqual({});
  });

  test("profile cannot be its own fallback", () => {
    expect(validateProfileForm(appValues({ name: "ops", fallback: "ops" }), EDIT).fallback?.key).toBe("v.fallbackSelf");
  });
});

describe("ports and TLS", () => {
  test("parsePort", () => {
    expect(parsePort("465")).toBe(465);
    expect(parsePort(" 587 ")).toBe(587);
    expect(parsePort("65535")).toBe(65535);
    expect(parsePort("65536")).toBeNull();
    expect(parsePort("0")).toBeNull();
    expect(parsePort("-1")).toBeNull();
    expect(parsePort("4.5")).toBeNull();
  });

  test("suggestTls from the port", () => {
    expect(suggestTls(465)).toBe("implicit");
    expect(suggestTls(994)).toBe("implicit");
    expect(suggestTls(587)).toBe("starttls");
    expect(suggestTls(25)).toBeNull();
    expect(suggestTls(null)).toBeNull();
  });

  test("tlsMismatch names the mode the port expects", () => {
    expect(tlsMismatch({ smtp_port: "587", tls: "implicit" })).toBe("starttls");
    expect(tlsMismatch({ smtp_port: "465", tls: "starttls" })).toBe("implicit");
    expect(tlsMismatch({ smtp_port: "465", tls: "implicit" })).toBeNull();
    expect(tlsMismatch({ smtp_port: "2525", tls: "none" })).toBeNull();
  });

  test("checkRelayPort errors and warnings", () => {
    expect(checkRelayPort("7591")).toEqual({ error: null, warning: null });
    expect(checkRelayPort("80")).toEqual({ error: null, warning: { key: "settings.portLow" } });
    expect(checkRelayPort("1024").warning?.key).toBe("settings.portLow");
    expect(checkRelayPort("1025").warning).toBeNull();
    expect(checkRelayPort("99999").error).toEqual({ key: "v.portInvalid", params: { value: "99999" } });
    expect(checkRelayPort("").error?.key).toBe("v.portMissing");
  });

  test("isEmailAddress", () => {
    expect(isEmailAddress("me@qq.com")).toBe(true);
    expect(isEmailAddress("ops@localhost")).toBe(true);
    expect(isEmailAddress("me@qq.com.")).toBe(false);
    expect(isEmailAddress("me@@qq.com")).toBe(false);
    expect(isEmailAddress("me qq@qq.com")).toBe(false);
    expect(isEmailAddress("<me@qq.com>")).toBe(false);
    expect(isEmailAddress("me")).toBe(false);
  });
});

describe("form values and ProfileInput", () => {
  test("edit form starts with an empty secret", () => {
    const values = formValuesFromProfile(profileFixture({ to_party: ["2", "3"] }));
    expect(values.secret).toBe("");
    expect(values.to_user).toBe("zhangsan|lisi");
    expect(values.to_party).toBe("2|3");
    expect(values.agent_id).toBe("1000002");
  });

  test("untouched secret is sent as null", () => {
    const input = toProfileInput(formValuesFromProfile(profileFixture()));
    expect(input.secret).toBeNull();
    expect(input).toEqual({
      name: "ops",
      kind: "wecom-app",
      proxy: "system",
      fallback: null,
      secret: null,
      corp_id: "ww0123456789",
      agent_id: 1000002,
      to_user: "zhangsan|lisi",
      to_party: "",
      to_tag: "",
    });
  });

  test("email input carries the email fields only", () => {
    const input = toProfileInput({ ...formValuesFromProfile(emailProfileFixture()), secret: " code " });
    expect(input).toEqual({
      name: "mail",
      kind: "email",
      proxy: "system",
      fallback: null,
      secret: "code",
      smtp_host: "smtp.qq.com",
      smtp_port: 465,
      tls: "implicit",
      username: "me@qq.com",
      from: "me@qq.com",
      to: "me@qq.com,partner@163.com",
    });
  });

  test("proxy URL and fallback are passed", () => {
    const profile = profileFixture({ proxy: "http://127.0.0.1:7890", fallback: "group", api_base: "http://127.0.0.1:9000" });
    const values = formValuesFromProfile(profile);
    expect(values.proxy).toBe("url");
    expect(values.proxy_url).toBe("http://127.0.0.1:7890");
    const input = toProfileInput(values);
    expect(input.proxy).toBe("http://127.0.0.1:7890");
    expect(input.fallback).toBe("group");
    expect(input.api_base).toBe("http://127.0.0.1:9000");
  });

  test("robot key is taken from a pasted webhook URL", () => {
    expect(robotKeyFromInput("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx")).toBe("693a91f6-7xxx");
    expect(robotKeyFromInput("  693a91f6-7xxx \n")).toBe("693a91f6-7xxx");
    const values = { ...emptyFormValues("wecom-bot"), name: "group", secret: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc&debug=1" };
    expect(toProfileInput(values).secret).toBe("abc");
  });
});
