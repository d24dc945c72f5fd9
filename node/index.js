"use strict";
// matchlock-native: the Matchlock SDK for Node on top of libmatchlock (C).
const native = require("./lib/native");
// fromNative is the library's own (an addon error to a MatchlockError), not an export
const { fromNative: _fromNative, ...errors } = require("./lib/errors");
const { Client, defaultConfig } = require("./lib/client");
const { Sandbox, createSandbox } = require("./lib/builder");
const msgpack = require("./lib/msgpack");

const C = {
  VFS_HOOK_PHASE_BEFORE: "before",
  VFS_HOOK_PHASE_AFTER: "after",
  NETWORK_HOOK_PHASE_BEFORE: "before",
  NETWORK_HOOK_PHASE_AFTER: "after",
  VFS_HOOK_ACTION_ALLOW: "allow",
  VFS_HOOK_ACTION_BLOCK: "block",
  NETWORK_HOOK_ACTION_ALLOW: "allow",
  NETWORK_HOOK_ACTION_BLOCK: "block",
  NETWORK_HOOK_ACTION_MUTATE: "mutate",
};
// VFS_HOOK_OP_STAT ... VFS_HOOK_OP_TRUNCATE: the core's op names (mlk_vfs_op_name)
for (let i = 0, op; (op = native.mlk_vfs_op_name(i)) != null; i++) C[`VFS_HOOK_OP_${op.toUpperCase()}`] = op;

/** The runtime libmatchlock version (e.g. "1.2.0"). */
function version() {
  return native.mlk_version_str();
}

module.exports = {
  Client,
  Sandbox,
  createSandbox,
  defaultConfig,
  version,
  ...errors,
  ...C,
  /** Low-level access for tests and tools: the SWIG-generated ABI wrappers and the msgpack codec. */
  _native: native,
  _msgpack: msgpack,
};
