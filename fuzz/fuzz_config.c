/*
 * fuzz_config: the configuration decoder of `quorumctl analyze`.
 *
 * The input is split into arguments at newlines (at most ARGS_MAX), parsed as
 * analyze flags, and when parsing succeeds the whole report is computed. Any
 * crash, sanitizer report or assertion failure is a bug: flags are untrusted.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analyze.h"
#include "quorum/err.h"
#include "util/alloc.h"

#define ARGS_MAX       32
#define INPUT_SIZE_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_SIZE_MAX) {
        return 0;
    }
    char *text = qr_malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[ARGS_MAX];
    int argc = 0;
    char *arg = text;
    while (argc < ARGS_MAX) {
        argv[argc++] = arg;
        char *newline = strchr(arg, '\n');
        if (newline == NULL) {
            break;
        }
        *newline = '\0';
        arg = newline + 1;
    }
    struct ctl_analyze_args args;
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (ctl_analyze_parse(argc, argv, &args, &v, errmsg) == 0 && !args.help) {
        FILE *sink = fopen("/dev/null", "w");
        if (sink != NULL) {
            (void)ctl_analyze_print(sink, &args, &v);
            (void)fclose(sink);
        }
    } else {
        /* A refusal always explains itself. */
        if (!args.help && strlen(errmsg) == 0) {
            __builtin_trap();
        }
    }
    qr_free(text);
    return 0;
}
