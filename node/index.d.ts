// Type declarations of matchlock-native.
/// <reference types="node" />
import { EventEmitter } from "node:events";

export type BinaryLike = string | Buffer | Uint8Array | ArrayBuffer;

export interface Config {
  /** matchlock (or matchlock-local) binary; default $MATCHLOCK_BIN or "matchlock". */
  binaryPath?: string;
  /** Run `sudo <binary> rpc`. */
  useSudo?: boolean;
  /** A launcher prefix, e.g. ["ssh", "host"]. */
  launcher?: string[];
  /** The launcher hands its words to a shell, as ssh does: every word after it
   *  is shell-quoted.  Set it with ssh; leave it off for kubectl exec (docs/remote.md). */
  launcherShell?: boolean;
  /** Extra environment of the matchlock process. */
  env?: Record<string, string>;
  /** Largest response line accepted (default 1 GiB). */
  maxLineBytes?: number;
  /** Shorthand for `client.on("event", onEvent)`. */
  onEvent?: (event: MatchlockEvent) => void;
}

export interface HostIPMapping { host: string; ip: string; }
export interface MountConfig {
  type?: "host_fs" | "memory" | "overlay" | string;
  hostPath?: string;
  readonly?: boolean;
  /** UID every file of the mount appears owned by (0..4294967295; host_fs). */
  ownerUid?: number;
  /** GID every file of the mount appears owned by (0..4294967295; host_fs). */
  ownerGid?: number;
}
/** Owner overrides of a host directory mount. */
export interface MountOwner { ownerUid?: number; ownerGid?: number; }
export interface Secret { name: string; value: string; hosts?: string[]; placeholder?: string; }
export interface ImageConfig { user?: string; workingDir?: string; entrypoint?: string[]; cmd?: string[]; env?: Record<string, string>; }
export interface PortForward { localPort: number; remotePort: number; }
export interface PortForwardBinding { address: string; localPort: number; remotePort: number; }

export interface NetworkBodyTransform { find: string; replace?: string; }

/** What a network hook receives (the proxy's callback request). */
export interface NetworkHookRequest {
  phase: NetworkHookPhase;
  host: string;
  method: string;
  path: string;
  query?: Record<string, string>;
  requestHeaders?: Record<string, string[]>;
  /** Phase "after" only; 0 before. */
  statusCode: number;
  responseHeaders?: Record<string, string[]>;
  isSSE: boolean;
}
export interface NetworkHookRequestMutation {
  /** Replaces the whole request header map. */
  headers?: Record<string, string[]>;
  /** Replaces the whole query map. */
  query?: Record<string, string>;
  path?: string;
}
export interface NetworkHookResponseMutation {
  /** Replaces the whole response header map. */
  headers?: Record<string, string[]>;
  bodyReplacements?: NetworkBodyTransform[];
  /** Replaces the whole response body. */
  setBody?: BinaryLike | null;
}
export interface NetworkHookResult {
  action?: NetworkHookAction;
  request?: NetworkHookRequestMutation;
  response?: NetworkHookResponseMutation;
}
/** A network hook: sync or async.  A throw or rejection sends an error reply (the traffic proceeds). */
export type NetworkHookFunc = (request: NetworkHookRequest) =>
  NetworkHookResult | null | undefined | Promise<NetworkHookResult | null | undefined>;

/** A network interception rule: static (action, rewrites) or with a `hook` function. */
export interface NetworkHookRule {
  name?: string;
  phase?: "" | "before" | "after";
  hosts?: string[];
  methods?: string[];
  path?: string;
  /** With `hook`: empty or "allow" (the hook decides). */
  action?: "allow" | "block" | "mutate";
  setHeaders?: Record<string, string>;
  deleteHeaders?: string[];
  setQuery?: Record<string, string>;
  deleteQuery?: string[];
  rewritePath?: string;
  setResponseHeaders?: Record<string, string>;
  deleteResponseHeaders?: string[];
  bodyReplacements?: NetworkBodyTransform[];
  /** A hook's deadline, enforced by the core (default 5 s): past it the proxy gets an error reply. */
  timeoutMs?: number;
  /** Called for each matching request; static mutations (setHeaders, ...) may ride along, as upstream allows. */
  hook?: NetworkHookFunc;
}
export interface NetworkInterceptionConfig { rules?: NetworkHookRule[]; }

