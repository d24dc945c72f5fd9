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

// NetworkHookResult -> the core's reply map (set_body_base64 as bin: the core
// base64-encodes it).
function networkReply(r, name) {
  if (r == null) return msgpack.encode({});
  if (typeof r !== "object") {
    throw new TypeError(`network hook ${JSON.stringify(name)} must return an object, null or undefined, got ${typeof r}`);
  }
  const out = {};
  if (r.action) out.action = String(r.action).trim().toLowerCase();
  if (r.request) {
    const q = {};
    if (r.request.headers != null) q.headers = sliceMap(r.request.headers);
    if (r.request.query != null) q.query = stringMap(r.request.query);
    if (r.request.path) q.path = String(r.request.path);
    if (Object.keys(q).length) out.request = q;
  }
  if (r.response) {
    const s = {};
    if (r.response.headers != null) s.headers = sliceMap(r.response.headers);
    if (r.response.bodyReplacements?.length) {
      s.body_replacements = r.response.bodyReplacements.map((x) => ({ find: String(x.find ?? ""), replace: String(x.replace ?? "") }));
    }
    if (r.response.setBody != null) s.set_body_base64 = bytes(r.response.setBody, `network hook ${JSON.stringify(name)}: response.setBody`);
    if (Object.keys(s).length) out.response = s;
  }
  return msgpack.encode(out);
}

// ---- VFS ----------------------------------------------------------------------------

function vfsEvent(m) {
  return { op: String(m.op ?? ""), path: m.path ?? "", size: num(m.size), mode: num(m.mode), uid: num(m.uid), gid: num(m.gid) };
}

function actionReply(v, name) {
  const d = String(v ?? "allow").trim().toLowerCase();
  if (d !== "" && d !== "allow" && d !== "block") {
    throw new TypeError(`invalid actionHook return value for ${JSON.stringify(name)}: expected "allow" or "block", got ${JSON.stringify(v)}`);
  }
  return msgpack.encode(d || "allow");
}

function mutateReply(v, original, name) {
  if (v == null) return msgpack.encode(original); // unchanged
  if (typeof v === "string" || Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return msgpack.encode(bytes(v, "mutateHook"));
  }
  throw new TypeError(`invalid mutateHook return type for ${JSON.stringify(name)}: expected bytes, a string, null or undefined`);
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
function makeTrampoline(kind, fn, name) {
  name = name ?? "";
  switch (kind) {
    case KIND.NETWORK:
      return (buf) => after(fn(networkRequest(msgpack.decode(buf) ?? {})), (r) => networkReply(r, name));
    case KIND.ACTION:
      return (buf) => {
        const m = msgpack.decode(buf) ?? {};
        return after(fn({ ...vfsEvent(m) }), (v) => actionReply(v, name));
      };
    case KIND.MUTATE:
      return (buf) => {
        const m = msgpack.decode(buf) ?? {};
        const data = Buffer.isBuffer(m.data) ? m.data : Buffer.alloc(0);
        const { op, ...req } = vfsEvent(m);
        return after(fn({ ...req, data }), (v) => mutateReply(v, data, name));
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

module.exports = { KIND, register, clientOf, makeTrampoline, report };
