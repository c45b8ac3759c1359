/* bench_recipe.c — `graft bench RECIPE`: the options, the devices to run on, and the tables and
 * JSON file of what engine/bench/ measured on each (a recipe's training step: start, per-layer
 * times and rates, step time, the cost model of one step); JSON per docs/bench-schema.md. */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "train.h"

#include <dirent.h>
#include <unistd.h>

/* The human-readable tables: stdout, or stderr when the JSON goes to stdout. */
static FILE *out;


const char BENCH_RECIPE_USAGE[] =
    "usage: graft bench RECIPE [--devices all|SPEC,SPEC...] [--steps N] [--warmup N]\n"
    "                   [--batch N] [--no-tune] [--json OUT] [--set PATH=VALUE]...\n"
    "                   [--model-launch-us L --model-bandwidth-gbs B [--model-gflops P]]\n"
    "       graft bench RECIPE --replicas all|SPEC,SPEC... [--steps N] [--warmup N] [--batch N]\n"
    "                   [--json OUT] [--set PATH=VALUE]...\n"
    "\n"
    "With --replicas: data-parallel scaling instead (docs/data-parallel.md). The training loop\n"
    "runs warmup + steps steps of the global batch on the recipe's data with the first 1, 2, ...\n"
    "N devices of the list as replicas (graft train --devices); per replica count: images/s,\n"
    "the step time, the host time per step reducing the gradient buckets (allreduce) and the\n"
    "scaling efficiency, images/s over (replicas x images/s of one replica).\n"
    "\n"
    "Profile the recipe's training step (forward, loss, backward, optimizer update) on each\n"
    "device with synthetic inputs: cold start (compile + GEMM tuning from an empty cache in a\n"
    "temporary directory) and warm start (same cache, second process-like start); per layer the\n"
    "forward and backward time from OpenCL profiling events (median, min and max over the steps\n"
    "after warm-up), achieved GFLOP/s and GB/s and their %% of the device's probed peak (FMA with\n"
    "float..float16, copy bandwidth; measured once per device and kept in the cache); step time,\n"
    "images/s and the plan's memory. Timings whose spread (max-min)/median exceeds 10%% are\n"
    "flagged with '!'. The cost model of one step, per op family: kernel launches, host\n"
    "synchronisations, bytes host->device and device->host (counted) and device-memory traffic\n"
    "(estimated), the numbers that carry over to a device nobody here has. Where graft train\n"
    "would compute a frozen prefix once (the feature cache), the step as trained too: that\n"
    "prefix's forward of a batch into device memory, then a step of the layers after it.\n"
    "\n"
    "  --devices all|LIST  every OpenCL device, or a comma-separated list of device specs\n"
    "                      (cpu, gpu, nvidia, pocl, P:D, name substring); default: the usual device\n"
    "  --steps N           measured steps (default 10)\n"
    "  --warmup N          untimed steps after the warm start (default 2)\n"
    "  --batch N           batch size (default: the recipe's train.batch_size)\n"
    "  --no-tune           cold start compiles only (skips the GEMM tuner)\n"
    "  --json OUT          write the results as JSON (schema: docs/bench-schema.md; - = stdout)\n"
    "  --set PATH=VALUE    override a recipe key (repeatable)\n"
    "  --model-launch-us L, --model-bandwidth-gbs B, --model-gflops P\n"
    "                      estimate a step on another device from the cost model: launches*L +\n"
    "                      max(traffic/B, FLOPs/P) (P optional), a lower bound, not a measurement\n";

typedef struct bench_opts {
    const char *recipe;
    const char *devices;
    const char *replicas;
    const char *json;
    bench_settings s;
} bench_opts;

static void print_stats_cell(bench_stats s, bool any)
{
    if (!any) fprintf(out, " %21s", "-");
    else fprintf(out, " %7.3f [%5.2f-%5.2f]%s", s.median * 1e3, s.min * 1e3, s.max * 1e3,
                s.flagged ? "!" : " ");
}

/* The tables of one device: start, per-layer times and rates, step, and the cost model of one
 * step per op family with the estimate for another device when asked for. */
