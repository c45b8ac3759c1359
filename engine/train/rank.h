/* rank.h — choosing what to transfer. Transferability estimators (LogME, H-score, NCE, LEEP) in
 * float64 on the host; `graft rank` (each candidate checkpoint's frozen features over the recipe's
 * target training data, scored without training); `graft sweep` (a recipe's variants over a grid,
 * the from-scratch baseline always included, resumable, with a negative-transfer verdict). */
#ifndef GRAFT_RANK_H
#define GRAFT_RANK_H

#include "train.h"

/* ---- estimators (estimators.c): every input row-major, labels in [0, k) ---- */

/* Eigenvalues (ascending) and eigenvectors of a symmetric n×n matrix a (row-major; only a is read).
 * vecs[j*n + i] is component i of the eigenvector of w[j] (one eigenvector per row). Householder
 * tridiagonalisation then the implicit QL iteration (EISPACK tred2/tql2). */
graft_status est_sym_eig(const double *a, int n, double *w, double *vecs, graft_error *e);

/* LogME (You et al., ICML 2021): for each class c, the log evidence per sample of Bayesian linear
 * regression from the features f (n×d) to the 0/1 indicator of c, maximised over the prior
 * precision α and the noise precision β by MacKay's fixed-point iteration, averaged over the k
 * classes. One eigendecomposition (of f fᵀ or fᵀ f, whichever is smaller) serves every class. */
graft_status est_logme(const double *f, long n, int d, const int *y, int k, double *score,
                       graft_error *e);
/* H-score (Bao et al. 2019): tr(pinv(cov f) · cov g) where g replaces each row by its class mean;
 * eigenvalues of cov f below 1e-10 of the largest count as zero. */
graft_status est_hscore(const double *f, long n, int d, const int *y, int k, double *score,
                        graft_error *e);
/* NCE (Tran et al. 2019): −H(Y | Z) with Z the source model's argmax class (z in [0, ks)). */
graft_status est_nce(const int *z, int ks, const int *y, int k, long n, double *score,
                     graft_error *e);
/* LEEP (Nguyen et al. 2020): mean log of the expected empirical prediction, from the source
 * model's class probabilities p (n×ks, rows summing to 1). */
graft_status est_leep(const double *p, int ks, const int *y, int k, long n, double *score,
                      graft_error *e);
/* A source model's logits (n×ks float) into probabilities (softmax in float64, p n×ks) and argmax
 * classes (z, the first maximum); either output may be NULL. */
void est_softmax_rows(const float *logits, long n, int ks, double *p, int *z);

/* ---- graft rank (rank.c) ---- */
enum { RANK_LOGME, RANK_HSCORE, RANK_NCE, RANK_LEEP, RANK_NEST };
extern const char *const rank_estimator_names[RANK_NEST]; /* "logme", "hscore", "nce", "leep" */

typedef struct rank_row {
    const char *from; /* the candidate (borrowed) */
    bool ok;          /* features computed; false: error says why */
    char error[3072];
    char layer[128];    /* the layer whose input the features are */
    int dim;            /* feature size */
    long n;             /* images scored */
    int classes;        /* target classes */
    int source_classes; /* outputs of the candidate's own classifier (0: none) */
    char no_head[3072]; /* why NCE and LEEP were skipped ("" when they ran) */
    bool have[RANK_NEST];
    double score[RANK_NEST];
    double seconds[RANK_NEST]; /* each estimator's host time */
    double feature_seconds;    /* the frozen prefix over the data (device) */
    double head_seconds;       /* the candidate's own model over the data (device) */
} rank_row;

typedef struct rank_options {
    const char *const *sets; /* the recipe's --set overrides */
    int nsets;
    const char *layer; /* features are this layer's input; NULL: transfer.head.cut, else
                        * the input of the last layer */
    const char *device;
    long max_images;          /* 0: all of the training split */
    const char *features_out; /* when set: a folder that gets, per candidate i, features_i.npy,
                               * source_probs_i.npy, and labels.npy (for checks and plots) */
    void (*progress)(void *user, int candidate, const char *note);
    void *user;
} rank_options;

/* Score every candidate checkpoint on the recipe file's training split. A candidate that cannot be
 * scored (weights that do not fit the model, unreadable file) gets ok = false and its message; the
 * call fails only when the recipe or its data cannot be loaded at all. rows has ncand entries. */
