/* Compiled for each macOS target by scripts/check-macos.sh: the hand-written
 * event-config.h beside this file must match that target's ABI and headers. */
#include <event2/event-config.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>

_Static_assert(sizeof(int) == EVENT__SIZEOF_INT, "int");
_Static_assert(sizeof(long) == EVENT__SIZEOF_LONG, "long");
_Static_assert(sizeof(long long) == EVENT__SIZEOF_LONG_LONG, "long long");
_Static_assert(sizeof(off_t) == EVENT__SIZEOF_OFF_T, "off_t");
_Static_assert(sizeof(short) == EVENT__SIZEOF_SHORT, "short");
_Static_assert(sizeof(size_t) == EVENT__SIZEOF_SIZE_T, "size_t");
_Static_assert(sizeof(void *) == EVENT__SIZEOF_VOID_P, "void *");
_Static_assert(sizeof(pthread_t) == EVENT__SIZEOF_PTHREAD_T, "pthread_t");
_Static_assert(sizeof(time_t) == EVENT__SIZEOF_TIME_T, "time_t");

int check(void)
{
    struct addrinfo ai;
    struct sockaddr_storage ss;
    struct timeval a = {0, 0}, b = {0, 0}, c;
    timeradd(&a, &b, &c);
    timerclear(&c);
    ai.ai_family = ss.ss_family = AF_UNIX;
    uint8_t u8 = 0; uint16_t u16 = 0; uint32_t u32 = 0; uint64_t u64 = 0; uintptr_t up = 0;
    return timerisset(&c) + ai.ai_family + (int)(u8 + u16 + u32 + u64 + up) + gettimeofday(&a, NULL) +
           getaddrinfo("x", NULL, NULL, NULL);
}
