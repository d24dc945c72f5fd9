"use strict";
// Hooks: JS functions in interception rules, trampolined through the core.
//
// The builder registers one trampoline per callback rule with the C builder
// (mlk_sandbox_add_network_hook / mlk_sandbox_add_vfs_hook, through the
// addon's sandboxAddHook).  The core calls it from mlk_dispatch on the main
// thread as trampoline(requestMsgpack, clientHandle, kind).  For hooks that
// answer (network, VFS action, VFS mutate) the trampoline returns the answer
// as msgpack bytes, or a Promise of them; the addon answers the core's token
// with mlk_hook_reply, or with mlk_hook_fail when the user function throws or
// its promise rejects (the message becomes the error).  After-hooks answer
// nothing: their errors are reported on the client ('hookError'), never
// thrown into the core.
//
// Names and shapes follow the official TypeScript SDK: rule.hook (network and
// VFS after), rule.dangerousHook(client, event), rule.actionHook(request),
// rule.mutateHook(request).

const msgpack = require("./msgpack");
const native = require("./native");

const KIND = { NETWORK: 1, AFTER: 2, DANGEROUS: 3, ACTION: 4, MUTATE: 5 };
const KIND_NAME = { 1: "network", 2: "VFS after", 3: "VFS dangerous", 4: "VFS action", 5: "VFS mutate" };

// native client handle -> Client (so hooks receive the JS Client)
const owners = new WeakMap();

function register(handle, client) {
  owners.set(handle, client);
}

function clientOf(handle) {
  return handle ? owners.get(handle) : undefined;
}

function isThenable(v) {
  return v != null && (typeof v === "object" || typeof v === "function") && typeof v.then === "function";
}

// Apply f to a value or to what a thenable resolves to.
function after(v, f) {
  return isThenable(v) ? Promise.resolve(v).then(f) : f(v);
}

function bytes(v, what) {
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`${what}: expected a string, Buffer, Uint8Array or ArrayBuffer, got ${v === null ? "null" : typeof v}`);
}

function stringMap(v) {
  if (!v || typeof v !== "object" || Array.isArray(v)) return undefined;
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = String(x ?? "");
  return out;
}

function sliceMap(v) {
  if (!v || typeof v !== "object" || Array.isArray(v)) return undefined;
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = Array.isArray(x) ? x.map((s) => String(s ?? "")) : [String(x ?? "")];
  return out;
}

const num = (v) => (typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0);

// ---- network ------------------------------------------------------------------

function networkRequest(m) {
  return {
    phase: m.phase ?? "",
    host: m.host ?? "",
    method: m.method ?? "",
    path: m.path ?? "",
    query: stringMap(m.query),
    requestHeaders: sliceMap(m.request_headers),
    statusCode: num(m.status_code),
    responseHeaders: sliceMap(m.response_headers),
    isSSE: !!m.is_sse,
  };
}

// The TypeScript SDK's camelCase names -> the wire's, where a result has them.
const RESULT_NAMES = {};
const REQUEST_NAMES = {};
const RESPONSE_NAMES = { bodyReplacements: "body_replacements", setBody: "set_body", setBodyBase64: "set_body_base64" };

