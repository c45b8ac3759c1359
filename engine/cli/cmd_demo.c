/* cmd_demo.c — `graft demo`: the transfer demo on Fashion-MNIST. Pretrain fmnist-cnn on classes 0-4,
 * then transfer to classes 5-9 with 100 images per class four ways (scratch, frozen features + new
 * head, frozen through dense128 + linear head, full fine-tune) and compare. The recipes are the
 * ordinary files in configs/recipes/, so users can edit and rerun each with `graft train`. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

const char DEMO_USAGE[] =
    "usage: graft demo [--adapt | --vit] [--configs DIR] [--out DIR] [--device SPEC] [--epochs N]\n"
    "                  [--quiet]\n"
    "\n"
    "Transfer learning on Fashion-MNIST (from Debian's dataset-fashion-mnist):\n"
    "  pretrain   fmnist-cnn on classes 0-4 (30,000 images, 2 epochs); reused when present\n"
    "  (a)        scratch: the same network on classes 5-9, 100 labelled images per class\n"
    "  (b)        frozen convolutions + new head dense128-relu-dropout-dense5\n"
    "  (c)        frozen through dense128 + new linear head\n"
    "  (d)        full fine-tune at lr 3e-4\n"
    "each 30 epochs, evaluated on the 5,000 test images of classes 5-9.\n"
    "\n"
    "  --configs DIR  where the recipes live (default: ./configs, else the source tree's)\n"
    "  --out DIR      where the runs go (default: runs/demo, with --adapt runs/demo-adapt, with\n"
    "                 --vit runs/demo-vit)\n"
    "  --device SPEC  the device (see graft devices)\n"
    "  --epochs N     transfer epochs instead of 30 (for a quick look)\n"
    "  --quiet        only the table\n"
    "\n"
    "--adapt: domain adaptation instead (docs/adaptation.md). fmnist-cnn with 3 input channels\n"
    "learns Fashion-MNIST as RGB (the labelled source) and is tested on Fashion-M, the same\n"
    "images blended with colour photographs (tools/make_shift.py builds it once into\n"
    "runs/fashion-m next to configs/, with the Python in GRAFT_PYTHON, default /usr/bin/python3:\n"
    "it needs numpy and python3-skimage's photos); recipes configs/recipes/fmnist-to-fmnistm-*.yaml,\n"
    "3 epochs:\n"
    "  source-only  no adaptation          adabn  source-only + batchnorm statistics of the target\n"
    "  coral        Deep CORAL on fc1      mmd    multi-kernel MMD on fc1\n"
    "  dann         gradient reversal + domain discriminator on fc1\n"
    "The table shows each method's source and target test accuracy and its gain over source-only.\n"
    "\n"
    "--vit: the same transfer with a Vision Transformer (docs/transformers.md): vit-tiny-fmnist\n"
    "pretrained on classes 0-4 (3 epochs, AdamW), then configs/recipes/vit-fmnist-*.yaml:\n"
    "  (a) scratch          (b) linear probe: frozen through the class token, new linear head\n"
    "  (c) fine-tune with layer-wise lr decay    (d) gradual unfreezing (head, block 3, all)\n"
    "(with --epochs N the unfreezing steps move to the same fractions of N; none below 3).\n";

/* One transfer table: the model, its pretraining recipe and the four transfer recipes. */
typedef struct demo_spec {
    const char *model, *pretrain, *pretrain_text;
    const char *label[4], *recipe[4], *freeze[4];
} demo_spec;

static const demo_spec DEMO_CNN = {
    "fmnist-cnn", "fmnist-pretrain", "fmnist-cnn on classes 0-4 (30,000 images)",
    {"(a) scratch", "(b) feature extraction", "(c) frozen dense128", "(d) full fine-tune"},
    {"fmnist-scratch", "fmnist-feature-extract", "fmnist-linear-head", "fmnist-finetune"},
    {"none", "flatten", "fc1", "none"}};
static const demo_spec DEMO_VIT = {
    "vit-tiny-fmnist", "vit-fmnist-pretrain", "vit-tiny-fmnist on classes 0-4 (30,000 images)",
    {"(a) scratch", "(b) linear probe", "(c) fine-tune, lw decay", "(d) gradual unfreeze"},
    {"vit-fmnist-scratch", "vit-fmnist-linear-probe", "vit-fmnist-finetune",
     "vit-fmnist-gradual-unfreeze"},
    {"none", "class_select", "none", "class_select"}};

