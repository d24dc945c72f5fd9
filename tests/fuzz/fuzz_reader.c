/* libFuzzer target: arbitrary bytes as the server's output, through the
 * client's real reader (core/client_fuzz.inc, built with -DMLK_FUZZ).
 * Run: make fuzz (long) or scripts/fuzz.sh (bounded, part of make test). */
#include <stddef.h>
#include <stdint.h>
#include <signal.h>

int mlkfuzz_reader(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    signal(SIGPIPE, SIG_IGN); /* the harness's pipes, not the library's */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return mlkfuzz_reader(data, size);
}