export type VFSHookOp =
  | "stat" | "readdir" | "open" | "create" | "mkdir" | "chmod" | "remove" | "remove_all"
  | "rename" | "symlink" | "readlink" | "read" | "write" | "close" | "sync" | "truncate";
export type VFSHookAction = "allow" | "block" | (string & {});
/** A file event, as after-hooks receive it. */
export interface VFSHookEvent { op: string; path: string; size: number; mode: number; uid: number; gid: number; }
/** Before the SDK's own writeFile (op "write"), readFile ("read") or listFiles ("readdir"). */
export interface VFSActionRequest { op: string; path: string; size: number; mode: number; uid: number; gid: number; }
/** Before the SDK's own writeFile; `data` (matchlock-native only) is the content so far. */
export interface VFSMutateRequest { path: string; size: number; mode: number; uid: number; gid: number; data: Buffer; }
export type VFSHookFunc = (event: VFSHookEvent) => void | Promise<void>;
export type VFSDangerousHookFunc = (client: Client, event: VFSHookEvent) => void | Promise<void>;
/** undefined/null keeps the content; a string or bytes replace it. */
export type VFSMutateHookFunc = (request: VFSMutateRequest) =>
  BinaryLike | null | undefined | Promise<BinaryLike | null | undefined>;
/** undefined means "allow". */
export type VFSActionHookFunc = (request: VFSActionRequest) =>
  VFSHookAction | undefined | Promise<VFSHookAction | undefined>;

/** A VFS interception rule: static, or with exactly one hook function. */
export interface VFSHookRule {
  name?: string;
  phase?: "" | "before" | "after";
  ops?: VFSHookOp[];
  /** A glob (`*` does not cross `/`). */
  path?: string;
  action?: VFSHookAction;
  timeoutMs?: number;
  /** After-hook (phase "after"); suppressed while another plain after-hook runs. */
  hook?: VFSHookFunc;
  /** After-hook that gets the client and may call it (phase "after"). */
  dangerousHook?: VFSDangerousHookFunc;
  /** Decides allow/block before writeFile/readFile/listFiles (phase "before"). */
  actionHook?: VFSActionHookFunc;
  /** Replaces what writeFile writes (phase "before"); chained in rule order. */
  mutateHook?: VFSMutateHookFunc;
}
export interface VFSInterceptionConfig { emitEvents?: boolean; rules?: VFSHookRule[]; }

/** An `event` notification of the server, as sent (snake_case keys). */
export interface MatchlockEvent {
  type: "network" | "file" | string;
  timestamp?: number;
  network?: {
    method?: string; url?: string; host?: string; status_code?: number;
    request_bytes?: number; response_bytes?: number; duration_ms?: number;
    blocked?: boolean; block_reason?: string; [k: string]: unknown;
  };
  file?: { op: string; path: string; size?: number; mode?: number; uid?: number; gid?: number; [k: string]: unknown };
  [k: string]: unknown;
}
/** Where a hook error that could not fail a call came from. */
export interface HookErrorInfo { kind: "VFS after" | "VFS dangerous" | "event"; name: string; }

/** The official SDK's options object; `client.create(opts)` accepts it. */
export interface CreateOptions {
  image?: string;
  kernelRef?: string;
  privileged?: boolean;
  cpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
  timeoutSeconds?: number;
  allowedHosts?: string[];
  addHosts?: HostIPMapping[];
  blockPrivateIPs?: boolean;
  blockPrivateIPsSet?: boolean;
  noNetwork?: boolean;
  forceInterception?: boolean;
  networkInterception?: NetworkInterceptionConfig;
  mounts?: Record<string, MountConfig>;
  env?: Record<string, string>;
  secrets?: Secret[];
  workspace?: string;
  vfsInterception?: VFSInterceptionConfig;
  dnsServers?: string[];
  hostname?: string;
  networkMtu?: number;
  portForwards?: PortForward[];
  portForwardAddresses?: string[];
  imageConfig?: ImageConfig;
  /** Start the image's entrypoint detached (what launch() does). */
  launchEntrypoint?: boolean;
  /** ext4 images to attach (beyond upstream; addExtraDisk). */
  extraDisks?: ExtraDisk[];
}
export interface ExtraDisk { hostPath: string; guestMount: string; readonly?: boolean; }

