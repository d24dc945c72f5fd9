#!/usr/bin/env node
// Hooks: JS functions (sync or async) in interception rules.
//   - a network hook rewrites an HTTP response the sandbox sees, another blocks
//   - a VFS after-hook and a dangerous hook (which calls the client back)
//   - an action hook that blocks writeFile, a mutate hook that rewrites it
//   - the event stream (client.on("event"))
//   make build && (cd node && npm ci)             (examples/node/README.md)
//   MATCHLOCK_BIN=build/matchlock-local node examples/node/hooks.js
"use strict";
const http = require("node:http");
const path = require("node:path");
const { Client, Sandbox, MatchlockError } = require(process.env.MATCHLOCK_NATIVE || path.join(__dirname, "..", "..", "node"));

async function main() {
  // A tiny origin server on the host for the sandbox to call.
  const origin = http.createServer((req, res) => res.end(`origin says hi to ${req.url}\n`));
  await new Promise((r) => origin.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${origin.address().port}`;

  const client = new Client();
  client.on("event", (e) => {
    if (e.type === "network") console.log(`event: ${e.network.method} ${e.network.url} -> ${e.network.status_code}${e.network.blocked ? " (blocked)" : ""}`);
    if (e.type === "file") console.log(`event: file ${e.file.op} ${e.file.path}`);
  });
  client.on("hookError", (err, info) => console.error(`${info.kind} hook ${info.name} failed: ${err.message}`));

  const sandbox = new Sandbox("alpine:latest")
    .allowPrivateIPs() // the origin is on loopback
    .withWorkspace("/workspace")
    .mountMemory("/workspace")
    .withNetworkInterception({
      rules: [
        {
          name: "rewrite-body",
          phase: "after",
          path: "/greeting",
          hook: async (req) => {
            await new Promise((r) => setTimeout(r, 10)); // async is fine
            return { response: { setBody: `the host rewrote ${req.method} ${req.path} (was ${req.statusCode})\n` } };
          },
        },
        { name: "no-admin", phase: "before", path: "/admin*", hook: () => ({ action: "block" }) },
      ],
    })
    .withVFSInterception({
      rules: [
        { name: "log-txt", phase: "after", ops: ["create"], path: "/workspace/*.txt", hook: (ev) => console.log(`after-hook: ${ev.op} ${ev.path}`) },
        {
          name: "count-lines",
          phase: "after",
          ops: ["create"],
          path: "/workspace/in/*",
          dangerousHook: async (c, ev) => {
            const r = await c.exec(`wc -l < ${ev.path}`, { encoding: "utf8" });
            console.log(`dangerous hook: ${ev.path} has ${r.stdout.trim()} lines`);
          },
        },
        { name: "no-dotenv", phase: "before", path: "/workspace/.env", actionHook: () => "block" },
        { name: "stamp", phase: "before", ops: ["write"], path: "/workspace/notes/*", mutateHook: (req) => `# stamped by the host\n${req.data}` },
      ],
    });

  try {
    await client.create(sandbox);
    const curl = (p) => client.exec(`curl -s -w ' [%{http_code}]\\n' ${url}${p}`, { encoding: "utf8" }).then((r) => r.stdout.trim());
    console.log(`GET /greeting: ${await curl("/greeting")}`);
    console.log(`GET /admin:    ${await curl("/admin")}`);

    await client.exec("echo hello > /workspace/a.txt; mkdir -p /workspace/in /workspace/notes; printf '1\\n2\\n3\\n' > /workspace/in/data");
    await new Promise((r) => setTimeout(r, 300)); // let the after-hooks run

    try {
      await client.writeFile("/workspace/.env", "SECRET=1");
    } catch (e) {
      if (!(e instanceof MatchlockError)) throw e;
      console.log(`writeFile .env: ${e.message}`);
    }
    await client.writeFile("/workspace/notes/todo", "buy milk\n");
    console.log(`notes/todo:\n${(await client.readFile("/workspace/notes/todo")).toString()}`);
  } finally {
    await client.close();
    await client.remove();
    origin.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