typedef struct demo_row {
    const char *label, *recipe, *freeze;
    train_summary sum;
    double seconds;
    bool ok;
} demo_row;

static int train_one(const char *configs, const char *recipe, const char *out, const char *device,
                     const char *const *extra, int nextra, bool quiet, train_summary *sum,
                     double *seconds)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/recipes/%s.yaml", configs, recipe);
    graft_recipe *r;
    int rc = cli_load_recipe(path, extra, nextra, &r);
    if (rc) return rc;
    cli_progress_state ps;
    cli_progress_init(&ps, quiet);
    train_options o = {.device = device, .out_dir = out, .progress = cli_progress, .user = &ps};
    graft_error e = {0};
    double t0 = now_seconds();
    graft_status s = graft_train(r, &o, sum, &e);
    *seconds = now_seconds() - t0;
    recipe_free(r);
    if (s) return cli_fail(&e);
    return 0;
}

/* ---- graft demo --adapt ---- */

/* Build Fashion-M with tools/make_shift.py (it does nothing when the files are there), run by
 * GRAFT_PYTHON (default Debian's /usr/bin/python3, whose numpy and scikit-image it needs). */
static int make_shift(const char *configs, const char *data, bool quiet)
{
    const char *py = getenv("GRAFT_PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    char tool[2200];
    snprintf(tool, sizeof tool, "%s/../tools/make_shift.py", configs);
    if (access(tool, R_OK) != 0) snprintf(tool, sizeof tool, "%s", GRAFT_SOURCE_DIR "/tools/make_shift.py");
    if (!quiet) fprintf(stderr, "data: Fashion-M in %s (tools/make_shift.py)\n", data);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("graft: fork");
        return 1;
    }
    if (pid == 0) {
        if (quiet && !freopen("/dev/null", "w", stdout)) _exit(127);
        execl(py, "python3", tool, data, (char *)NULL);
        fprintf(stderr, "graft: cannot run %s (GRAFT_PYTHON): %s\n", py, strerror(errno));
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "graft: error: %s could not build Fashion-M (needs %s with numpy and "
                        "python3-skimage; GRAFT_PYTHON names another Python)\n", tool, py);
        return 1;
    }
    return 0;
}

typedef struct adapt_row {
    const char *method, *recipe;
    double source, target, seconds;
} adapt_row;

