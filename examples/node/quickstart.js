#!/usr/bin/env node
// Quickstart: a sandbox on the local backend, a command, a stream, a pipe,
// files, and a clean shutdown.
//   make build && (cd node && npm ci)             (examples/node/README.md)
//   MATCHLOCK_BIN=build/matchlock-local node examples/node/quickstart.js
"use strict";
const path = require("node:path");
const { Client, Sandbox, MatchlockError } = require(process.env.MATCHLOCK_NATIVE || path.join(__dirname, "..", "..", "node"));

async function main() {
  const client = new Client(); // binary: $MATCHLOCK_BIN, else "matchlock"
  try {
    const sandbox = new Sandbox("alpine:latest").withCPUs(1).withMemory(256).withEnv("GREETING", "hello");
    const id = await client.create(sandbox);
    console.log(`created ${id}`);

    const r = await client.exec("echo $GREETING from $(uname -s)", { encoding: "utf8" });
    console.log(`exec: exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}`);

    await client.execStream("for i in 1 2 3; do echo line $i; sleep 0.1; done", {
      stdout: (chunk) => process.stdout.write(`stream: ${chunk}`),
    });

    const out = [];
    await client.execPipe("tr a-z A-Z", { stdin: "piped through tr\n", stdout: (b) => out.push(b) });
    console.log(`pipe: ${Buffer.concat(out).toString().trim()}`);

    await client.writeFile("/tmp/note.txt", "written from Node\n");
    console.log(`readFile: ${(await client.readFile("/tmp/note.txt")).toString().trim()}`);
    console.log(`listFiles: ${(await client.listFiles("/tmp")).map((f) => f.name).join(", ")}`);

    // a call with a deadline
    try {
      await client.exec("sleep 5", { timeoutMs: 200 });
    } catch (e) {
      if (!(e instanceof MatchlockError)) throw e;
      console.log(`timeout: ${e.name} ${e.errname}`);
    }
  } finally {
    await client.close();
    await client.remove();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
