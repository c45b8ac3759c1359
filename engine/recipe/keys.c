/* keys.c — the recipe language's keys as one table (see keys.h): the checker's key lists, ranges,
 * enums and messages, and the JSON Schema of `graft schema`, both come from here. */
#include "base.h"
#include "keys.h"

#include <string.h>

#define ARRAY_N(a) (int)(sizeof(a) / sizeof((a)[0]))

static const char *const FORMATS[] = {"idx", "npy", "csv", "folder"};
static const char *const FORMATS_ARRAY[] = {"idx", "npy"};
static const char *const FORMAT_CSV[] = {"csv"};
static const char *const FORMAT_FOLDER[] = {"folder"};
static const char *const BAD_IMAGE[] = {"stop", "skip"};
static const char *const FLIPS[] = {"horizontal", "none"};
static const char *const OPTIMIZERS[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
static const char *const SCHEDULES[] = {"constant", "step", "cosine"};
static const char *const TUNES[] = {"auto", "off", "full"};
static const char *const NONFINITES[] = {"stop", "skip_batch"};
static const char *const SPLITS[] = {"even", "throughput"};
static const char *const MONITORS[] = {"val_loss", "val_accuracy"};
static const char *const BN[] = {"frozen", "train"};
static const char *const CACHE[] = {"auto", "on", "off"};
static const char *const ADAPT_METHODS[] = {"none", "adabn", "coral", "mmd", "dann"};
static const char *const ADAPT_SCHEDULES[] = {"ganin", "constant"};
const char *const RECIPE_ACTIVATIONS[] = {"relu", "relu6", "leaky_relu", "gelu", "sigmoid", "tanh"};
const int RECIPE_NACTIVATIONS = ARRAY_N(RECIPE_ACTIVATIONS);
const char *const RECIPE_TRUE[] = {"true", "True", "TRUE", "yes", "Yes", "on"};
const char *const RECIPE_FALSE[] = {"false", "False", "FALSE", "no", "No", "off"};
const int RECIPE_NBOOL = ARRAY_N(RECIPE_TRUE);

#define E(a) .names = a, .nnames = ARRAY_N(a)
#define POS_INT(hi_) .kind = RK_INT, .lo = 1, .hi = (hi_), .expect = "a positive integer"

static const recipe_key KEYS[] = {
    /* the top level */
    {"", "extends", RK_PATH, .loader = true, .expect = "a recipe file",
     .doc = "the recipe this one extends: its keys are the base, this file's keys override them"},
    {"", "name", RK_STR, .expect = "a string", .doc = "the run's name (default: the file name)"},
    {"", "description", RK_STR, .expect = "a string", .doc = "free text"},
    {"", "model", RK_MAP, .sub = "model", .doc = "the network: input shape and layers"},
    {"", "data", RK_MAP, .sub = "data", .doc = "training, validation and test data"},
    {"", "transfer", RK_MAP, .sub = "transfer",
     .doc = "the checkpoint to start from, what to freeze, the new head"},
    {"", "train", RK_MAP, .sub = "train", .doc = "optimizer, schedule, epochs, early stopping"},
    {"", "adapt", RK_MAP, .sub = "adapt",
     .doc = "domain adaptation to unlabelled target data (docs/adaptation.md)"},
    {"", "device", RK_STR, .expect = "a device spec",
     .doc = "cpu, gpu, nvidia, amd, intel, pocl, P:D or a name substring"},
    {"", "output", RK_PATH, .expect = "a directory", .doc = "the run directory"},

    {"model", "file", RK_PATH, .loader = true, .expect = "a recipe or model file",
     .doc = "a file whose model: is the base of this one"},
    {"model", "input", RK_INT, .lo = 1, .hi = 1 << 20, .list = true, .list_min = 1, .list_max = 3,
     .list_ends_only = true, .expect = "a positive integer", .required = true,
     .doc = "the input shape: [C, H, W] for images or [N] for vectors"},
    {"model", "layers", RK_LAYERS, .required = true, .doc = "the layers, in order"},
    {"model", "name", RK_STR, .expect = "a string", .doc = "the architecture's name"},
    {"model", "description", RK_STR, .expect = "a string", .doc = "free text"},

    {"data", "train", RK_SOURCE, .doc = "the training source"},
    {"data", "val", RK_SOURCE, .doc = "a validation source (default: val_split of train)"},
    {"data", "test", RK_SOURCE, .doc = "the test source"},
    {"data", "format", RK_ENUM, E(FORMATS), .doc = "the format of every source that names none"},
    {"data", "root", RK_PATH, .expect = "a directory",
     .doc = "with format: folder, the training folder (class per subfolder)"},
    {"data", "on_bad_image", RK_ENUM, E(BAD_IMAGE),
     .doc = "image folders: stop at an unreadable image (listing them all) or skip it"},
    {"data", "classes", RK_INT, .lo = 0, .hi = 1 << 24, .list = true, .list_min = 1, .unique = true,
     .expect = "a non-negative integer label",
     .doc = "keep these labels, mapped to 0..k-1 in this order"},
    {"data", "shots", POS_INT(1 << 30), .doc = "keep N training examples per class"},
    {"data", "val_split", RK_NUM, .lo = 0, .hi = 1, .hi_open = true,
     .expect = "a fraction with 0 <= val_split < 1",
     .doc = "the stratified fraction of train held out for validation (default 0.1)"},
    {"data", "normalize", RK_MAP, .sub = "data.normalize", .doc = "per-channel mean and std"},
    {"data", "augment", RK_MAP, .sub = "data.augment", .doc = "training-time augmentation"},
    {"data", "seed", RK_INT, .lo = 0, .hi = 0x7fffffff, .expect = "a non-negative integer",
     .doc = "the seed of the split and shots"},

    {"data.source", "format", RK_ENUM, E(FORMATS), .doc = "idx, npy, csv or folder"},
    {"data.source.idx", "format", RK_ENUM, E(FORMATS_ARRAY), .doc = "IDX (MNIST) or NumPy files"},
    {"data.source.idx", "images", RK_PATH, .expect = "a file", .required = true,
     .doc = "N x C x H x W (or N x H x W) images"},
    {"data.source.idx", "labels", RK_PATH, .expect = "a file", .required = true,
     .doc = "N integer labels"},
    {"data.source.csv", "format", RK_ENUM, E(FORMAT_CSV), .required = true, .doc = "CSV rows"},
    {"data.source.csv", "path", RK_PATH, .expect = "a file", .required = true,
     .doc = "the CSV file"},
    {"data.source.csv", "label_column", RK_INT, .lo = -4096, .hi = 4095,
     .expect = "a column index (negative counts from the end)",
     .doc = "the label's column (default -1, the last)"},
    {"data.source.folder", "format", RK_ENUM, E(FORMAT_FOLDER), .required = true,
     .doc = "an image folder"},
    {"data.source.folder", "root", RK_PATH, .expect = "a directory", .required = true,
     .doc = "one subfolder per class"},

    {"data.normalize", "mean", RK_NUM, .lo = -1e9, .hi = 1e9, .list = true, .list_min = 1,
     .list_max = 16, .scalar_ok = true, .required = true, .expect = "a number",
     .doc = "per channel (one number for all)"},
    {"data.normalize", "std", RK_NUM, .lo = 0, .hi = 1e9, .lo_open = true, .list = true,
     .list_min = 1, .list_max = 16, .scalar_ok = true, .required = true,
     .expect = "a positive number", .doc = "per channel (one number for all)"},

    {"data.augment", "flip", RK_ENUM, E(FLIPS), .bool_ok = true,
     .doc = "horizontal flips (true = horizontal)"},
    {"data.augment", "crop", RK_INT, .lo = 0, .hi = 1024, .expect = "a padding in pixels (>= 0)",
     .doc = "random crops after zero padding of this many pixels"},
    {"data.augment", "random_resized_crop", RK_NUM, .lo = 0, .hi = 1, .lo_open = true,
     .bool_ok = true, .expect = "true, false or the smallest area fraction in (0, 1]",
     .doc = "torchvision's RandomResizedCrop (true = scale 0.08..1) or its smallest area"},

    {"transfer", "from", RK_PATH, .expect = "a .safetensors file",
     .doc = "the checkpoint whose tensors are loaded by layer name"},
    {"transfer", "freeze", RK_FREEZE,
     .doc = "the layers kept fixed: a layer name (through it), a depth, names or /regexes/, none, all"},
    {"transfer", "head", RK_MAP, .sub = "transfer.head", .doc = "replace the top of the network"},
    {"transfer", "bn", RK_ENUM, E(BN), .doc = "batchnorm statistics of frozen layers"},
    {"transfer", "cache_features", RK_ENUM, E(CACHE), .bool_ok = true,
     .doc = "compute the frozen prefix's features once (auto: when it is deterministic)"},
    {"transfer", "cache_device_fraction", RK_NUM, .lo = 0, .hi = 1,
     .expect = "a number with 0 <= cache_device_fraction <= 1",
     .doc = "at most this fraction of device memory for the feature cache"},

    {"transfer.head", "cut", RK_STR, .required = true, .expect = "a layer name",
     .doc = "the first layer to drop"},
    {"transfer.head", "layers", RK_LAYERS, .required = true, .doc = "the new layers (fresh)"},

    {"train", "epochs", POS_INT(1 << 24), .doc = "default 10"},
    {"train", "batch_size", POS_INT(1 << 20), .doc = "default 64"},
    {"train", "optimizer", RK_ENUM, E(OPTIMIZERS), .doc = "default adam"},
    {"train", "lr", RK_NUM, .lo = 0, .hi = 1e3, .lo_open = true, .expect = "a positive number",
     .doc = "learning rate (default 0.001)"},
    {"train", "momentum", RK_NUM, .lo = 0, .hi = 1, .hi_open = true,
     .expect = "a number with 0 <= momentum < 1", .doc = "momentum, nesterov (default 0.9)"},
    {"train", "betas", RK_NUM, .lo = 0, .hi = 1, .hi_open = true, .list = true, .list_min = 2,
     .list_max = 2, .expect = "a number with 0 <= beta < 1",
     .doc = "adam, adamw: [beta1, beta2] (default [0.9, 0.999])"},
    {"train", "eps", RK_NUM, .lo = 0, .hi = 1, .lo_open = true, .expect = "a positive number",
     .doc = "adam, adamw (default 1e-8)"},
    {"train", "weight_decay", RK_NUM, .lo = 0, .hi = 1e3, .expect = "a non-negative number",
     .doc = "L2 (decoupled for adamw)"},
    {"train", "schedule", RK_ENUM, E(SCHEDULES), .doc = "learning-rate schedule"},
    {"train", "warmup_epochs", RK_NUM, .lo = 0, .hi = 1e6, .expect = "a non-negative number",
     .doc = "linear warm-up"},
    {"train", "step_size", RK_INT, .lo = 1, .hi = 1 << 24, .expect = "a positive integer (epochs)",
     .doc = "schedule step: epochs between decays"},
    {"train", "gamma", RK_NUM, .lo = 0, .hi = 1e3, .lo_open = true, .expect = "a positive number",
     .doc = "schedule step: the decay factor (default 0.1)"},
    {"train", "lr_mult", RK_NUM, .lo = 0, .hi = 1e6, .map_values = true,
     .expect = "a non-negative number",
     .doc = "per layer name or /regex/: a factor on the learning rate"},
    {"train", "l2sp", RK_NUM, .lo = 0, .hi = 1e6, .expect = "a non-negative number",
     .doc = "L2-SP: pull towards the starting checkpoint"},
    {"train", "label_smoothing", RK_NUM, .lo = 0, .hi = 1, .hi_open = true,
     .expect = "a number with 0 <= label_smoothing < 1", .doc = "cross-entropy label smoothing"},
    {"train", "early_stopping", RK_MAP, .sub = "train.early_stopping", .bool_ok = true,
     .doc = "stop when the monitored metric stops improving (true = defaults)"},
    {"train", "unfreeze", RK_MAP, .sub = "train.unfreeze", .list = true,
     .doc = "gradual unfreezing: [{epoch: E, freeze: ...}], epochs increasing"},
    {"train", "max_steps", RK_INT, .lo = 0, .hi = 0x7fffffffffffL,
     .expect = "a non-negative integer", .doc = "stop after this many steps"},
    {"train", "checkpoint_seconds", RK_NUM, .lo = 0, .hi = 1e9,
     .expect = "a non-negative number (seconds)",
     .doc = "the least time between two epoch-end checkpoints (default 1; 0: every epoch; the "
            "last epoch's is always written)"},
    {"train", "seed", RK_INT, .lo = 0, .hi = 0x7fffffff, .expect = "a non-negative integer",
     .doc = "initialisation, shuffling, dropout"},
    {"train", "tune", RK_ENUM, E(TUNES), .doc = "GEMM tuning on a first run (GRAFT_TUNE overrides)"},
    {"train", "devices", RK_STR, .list = true, .scalar_ok = true, .list_min = 1,
     .list_max = DEVSPEC_MAX_LIST, .expect = "a device spec (cpu, gpu, pocl, P:D, a name) or all",
     .doc = "data parallelism: one replica per device, the batch split (train.split), gradients "
            "averaged"},
    {"train", "sync_bn", RK_BOOL,
     .doc = "data parallelism: batchnorm statistics over the global batch, not each replica's "
            "share (default false)"},
    {"train", "split", RK_ENUM, E(SPLITS),
     .doc = "data parallelism: the global batch split evenly (default) or by each replica's "
            "measured speed"},
    {"train", "on_nonfinite", RK_ENUM, E(NONFINITES),
     .doc = "a NaN or infinite loss: stop (keep the last good checkpoint) or skip the batch"},

    {"train.early_stopping", "monitor", RK_ENUM, E(MONITORS), .doc = "default val_loss"},
    {"train.early_stopping", "patience", RK_INT, .lo = 1, .hi = 1 << 24,
     .expect = "a positive integer (epochs)",
     .doc = "epochs without improvement (default 5)"},
    {"train.early_stopping", "min_delta", RK_NUM, .lo = 0, .hi = 1e9,
     .expect = "a non-negative number", .doc = "the smallest change that counts"},

    {"train.unfreeze", "epoch", POS_INT(1 << 24), .required = true,
     .doc = "the 1-based epoch from which this freeze selector applies"},
    {"train.unfreeze", "freeze", RK_FREEZE, .doc = "the new freeze selector"},
    {"adapt", "target", RK_SOURCE, .doc = "the unlabelled target training data (labels never read)"},
    {"adapt", "source_test", RK_SOURCE, .doc = "the source domain's labelled test split, reported too"},
    {"adapt", "method", RK_ENUM, E(ADAPT_METHODS), .list = true, .scalar_ok = true, .list_min = 1,
     .unique = true, .doc = "none, adabn, coral, mmd or dann, or a list (adabn with one of the others)"},
    {"adapt", "layer", RK_STR, .expect = "a layer name",
     .doc = "whose output is aligned (default: the last layer's input)"},
    {"adapt", "weight", RK_NUM, .lo = 0, .hi = 1e6, .lo_open = true, .expect = "a positive number",
     .doc = "trade-off of the alignment loss (default 1)"},
    {"adapt", "schedule", RK_ENUM, E(ADAPT_SCHEDULES),
     .doc = "dann: lambda = 2/(1+exp(-gamma p)) - 1 (ganin, default) or 1 (constant)"},
    {"adapt", "gamma", RK_NUM, .lo = 0, .hi = 1e6, .lo_open = true, .expect = "a positive number",
     .doc = "dann, ganin schedule (default 10)"},
    {"adapt", "discriminator", RK_MAP, .sub = "adapt.discriminator", .doc = "dann's domain classifier"},
    {"adapt.discriminator", "layers", RK_INT, .lo = 1, .hi = 1 << 16, .list = true, .list_max = 8,
     .expect = "a positive width", .doc = "hidden layer widths (default [256, 256])"},
    {"adapt.discriminator", "dropout", RK_NUM, .lo = 0, .hi = 1, .hi_open = true,
     .expect = "a number with 0 <= dropout < 1", .doc = "only 0 in this build"},
};

const recipe_key *recipe_key_find(const char *section, const char *key)
{
    for (int i = 0; i < ARRAY_N(KEYS); i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0)
            return &KEYS[i];
    return NULL;
}

int recipe_section_keys(const char *section, const char **out, int cap)
{
    int n = 0;
    for (int i = 0; i < ARRAY_N(KEYS) && n < cap; i++)
        if (strcmp(KEYS[i].section, section) == 0 && !KEYS[i].loader) out[n++] = KEYS[i].key;
    return n;
}

const recipe_key *recipe_keys(int *count)
{
    *count = ARRAY_N(KEYS);
    return KEYS;
}
