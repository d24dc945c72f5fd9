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
const { Sandbox, kHandle, onlyKeys } = require("./builder");
const errors = require("./errors");
const hooks = require("./hooks");
const { makeError, fromNative, MatchlockError, CancelledError, CallbackError, ValidationError, StateError } = errors;

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
    { status: native.MLK_EINVAL },
  );
}

function makeConfigHandle(config) {
  try {
    return configHandle(config);
  } catch (e) {
    throw fromNative(e);
  }
}

function configHandle(config) {
  const cfg = native.mlk_config_new();
  const binary = config.binaryPath ?? process.env.MATCHLOCK_BIN;
  if (binary) native.mlk_config_set_binary(cfg, binary);
  if (config.useSudo) native.mlk_config_set_sudo(cfg, 1);
  if (config.launcher?.length) native.mlk_config_set_launcher(cfg, config.launcher);
  if (config.launcherShell) native.mlk_config_set_launcher_shell(cfg, 1);
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
  return new CancelledError(`${what} was aborted by its AbortSignal (${why})`, { status: native.MLK_ECANCELED, cause: reason });
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

// The option names each call takes: anything else is a TypeError (a typo
// such as `binray` would otherwise be ignored silently).
const keys = (...names) => new Set(names);
const CLIENT_KEYS = keys("binaryPath", "useSudo", "launcher", "launcherShell", "env", "maxLineBytes", "onEvent");
const REQ_KEYS = keys("signal", "timeoutMs");
const EXEC_KEYS = keys(...REQ_KEYS, "workingDir", "user", "encoding");
const STREAM_KEYS = keys(...EXEC_KEYS, "stdout", "stderr", "onStdout", "onStderr");
const PIPE_KEYS = keys(...STREAM_KEYS, "stdin");
const TTY_KEYS = keys(...EXEC_KEYS, "stdin", "stdout", "onStdout", "rows", "cols", "resize", "keepStdinOpen");
const LOG_KEYS = keys(...REQ_KEYS, "encoding");
const LOG_STREAM_KEYS = keys(...REQ_KEYS, "stdout", "onData", "encoding");

// Text by default, as the official SDK returns it; {encoding: "buffer"}
// keeps the bytes.
function decoded(buf, encoding) {
  return encoding === "buffer" ? buf : buf.toString(encoding ?? "utf8");
}

function isReadable(v) {
  return typeof v?.on === "function" && typeof v.pause === "function" && typeof v.resume === "function";
}

// Feed a source to `each` (which may return a promise: the next chunk waits
// for it) until it ends (then onEnd()) or stop() is called.  stop() releases
// the source at once and waits for nothing: a Readable is paused and left
// to its owner (not destroyed), an iterator is told to return().
function pump(source, each, onEnd, fail) {
  let stopped = false;
  if (isReadable(source)) {
    let busy = false;
    let ended = false;
    const cleanup = () => {
      source.off("data", onData);
      source.off("end", onEndEv);
      source.off("error", onErr);
    };
    const finish = () => {
      cleanup();
      if (!stopped) onEnd();
    };
    function onData(chunk) {
      if (stopped) return;
      source.pause();
      busy = true;
      Promise.resolve()
        .then(() => each(chunk))
        .then(
          () => {
            busy = false;
            if (stopped) return;
            if (ended) finish();
            else source.resume();
          },
          (e) => {
            cleanup();
            if (!stopped) fail(e);
          },
        );
    }
    function onEndEv() {
      ended = true;
      if (!busy) finish();
    }
    function onErr(e) {
      cleanup();
      if (!stopped) fail(e);
    }
    source.on("data", onData);
    source.on("end", onEndEv);
    source.on("error", onErr);
    source.resume();
    return {
      stop() {
        if (stopped) return;
        stopped = true;
        cleanup();
        source.pause();
      },
    };
  }
  const it = typeof source[Symbol.asyncIterator] === "function" ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  (async () => {
    try {
      for (;;) {
        const { value, done } = await it.next();
        if (stopped) return;
        if (done) return onEnd();
        await each(value);
        if (stopped) return;
      }
    } catch (e) {
      if (!stopped) fail(e);
    }
  })();
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        const r = it.return?.();
        if (r && typeof r.then === "function") r.then(undefined, () => {});
      } catch {
        // a source that cannot be told to stop is simply no longer read
      }
    },
  };
}

