/* fuzz_recipe.c — libFuzzer target for the recipe loader: the input is written as a recipe file
 * (next to a valid base recipe and model it may extend) and loaded with recipe_load; leading
 * "#set PATH=VALUE" lines become --set options. Built with -DGRAFT_FUZZ_STANDALONE it is the
 * regression runner instead: every file under the given folders goes through the same path. */
#define _POSIX_C_SOURCE 200809L
#include "compile.h"
#include "recipe.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void write_text(const char *name, const char *text, size_t len)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite(text, 1, len, f);
    fclose(f);
}

static void setup(void)
{
    if (dir[0]) return;
    snprintf(dir, sizeof dir, "/tmp/graft-fuzz-recipe.%ld", (long)getpid());
    mkdir(dir, 0700);
    static const char model[] = "model:\n"
                                "  input: [1, 8, 8]\n"
                                "  layers:\n"
                                "    - {name: conv1, type: conv2d, filters: 4, kernel: 3, padding: 1}\n"
                                "    - {name: bn1, type: batchnorm}\n"
                                "    - {name: relu1, type: relu}\n"
                                "    - {name: pool1, type: maxpool, size: 2}\n"
                                "    - {name: flatten, type: flatten}\n"
                                "    - {name: fc1, type: dense, units: 10}\n";
    static const char base[] = "model: {file: model.yaml}\n"
                               "data:\n"
                               "  train: {format: npy, images: data.bin, labels: data.bin}\n"
                               "train: {epochs: 4}\n";
    write_text("model.yaml", model, sizeof model - 1);
    write_text("base.yaml", base, sizeof base - 1);
    write_text("data.bin", "x", 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    /* leading "#set K=V" lines are --set options */
    const char *sets[8];
    char *owned[8];
    int nsets = 0;
    size_t off = 0;
    while (nsets < 8 && size - off > 5 && memcmp(data + off, "#set ", 5) == 0) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - data) : size;
        owned[nsets] = strndup((const char *)data + off + 5, end - off - 5);
        if (!owned[nsets]) break;
        sets[nsets] = owned[nsets];
        nsets++;
        off = nl ? end + 1 : size;
    }
    write_text("in.yaml", (const char *)data, size);
    char path[512];
    snprintf(path, sizeof path, "%s/in.yaml", dir);
    graft_recipe *r = NULL;
    graft_diags d = {0};
    graft_status s = recipe_load(path, sets, nsets, &r, &d);
    if (s == GRAFT_OK) {
        /* a loaded recipe must survive everything the later stages ask of it */
        char why[256];
        (void)recipe_feature_cache(r, why, sizeof why);
        char *y = recipe_dump_yaml(r);
        free(y);
        for (int i = 0; i < r->train.nunfreeze; i++)
            recipe_apply_freeze(r, &r->train.unfreeze[i].freeze, &d);
        graph_plan gp;
        graft_error pe;
        if (plan_analyse(&r->graph, true, r->transfer.bn_train, false, r->train.optimizer,
                         r->train.l2sp > 0, 0, r->train.batch_size, &gp, &pe) == GRAFT_OK)
            plan_free(&gp);
    } else if (d.count == 0) {
        abort(); /* a failure must always say why */
    }
    for (int i = 0; i < d.count; i++)
        if (!d.items[i].message[0]) abort();
    recipe_free(r);
    graft_diags_free(&d);
    for (int i = 0; i < nsets; i++) free(owned[i]);
    return 0;
}

#ifdef GRAFT_FUZZ_STANDALONE
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static uint8_t buf[RECIPE_MAX_FILE_BYTES + 2];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    double t0 = now_seconds();
    LLVMFuzzerTestOneInput(buf, n);
    double dt = now_seconds() - t0;
    if (dt > 1.0) {
        fprintf(stderr, "%s: took %.2f s (limit 1 s)\n", path, dt);
        return -1;
    }
    return 1;
}

static int run_path(const char *path, int *slow)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) {
        int r = run_file(path);
        if (r < 0) (*slow)++;
        return r != 0;
    }
    DIR *dp = opendir(path);
    if (!dp) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        n += run_path(p, slow);
    }
    closedir(dp);
    return n;
}

int main(int argc, char **argv)
{
    int n = 0, slow = 0;
    for (int i = 1; i < argc; i++) n += run_path(argv[i], &slow);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("fuzz_recipe: %d inputs, %d slow\n", n, slow);
    return n == 0 || slow ? 1 : 0;
}
#endif