export type NetworkHookPhase = "" | "before" | "after";
export type NetworkHookAction = "allow" | "block" | "mutate";
export type VFSHookPhase = "" | "before" | "after";

export interface RequestOptions {
  /** Aborting cancels the call (a `cancel` is sent) and rejects it with a CancelledError. */
  signal?: AbortSignal;
  /** Deadline of the call in milliseconds (TimeoutError when it passes). */
  timeoutMs?: number;
}

export interface ExecOptions extends RequestOptions {
  workingDir?: string;
  user?: string;
  /** exec results: text in this encoding (default "utf8"), or "buffer" for
   *  Buffers.  Streams: decode chunks as text (never splitting a
   *  multi-byte character); without it chunks are Buffers. */
  encoding?: BufferEncoding | "buffer";
}

/** A function (sync or async) receiving each chunk, or a Writable. */
export type StreamWriter = NodeJS.WritableStream | ((chunk: Buffer) => void | Promise<void>);
export type TextStreamWriter = NodeJS.WritableStream | ((chunk: string) => void | Promise<void>);
export type StreamReader = NodeJS.ReadableStream | AsyncIterable<BinaryLike> | Iterable<BinaryLike>;
export type TTYSize = [number, number];

export interface ExecStreamOptions extends ExecOptions {
  stdout?: StreamWriter | TextStreamWriter;
  stderr?: StreamWriter | TextStreamWriter;
  onStdout?: StreamWriter | TextStreamWriter;
  onStderr?: StreamWriter | TextStreamWriter;
}
export interface ExecPipeOptions extends ExecStreamOptions {
  /** Bytes (sent with the request, then EOF) or a stream/iterable (pumped with backpressure, then EOF). */
  stdin?: BinaryLike | StreamReader;
}
export interface ExecInteractiveOptions extends ExecOptions {
  stdin?: BinaryLike | StreamReader;
  stdout?: StreamWriter | TextStreamWriter;
  onStdout?: StreamWriter | TextStreamWriter;
  rows?: number;
  cols?: number;
  resize?: AsyncIterable<TTYSize> | Iterable<TTYSize>;
}
export interface LogStreamOptions extends RequestOptions {
  stdout?: StreamWriter | TextStreamWriter;
  onData?: StreamWriter | TextStreamWriter;
  encoding?: BufferEncoding;
}

export interface ExecResult<T = string> { exitCode: number; stdout: T; stderr: T; durationMs: number; }
export interface ExecStreamResult { exitCode: number; durationMs: number; }
export type ExecPipeResult = ExecStreamResult;
export type ExecInteractiveResult = ExecStreamResult;
/** modTime only when the server sends one. */
export interface FileInfo { name: string; size: number; mode: number; isDir: boolean; modTime?: string; }
export interface VolumeInfo { name: string; size: string; path: string; }
export interface AllowListAddResult { added: string[]; allowedHosts: string[]; }
export interface AllowListDeleteResult { removed: string[]; allowedHosts: string[]; }

export declare class Sandbox {
  constructor(image: string);
  static fromOptions(options: CreateOptions): Sandbox;
  /** What was set so far, in the official CreateOptions shape (a copy). */
  options(): CreateOptions;
  withPrivileged(): this;
  withCPUs(cpus: number): this;
  withMemory(mb: number): this;
  withDiskSize(mb: number): this;
  withTimeout(seconds: number): this;
  withWorkspace(path: string): this;
  withVFSInterception(config: VFSInterceptionConfig): this;
  withNetworkInterception(config?: NetworkInterceptionConfig): this;
  withEnv(name: string, value: string): this;
  withEnvMap(env: Record<string, string>): this;
  allowHost(...hosts: string[]): this;
  addHost(host: string, ip: string): this;
  blockPrivateIPs(): this;
  allowPrivateIPs(): this;
  withBlockPrivateIPs(enabled: boolean): this;
  unsetBlockPrivateIPs(): this;
  addSecret(name: string, value: string, ...hosts: string[]): this;
  addSecretWithPlaceholder(name: string, value: string, placeholder: string, ...hosts: string[]): this;
  withDNSServers(...servers: string[]): this;
  withHostname(hostname: string): this;
  withNetworkMTU(mtu: number): this;
  withNoNetwork(): this;
  withPortForward(localPort: number, remotePort: number): this;
  withPortForwardSpec(spec: string): this;
  withPortForwardAddresses(...addresses: string[]): this;
  mount(guestPath: string, config: MountConfig): this;
  mountHostDir(guestPath: string, hostPath: string, owner?: MountOwner): this;
  mountHostDirReadonly(guestPath: string, hostPath: string, owner?: MountOwner): this;
  mountMemory(guestPath: string): this;
  mountOverlay(guestPath: string, hostPath: string): this;
  withUser(user: string): this;
  withEntrypoint(...argv: string[]): this;
  withImageConfig(config: ImageConfig | null | undefined): this;
  withKernel(ref: string): this;
  addExtraDisk(hostPath: string, guestMount: string, readonly?: boolean): this;
  /** The exact `create` params (validated by the C core); throws a ValidationError. */
  paramsJSON(launch?: boolean): string;
  params(launch?: boolean): Record<string, unknown>;
}
export declare function createSandbox(image: string): Sandbox;