class Client extends EventEmitter {
  constructor(config = {}) {
    super();
    onlyKeys(config, CLIENT_KEYS, "Client config");
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
    if (this._closed) throw makeError(native.MLK_ECLOSED, "client closed: this call needs an open client", 0);
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
    let p;
    try {
      p = start(h);
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
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

  /** Create the sandbox from a Sandbox builder or the official CreateOptions
   *  (`launchEntrypoint: true` launches); resolves to the VM id.  A builder's
   *  validation errors reject here.  When create succeeds and the builder's
   *  port forwards fail, the VM id stays (vmId), so close()/remove() clean up.
   *  A second create on one client rejects with a StateError. */
  async create(sandbox = {}, options = {}) {
    const launch = !(sandbox instanceof Sandbox) && !!sandbox?.launchEntrypoint;
    return this._create(sandbox, launch, options);
  }

  /** As create, and start the image's entrypoint (launch_entrypoint). */
  async launch(sandbox, options = {}) {
    return this._create(sandbox, true, options);
  }

  async _create(sandbox, launch, options) {
    onlyKeys(options, REQ_KEYS, launch ? "launch options" : "create options");
    if (!(sandbox instanceof Sandbox)) {
      sandbox = Sandbox.fromOptions(sandbox);
      if (sandbox === undefined) throw new ValidationError("create: expected a Sandbox or CreateOptions", { status: native.MLK_EINVAL });
    }
    sandbox._validate(launch); // validate here, with the builder's own error, before spawning
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

  /** Delete the VM's state (`matchlock rm <id>`); call after close.  After
   *  close the C client is gone (every descriptor released at close): the
   *  command runs with the config and the kept VM id, on the threadpool. */
  async remove(options = {}) {
    onlyKeys(options, REQ_KEYS, "remove options");
    const id = this.vmId;
    if (!id) return;
    if (this._closed) {
      const cfg = this._configHandle();
      await this._job("remove", options, () => native.removeVm(cfg, id));
      return;
    }
    await this._call("remove", options, (h) => native.remove(h));
  }

  // ---- exec -----------------------------------------------------------------

  /** Run a command and collect its output: {exitCode, stdout, stderr, durationMs}.
   *  stdout/stderr are strings (UTF-8, as the official SDK), or Buffers with
   *  {encoding: "buffer"}. */
  async exec(command, options = {}) {
    onlyKeys(options, EXEC_KEYS, "exec options");
    const r = await this._call("exec", options, (h) =>
      native.exec(h, command, 0, options.workingDir ?? null, options.user ?? null, options.timeoutMs ?? 0,
        0, 0, null, false, null, null),
    );
    return { exitCode: r.exitCode, stdout: decoded(r.stdout, options.encoding), stderr: decoded(r.stderr, options.encoding),
      durationMs: r.durationMs };
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
        throw new ValidationError(`${what}: stdin must be a string, Buffer, Readable or (async) iterable`, { status: native.MLK_EINVAL });
      }
    }
    const interactive = pumped || (mode === native.MLK_EXEC_TTY && options.keepStdinOpen);
    const p = this._call(what, options, (hh) => {
      h = hh;
      const pr = native.exec(hh, command, mode, options.workingDir ?? null, options.user ?? null, options.timeoutMs ?? 0,
        options.rows ?? 0, options.cols ?? 0, stdinBytes, interactive, onOutput, null);
      op = opSlot[0];
      return pr;
    });
    // The call settles when its result arrives: the pumps are stopped then
    // (their sources released), never awaited.
    const pumps = [];
    if (pumped && h) pumps.push(this._pumpStdin(h, op, stdinSource, fail));
    if (resize && h) pumps.push(this._pumpResize(h, op, resize, fail));
    try {
      const r = await p;
      if (userError) throw userError;
      return r;
    } catch (e) {
      if (userError && !(e instanceof CancelledError && options.signal?.aborted)) {
        throw userError instanceof MatchlockError
          ? userError
          : new CallbackError(`${what}: a callback or stdin source failed: ${userError?.message ?? userError}`, {
              status: native.MLK_EUSER,
              cause: userError,
            });
      }
      throw e;
    } finally {
      for (const x of pumps) x.stop();
      out?.end();
      err?.end();
    }
  }

  // Forward a stdin source to the call, with backpressure (the core buffers
  // 8 MiB), then EOF.
  _pumpStdin(h, op, source, fail) {
    let ended = false;
    const ctl = pump(
      source,
      async (chunk) => {
        const buf = toBuffer(chunk);
        if (buf.length === 0) return;
        let wait = 1;
        for (;;) {
          const rc = native.stdinWrite(h, op, buf);
          if (rc === 0) return;
          if (rc !== MLK_EAGAIN) { ended = true; ctl.stop(); return; } // the call ended: its promise says why
          await sleep(wait);
          if (ended) return;
          wait = Math.min(wait * 2, 16);
        }
      },
      () => native.stdinClose(h, op),
      fail,
    );
    return {
      stop() {
        ended = true;
        ctl.stop();
      },
    };
  }

  _pumpResize(h, op, sizes, fail) {
    return pump(
      sizes,
      (size) => {
        const [rows, cols] = Array.isArray(size) ? size : [size?.rows, size?.cols];
        if (rows > 0 && cols > 0) native.ttyResize(h, op, rows, cols);
      },
      () => {},
      fail,
    );
  }

  /** Run a command, streaming stdout/stderr to callbacks or Writables: {exitCode, durationMs}. */
  async execStream(command, options = {}) {
    onlyKeys(options, STREAM_KEYS, "execStream options");
    return this._stream("execStream", native.MLK_EXEC_STREAM, command, options,
      options.stdout ?? options.onStdout, options.stderr ?? options.onStderr, null, null);
  }

  async execStreamWithDir(command, workingDir = "", stdout, stderr, options = {}) {
    return this.execStream(command, { ...options, workingDir: workingDir || undefined, stdout, stderr });
  }

  /** Run a command with stdin (string, Buffer, Readable or (async) iterable) and streamed output. */
  async execPipe(command, options = {}) {
    onlyKeys(options, PIPE_KEYS, "execPipe options");
    return this._stream("execPipe", native.MLK_EXEC_PIPE, command, options,
      options.stdout ?? options.onStdout, options.stderr ?? options.onStderr, options.stdin, null);
  }

  async execPipeWithDir(command, workingDir = "", stdin, stdout, stderr, options = {}) {
    return this.execPipe(command, { ...options, workingDir: workingDir || undefined, stdin, stdout, stderr });
  }

  /** Run a command on a TTY: stdout merges stderr; `resize` yields [rows, cols]. */
  async execInteractive(command, options = {}) {
    onlyKeys(options, TTY_KEYS, "execInteractive options");
    return this._stream("execInteractive", native.MLK_EXEC_TTY, command,
      { ...options, rows: options.rows ?? 24, cols: options.cols ?? 80 },
      options.stdout ?? options.onStdout, null, options.stdin, options.resize);
  }

  // ---- files ----------------------------------------------------------------

  async writeFile(path, content, options = {}) {
    return this.writeFileMode(path, content, 0o644, options);
  }

  async writeFileMode(path, content, mode, options = {}) {
    onlyKeys(options, REQ_KEYS, "writeFile options");
    const buf = toBuffer(content);
    await this._call("writeFile", options, (h) => native.writeFile(h, path, buf, mode ?? 0o644, options.timeoutMs ?? 0));
  }

  /** The file's bytes. */
  async readFile(path, options = {}) {
    onlyKeys(options, REQ_KEYS, "readFile options");
    return this._call("readFile", options, (h) => native.readFile(h, path, options.timeoutMs ?? 0));
  }

  /** [{name, size, mode, isDir}], plus modTime when the server sends one. */
  async listFiles(path, options = {}) {
    onlyKeys(options, REQ_KEYS, "listFiles options");
    const mp = await this._call("listFiles", options, (h) => native.listFiles(h, path, options.timeoutMs ?? 0));
    const files = msgpack.decode(mp) ?? [];
    return files.map((f) => {
      const e = { name: f.name ?? "", size: Number(f.size ?? 0), mode: Number(f.mode ?? 0), isDir: !!f.is_dir };
      if (f.mod_time) e.modTime = f.mod_time;
      return e;
    });
  }

  // ---- logs -----------------------------------------------------------------

  /** The VM log so far: a string, or a Buffer with {encoding: "buffer"}. */
  async log(options = {}) {
    onlyKeys(options, LOG_KEYS, "log options");
    const r = await this._call("log", options, (h) => native.log(h, options.timeoutMs ?? 0));
    return decoded(r ?? Buffer.alloc(0), options.encoding);
  }

  /** Follow the log: the existing log, then appended data, to `stdout`
   *  (callback or Writable), until `signal` aborts (then it resolves) or the
   *  VM ends. */
  async logStream(options = {}) {
    onlyKeys(options, LOG_STREAM_KEYS, "logStream options");
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
      if (!(signal?.aborted && e.status === native.MLK_ECANCELED)) throw e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      sink?.end();
    }
  }

