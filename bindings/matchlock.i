/* bindings/matchlock.i - the SWIG description of the libmatchlock ABI that
 * every SWIG-generated binding (Lua, Node) shares.
 *
 * How a binding uses it: its own top-level interface file (lua/…, node/…)
 * declares `%module`, defines the typemaps of its language (strings with
 * NUL bytes, string arrays, msgpack buffers, handles, callbacks) and then
 * `%include "matchlock.i"` (with -I<repo>/bindings).  Typemaps must be
 * defined before this file is included, because they apply to the
 * declarations parsed here.
 *
 * What lives here is language-neutral: which declarations exist, how the
 * argument groups are named (so each language's typemaps can match them by
 * name), and which functions no generated wrapper may expose.  Anything that
 * needs a language's API goes in that language's folder, or here under
 * #ifdef SWIGLUA / #ifdef SWIGJAVASCRIPT when it must sit next to a shared
 * declaration.
 */
#ifndef MLK_BINDINGS_MATCHLOCK_I
#define MLK_BINDINGS_MATCHLOCK_I

%{
#include "matchlock.h"
%}

/* Fixed-width integers must map to numbers, not opaque pointer objects. */
%include <stdint.i>

/* ---------------------------------------------------------------------- */
/* Never exposed by a generated wrapper.                                  */

/* Raw free of library memory: every wrapper frees what it receives itself
 * (typemaps copy char ** outputs into host strings and mlk_free them). */
%ignore mlk_free;

/* ---------------------------------------------------------------------- */
/* Argument groups, named once so each language's typemaps can match them.
 *
 *  (const char *const *argv, size_t n)      string arrays:
 *      mlk_config_set_launcher, mlk_sandbox_set_dns_servers,
 *      mlk_sandbox_set_port_forward_addresses, mlk_sandbox_set_entrypoint,
 *      mlk_sandbox_add_secret (hosts, nhosts), mlk_allow_list_*,
 *      mlk_port_forward*, (specs, n) (addrs, naddrs)
 *  (const char *msgpack, size_t len)        a msgpack document in
 *  (const char *data, size_t len)           bytes in (may hold NUL)
 *  (char **json, size_t *len), (char **msgpack, size_t *len), char **msg
 *                                           library-allocated outputs
 *                                           (free with mlk_free)
 *
 * The header already uses these names; nothing to rename here.  A language
 * that wants a differently named group uses %apply in its own file. */

/* ---------------------------------------------------------------------- */
/* The declarations.                                                      */

%include "matchlock.h"

#endif /* MLK_BINDINGS_MATCHLOCK_I */