static void print_result(const bench_opts *o, const graph *g, const bench_result *r)
{
    const graft_device_info *d = &r->info;
    const peak_result *pk = &r->peak;
    fprintf(out, "\n%s (%s, %s) — %d measured steps of batch %d after %d warm-up\n", d->name,
            d->platform, d->driver, o->s.steps, o->s.batch, o->s.warmup);
    fprintf(out, "peak: FMA %.1f/%.1f/%.1f/%.1f GFLOP/s (float/4/8/16), copy %.1f GB/s%s\n",
            pk->gflops[0], pk->gflops[1], pk->gflops[2], pk->gflops[3], pk->copy_gbps,
            pk->from_cache ? " (cached)" : "");
    fprintf(out, "start: cold %.2f s (compile %.2f s, tune %.2f s, %d programs), warm %.2f s\n",
            r->cold_seconds, r->cold_compile_seconds, r->cold_tune_seconds, r->programs_built,
            r->warm_seconds);
    fprintf(out, "%-14s %-10s %21s %21s %9s %6s %8s %6s  %s\n", "layer", "type",
            "forward ms [min-max]", "backward ms [min-max]", "GFLOP/s", "%peak", "GB/s", "%bw",
            "kernel");
    int nflagged = r->step.flagged;
    double pf = peak_best_gflops(pk);
    for (int li = 0; li < r->nlayers; li++) {
        const layer *l = &g->layers[li];
        const bench_layer_result *lr = &r->layers[li];
        bool has_bwd = lr->events[BENCH_BWD] > 0;
        const bench_stats *f = &lr->phase[BENCH_FWD], *b = &lr->phase[BENCH_BWD];
        nflagged += f->flagged || (has_bwd && b->flagged);
        double tot = f->median + (has_bwd ? b->median : 0);
        double fl = lr->cost.fwd_flops + (has_bwd ? lr->cost.bwd_flops : 0);
        double by = lr->cost.fwd_bytes + (has_bwd ? lr->cost.bwd_bytes : 0);
        double gf = tot > 0 ? fl / tot / 1e9 : 0, gb = tot > 0 ? by / tot / 1e9 : 0;
        fprintf(out, "%-14.14s %-10.10s", l->name, layer_type_name(l->type));
        print_stats_cell(*f, true);
        print_stats_cell(*b, has_bwd);
        fprintf(out, " %9.2f %5.1f%% %8.2f %5.1f%%%s%s\n", gf, pf > 0 ? 100 * gf / pf : 0, gb,
                pk->copy_gbps > 0 ? 100 * gb / pk->copy_gbps : 0, lr->kernel[0] ? "  " : "",
                lr->kernel);
    }
    const bench_stats *loss = &r->layers[r->nlayers].phase[BENCH_FWD];
    nflagged += loss->flagged;
    fprintf(out, "%-14s %-10s", "loss", "");
    print_stats_cell(*loss, true);
    fprintf(out, "\n");
    fprintf(out, "step: %.2f ms [%.2f-%.2f]%s => %.1f images/s; memory %.2f MiB (plan)\n",
            r->step.median * 1e3, r->step.min * 1e3, r->step.max * 1e3,
            r->step.flagged ? " ! spread > 10%" : "", r->images_per_second,
            (double)r->memory.total / 1048576.0);
    if (r->cache_cut > 0) {
        const bench_stats *fp = &r->feature_pass, *cs = &r->cached_step;
        nflagged += fp->flagged + cs->flagged;
        fprintf(out,
                "as graft train runs it, with the feature cache: layers 1-%d (through '%s') once "
                "per sample, %.2f ms [%.2f-%.2f]%s a batch => %.1f images/s; then a step of the "
                "layers after them on those features, in device memory: %.2f ms [%.2f-%.2f]%s => "
                "%.1f images/s\n",
                r->cache_cut, g->layers[r->cache_cut - 1].name, fp->median * 1e3,
                fp->min * 1e3, fp->max * 1e3, fp->flagged ? " !" : "",
                fp->median > 0 ? o->s.batch / fp->median : 0,
                cs->median * 1e3, cs->min * 1e3, cs->max * 1e3, cs->flagged ? " !" : "",
                cs->median > 0 ? o->s.batch / cs->median : 0);
        const bench_cost *c = &r->cached_cost[FAM_COUNT];
        fprintf(out,
                "cost model of that step: %.0f launches, %.0f syncs, %.0f bytes host->device, "
                "%.0f device->host, %.2f MB device-memory traffic, %.1f MFLOP\n",
                c->launches, c->syncs, c->h2d_bytes, c->d2h_bytes, c->traffic_bytes / 1e6,
                c->flops / 1e6);
    }
    if (nflagged)
        fprintf(out, "flagged (spread > 10%%): %d timings; more --steps or a quieter machine help\n",
                nflagged);

    fprintf(out, "cost model of one step (counted: launches, syncs, host<->device bytes; estimated: "
                 "device-memory traffic):\n");
    fprintf(out, "%-11s %9s %6s %12s %12s %12s %10s\n", "family", "launches", "syncs", "H2D bytes",
            "D2H bytes", "traffic MB", "MFLOP");
    for (int f = 0; f <= FAM_COUNT; f++) {
        const bench_cost *c = &r->cost[f];
        if (f < FAM_COUNT && !c->launches && !c->syncs && !c->h2d_bytes && !c->d2h_bytes &&
            !c->traffic_bytes)
            continue;
        char launches[32];
        snprintf(launches, sizeof launches, "%.0f", c->launches);
        if (c->clblast_calls) /* CLBlast's own kernels are not visible: its calls count as one */
            snprintf(launches, sizeof launches, "%.0f (%.0f clblast)", c->launches, c->clblast_calls);
        fprintf(out, "%-11s %9s %6.0f %12.0f %12.0f %12.2f %10.1f\n",
                f < FAM_COUNT ? BENCH_FAMILY_NAMES[f] : "total", launches, c->syncs, c->h2d_bytes,
                c->d2h_bytes, c->traffic_bytes / 1e6, c->flops / 1e6);
    }
    if (r->has_estimate) {
        const bench_estimate *est = &r->estimate;
        char peak[64] = "";
        if (est->peak_gflops > 0) snprintf(peak, sizeof peak, ", %g GFLOP/s", est->peak_gflops);
        fprintf(out, "ESTIMATE, not a measurement: on a device with %g us launches, %g GB/s%s a step "
                     "takes at least %.3f ms = launches %.3f ms + max(memory %.3f ms, compute "
                     "%.3f ms) => at most %.0f images/s\n",
                est->launch_us, est->bandwidth_gbs, peak, est->step_s * 1e3, est->launch_s * 1e3,
                est->memory_s * 1e3, est->compute_s * 1e3,
                est->step_s > 0 ? o->s.batch / est->step_s : 0);
        if (r->cache_cut > 0) {
            est = &r->cached_estimate;
            fprintf(out, "ESTIMATE, not a measurement: there a step on cached features takes at "
                         "least %.3f ms = launches %.3f ms + max(memory %.3f ms, compute %.3f ms) "
                         "=> at most %.0f images/s\n",
                    est->step_s * 1e3, est->launch_s * 1e3, est->memory_s * 1e3,
                    est->compute_s * 1e3, est->step_s > 0 ? o->s.batch / est->step_s : 0);
        }
    }
}