graft_status graft_rank(const char *recipe_file, const char *const *cands, int ncand,
                        const rank_options *o, rank_row *rows, graft_error *e);

#endif

/* ---- graft sweep (sweep.c) ---- */
typedef struct sweep_options {
    const char *recipe;
    const char *const *sets; /* --set, applied to every variant */
    int nsets;
    const char *const *grids; /* --grid KEY=[V1,V2,...] as given */
    int ngrids;
    const char *out_dir; /* NULL: runs/sweep-<recipe name> */
    const char *device;
    bool metric_loss;      /* select on val_loss (lower is better) instead of val_accuracy */
    double val_split;      /* used when the recipe has no validation split (default 0.2) */
    int patience;          /* early stopping (default 5) */
    int max_epochs;        /* cap on train.epochs (0: the recipe's) */
    double budget_seconds; /* no variant starts after this much training time (0: no limit) */
    bool fresh;            /* start over even when out_dir holds this sweep */
    void (*progress)(void *user, const train_progress *p);
    void (*note)(void *user, const char *line); /* one line per event ("variant 3/7: …") */
    void *user;
} sweep_options;

typedef struct sweep_variant {
    char id[16];     /* "03" */
    char label[512]; /* "freeze=conv2 lr=3e-4", "scratch" */
    char dir[2400];
    bool baseline; /* from scratch: no transfer.from, nothing frozen */
    int nsets;
    char **sets;  /* what this variant adds to the recipe (grid picks, baseline keys) */
    char **picks; /* per grid axis: the value chosen (NULL for the baseline's transfer axes) */
    bool done, failed;
    char error[1536];
    double val_metric, val_accuracy, val_loss; /* at the best epoch */
    double test_accuracy, test_loss;
    int best_epoch, epochs_run;
    bool stopped_early, feature_cache;
    double seconds;
    long trainable;
    int nepochs;
    double *train_loss, *val_curve_acc, *val_curve_loss; /* per epoch */
    bool negative; /* worse than the best baseline on validation */
    double margin; /* how much worse (accuracy as a fraction, or loss) */
    double noise;  /* val_accuracy: two standard errors of the difference of the two accuracies
                    * on this many validation images (a margin below it may be chance) */
} sweep_variant;

typedef struct sweep_axis {
    char *key;
    int nvalues;
    char **values;
} sweep_axis;

typedef struct sweep_result {
    int nvariants;
    sweep_variant *v;
    int naxes;
    sweep_axis *axes;
    int best, baseline;          /* indexes of the best variant and the best baseline (-1: none) */
    bool complete;               /* every variant trained (or failed) */
    bool out_of_budget;          /* stopped by --budget */
    int resumed;                 /* variants found finished in out_dir */
    bool continuing;             /* out_dir held this sweep's state file */
    long pool_hits, pool_misses; /* frozen-feature splits reused / computed */
    char out_dir[2048];
    char val_note[256]; /* how the validation split came about */
    long val_images;    /* size of the validation split */
} sweep_result;

/* Parse the grid, build every variant (the product of the axes, then the from-scratch baselines
 * over the axes outside transfer.*), and load each variant's recipe: every problem of every
 * variant lands in diags (a grid value's at its column of the --grid option) and the status is
 * GRAFT_STATUS_BAD_RECIPE, before anything trains. */
graft_status sweep_plan(const sweep_options *o, sweep_result *res, graft_diags *diags,
                        graft_error *e);
/* Train every variant not yet finished (a sweep killed earlier continues: finished variants are
 * read back from out_dir/sweep.json, a half-trained one resumes from its last epoch), with a
 * frozen-feature pool shared across variants; then rank, compare with scratch, and write
 * out_dir/sweep.json (after each variant) and out_dir/sweep.html. */
graft_status sweep_run(const sweep_options *o, sweep_result *res, graft_error *e);
void sweep_result_free(sweep_result *res);
/* Whether variant a ranks above b: the validation metric, ties broken by the other validation
 * measure (loss for accuracy, accuracy for loss). */
bool sweep_better(const sweep_options *o, const sweep_variant *a, const sweep_variant *b);
/* The self-contained HTML page (inline SVG charts, no external resources). malloc'ed. */
char *sweep_html(const sweep_options *o, const sweep_result *res);
