// Types of the ESM entry point (index.mjs): the same names as index.d.ts,
// plus the default export (the whole module object, as CommonJS gives it).
export * from "./index.js";
import * as matchlock from "./index.js";
export default matchlock;