static bool parse_count(const char *v, int lo, int hi, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) return false;
    *out = (int)n;
    return true;
}

/* bench_devices' callback: progress on stderr, then each device's tables or its error */
typedef struct print_ctx {
    const bench_opts *o;
    const graph *g;
} print_ctx;

static void print_device(void *user, int i, int n, const char *spec, const bench_result *r,
                         const graft_error *e)
{
    const print_ctx *pc = user;
    if (!r && !e) fprintf(stderr, "graft bench: device %s (%d of %d)...\n", spec, i + 1, n);
    else if (r) print_result(pc->o, pc->g, r);
    else {
        fprintf(stderr, "graft bench: device %s: ", spec);
        cli_fail(e);
    }
}

/* The results as JSON into path ("-" = stdout); an exit code. */
static int write_json(const char *path, json_t *root)
{
    char *txt = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    graft_error e = {0};
    int code = 0;
    if (!txt) code = 1, fprintf(stderr, "graft bench: out of memory for the JSON\n");
    else if (strcmp(path, "-") == 0) puts(txt);
    else {
        size_t n = strlen(txt);
        txt[n] = '\n'; /* json_dumps' terminator becomes the file's last newline */
        if (fs_write_atomic(path, txt, n + 1, &e)) code = cli_fail(&e);
        else fprintf(stderr, "graft bench: wrote %s\n", path);
    }
    free(txt);
    return code;
}