  // ---- network ----------------------------------------------------------------

  // Trailing RequestOptions object after variadic strings.
  static _splitArgs(args) {
    const last = args[args.length - 1];
    if (last && typeof last === "object" && !Array.isArray(last)) {
      onlyKeys(last, REQ_KEYS, "request options");
      return [args.slice(0, -1), last];
    }
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
    onlyKeys(options, REQ_KEYS, "volumeCreate options");
    const r = await this._volume("volumeCreate", options, (t) => native.volumeCreate(t, String(name ?? "").trim(), sizeMb));
    return volumeInfo(msgpack.decode(r) ?? {});
  }

  async volumeList(options = {}) {
    onlyKeys(options, REQ_KEYS, "volumeList options");
    const r = await this._volume("volumeList", options, (t) => native.volumeList(t));
    return (msgpack.decode(r) ?? []).map(volumeInfo);
  }

  async volumeRemove(name, options = {}) {
    onlyKeys(options, REQ_KEYS, "volumeRemove options");
    await this._volume("volumeRemove", options, (t) => native.volumeRemove(t, String(name ?? "").trim()));
  }
}

function volumeInfo(v) {
  return { name: v.name ?? "", size: v.size === undefined ? "" : String(v.size), path: v.path ?? "" };
}

module.exports = { Client, defaultConfig, toBuffer };