export declare class Client extends EventEmitter {
  constructor(config?: Config);
  /** The server's network and file events (lossy). */
  on(event: "event", listener: (event: MatchlockEvent) => void): this;
  /** A failing after-hook or 'event' listener (without a listener: a process warning). */
  on(event: "hookError", listener: (error: unknown, info: HookErrorInfo) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: "event", listener: (event: MatchlockEvent) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  /** The created VM's id ("" before create). */
  readonly vmId: string;
  start(): Promise<void>;
  stderrTail(): string;
  create(sandbox?: Sandbox | CreateOptions, options?: RequestOptions): Promise<string>;
  launch(sandbox: Sandbox | CreateOptions, options?: RequestOptions): Promise<string>;
  close(timeoutSeconds?: number): Promise<void>;
  remove(options?: RequestOptions): Promise<void>;

  exec(command: string, options: ExecOptions & { encoding: "buffer" }): Promise<ExecResult<Buffer>>;
  exec(command: string, options?: ExecOptions): Promise<ExecResult<string>>;
  execWithDir(command: string, workingDir: string, options: ExecOptions & { encoding: "buffer" }): Promise<ExecResult<Buffer>>;
  execWithDir(command: string, workingDir?: string, options?: ExecOptions): Promise<ExecResult<string>>;
  execStream(command: string, options?: ExecStreamOptions): Promise<ExecStreamResult>;
  execStreamWithDir(command: string, workingDir?: string, stdout?: StreamWriter, stderr?: StreamWriter, options?: RequestOptions): Promise<ExecStreamResult>;
  execPipe(command: string, options?: ExecPipeOptions): Promise<ExecPipeResult>;
  execPipeWithDir(command: string, workingDir?: string, stdin?: StreamReader, stdout?: StreamWriter, stderr?: StreamWriter, options?: RequestOptions): Promise<ExecPipeResult>;
  execInteractive(command: string, options?: ExecInteractiveOptions): Promise<ExecInteractiveResult>;

  writeFile(path: string, content: BinaryLike, options?: RequestOptions): Promise<void>;
  writeFileMode(path: string, content: BinaryLike, mode: number, options?: RequestOptions): Promise<void>;
  readFile(path: string, options?: RequestOptions): Promise<Buffer>;
  listFiles(path: string, options?: RequestOptions): Promise<FileInfo[]>;

  log(options: RequestOptions & { encoding: "buffer" }): Promise<Buffer>;
  log(options?: RequestOptions & { encoding?: BufferEncoding }): Promise<string>;
  /** Follows the log until `signal` aborts (then resolves) or the VM ends. */
  logStream(options?: LogStreamOptions): Promise<void>;

  allowListAdd(...hosts: Array<string | RequestOptions>): Promise<AllowListAddResult>;
  allowListDelete(...hosts: Array<string | RequestOptions>): Promise<AllowListDeleteResult>;
  portForward(...specs: Array<string | RequestOptions>): Promise<PortForwardBinding[]>;
  portForwardWithAddresses(addresses: string[] | undefined, ...specs: Array<string | RequestOptions>): Promise<PortForwardBinding[]>;

  volumeCreate(name: string, sizeMb?: number, options?: RequestOptions): Promise<VolumeInfo>;
  volumeList(options?: RequestOptions): Promise<VolumeInfo[]>;
  volumeRemove(name: string, options?: RequestOptions): Promise<void>;
}
export declare function defaultConfig(config?: Config): Required<Pick<Config, "binaryPath" | "useSudo">>;
export declare function version(): string;

export interface ErrorOptions { status?: number; rpcCode?: number; cause?: unknown; }
export declare class MatchlockError extends Error {
  constructor(message: string, options?: ErrorOptions);
  /** The MLK_E* status of the C library (negative). */
  readonly status: number;
  /** Its symbolic name, e.g. "MLK_ETIMEDOUT". */
  readonly errname: string;
  /** The status; on RPCError the server's JSON-RPC code. */
  readonly code: number;
  /** The JSON-RPC code, 0 when the server was not involved. */
  readonly rpcCode: number;
  /** The official SDKs' error variable, e.g. "ErrImageRequired". */
  readonly upstreamName: string | undefined;
}
export declare class RPCError extends MatchlockError {
  constructor(code: number, message: string, options?: ErrorOptions);
  static readonly PARSE_ERROR: -32700;
  static readonly INVALID_REQUEST: -32600;
  static readonly METHOD_NOT_FOUND: -32601;
  static readonly INVALID_PARAMS: -32602;
  static readonly INTERNAL_ERROR: -32603;
  static readonly VM_FAILED: -32000;
  static readonly EXEC_FAILED: -32001;
  static readonly FILE_FAILED: -32002;
  static readonly CANCELLED: -32003;
  readonly rpcMessage: string;
  isVMError(): boolean;
  isExecError(): boolean;
  isFileError(): boolean;
}
export declare class TimeoutError extends MatchlockError {}
export declare class CancelledError extends MatchlockError {}
export declare class ClosedError extends MatchlockError {}
export declare class ProcessError extends MatchlockError {}
export declare class ValidationError extends MatchlockError {}
export declare class CLIError extends MatchlockError {}
export declare class CallbackError extends MatchlockError {}
export declare class StateError extends MatchlockError {}

export declare const VFS_HOOK_PHASE_BEFORE = "before";
export declare const VFS_HOOK_PHASE_AFTER = "after";
export declare const NETWORK_HOOK_PHASE_BEFORE = "before";
export declare const NETWORK_HOOK_PHASE_AFTER = "after";
export declare const VFS_HOOK_ACTION_ALLOW = "allow";
export declare const VFS_HOOK_ACTION_BLOCK = "block";
export declare const NETWORK_HOOK_ACTION_ALLOW = "allow";
export declare const NETWORK_HOOK_ACTION_BLOCK = "block";
export declare const NETWORK_HOOK_ACTION_MUTATE = "mutate";
export declare const VFS_HOOK_OP_STAT = "stat";
export declare const VFS_HOOK_OP_READDIR = "readdir";
export declare const VFS_HOOK_OP_OPEN = "open";
export declare const VFS_HOOK_OP_CREATE = "create";
export declare const VFS_HOOK_OP_MKDIR = "mkdir";
export declare const VFS_HOOK_OP_CHMOD = "chmod";
export declare const VFS_HOOK_OP_REMOVE = "remove";
export declare const VFS_HOOK_OP_REMOVE_ALL = "remove_all";
export declare const VFS_HOOK_OP_RENAME = "rename";
export declare const VFS_HOOK_OP_SYMLINK = "symlink";
export declare const VFS_HOOK_OP_READLINK = "readlink";
export declare const VFS_HOOK_OP_READ = "read";
export declare const VFS_HOOK_OP_WRITE = "write";
export declare const VFS_HOOK_OP_CLOSE = "close";
export declare const VFS_HOOK_OP_SYNC = "sync";
export declare const VFS_HOOK_OP_TRUNCATE = "truncate";

/** Builds the MatchlockError subclass that matches a status code (what the native layer rejects with). */
export declare function makeError(status: number, message: string, rpcCode?: number, cause?: unknown): MatchlockError;
/** Low-level access for tests and tools: the SWIG-generated ABI wrappers (unstable; not part of the API). */
export declare const _native: any;
/** Low-level access for tests and tools: the msgpack codec (unstable; not part of the API). */
export declare const _msgpack: { encode(value: unknown): Buffer; decode(buf: Uint8Array): any };
