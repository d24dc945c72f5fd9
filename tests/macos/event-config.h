/* event-config.h for macOS (arm64 and x86_64), written for the macOS
 * cross-compile check (scripts/check-macos.sh) in place of the one libevent's
 * configure generates on a Mac.  Only the macros libevent 2.1's public
 * headers test (event2/util.h, event.h, buffer.h, thread.h), with the values
 * macOS has: LP64, a 64-bit off_t, pthreads, BSD socket headers.  The rest of
 * a generated config (the backend: kqueue, no epoll; HAVE_* for libevent's
 * own sources) does not reach a program that includes the headers. */
#ifndef EVENT2_EVENT_CONFIG_H_INCLUDED_
#define EVENT2_EVENT_CONFIG_H_INCLUDED_

#define EVENT__NUMERIC_VERSION 0x02010c00
#define EVENT__VERSION "2.1.12-stable"
#define EVENT__PACKAGE_VERSION "2.1.12"

/* types and headers (darwin: <stdint.h>, <inttypes.h>, <sys/uio.h>, ...) */
#define EVENT__HAVE_ERRNO_H 1
#define EVENT__HAVE_INTTYPES_H 1
#define EVENT__HAVE_NETDB_H 1
#define EVENT__HAVE_STDDEF_H 1
#define EVENT__HAVE_STDINT_H 1
#define EVENT__HAVE_SYS_TIME_H 1
#define EVENT__HAVE_SYS_TYPES_H 1
#define EVENT__HAVE_SYS_UIO_H 1
#define EVENT__HAVE_UINT8_T 1
#define EVENT__HAVE_UINT16_T 1
#define EVENT__HAVE_UINT32_T 1
#define EVENT__HAVE_UINT64_T 1
#define EVENT__HAVE_UINTPTR_T 1
#define EVENT__HAVE_GETADDRINFO 1
#define EVENT__HAVE_GETTIMEOFDAY 1
#define EVENT__HAVE_STRUCT_ADDRINFO 1
#define EVENT__HAVE_STRUCT_SOCKADDR_STORAGE_SS_FAMILY 1
#define EVENT__HAVE_TIMERADD 1
#define EVENT__HAVE_TIMERCLEAR 1
#define EVENT__HAVE_TIMERISSET 1
#define EVENT__HAVE_PTHREADS 1

/* the backend libevent picks on macOS (informational: no public header uses it) */
#define EVENT__HAVE_KQUEUE 1
#define EVENT__HAVE_POLL 1
#define EVENT__HAVE_SELECT 1

/* sizes: both Apple ABIs are LP64 */
#define EVENT__SIZEOF_INT 4
#define EVENT__SIZEOF_LONG 8
#define EVENT__SIZEOF_LONG_LONG 8
#define EVENT__SIZEOF_OFF_T 8
#define EVENT__SIZEOF_SHORT 2
#define EVENT__SIZEOF_SIZE_T 8
#define EVENT__SIZEOF_VOID_P 8
#define EVENT__SIZEOF_PTHREAD_T 8
#define EVENT__SIZEOF_TIME_T 8

#endif
