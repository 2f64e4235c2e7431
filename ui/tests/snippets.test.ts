import { describe, expect, test } from "vitest";

import { curlSnippet, pythonSnippet, relayBaseUrl, robotUrl, shellQuote } from "../src/logic/snippets";
import { relayFixture } from "./helpers";

const INPUT = { url: "http://127.0.0.1:7591", token: "tok_AbC-123", profile: "ops", text: "order filled" };

describe("snippet builders", () => {
  test("curl posts JSON with the token", () => {
    expect(curlSnippet(INPUT)).toBe(
      `curl -s --noproxy '*' -H "Authorization: Bearer tok_AbC-123" http://127.0.0.1:7591/v1/send -d '{"text":"order filled","profile":"ops"}'`,
    );
  });

  test("curl quotes a single quote in the text", () => {
    const snippet = curlSnippet({ ...INPUT, url: "http://127.0.0.1:7591/", text: "it's filled" });
    expect(snippet).toBe(
      `curl -s --noproxy '*' -H "Authorization: Bearer tok_AbC-123" http://127.0.0.1:7591/v1/send -d '{"text":"it'\\''s filled","profile":"ops"}'`,
    );
  });

  test("curl single-quotes an unusual token", () => {
    expect(curlSnippet({ ...INPUT, token: 'a"b' })).toContain(`-H 'Authorization: Bearer a"b'`);
  });

  test("curl keeps Chinese text", () => {
    expect(curlSnippet({ ...INPUT, profile: "交易-1", text: "成交通知" })).toContain(`-d '{"text":"成交通知","profile":"交易-1"}'`);
  });

  test("python uses the standard library without proxies", () => {
    expect(pythonSnippet(INPUT)).toBe(
      [
        "import json",
        "import urllib.request",
        "",
        "request = urllib.request.Request(",
        '    "http://127.0.0.1:7591/v1/send",',
        '    data=json.dumps({"text": "order filled", "profile": "ops"}).encode(),',
        '    headers={"Authorization": "Bearer tok_AbC-123", "Content-Type": "application/json"},',
        ")",
        "# The relay is on this machine: ignore any proxy set in the environment.",
        "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))",
        "print(json.load(opener.open(request, timeout=10)))",
        "",
      ].join("\n"),
    );
  });

  test("python escapes quotes in the text", () => {
    expect(pythonSnippet({ ...INPUT, text: 'say "hi"\n' })).toContain('json.dumps({"text": "say \\"hi\\"\\n", "profile": "ops"})');
  });

  test("python imports nothing else", () => {
    const imports = pythonSnippet(INPUT)
      .split("\n")
      .filter((line) => line.startsWith("import ") || line.startsWith("from "));
    expect(imports).toEqual(["import json", "import urllib.request"]);
  });

  test("robot URL carries the relay key", () => {
    expect(robotUrl("http://127.0.0.1:7591", "rk-ops-123")).toBe("http://127.0.0.1:7591/cgi-bin/webhook/send?key=rk-ops-123");
    expect(robotUrl("http://[::1]:7591/", "a b")).toBe("http://[::1]:7591/cgi-bin/webhook/send?key=a%20b");
  });

  test("shellQuote escapes single quotes", () => {
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });

  test("relayBaseUrl prefers the reported URL", () => {
    expect(relayBaseUrl(relayFixture({ url: "http://127.0.0.1:8123/" }), 7591)).toBe("http://127.0.0.1:8123");
    expect(relayBaseUrl(relayFixture({ url: null, port: 8124 }), 7591)).toBe("http://127.0.0.1:8124");
    expect(relayBaseUrl(null, 7591)).toBe("http://127.0.0.1:7591");
  });
});
