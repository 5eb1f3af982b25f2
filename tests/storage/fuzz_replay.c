/*
 * fuzz_replay: runs a libFuzzer target over checked-in corpus files, without libFuzzer.
 *
 * Linked with one fuzz/fuzz_<name>.c, it calls LLVMFuzzerTestOneInput once per
 * file of each directory given, so the ctest smoke tests fuzz.<name> replay the
 * corpus in every build (with ASan in the asan preset). A target signals a bug
 * by crashing (trap, sanitizer, assertion); this driver then dies with it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

#define INPUT_SIZE_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        (void)fprintf(stderr, "fuzz_replay: cannot open %s\n", path);
        return 1;
    }
    size_t size = fread(buf, 1, INPUT_SIZE_MAX, f);
    (void)fclose(f); /* Read-only. */
    (void)LLVMFuzzerTestOneInput(buf, size);
    return 0;
}

static int replay_dir(const char *dir, uint8_t *buf, size_t *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        (void)fprintf(stderr, "fuzz_replay: cannot open directory %s\n", dir);
        return 1;
    }
    int rv = 0;
    struct dirent *e;
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            rv = 1;
            break;
        }
        rv = replay_file(path, buf);
        (*count)++;
    }
    (void)closedir(d); /* Listing done. */
    return rv;
}

int main(int argc, char **argv)
{
    uint8_t *buf = qr_malloc(INPUT_SIZE_MAX);
    if (buf == NULL || argc < 2) {
        (void)fprintf(stderr, "usage: fuzz_replay <corpus directory>...\n");
        qr_free(buf);
        return 2;
    }
    size_t count = 0;
    int rv = 0;
    for (int i = 1; i < argc && rv == 0; i++) {
        rv = replay_dir(argv[i], buf, &count);
    }
    qr_free(buf);
    if (rv == 0) {
        (void)printf("fuzz_replay: %zu inputs replayed\n", count);
    }
    return rv;
}