/* Remove a run directory the scaling bench wrote (files only: graft train writes no folders). */
static void remove_run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char path[2048];
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* --replicas: the training loop on the first k devices of the list for k = 1..N (the recipe's
 * data, steps + warmup steps of the global batch), printed and added to root as "scaling". */
static int bench_scaling(const bench_opts *o, const char *const *sets, int nsets, json_t *root)
{
    graft_error e = {0};
    graft_device_info *devs = NULL;
    int nd = 0, idx[DEVSPEC_MAX_LIST], n = 0;
    if (graft_devices_list(&devs, &nd, &e) ||
        devspec_match_list(o->replicas, devs, nd, idx, DEVSPEC_MAX_LIST, &n, &e)) {
        free(devs);
        return cli_fail(&e);
    }
    char list[DEVSPEC_MAX_LIST * 16] = "";
    json_t *rows = json_array();
    json_object_set_new(root, "scaling", rows);
    const char *extra[CLI_MAX_SETS + 3];
    char steps[48], batch[48];
    snprintf(steps, sizeof steps, "train.max_steps=%d", o->s.steps + o->s.warmup);
    snprintf(batch, sizeof batch, "train.batch_size=%d", o->s.batch);
    int ne = 0;
    for (int i = 0; i < nsets; i++) extra[ne++] = sets[i];
    extra[ne++] = steps;
    extra[ne++] = batch;
    extra[ne++] = "train.early_stopping=false";
    fprintf(out, "data parallelism: %d steps of a global batch of %d on the recipe's data\n",
            o->s.steps + o->s.warmup, o->s.batch);
    fprintf(out, "%-8s %-24s %9s %9s %17s %10s  %s\n", "replicas", "devices", "img/s", "step ms",
            "allreduce ms/step", "efficiency", "split (rows)");
    double ips1 = 0;
    int code = 0;
    for (int k = 1; k <= n && !code; k++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%d:%d", k > 1 ? "," : "",
                 devs[idx[k - 1]].platform_index, devs[idx[k - 1]].device_index);
        graft_recipe *r;
        if ((code = cli_load_recipe(o->recipe, extra, ne, &r))) break;
        char dir[1024];
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/graft-scaling-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            recipe_free(r);
            fprintf(stderr, "graft bench: cannot make a temporary directory\n");
            code = 1;
            break;
        }
        fprintf(stderr, "graft bench: %d replica%s (%s)...\n", k, k > 1 ? "s" : "", list);
        train_options to = {.devices = list, .out_dir = dir};
        train_summary sum;
        graft_status s = graft_train(r, &to, &sum, &e);
        recipe_free(r);
        remove_run_dir(dir);
        if (s) {
            code = cli_fail(&e);
            break;
        }
        double ips = sum.images_per_second, step = sum.steps ? sum.train_seconds / sum.steps : 0;
        if (k == 1) ips1 = ips;
        double eff = ips1 > 0 ? ips / (k * ips1) : 0;
        /* the rows of a full batch per replica: measured (train.split: throughput) or even */
        char split[sizeof sum.split];
        if (sum.split[0]) snprintf(split, sizeof split, "%s", sum.split);
        else {
            split[0] = 0;
            for (int q = 0; q < k; q++) {
                int first, count;
                train_shard(o->s.batch, k, q, &first, &count);
                size_t used = strlen(split);
                snprintf(split + used, sizeof split - used, "%s%d", q ? "+" : "", count);
            }
        }
        fprintf(out, "%-8d %-24s %9.0f %9.2f %17.3f %9.0f%%  %s\n", k, list, ips, step * 1e3,
                sum.allreduce_seconds_per_step * 1e3, eff * 100, split);
        json_t *row = json_object();
        json_object_set_new(row, "replicas", json_integer(k));
        json_object_set_new(row, "devices", json_string(list));
        json_object_set_new(row, "images_per_second", json_real(ips));
        json_object_set_new(row, "step_seconds", json_real(step));
        json_object_set_new(row, "allreduce_seconds_per_step",
                            json_real(sum.allreduce_seconds_per_step));
        json_object_set_new(row, "efficiency", json_real(eff));
        json_object_set_new(row, "split", json_string(split));
        json_array_append_new(rows, row);
    }
    free(devs);
    return code;
}

