"use strict";
// Client: the Promise API over the addon.  Every call goes through the core's
// *_async functions and completes on the event loop (the addon watches the
// core's notification fd with uv_poll), so an AbortSignal can cancel any of
// them (mlk_cancel).  Only volume calls made before the client has started
// its matchlock process run on the libuv threadpool.  Nothing blocks the main
// thread.  A Client is an EventEmitter: 'event' (the server's network and
// file events) and 'hookError' (a failing after-hook or event listener).

const { EventEmitter } = require("node:events");
const { StringDecoder } = require("node:string_decoder");
const native = require("./native");
const msgpack = require("./msgpack");
const { Sandbox, kHandle } = require("./builder");
const errors = require("./errors");
const hooks = require("./hooks");
const { makeError, MatchlockError, CancelledError, CallbackError, ValidationError, StateError } = errors;

const opSlot = native.setup(makeError);
const MLK_EAGAIN = native.MLK_EAGAIN;

function toBuffer(content) {
  if (Buffer.isBuffer(content)) return content;
  if (typeof content === "string") return Buffer.from(content, "utf8");
  if (content instanceof Uint8Array) return Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  if (content instanceof ArrayBuffer) return Buffer.from(content);
  if (ArrayBuffer.isView(content)) return Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  throw new ValidationError(
    `unsupported content type ${content === null ? "null" : typeof content} (use a string, Buffer, Uint8Array or ArrayBuffer)`,
    { status: -1 },
  );
}

function makeConfigHandle(config) {
  const cfg = native.mlk_config_new();
  const binary = config.binaryPath ?? process.env.MATCHLOCK_BIN;
  if (binary) native.mlk_config_set_binary(cfg, binary);
  if (config.useSudo) native.mlk_config_set_sudo(cfg, 1);
  if (config.launcher?.length) native.mlk_config_set_launcher(cfg, config.launcher);
  for (const [k, v] of Object.entries(config.env ?? {})) native.mlk_config_set_env(cfg, k, String(v));
  if (config.maxLineBytes) native.mlk_config_set_max_line(cfg, config.maxLineBytes);
  return cfg;
}

function defaultConfig(config = {}) {
  return {
    binaryPath: config.binaryPath ?? process.env.MATCHLOCK_BIN ?? "matchlock",
    useSudo: config.useSudo ?? false,
  };
}

function abortError(signal, what) {
  const reason = signal.reason;
  const why = reason instanceof Error ? reason.message : reason !== undefined ? String(reason) : "aborted";
  return new CancelledError(`${what} was aborted by its AbortSignal (${why})`, { status: -9, cause: reason });
}

// Writes an output chunk to a StreamWriter: a function (sync or async; a
// rejection is reported like a throw) or a Writable.  With `encoding`, a
// StringDecoder per stream keeps multi-byte characters whole across chunks.
function makeSink(writer, encoding, onAsyncError) {
  if (!writer) return null;
  const decoder = encoding ? new StringDecoder(encoding) : null;
  const put =
    typeof writer === "function"
      ? (data) => {
          const r = writer(data);
          if (r && typeof r.then === "function") r.then(undefined, onAsyncError);
        }
      : (data) => {
          writer.write(data);
        };
  if (!decoder) return { write: put, end() {} };
  return {
    write(buf) {
      const s = decoder.write(buf);
      if (s) put(s);
    },
    end() {
      const s = decoder.end();
      if (s) put(s);
    },
  };
}

