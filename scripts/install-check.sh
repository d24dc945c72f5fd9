#!/usr/bin/env bash
# Install into a scratch prefix and build a consumer twice: with pkg-config
# and with CMake's find_package(matchlock).  Proves the installed package works.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null

cat > "$prefix/consumer.c" <<'C'
#include <matchlock.h>
#include <stdio.h>
int main(void) {
    if (mlk_version() / 10000 != MLK_VERSION_MAJOR) return 1;
    printf("libmatchlock %s\n", mlk_version_str());
    return 0;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}"
libdir=$(pkg-config --variable=libdir matchlock)
cc "$prefix/consumer.c" $(pkg-config --cflags --libs matchlock) -o "$prefix/consumer-pc"
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-pc"

# static: libmatchlock.a and its private requirements from `pkg-config --static`
test -f "$libdir/libmatchlock.a"
# it defines no global symbol but the header's mlk_ functions, so a program
# may have functions named like the core's own (die, submit, queue_push)
foreign=$(nm -g --defined-only "$libdir/libmatchlock.a" | awk 'NF == 3 && $3 !~ /^mlk_/ {print $3}')
if [ -n "$foreign" ]; then
  echo "install-check: libmatchlock.a exports symbols outside mlk_:" $foreign >&2; exit 1
fi
cat > "$prefix/clash.c" <<'C'
#include <matchlock.h>
#include <stdio.h>
/* names the core uses internally: a static link must not clash with them */
void die(void) {}
int submit(void) { return 0; }
int queue_push(void) { return 0; }
char *xstrdup(const char *s) { return (char *)s; }
/* take the client's code in, which calls the core's own die() and queue_push() */
void *volatile keep;
int main(void) { keep = (void *)&mlk_client_new; die(); printf("libmatchlock %s\n", mlk_version_str()); return submit() + queue_push(); }
C
cc "$prefix/clash.c" $(pkg-config --cflags matchlock) -static $(pkg-config --static --libs matchlock) -o "$prefix/clash-static"
"$prefix/clash-static" >/dev/null
cc "$prefix/consumer.c" $(pkg-config --cflags matchlock) -static $(pkg-config --static --libs matchlock) -o "$prefix/consumer-static"
"$prefix/consumer-static"
if ldd "$prefix/consumer-static" >/dev/null 2>&1; then echo "install-check: consumer-static is not static" >&2; exit 1; fi
# the API reference, when `make docs` built it
if [ -d "$build/docs/html" ]; then
  test -f "$prefix/share/doc/libmatchlock/html/index.html"
  test -f "$prefix/share/man/man3/matchlock.h.3"
fi

mkdir -p "$prefix/cm"
cat > "$prefix/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(matchlock 1.0 REQUIRED)
add_executable(consumer ../consumer.c)
target_link_libraries(consumer matchlock::matchlock)
CM
cmake -S "$prefix/cm" -B "$prefix/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/cm/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/cm/build/consumer"
echo "install-check: pkg-config (shared and --static) and find_package(matchlock) work"