int bench_recipe_main(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "bench", BENCH_RECIPE_USAGE, argc, argv);
    bench_opts o = {.s = {.steps = 10, .warmup = 2, .tune = true}};
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    const char *opt, *pos;
    while (cli_next(&a, &opt, &pos)) {
        if (!opt) {
            if (o.recipe) return cli_usage_error(&a, "unexpected argument '%s'", pos);
            o.recipe = pos;
        } else if (strcmp(opt, "--no-tune") == 0) o.s.tune = false;
        else if (strcmp(opt, "--set") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v || !cli_add_set(&a, v, sets, &nsets, CLI_MAX_SETS)) return 2;
        } else if (strcmp(opt, "--model-launch-us") == 0 ||
                   strcmp(opt, "--model-bandwidth-gbs") == 0 || strcmp(opt, "--model-gflops") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            char *end;
            double d = strtod(v, &end);
            if (!*v || *end || !(d > 0) || d > 1e9)
                return cli_usage_error(&a, "%s %s: expected a positive number", opt, v);
            if (strcmp(opt, "--model-launch-us") == 0) o.s.model_launch_us = d;
            else if (strcmp(opt, "--model-bandwidth-gbs") == 0) o.s.model_bandwidth_gbs = d;
            else o.s.model_gflops = d;
        } else if (strcmp(opt, "--replicas") == 0) {
            if (!(o.replicas = cli_value(&a, opt))) return 2;
        } else if (strcmp(opt, "--devices") == 0 || strcmp(opt, "--json") == 0 ||
                   strcmp(opt, "--steps") == 0 || strcmp(opt, "--warmup") == 0 ||
                   strcmp(opt, "--batch") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (strcmp(opt, "--devices") == 0) o.devices = v;
            else if (strcmp(opt, "--json") == 0) o.json = v;
            else if (strcmp(opt, "--steps") == 0 && !parse_count(v, 1, BENCH_MAX_STEPS, &o.s.steps))
                return cli_usage_error(&a, "--steps %s: expected 1 to %d", v, BENCH_MAX_STEPS);
            else if (strcmp(opt, "--warmup") == 0 && !parse_count(v, 0, BENCH_MAX_STEPS, &o.s.warmup))
                return cli_usage_error(&a, "--warmup %s: expected 0 to %d", v, BENCH_MAX_STEPS);
            else if (strcmp(opt, "--batch") == 0 && !parse_count(v, 1, BENCH_MAX_BATCH, &o.s.batch))
                return cli_usage_error(&a, "--batch %s: expected 1 to %d", v, BENCH_MAX_BATCH);
        } else return cli_usage_error(&a, "unknown option %s", opt);
    }
    if (!o.recipe) return cli_usage_error(&a, "expected a recipe file (or `gemm`)");
    if (!bench_estimate_settings_ok(&o.s))
        return cli_usage_error(&a, "the estimate needs both --model-launch-us and "
                                   "--model-bandwidth-gbs (--model-gflops is optional)");
    out = o.json && strcmp(o.json, "-") == 0 ? stderr : stdout;

    graft_recipe *rc = NULL;
    int code = cli_load_recipe(o.recipe, sets, nsets, &rc);
    if (code) return code;
    if (!o.s.batch) o.s.batch = rc->train.batch_size > 0 ? rc->train.batch_size : 64;
    if (o.replicas) {
        if (o.devices) {
            recipe_free(rc);
            return cli_usage_error(&a, "--replicas and --devices exclude each other");
        }
        json_t *root = bench_run_json(o.recipe, rc, &o.s);
        recipe_free(rc);
        code = bench_scaling(&o, sets, nsets, root);
        if (!code && o.json) code = write_json(o.json, root);
        json_decref(root);
        return code;
    }
    char specs[64][16];
    int nspecs = 0, failed = 0;
    graft_error e = {0};
    if (bench_resolve_devices(o.devices, specs, 64, &nspecs, &e)) {
        recipe_free(rc);
        return cli_fail(&e);
    }
    print_ctx pc = {.o = &o, .g = &rc->graph};
    json_t *root = bench_devices(rc, &o.s, specs, nspecs, print_device, &pc, &failed);
    recipe_free(rc);
    if (o.json) {
        int wc = write_json(o.json, root);
        code = code ? code : wc;
    }
    json_decref(root);
    if (!code && failed) code = 1;
    return code;
}