function renamed(v, names) {
  if (v == null || typeof v !== "object" || Array.isArray(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[names[k] ?? k] = x;
  return out;
}

// The core's check of an answer (mlk_hook_answer_check): throws its message.
function checkAnswer(kind, mp) {
  const [rc, msg] = native.mlk_hook_answer_check(kind, mp);
  if (rc !== 0) throw new TypeError(msg ?? "invalid hook answer");
  return mp;
}

// NetworkHookResult -> msgpack for the core, which checks its shape (every
// key and value) and renders the wire reply.
function networkReply(r, name) {
  if (r != null && typeof r !== "object") {
    throw new TypeError(`network hook ${JSON.stringify(name)} must return an object, null or undefined, got ${typeof r}`);
  }
  const out = renamed(r, RESULT_NAMES) ?? null;
  if (out?.request) out.request = renamed(out.request, REQUEST_NAMES);
  if (out?.response) {
    out.response = renamed(out.response, RESPONSE_NAMES);
    if (out.response.set_body != null && typeof out.response.set_body !== "string") {
      out.response.set_body = bytes(out.response.set_body, `network hook ${JSON.stringify(name)}: response.setBody`);
    }
  }
  return checkAnswer(KIND.NETWORK, msgpack.encode(out));
}

// ---- VFS ----------------------------------------------------------------------------

function vfsEvent(m) {
  return { op: String(m.op ?? ""), path: m.path ?? "", size: num(m.size), mode: num(m.mode), uid: num(m.uid), gid: num(m.gid) };
}

// An action hook's decision, a mutate hook's bytes: the core checks them in
// mlk_hook_reply and fails the file call with its own message.
function actionReply(v) {
  return msgpack.encode(v ?? null);
}

function mutateReply(v) {
  if (v == null) return msgpack.encode(null); // the bytes stay as they are
  const b = typeof v === "string" || v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? bytes(v, "mutateHook") : v;
  return msgpack.encode(b);
}

// Report an error of a hook that has nobody to answer to (after-hooks, event
// listeners): the client's 'hookError' listeners, else a process warning.
function report(client, err, info) {
  try {
    if (client && client.listenerCount("hookError") > 0) {
      client.emit("hookError", err, info);
      return;
    }
  } catch (e) {
    err = e;
  }
  const what = info.kind === "event" ? "an 'event' listener" : `${info.kind} hook ${JSON.stringify(info.name ?? "")}`;
  process.emitWarning(`matchlock-native: ${what} failed: ${err?.message ?? err}`, { code: "MATCHLOCK_HOOK_ERROR" });
}

/** The function the addon calls for one callback rule. */
// The trampoline of a callback rule of a whole interception config: the
// core names its kind when it calls (the glue passes it third).
function makeRuleTrampoline(fn, name) {
  const byKind = new Map();
  return (buf, handle, kind) => {
    if (!byKind.has(kind)) byKind.set(kind, makeTrampoline(kind, fn, name));
    return byKind.get(kind)(buf, handle);
  };
}

function makeTrampoline(kind, fn, name) {
  name = name ?? "";
  switch (kind) {
    case KIND.NETWORK:
      return (buf) => after(fn(networkRequest(msgpack.decode(buf) ?? {})), (r) => networkReply(r, name));
    case KIND.ACTION:
      return (buf) => {
        const m = msgpack.decode(buf) ?? {};
        return after(fn({ ...vfsEvent(m) }), actionReply);
      };
    case KIND.MUTATE:
      return (buf) => {
        const m = msgpack.decode(buf) ?? {};
        const data = Buffer.isBuffer(m.data) ? m.data : Buffer.alloc(0);
        const { op, ...req } = vfsEvent(m);
        return after(fn({ ...req, data }), mutateReply);
      };
    case KIND.AFTER:
    case KIND.DANGEROUS:
      return (buf, handle) => {
        const client = clientOf(handle);
        const info = { kind: KIND_NAME[kind], name };
        // Plain hooks are suppressed while one runs, as in the official SDK
        // (the core suppresses while one is queued; this covers async ones).
        if (kind === KIND.AFTER && client?._plainHookActive) return undefined;
        let ret;
        try {
          const ev = vfsEvent(msgpack.decode(buf) ?? {});
          if (kind === KIND.AFTER) {
            if (client) client._plainHookActive = true;
            ret = fn(ev);
          } else {
            ret = fn(client, ev);
          }
        } catch (e) {
          if (kind === KIND.AFTER && client) client._plainHookActive = false;
          report(client, e, info);
          return undefined;
        }
        if (isThenable(ret)) {
          Promise.resolve(ret).then(
            () => {
              if (kind === KIND.AFTER && client) client._plainHookActive = false;
            },
            (e) => {
              if (kind === KIND.AFTER && client) client._plainHookActive = false;
              report(client, e, info);
            },
          );
        } else if (kind === KIND.AFTER && client) {
          client._plainHookActive = false;
        }
        return undefined;
      };
    default:
      throw new TypeError(`unknown hook kind ${kind}`);
  }
}

module.exports = { KIND, register, clientOf, makeTrampoline, makeRuleTrampoline, report };
