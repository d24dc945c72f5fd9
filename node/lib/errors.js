"use strict";
// Errors of matchlock-native.  Every failure is a MatchlockError; the
// subclass says what kind, the fields say exactly which:
//   status       the MLK_E* code of the C library (negative number)
//   errname      its symbolic name ("MLK_ETIMEDOUT")
//   code         the status, except on RPCError where it is the server's
//                JSON-RPC code (as in the official TypeScript SDK)
//   rpcCode      the JSON-RPC code (0 when the server was not involved)
//   upstreamName the official SDKs' error variable ("ErrImageRequired"),
//                or undefined

const native = require("./native");

class MatchlockError extends Error {
  constructor(message, opts = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = "MatchlockError";
    const status = opts.status ?? native.MLK_EINVAL;
    this.status = status;
    this.errname = native.mlk_errname(status) ?? `MLK_E${-status}`;
    this.code = status;
    this.rpcCode = opts.rpcCode ?? 0;
    this.upstreamName = native.mlk_err_upstream_name(status) ?? undefined;
  }
}

class RPCError extends MatchlockError {
  constructor(code, message, opts = {}) {
    super(`[${code}] ${message}`, { status: opts.status ?? native.MLK_ERPC, rpcCode: code, cause: opts.cause });
    this.name = "RPCError";
    this.code = code;
    this.rpcMessage = message;
  }
  isVMError() {
    return this.code === RPCError.VM_FAILED;
  }
  isExecError() {
    return this.code === RPCError.EXEC_FAILED;
  }
  isFileError() {
    return this.code === RPCError.FILE_FAILED;
  }
}
RPCError.PARSE_ERROR = -32700;
RPCError.INVALID_REQUEST = -32600;
RPCError.METHOD_NOT_FOUND = -32601;
RPCError.INVALID_PARAMS = -32602;
RPCError.INTERNAL_ERROR = -32603;
RPCError.VM_FAILED = -32000;
RPCError.EXEC_FAILED = -32001;
RPCError.FILE_FAILED = -32002;
RPCError.CANCELLED = -32003;

function sub(name) {
  const C = class extends MatchlockError {
    constructor(message, opts) {
      super(message, opts);
      this.name = name;
    }
  };
  Object.defineProperty(C, "name", { value: name });
  return C;
}

/** The deadline of a call passed (MLK_ETIMEDOUT). */
const TimeoutError = sub("TimeoutError");
/** The call was cancelled: an AbortSignal fired, or cancel was asked (MLK_ECANCELED). */
const CancelledError = sub("CancelledError");
/** The client is closed or its server is gone (MLK_ECLOSED, MLK_EDEAD). */
const ClosedError = sub("ClosedError");
/** The matchlock process could not be started or spoke nonsense (MLK_ESPAWN, MLK_EPROTO). */
const ProcessError = sub("ProcessError");
/** An argument or a builder option is invalid; nothing was sent. */
const ValidationError = sub("ValidationError");
/** A CLI side channel (rm, volume) failed (MLK_ECLI and friends). */
const CLIError = sub("CLIError");
/** One of your callbacks (or a stdin source) threw; `cause` holds what it threw (MLK_EUSER). */
const CallbackError = sub("CallbackError");
/** The call is not valid now (create twice, no sandbox yet). */
const StateError = sub("StateError");

// The class of a status and its hint are the core's (mlk_error_category,
// mlk_error_hint; the table is core/errors.c).  A server's error, and the
// server's cancellation (a JSON-RPC code), is an RPCError as in the
// official TypeScript SDK.
const BY_CATEGORY = {
  MatchlockError,
  RPCError,
  TimeoutError,
  CancelledError,
  ClosedError,
  ProcessError,
  ValidationError,
  CLIError,
  CallbackError,
  StateError,
};

function classFor(status) {
  return BY_CATEGORY[native.mlk_error_category(status)] ?? MatchlockError;
}

/** Build the error for a failed call (used by the addon for every rejection). */
function makeError(status, message, rpcCode, cause) {
  message = message || native.mlk_strerror(status) || `error ${status}`;
  // what the server answered with its own code (an error, or its
  // cancellation) is an RPCError
  const C = classFor(status);
  if (rpcCode || C === RPCError) return new RPCError(rpcCode, message, { status, cause });
  const hint = native.mlk_error_hint(status);
  const text = hint && !message.includes(hint) ? `${message} (${hint})` : message;
  return new C(text, { status, rpcCode, cause });
}

// An error the addon raised itself with a status (the core's refusal of a
// NUL inside a string list, in the addon's conversion of the list) as the
// library's error of that status; anything else as it is.
function fromNative(e) {
  return e instanceof MatchlockError || typeof e?.status !== "number" ? e : makeError(e.status, e.message, 0);
}

module.exports = { ...BY_CATEGORY, makeError, fromNative };