function isIterable(v) {
  return v != null && typeof v === "object" && (typeof v[Symbol.asyncIterator] === "function" || typeof v[Symbol.iterator] === "function");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Client extends EventEmitter {
  constructor(config = {}) {
    super();
    this._config = { ...config };
    this._h = null;
    this._cfg = null;
    this._closed = false;
    this._lastVmId = "";
    this._eventsOn = false;
    this._plainHookActive = false;
    // The core's event callback is installed while someone listens.
    this.on("newListener", (name) => {
      if (name === "event") queueMicrotask(() => this._syncEvents());
    });
    this.on("removeListener", (name) => {
      if (name === "event") this._syncEvents();
    });
    if (typeof config.onEvent === "function") this.on("event", config.onEvent);
  }

  // The native client, spawning `matchlock rpc` on first use.
  _handle() {
    if (this._h) return this._h;
    if (this._closed) throw new errors.ClosedError("the client is closed (create a new Client)", { status: -3 });
    this._h = native.clientNew(this._configHandle());
    hooks.register(this._h, this);
    this._syncEvents();
    return this._h;
  }

  // Install or remove the core's event callback to match the listeners.  The
  // callback holds the Client weakly, so listening never keeps it alive.
  _syncEvents() {
    if (!this._h) return;
    const want = this.listenerCount("event") > 0;
    if (want === this._eventsOn) return;
    this._eventsOn = want;
    if (!want) {
      native.clientSetEventCb(this._h, null);
      return;
    }
    const ref = new WeakRef(this);
    native.clientSetEventCb(this._h, (buf) => ref.deref()?._onEvent(buf));
  }

  _onEvent(buf) {
    let ev;
    try {
      ev = msgpack.decode(buf) ?? {};
      this.emit("event", ev);
    } catch (e) {
      hooks.report(this, e, { kind: "event", name: ev?.type ?? "" });
    }
  }

  _configHandle() {
    if (!this._cfg) this._cfg = makeConfigHandle(this._config);
    return this._cfg;
  }

  /** Start the matchlock process now (calls do it on first use anyway). */
  async start() {
    this._handle();
  }

  /** The created VM's id, or "" before create. */
  get vmId() {
    if (!this._h) return this._lastVmId;
    return native.clientVmId(this._h) ?? "";
  }

  /** The last few KiB the matchlock process wrote to stderr. */
  stderrTail() {
    return this._h ? native.clientStderrTail(this._h) : "";
  }

  // Run an async native call with per-call {signal}; `start(h)` returns the
  // promise and leaves the op id in opSlot.
  _call(what, options, start) {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    let h;
    try {
      h = this._handle();
    } catch (e) {
      return Promise.reject(e);
    }
    const p = start(h);
    if (!signal) return p;
    const op = opSlot[0];
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        native.cancel(h, op);
        reject(abortError(signal, what));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => {
          signal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  }

  // A client-less volume call on the threadpool.  An AbortSignal rejects at
  // once; the C call itself cannot be interrupted (it has no op id) and
  // finishes in the background.
  _job(what, options, start) {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    let p;
    try {
      p = start();
    } catch (e) {
      return Promise.reject(e);
    }
    if (!signal) return p;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal, what));
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => {
          signal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  }

  // ---- lifecycle ----------------------------------------------------------

  /** Create the sandbox from a Sandbox builder (or CreateOptions); resolves to the VM id. */
  async create(sandbox = {}, options = {}) {
    return this._create(sandbox, false, options);
  }

  /** As create, and start the image's entrypoint (launch_entrypoint). */
  async launch(sandbox, options = {}) {
    return this._create(sandbox, true, options);
  }

  async _create(sandbox, launch, options) {
    if (!(sandbox instanceof Sandbox)) {
      sandbox = Sandbox.fromOptions(sandbox);
      if (sandbox === undefined) throw new ValidationError("create: expected a Sandbox or CreateOptions", { status: -1 });
    }
    sandbox.paramsJSON(launch); // validate here, with the builder's own error, before spawning
    // The core copies the params and hooks before native.create returns, so
    // the builder is free again at once.
    const id = await this._call(launch ? "launch" : "create", options, (h) =>
      native.create(h, sandbox[kHandle], launch, options.timeoutMs ?? 0),
    );
    return id ? id.toString("utf8") : this.vmId;
  }

  /** Close the sandbox and the matchlock process (idempotent). */
  async close(timeoutSeconds = 0) {
    if (this._closed) return;
    this._closed = true;
    if (!this._h) return;
    this._lastVmId = native.clientVmId(this._h) ?? "";
    await native.close(this._h, Number(timeoutSeconds) || 0);
  }

  /** Delete the VM's state (`matchlock rm <id>`); call after close. */
  async remove(options = {}) {
    if (!this._h || !native.clientVmId(this._h)) return;
    await this._call("remove", options, (h) => native.remove(h));
  }

  // ---- exec -----------------------------------------------------------------

  /** Run a command and collect its output: {exitCode, stdout, stderr, durationMs}.
   *  stdout/stderr are Buffers, or strings with {encoding: "utf8"}. */
  async exec(command, options = {}) {
    const r = await this._call("exec", options, (h) =>
      native.exec(h, command, 0, options.workingDir ?? null, options.user ?? null, options.timeoutMs ?? 0,
        0, 0, null, false, null, null),
    );
    if (options.encoding) {
      r.stdout = r.stdout.toString(options.encoding);
      r.stderr = r.stderr.toString(options.encoding);
    }
    return r;
  }

  /** exec with a working directory (official SDK spelling). */
  async execWithDir(command, workingDir = "", options = {}) {
    return this.exec(command, { ...options, workingDir: workingDir || undefined });
  }

  // The streamed modes share this: output to sinks, optional stdin pump.
  async _stream(what, mode, command, options, stdout, stderr, stdinSource, resize) {
    let userError = null;
    let h = null;
    let op = 0;
    const fail = (e) => {
      if (!userError) userError = e;
      if (h) native.cancel(h, op);
    };
    const out = makeSink(stdout, options.encoding, fail);
    const err = makeSink(stderr, options.encoding, fail);
    const onOutput = out || err ? (fd, buf) => {
      const s = fd === 2 ? err : out;
      if (s) s.write(buf);
    } : null;

    // stdin: bytes given up front go with the request (the core feeds them and
    // sends EOF); an iterable or Readable is pumped with backpressure.
    let stdinBytes = null;
    let pumped = false;
    if (stdinSource != null) {
      if (typeof stdinSource === "string" || stdinSource instanceof Uint8Array || stdinSource instanceof ArrayBuffer) {
        stdinBytes = toBuffer(stdinSource);
      } else if (isIterable(stdinSource)) {
        pumped = true;
      } else {
        throw new ValidationError(`${what}: stdin must be a string, Buffer, Readable or (async) iterable`, { status: -1 });
      }
    }
    const interactive = pumped || (mode === native.MLK_EXEC_TTY && options.keepStdinOpen);
    let done = false;
    const p = this._call(what, options, (hh) => {
      h = hh;
      const pr = native.exec(hh, command, mode, options.workingDir ?? null, options.user ?? null, options.timeoutMs ?? 0,
        options.rows ?? 0, options.cols ?? 0, stdinBytes, interactive, onOutput, null);
      op = opSlot[0];
      return pr;
    });
    const pumps = [];
    if (pumped && h) pumps.push(this._pumpStdin(h, op, stdinSource, () => done, fail));
    if (resize && h) pumps.push(this._pumpResize(h, op, resize, () => done, fail));
    try {
      const r = await p;
      if (userError) throw userError;
      return r;
    } catch (e) {
      if (userError && !(e instanceof CancelledError && options.signal?.aborted)) {
        throw userError instanceof MatchlockError
          ? userError
          : new CallbackError(`${what}: a callback or stdin source failed: ${userError?.message ?? userError}`, {
              status: -10,
              cause: userError,
            });
      }
      throw e;
    } finally {
      done = true;
      out?.end();
      err?.end();
      await Promise.allSettled(pumps);
    }
  }

  async _pumpStdin(h, op, source, isDone, fail) {
    try {
      for await (const chunk of source) {
        if (isDone()) return;
        const buf = toBuffer(chunk);
        if (buf.length === 0) continue;
        let wait = 1;
        for (;;) {
          const rc = native.stdinWrite(h, op, buf);
          if (rc === 0) break;
          if (rc !== MLK_EAGAIN) return; // the call ended or the client closed: its promise says why
          if (isDone()) return;
          await sleep(wait); // the core buffers 8 MiB; wait for it to drain
          wait = Math.min(wait * 2, 16);
        }
      }
      if (!isDone()) native.stdinClose(h, op);
    } catch (e) {
      fail(e);
    }
  }

  async _pumpResize(h, op, sizes, isDone, fail) {
    try {
      for await (const size of sizes) {
        if (isDone()) return;
        const [rows, cols] = Array.isArray(size) ? size : [size?.rows, size?.cols];
        if (rows > 0 && cols > 0) native.ttyResize(h, op, rows, cols);
      }
    } catch (e) {
      fail(e);
    }
  }

  /** Run a command, streaming stdout/stderr to callbacks or Writables: {exitCode, durationMs}. */
  async execStream(command, options = {}) {
    return this._stream("execStream", native.MLK_EXEC_STREAM, command, options,
      options.stdout ?? options.onStdout, options.stderr ?? options.onStderr, null, null);
  }

  async execStreamWithDir(command, workingDir = "", stdout, stderr, options = {}) {
    return this.execStream(command, { ...options, workingDir: workingDir || undefined, stdout, stderr });
  }

  /** Run a command with stdin (string, Buffer, Readable or (async) iterable) and streamed output. */
  async execPipe(command, options = {}) {
    return this._stream("execPipe", native.MLK_EXEC_PIPE, command, options,
      options.stdout ?? options.onStdout, options.stderr ?? options.onStderr, options.stdin, null);
  }

  async execPipeWithDir(command, workingDir = "", stdin, stdout, stderr, options = {}) {
    return this.execPipe(command, { ...options, workingDir: workingDir || undefined, stdin, stdout, stderr });
  }

  /** Run a command on a TTY: stdout merges stderr; `resize` yields [rows, cols]. */
  async execInteractive(command, options = {}) {
    return this._stream("execInteractive", native.MLK_EXEC_TTY, command,
      { ...options, rows: options.rows ?? 24, cols: options.cols ?? 80 },
      options.stdout ?? options.onStdout, null, options.stdin, options.resize);
  }

  // ---- files ----------------------------------------------------------------

  async writeFile(path, content, options = {}) {
    return this.writeFileMode(path, content, 0o644, options);
  }

  async writeFileMode(path, content, mode, options = {}) {
    const buf = toBuffer(content);
    await this._call("writeFile", options, (h) => native.writeFile(h, path, buf, mode ?? 0o644, options.timeoutMs ?? 0));
  }

  /** The file's bytes. */
  async readFile(path, options = {}) {
    return this._call("readFile", options, (h) => native.readFile(h, path, options.timeoutMs ?? 0));
  }

  /** [{name, size, mode, isDir, modTime}] */
  async listFiles(path, options = {}) {
    const mp = await this._call("listFiles", options, (h) => native.listFiles(h, path, options.timeoutMs ?? 0));
    const files = msgpack.decode(mp) ?? [];
    return files.map((f) => ({
      name: f.name ?? "",
      size: Number(f.size ?? 0),
      mode: Number(f.mode ?? 0),
      isDir: !!f.is_dir,
      modTime: f.mod_time ?? "",
    }));
  }

  // ---- logs -----------------------------------------------------------------

  /** The VM log so far. */
  async log(options = {}) {
    const r = await this._call("log", options, (h) => native.log(h, options.timeoutMs ?? 0));
    return r ?? Buffer.alloc(0);
  }

  /** Follow the log: the existing log, then appended data, to `stdout`
   *  (callback or Writable), until `signal` aborts (then it resolves) or the
   *  VM ends. */
  async logStream(options = {}) {
    const sink = makeSink(options.stdout ?? options.onData, options.encoding, () => {});
    const signal = options.signal;
    if (signal?.aborted) return;
    const h = this._handle();
    const p = native.logFollow(h, sink ? (fd, buf) => sink.write(buf) : null);
    const op = opSlot[0];
    const onAbort = () => native.cancel(h, op);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await p;
    } catch (e) {
      if (!(signal?.aborted && e.status === -9)) throw e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      sink?.end();
    }
  }

  // ---- network ----------------------------------------------------------------

  // Trailing RequestOptions object after variadic strings.
  static _splitArgs(args) {
    const last = args[args.length - 1];
    if (last && typeof last === "object" && !Array.isArray(last)) return [args.slice(0, -1), last];
    return [args, {}];
  }

  /** Add hosts to the allow-list at run time: {added, allowedHosts}. */
  async allowListAdd(...args) {
    const [hosts, options] = Client._splitArgs(args);
    const r = await this._call("allowListAdd", options, (h) => native.allowList(h, true, hosts.flat(), options.timeoutMs ?? 0));
    const m = msgpack.decode(r) ?? {};
    return { added: m.added ?? [], allowedHosts: m.allowed_hosts ?? [] };
  }

  /** Remove hosts from the allow-list at run time: {removed, allowedHosts}. */
  async allowListDelete(...args) {
    const [hosts, options] = Client._splitArgs(args);
    const r = await this._call("allowListDelete", options, (h) => native.allowList(h, false, hosts.flat(), options.timeoutMs ?? 0));
    const m = msgpack.decode(r) ?? {};
    return { removed: m.removed ?? [], allowedHosts: m.allowed_hosts ?? [] };
  }

  /** Forward `[LOCAL:]REMOTE` specs on 127.0.0.1 (replaces earlier forwards). */
  async portForward(...specs) {
    return this.portForwardWithAddresses(undefined, ...specs);
  }

  async portForwardWithAddresses(addresses, ...args) {
    const [specs, options] = Client._splitArgs(args);
    const r = await this._call("portForward", options, (h) =>
      native.portForward(h, specs.flat().map(String), addresses ?? [], options.timeoutMs ?? 0),
    );
    return (msgpack.decode(r) ?? []).map((b) => ({
      address: b.address ?? "",
      localPort: Number(b.local_port ?? 0),
      remotePort: Number(b.remote_port ?? 0),
    }));
  }

  // ---- volumes (CLI side channel) ------------------------------------------------

  // Through the running client (async, cancellable) when there is one;
  // otherwise with the configuration on the threadpool, without starting
  // the matchlock process.
  _volume(what, options, start) {
    if (this._h && !this._closed) return this._call(what, options, (h) => start(h));
    const cfg = this._configHandle();
    return this._job(what, options, () => start(cfg));
  }

  async volumeCreate(name, sizeMb = 10240, options = {}) {
    const r = await this._volume("volumeCreate", options, (t) => native.volumeCreate(t, String(name ?? "").trim(), sizeMb));
    return volumeInfo(msgpack.decode(r) ?? {});
  }

  async volumeList(options = {}) {
    const r = await this._volume("volumeList", options, (t) => native.volumeList(t));
    return (msgpack.decode(r) ?? []).map(volumeInfo);
  }

  async volumeRemove(name, options = {}) {
    await this._volume("volumeRemove", options, (t) => native.volumeRemove(t, String(name ?? "").trim()));
  }
}

function volumeInfo(v) {
  return { name: v.name ?? "", size: v.size === undefined ? "" : String(v.size), path: v.path ?? "" };
}

module.exports = { Client, defaultConfig, toBuffer };