static int demo_adapt(const char *configs, const char *out, const char *device,
                      const char *epochs, bool quiet)
{
    char data[2200];
    snprintf(data, sizeof data, "%s/../runs/fashion-m", configs);
    int rc = make_shift(configs, data, quiet);
    if (rc) return rc;
    char ep_set[64];
    snprintf(ep_set, sizeof ep_set, "train.epochs=%s", epochs ? epochs : "3");
    adapt_row rows[] = {
        {.method = "source-only", .recipe = "fmnist-to-fmnistm-source-only"},
        {.method = "adabn", .recipe = "fmnist-to-fmnistm-adabn"},
        {.method = "coral", .recipe = "fmnist-to-fmnistm-coral"},
        {.method = "mmd", .recipe = "fmnist-to-fmnistm-mmd"},
        {.method = "dann", .recipe = "fmnist-to-fmnistm-dann"},
    };
    const int nrows = (int)(sizeof rows / sizeof rows[0]);
    char device_name[256] = "";
    for (int i = 0; i < nrows; i++) {
        char dir[2300], path[2300];
        snprintf(dir, sizeof dir, "%s/%s", out, rows[i].recipe);
        const char *sets[1] = {ep_set};
        train_summary sum;
        if (i == 1) {
            /* adabn trains exactly as source-only does (the same seed and data): adapt those
             * weights instead of training again (`graft adapt`) */
            if (!quiet) fprintf(stderr, "adabn: AdaBN on the source-only weights\n");
            snprintf(path, sizeof path, "%s/recipes/%s.yaml", configs, rows[i].recipe);
            graft_recipe *r;
            if ((rc = cli_load_recipe(path, sets, 1, &r))) return rc;
            char w[2400], w2[2400];
            snprintf(w, sizeof w, "%s/%s/model.safetensors", out, rows[0].recipe);
            snprintf(w2, sizeof w2, "%s/%s/model-adabn.safetensors", out, rows[0].recipe);
            adapt_result ar;
            eval_result ev = {0};
            graft_error e = {0};
            double t0 = now_seconds();
            graft_status s = graft_adapt(r, w, w2, device, &ar, &e);
            if (!s) s = graft_evaluate(r, w2, device, &ev, &e);
            recipe_free(r);
            if (s) return cli_fail(&e);
            rows[i].seconds = now_seconds() - t0;
            rows[i].source = rows[0].source; /* its source statistics are source-only's */
            rows[i].target = ev.accuracy;
            eval_result_free(&ev);
            continue;
        }
        if (!quiet) fprintf(stderr, "%s: %s\n", rows[i].method, rows[i].recipe);
        if ((rc = train_one(configs, rows[i].recipe, dir, device, sets, 1, quiet, &sum,
                            &rows[i].seconds)))
            return rc;
        rows[i].source = sum.source_test_accuracy;
        rows[i].target = sum.test_accuracy;
        snprintf(device_name, sizeof device_name, "%s", sum.device);
    }
    printf("\nDomain adaptation Fashion-MNIST (RGB) -> Fashion-M, fmnist-cnn, %s epochs, device %s\n\n",
           epochs ? epochs : "3", device_name);
    printf("%-12s %-32s %11s %11s %8s %8s\n", "method", "recipe", "source test", "target test",
           "gain", "seconds");
    for (int i = 0; i < nrows; i++) {
        char gain[32];
        if (i == 0) snprintf(gain, sizeof gain, "-");
        else snprintf(gain, sizeof gain, "%+.2f", 100.0 * (rows[i].target - rows[0].target));
        printf("%-12s %-32s %11.4f %11.4f %8s %8.1f\n", rows[i].method, rows[i].recipe,
               rows[i].source, rows[i].target, gain, rows[i].seconds);
    }
    printf("\n(gain: percentage points of target test accuracy over source-only; adabn re-estimates\n"
           "the source-only model's batchnorm statistics on the target, so its source column is\n"
           "source-only's)\n");
    int best = 1;
    for (int i = 2; i < nrows; i++)
        if (rows[i].target > rows[best].target) best = i;
    printf("best: %s, %+.2f points on the target\n", rows[best].method,
           100.0 * (rows[best].target - rows[0].target));
    for (int i = 1; i < nrows; i++)
        if (rows[i].target < rows[0].target)
            printf("NO GAIN: %s is %.2f points below source-only on the target\n", rows[i].method,
                   100.0 * (rows[0].target - rows[i].target));
    return 0;
}

