/*
 * fuzz_flags: quorumd's command-line decoder (server/flags.c).
 *
 * The input is split into arguments at newlines (at most ARGS_MAX) and parsed as quorumd's
 * flags. The parser must accept or refuse with a one-line message; on success every peer
 * has an id and an address and this node is listed. Any crash, sanitizer report or
 * assertion failure is a bug: a command line (or a script that builds one) is untrusted.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quorum/err.h"
#include "server/flags.h"
#include "util/alloc.h"
#include "util/assert.h"

#define ARGS_MAX       48
#define INPUT_SIZE_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct qr_server_flags *f, int rv, const char *errmsg)
{
    if (rv < 0) {
        QR_ASSERT(errmsg[0] != '\0' && strchr(errmsg, '\n') == NULL);
        return;
    }
    if (rv > 0) {
        QR_ASSERT(f->is_help || f->is_version);
        return;
    }
    bool is_listed = false;
    QR_ASSERT(f->peers_count >= 1 && f->peers_count <= QR_SERVER_FLAGS_PEERS_MAX);
    for (size_t i = 0; i < f->peers_count; i++) {
        QR_ASSERT(f->peers[i].id != 0 && f->peers[i].address != NULL);
        is_listed = is_listed || f->peers[i].id == f->id;
    }
    QR_ASSERT(is_listed && f->data_dir != NULL && f->listen != NULL);
}

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
    char *argv[ARGS_MAX + 1];
    int argc = 0;
    argv[argc++] = "quorumd";
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
    argv[argc] = NULL;
    static struct qr_server_flags f; /* Large: keep it off the stack. */
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__server_flags_parse(&f, argc, argv, errmsg);
    check(&f, rv, errmsg);
    qr_free(text);
    return 0;
}
