"use strict";
// matchlock-native: the Matchlock SDK for Node on top of libmatchlock (C).
const native = require("./lib/native");
const errors = require("./lib/errors");
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
  VFS_HOOK_OP_STAT: "stat",
  VFS_HOOK_OP_READDIR: "readdir",
  VFS_HOOK_OP_OPEN: "open",
  VFS_HOOK_OP_CREATE: "create",
  VFS_HOOK_OP_MKDIR: "mkdir",
  VFS_HOOK_OP_CHMOD: "chmod",
  VFS_HOOK_OP_REMOVE: "remove",
  VFS_HOOK_OP_REMOVE_ALL: "remove_all",
  VFS_HOOK_OP_RENAME: "rename",
  VFS_HOOK_OP_SYMLINK: "symlink",
  VFS_HOOK_OP_READLINK: "readlink",
  VFS_HOOK_OP_READ: "read",
  VFS_HOOK_OP_WRITE: "write",
  VFS_HOOK_OP_CLOSE: "close",
  VFS_HOOK_OP_SYNC: "sync",
  VFS_HOOK_OP_TRUNCATE: "truncate",
};

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