int cmd_demo(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "demo", DEMO_USAGE, argc, argv);
    const char *opt, *pos, *configs = NULL, *out = "runs/demo", *device = NULL, *epochs = NULL;
    bool quiet = false, adapt = false, vit = false, out_given = false;
    while (cli_next(&a, &opt, &pos)) {
        if (pos) return cli_usage_error(&a, "unexpected argument '%s'", pos);
        if (strcmp(opt, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(opt, "--adapt") == 0) {
            adapt = true;
        } else if (strcmp(opt, "--vit") == 0) {
            vit = true;
        } else if (strcmp(opt, "--configs") == 0 || strcmp(opt, "--out") == 0 ||
                   strcmp(opt, "--device") == 0 || strcmp(opt, "--epochs") == 0) {
            const char *v = cli_value(&a, opt);
            if (!v) return 2;
            if (opt[2] == 'c') configs = v;
            if (opt[2] == 'o') out = v, out_given = true;
            if (opt[2] == 'd') device = v;
            if (opt[2] == 'e') epochs = v;
        } else {
            return cli_usage_error(&a, "unknown option %s", opt);
        }
    }
    if (epochs && (atoi(epochs) < 1 || atoi(epochs) > 1000))
        return cli_usage_error(&a, "--epochs needs a number from 1 to 1000, got '%s'", epochs);
    if (!configs) configs = cli_configs_dir();
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "graft: error: Fashion-MNIST is not installed: apt-get install "
                        "dataset-fashion-mnist\n");
        return 1;
    }
    if (adapt && vit) return cli_usage_error(&a, "--adapt and --vit are two different demos: one at a time");
    if (adapt) return demo_adapt(configs, out_given ? out : "runs/demo-adapt", device, epochs, quiet);
    const demo_spec *spec = vit ? &DEMO_VIT : &DEMO_CNN;
    if (vit && !out_given) out = "runs/demo-vit";

    char pre_dir[2048], pre_model[2200], from_set[2300], ep_set[64];
    snprintf(pre_dir, sizeof pre_dir, "%s/pretrain", out);
    snprintf(pre_model, sizeof pre_model, "%s/model.safetensors", pre_dir);
    snprintf(from_set, sizeof from_set, "transfer.from=%s", pre_model);
    snprintf(ep_set, sizeof ep_set, "train.epochs=%s", epochs ? epochs : "30");
    double pre_seconds = 0;
    if (access(pre_model, R_OK) == 0) {
        if (!quiet) fprintf(stderr, "pretrain: reusing %s\n", pre_model);
    } else {
        if (!quiet) fprintf(stderr, "pretrain: %s\n", spec->pretrain_text);
        train_summary sum;
        int rc = train_one(configs, spec->pretrain, pre_dir, device, NULL, 0, quiet, &sum,
                           &pre_seconds);
        if (rc) return rc;
        if (!quiet)
            fprintf(stderr, "pretrain: test accuracy on classes 0-4 %.4f (%.0f s)\n",
                    sum.test_accuracy, pre_seconds);
    }

    demo_row rows[4];
    const int nrows = 4;
    for (int i = 0; i < nrows; i++)
        rows[i] = (demo_row){.label = spec->label[i], .recipe = spec->recipe[i],
                             .freeze = spec->freeze[i]};
    for (int i = 0; i < nrows; i++) {
        char dir[2200];
        snprintf(dir, sizeof dir, "%s/%s", out, rows[i].recipe);
        const char *sets[4] = {ep_set, from_set};
        int nsets = i == 0 ? 1 : 2;
        /* --epochs N on gradual unfreezing (30 epochs, steps at 11 and 21): the steps at the same
         * fractions of N, or none when N < 3 leaves no room for them */
        char u0[64], u1[64];
        if (epochs && strstr(rows[i].recipe, "gradual-unfreeze")) {
            const int n = atoi(epochs);
            if (n >= 3) {
                snprintf(u0, sizeof u0, "train.unfreeze.0.epoch=%d", 1 + n / 3);
                snprintf(u1, sizeof u1, "train.unfreeze.1.epoch=%d", 1 + 2 * n / 3);
                sets[nsets++] = u0;
                sets[nsets++] = u1;
            } else {
                sets[nsets++] = "train.unfreeze=[]";
            }
        }
        if (!quiet) fprintf(stderr, "%s: %s\n", rows[i].label, rows[i].recipe);
        int rc = train_one(configs, rows[i].recipe, dir, device, sets, nsets, quiet, &rows[i].sum,
                           &rows[i].seconds);
        if (rc) return rc;
        rows[i].ok = true;
    }

    double base = rows[0].sum.test_accuracy;
    printf("\nTransfer on Fashion-MNIST classes 5-9 (100 images per class), %s, device %s\n\n",
           spec->model, rows[0].sum.device);
    printf("%-24s %-28s %-14s %10s %9s %8s %8s  %s\n", "recipe", "file", "frozen through",
           "trainable", "test acc", "gain", "seconds", "feature cache");
    for (int i = 0; i < nrows; i++) {
        const train_summary *s = &rows[i].sum;
        char gain[32];
        if (i == 0) snprintf(gain, sizeof gain, "-");
        else snprintf(gain, sizeof gain, "%+.2f", 100.0 * (s->test_accuracy - base));
        printf("%-24s %-28s %-14s %10ld %9.4f %8s %8.1f  %s\n", rows[i].label, rows[i].recipe,
               rows[i].freeze, s->params_trainable, s->test_accuracy, gain, rows[i].seconds,
               s->feature_cache ? "yes" : "no");
    }
    printf("\n(gain: percentage points of test accuracy over training from scratch)\n");
    int negative = 0;
    for (int i = 1; i < nrows; i++)
        if (rows[i].sum.test_accuracy < base) {
            bool frozen = strcmp(rows[i].freeze, "none") != 0;
            printf("NEGATIVE TRANSFER: %s is %.2f points worse than training from scratch: %s\n",
                   rows[i].label, 100.0 * (base - rows[i].sum.test_accuracy),
                   frozen ? "the features it keeps frozen were learned for classes 0-4 and do not "
                            "fit classes 5-9."
                          : "starting from the pretrained weights did not help these classes.");
            negative++;
        }
    if (!negative) printf("No negative transfer: every transfer recipe beat training from scratch.\n");
    return 0;
}
