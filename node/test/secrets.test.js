"use strict";
// A secret's value never appears in an error, in util.inspect / console.log
// output, or in anything the builder shows (issue 23, item 2).
const test = require("node:test");
const assert = require("node:assert/strict");
const util = require("node:util");

// Count every read of mlk_sandbox_params_json by the library (the addon's
// exports are read-only: the library is loaded over a counting proxy).
let rendered = 0;
const nativePath = require.resolve("../lib/native");
const addon = require(nativePath);
require.cache[nativePath].exports = new Proxy(addon, {
  get(t, k) {
    if (k === "mlk_sandbox_params_json") rendered++;
    return t[k];
  },
});
const { m, newClient } = require("./helpers");

const n = m._native;
const MARK = "sk-live-7Qz9XwVb3MarkOfTheSecret";

function showsNothing(...texts) {
  for (const t of texts) {
    const s = typeof t === "string" ? t : util.inspect(t, { depth: 10, showHidden: false });
    assert.ok(!s.includes("sk-live") && !s.includes("MarkOfTheSecret"), `shows the secret: ${s.slice(0, 300)}`);
  }
}

function errorTexts(e) {
  return [String(e), e.message, e.stack, util.inspect(e), JSON.stringify(e)];
}

test("a NUL in a secret value: the core's message names the offset, never the value", () => {
  for (const [value, offset] of [[`${MARK}\0tail`, MARK.length], [`\0${MARK}`, 0], [`${MARK.repeat(30000)}\0`, MARK.length * 30000]]) {
    for (const sb of [new m.Sandbox("alpine:latest").addSecret("API_KEY", value, "api.example.com"),
      new m.Sandbox("alpine:latest").addSecretWithPlaceholder("API_KEY", value, "PH", "api.example.com"),
      m.Sandbox.fromOptions({ image: "alpine:latest", secrets: [{ name: "API_KEY", value, hosts: ["h"] }] })]) {
      let err;
      try { sb.paramsJSON(); } catch (e) { err = e; }
      assert.ok(err instanceof m.ValidationError, String(err));
      for (const t of errorTexts(err)) showsNothing(t);
      assert.match(err.message, /secret value/);
      assert.ok(err.message.includes(`byte ${offset} of ${Buffer.byteLength(value)}`), err.message);
      showsNothing(sb); // the deferred error is on the builder too
    }
  }
});

test("util.inspect and console.log of a builder and its options redact the secrets", () => {
  const sb = new m.Sandbox("alpine:latest").allowHost("api.example.com").addSecret("API_KEY", MARK, "api.example.com");
  showsNothing(sb, util.inspect(sb, { showHidden: true }), util.format("%o", sb), util.format("%O", sb), Object.keys(sb).join(","), JSON.stringify(sb));
  assert.match(util.inspect(sb), /alpine:latest/);
  const o = sb.options();
  showsNothing(o, util.inspect(o.secrets), util.format("%O", o));
  assert.match(util.inspect(o.secrets[0]), new RegExp(`redacted, ${MARK.length} characters`));
  assert.equal(o.secrets[0].value, MARK); // still the caller's to read
  // fromOptions keeps them out of sight too
  showsNothing(m.Sandbox.fromOptions(o));
});

test("a setter error is read without rendering the create params", () => {
  rendered = 0;
  {
    const sb = new m.Sandbox("alpine:latest").addSecret("API_KEY", MARK, "api.example.com").addSecret("OTHER", MARK, "");
    assert.equal(rendered, 0);
    let err;
    try { sb.paramsJSON(); } catch (e) { err = e; }
    assert.match(err.message, /OTHER/);
    for (const t of errorTexts(err)) showsNothing(t);
  }
});

test("create validates without copying the params into JS; its errors never show the value", async () => {
  rendered = 0;
  const c = newClient();
  try {
    const sb = new m.Sandbox("alpine:latest").addSecret("API_KEY", `${MARK}"\\\n`, "api.example.com").withNoNetwork();
    await assert.rejects(c.create(sb), (e) => {
      for (const t of errorTexts(e)) showsNothing(t);
      return e instanceof m.MatchlockError;
    });
    const big = new m.Sandbox("alpine:latest").addSecret("API_KEY", MARK.repeat(1000), "h").addHost("db", "nope");
    await assert.rejects(c.create(big), (e) => {
      for (const t of errorTexts(e)) showsNothing(t);
      return e instanceof m.MatchlockError;
    });
    assert.equal(rendered, 0);
  } finally {
    await c.close();
  }
});

test("a NUL in any other string argument is refused with the core's message, not cut short", () => {
  assert.throws(() => n.mlk_sandbox_set_hostname(n.mlk_sandbox_new("a"), `${MARK}\0x`), (e) => {
    for (const t of errorTexts(e)) showsNothing(t);
    return e.message.includes(`NUL character at byte ${MARK.length} of ${MARK.length + 2}`);
  });
  const [rc, msg] = n.mlk_check_cstring("secret value", `${MARK}\0`);
  assert.equal(rc, n.MLK_EINVAL);
  showsNothing(msg);
  assert.deepEqual(n.mlk_check_cstring("x", MARK), [0, null]);
});

// A NUL inside an element of a string list would end that element as a C
// string (for a secret's hosts: another host than the one meant); the addon
// refuses it where it converts the list, with the core's message, which
// names the element and the offset, never the value.
test("a NUL inside a string list element is refused with the core's message, not cut short", async () => {
  const value = `${MARK}\0.evil.example`;
  const at = `contains a NUL character at byte ${MARK.length} of ${Buffer.byteLength(value)}`;
  const isRefusal = (e, what) => {
    for (const t of errorTexts(e)) showsNothing(t);
    assert.ok(e instanceof m.ValidationError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, n.MLK_EINVAL);
    assert.ok(e.message.includes(`${what} ${at}`), e.message);
    return true;
  };
  // builders: the error is deferred to paramsJSON/create, as every setter's
  for (const [sb, what] of [
    [new m.Sandbox("alpine:latest").addSecret("API_KEY", "v", "api.example.com", value), "hosts[1] of mlk_sandbox_add_secret"],
    [new m.Sandbox("alpine:latest").addSecretWithPlaceholder("API_KEY", "v", "PH", value), "hosts[0] of mlk_sandbox_add_secret"],
    [new m.Sandbox("alpine:latest").withEntrypoint("sh", "-c", value), "argv[2] of mlk_sandbox_set_entrypoint"],
  ]) {
    assert.throws(() => sb.paramsJSON(), (e) => isRefusal(e, what));
    showsNothing(sb);
  }
  // the raw addon
  assert.throws(() => n.mlk_sandbox_set_dns_servers(n.mlk_sandbox_new("a"), ["1.1.1.1", value]), (e) => {
    for (const t of errorTexts(e)) showsNothing(t);
    return e.message.includes(`servers[1] of mlk_sandbox_set_dns_servers ${at}`);
  });
  // a client's launcher words, and a call's list (allowListAdd)
  const launched = new m.Client({ launcher: ["ssh", value] });
  await assert.rejects(launched.exec("true"), (e) => isRefusal(e, "argv[1] of mlk_config_set_launcher"));
  await launched.close();
  const c = newClient();
  try {
    await assert.rejects(c.allowListAdd("api.example.com", value), (e) => isRefusal(e, "hosts[1] of allowListAdd"));
    await assert.rejects(c.portForwardWithAddresses(["127.0.0.1", value], "8080:80"), (e) => isRefusal(e, "addresses[1] of portForward"));
  } finally {
    await c.close();
  }
});
