/* cmd_bench.c — `graft bench gemm ...`: GFLOP/s of one SGEMM shape on a device with the kernel
 * gemm() would use (tuned or default) or one named with --kernel. `graft bench RECIPE` (a whole
 * training step) lives in bench_recipe.c; cmd_bench dispatches on the first word. */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune.h"

const char BENCH_USAGE[] =
    "usage: graft bench gemm [--size N | --m M --n N --k K] [--ta] [--tb] [--kernel KERNEL]\n"
    "                        [--reps R] [--device SPEC] [--json]\n"
    "       graft bench RECIPE [--devices all|SPEC,...] [--steps N] [--warmup N] [--batch N]\n"
    "                   [--no-tune] [--json OUT] [--set PATH=VALUE]...\n"
    "                   [--model-launch-us L --model-bandwidth-gbs B [--model-gflops P]]\n"
    "                   (a recipe's training step per layer and its cost model per op family:\n"
    "                   docs/bench-schema.md; --model-* estimate a step on another device from\n"
    "                   the counts: launches*L + max(traffic/B, FLOPs/P), a lower bound)\n"
    "\n"
    "Time one row-major SGEMM C = op(A) op(B) on the device and print GFLOP/s with the kernel\n"
    "used: the tuned choice from `graft tune` when the cache has one for this shape, else the\n"
    "device's default. The first call (kernel compiles) is not timed; the figure is the best\n"
    "of R samples (default 5) of about 50 ms each.\n"
    "\n"
    "  --size N          M = N = K = N (default 1024)\n"
    "  --m/--n/--k       a rectangular shape\n"
    "  --ta, --tb        transpose A / B (as the backward GEMMs do)\n"
    "  --kernel KERNEL   instead of the choice: clblast[:SET], outer:MR,NV[,MT[,VW]] (MR x NV*VW\n"
    "                    tile, MT row blocks per work-item) or inner:MR,NC[,KS[,VW]] (MR x NC\n"
    "                    dot products, K split KS ways); VW is 8 or 16\n"
    "  --device SPEC     cpu, gpu, nvidia, pocl, P:D, or a name substring (or GRAFT_DEVICE)\n"
    "  --json            one JSON object: {device, m, n, k, ta, tb, kernel, tuned, seconds,\n"
    "                    gflops}\n";

static bool parse_size(const char *s, size_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 1 || v > (1LL << 30)) return false;
    *out = (size_t)v;
    return true;
}

static int bench_gemm(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "bench gemm", BENCH_USAGE, argc, argv);
    const char *opt, *pos, *device = NULL, *kernel = NULL;
    size_t m = 0, n = 0, k = 0, size = 0;
    int reps = 5;
    bool json = false, ta = false, tb = false;
    while (cli_next(&a, &opt, &pos)) {
        if (!opt) return cli_usage_error(&a, "unexpected argument '%s'", pos);
        if (strcmp(opt, "--json") == 0) json = true;
        else if (strcmp(opt, "--ta") == 0) ta = true;
        else if (strcmp(opt, "--tb") == 0) tb = true;
        else if (strcmp(opt, "--device") == 0 || strcmp(opt, "--kernel") == 0 ||
                 strcmp(opt, "--reps") == 0 || strcmp(opt, "--size") == 0 ||
                 strcmp(opt, "--m") == 0 || strcmp(opt, "--n") == 0 || strcmp(opt, "--k") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (strcmp(opt, "--device") == 0) device = v;
            else if (strcmp(opt, "--kernel") == 0) kernel = v;
            else if (strcmp(opt, "--reps") == 0) {
                reps = atoi(v);
                if (reps < 1 || reps > 1000)
                    return cli_usage_error(&a, "--reps %s: expected 1 to 1000", v);
            } else {
                size_t *dst = strcmp(opt, "--size") == 0 ? &size
                              : strcmp(opt, "--m") == 0  ? &m
                              : strcmp(opt, "--n") == 0  ? &n
                                                         : &k;
                if (!parse_size(v, dst))
                    return cli_usage_error(&a, "%s %s: expected a positive integer", opt, v);
            }
        } else return cli_usage_error(&a, "unknown option %s", opt);
    }
    if (size && (m || n || k))
        return cli_usage_error(&a, "--size and --m/--n/--k exclude each other");
    if (!size && (m || n || k) && !(m && n && k))
        return cli_usage_error(&a, "--m, --n and --k go together");
    if (!m) m = n = k = size ? size : 1024;

    graft_error e = {0};
    graft_context *ctx = NULL;
    graft_context_options co = {.device = device};
    if (graft_context_create(&co, &ctx, &e)) return cli_fail(&e);
    gemm_shape s = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k};
    gemm_choice ch;
    bool tuned = false;
    if (kernel) {
        if (gemm_choice_parse(kernel, &ch, &e)) {
            graft_context_free(ctx);
            return cli_fail(&e);
        }
        if (!gemm_choice_fits(&ch, &s)) {
            graft_context_free(ctx);
            return cli_usage_error(&a, "kernel %s cannot run this shape (%s)", kernel,
                                   ch.backend == GEMM_BACKEND_OUTER ? "outer needs no --tb"
                                                                    : "inner needs --tb, no --ta");
        }
    } else ch = gemm_choose(ctx, &s, &tuned);
    double sec = 0;
    if (tune_time(ctx, &ch, &s, reps, &sec, &e)) {
        graft_context_free(ctx);
        return cli_fail(&e);
    }
    double gflops = 2.0 * (double)m * (double)n * (double)k / sec / 1e9;
    char desc[320];
    gemm_choice_describe(&ch, desc, sizeof desc);
    const graft_device_info *d = graft_context_device(ctx);
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "device", json_string(d->name));
        json_object_set_new(o, "platform", json_string(d->platform));
        json_object_set_new(o, "m", json_integer((json_int_t)m));
        json_object_set_new(o, "n", json_integer((json_int_t)n));
        json_object_set_new(o, "k", json_integer((json_int_t)k));
        json_object_set_new(o, "ta", json_boolean(ta));
        json_object_set_new(o, "tb", json_boolean(tb));
        json_object_set_new(o, "kernel", json_string(desc));
        json_object_set_new(o, "tuned", json_boolean(tuned));
        json_object_set_new(o, "seconds", json_real(sec));
        json_object_set_new(o, "gflops", json_real(gflops));
        char *txt = json_dumps(o, JSON_INDENT(2));
        if (txt) puts(txt);
        free(txt);
        json_decref(o);
    } else {
        printf("%zux%zux%zu%s%s on %s: %.1f GFLOP/s (%.3f ms)\n", m, n, k, ta ? " ta" : "",
               tb ? " tb" : "", d->name, gflops, sec * 1e3);
        printf("kernel: %s%s\n", desc,
               kernel ? " (--kernel)" : tuned ? " (tuned)" : " (default: run `graft tune`)");
    }
    graft_context_free(ctx);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    /* anything but `gemm` is a recipe: bench_recipe.c profiles its training step */
    if (argc >= 1 && strcmp(argv[0], "gemm") != 0 && !cli_is_help(argv[0]))
        return bench_recipe_main(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "gemm") == 0) return bench_gemm(argc - 1, argv + 1);
    if (argc >= 1 && cli_is_help(argv[0])) {
        fputs(BENCH_USAGE, stdout);
        return 0;
    }
    fprintf(stderr, "graft bench: expected `gemm` or a RECIPE\n%s", BENCH_USAGE);
    return 2;
}
