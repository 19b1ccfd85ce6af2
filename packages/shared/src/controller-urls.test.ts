import { describe, expect, it } from "vitest";
import {
  ControllerUrlListSchema,
  MAX_CONTROLLER_URLS,
  controllerUrlListProblems,
  controllerUrlProblem,
  splitControllerUrls,
} from "./controller-urls.js";
import { compileValidator } from "./validate.js";

describe("controller URLs", () => {
  it("takes http(s) and ws(s) URLs with a host, a port and a path prefix", () => {
    for (const url of [
      "https://lb.example",
      "wss://c:7443/nbfleet",
      "http://127.0.0.1:7070",
      "ws://[::1]:1/",
    ]) {
      expect(controllerUrlProblem(url)).toBeNull();
    }
  });

  it("names the bad entry of a list and what is wrong with it", () => {
    expect(controllerUrlListProblems(["https://a.example", "ftp://b.example"])).toEqual([
      'controller URL 2: "ftp://b.example" must start with https://, wss://, http:// or ws://',
    ]);
    expect(controllerUrlListProblems(["a.example:7070"])[0]).toMatch(/controller URL 1: .*must start with/);
    expect(controllerUrlListProblems(["not a url"])[0]).toMatch(/controller URL 1: "not a url" is not a URL/);
    expect(controllerUrlListProblems(["https://a", ""])).toEqual(["controller URL 2 is empty"]);
    expect(controllerUrlListProblems([])).toEqual(["no controller URL given"]);
  });

  it("refuses credentials, a query or a fragment without echoing the password", () => {
    const [problem] = controllerUrlListProblems(["https://user:s3cret@c.example/x?y=1"]);
    expect(problem).toMatch(/must not carry credentials/);
    expect(problem).not.toContain("s3cret");
    expect(controllerUrlProblem("https://c.example/#frag")).toMatch(/fragment/);
  });

  it("refuses the same endpoint twice, however spelled", () => {
    expect(controllerUrlListProblems(["https://a.example/", "wss://a.example", "https://b.example"])).toEqual(
      ["controller URL 2 (wss://a.example) is the same endpoint as controller URL 1"],
    );
    expect(controllerUrlListProblems(["https://a.example:7443", "https://a.example:7444"])).toEqual([]);
  });

  it("refuses more than the maximum", () => {
    const many = Array.from({ length: MAX_CONTROLLER_URLS + 1 }, (_, i) => `https://r${i}.example`);
    expect(controllerUrlListProblems(many)).toEqual([
      `at most ${MAX_CONTROLLER_URLS} controller URLs, got 17`,
    ]);
  });

  it("splits a comma-separated list, trimming each entry and keeping empty ones to refuse", () => {
    expect(splitControllerUrls(" https://a , wss://b:1/x")).toEqual(["https://a", "wss://b:1/x"]);
    expect(splitControllerUrls("https://a,,https://b")).toEqual(["https://a", "", "https://b"]);
  });

  it("the list schema refuses a bad scheme, a comma inside an entry and an empty list", () => {
    const validator = compileValidator(ControllerUrlListSchema, "controller URLs");
    expect(validator.is(["https://a", "wss://b"])).toBe(true);
    expect(() => validator.check(["https://a", "file:///etc/passwd"])).toThrow(
      /1: Expected string to match.*file:/,
    );
    expect(validator.is(["https://a,https://b"])).toBe(false);
    expect(validator.is([])).toBe(false);
  });
});
