/* memfit.c — before training starts: the compiler's device memory plan (what `graft plan` prints)
 * against the device's global memory and largest allocation, for every freeze phase of the recipe
 * (train.unfreeze phases train more layers and need more). A recipe that cannot fit fails here with
 * the sizes and what to change, before anything is written. */
#include "compile.h"

#include <stdio.h>
#include <string.h>

/* What one phase needs at a batch size: the training pipeline the trainer builds (after a cached
 * prefix when the plan caches it), its total and its largest single buffer. An aligning
 * adaptation's step runs a source and a target batch together (recipe_step_rows), and adds its
 * alignment workspace or discriminator (plan_adapt_bytes). */
typedef struct phase_need {
    plan_memory mem;
    size_t total, largest;
    const char *largest_what;
    bool prefix; /* the forward-only frozen prefix (feature cache) needs the most */
    size_t both; /* the prefix and the training pipeline together (0: no cached prefix) */
} phase_need;

static graft_status need_at(const graft_recipe *r, const graft_device_info *info, int batch,
                            phase_need *out, graft_error *e)
{
    memset(out, 0, sizeof *out);
    bool augment = data_spec_augments(&r->data);
    graph_plan gp;
    const int rows = recipe_step_rows(r, batch);
    graft_status s = plan_analyse(&r->graph, true, r->transfer.bn_train, augment,
                                  r->train.optimizer, r->train.l2sp > 0, 0, rows, &gp, e);
    if (s) return s;
    plan_memory prefix_mem = {0};
    if (plan_caches_prefix(r, &gp) && gp.cache_cut > 0) {
        int cut = gp.cache_cut;
        plan_free(&gp);
        /* the frozen prefix runs first, alone, as a forward-only pipeline */
        graph prefix = r->graph;
        prefix.nlayers = cut;
        if ((s = plan_analyse(&prefix, false, false, false, r->train.optimizer, false, 0, batch,
                              &gp, e)))
            return s;
        plan_workspace_on(&prefix, &gp, info, false, batch);
        prefix_mem = gp.mem;
        plan_free(&gp);
        if ((s = plan_analyse(&r->graph, true, r->transfer.bn_train, augment, r->train.optimizer,
                              r->train.l2sp > 0, cut, batch, &gp, e)))
            return s;
    }
    plan_workspace_on(&r->graph, &gp, info, true, rows);
    const size_t B = (size_t)rows, f = sizeof(float);
    out->mem = gp.mem;
    /* beside the plan: labels, loss, correct, rows and the 64 statistics slots (int and float),
     * and adaptation's own buffers */
    out->total = gp.mem.total + B * 4 * sizeof(int) + 2 * PIPELINE_STATS_SLOTS * B * f +
                 plan_adapt_bytes(r, batch);
    if (prefix_mem.total) out->both = prefix_mem.total + out->total;
    if (prefix_mem.total > out->total) {
        out->total = prefix_mem.total;
        out->mem = prefix_mem;
        out->prefix = true;
    }
    out->largest = B * (size_t)gp.tensors[0].size * f;
    out->largest_what = "the input batch";
    for (int i = 0; i < gp.nslots; i++)
        if (B * (size_t)gp.slot_size[i] * f > out->largest) {
            out->largest = B * (size_t)gp.slot_size[i] * f;
            out->largest_what = "an activation buffer";
        }
    if (gp.mem.workspace > out->largest) {
        out->largest = gp.mem.workspace;
        out->largest_what = "the convolutions' workspace";
    }
    for (int i = gp.first; i < r->graph.nlayers; i++)
        for (int j = 0; j < r->graph.layers[i].nparams; j++)
            if ((size_t)r->graph.layers[i].params[j].count * f > out->largest) {
                out->largest = (size_t)r->graph.layers[i].params[j].count * f;
                out->largest_what = "a parameter tensor";
            }
    plan_free(&gp);
    return GRAFT_OK;
}

static bool fits(const phase_need *n, const graft_device_info *info)
{
    return (!info->global_mem_bytes || n->total <= info->global_mem_bytes) &&
           (!info->max_alloc_bytes || n->largest <= info->max_alloc_bytes);
}

static void human(double bytes, char *out, size_t n)
{
    if (bytes >= 1 << 30) snprintf(out, n, "%.2f GiB", bytes / (1 << 30));
    else if (bytes >= 1 << 20) snprintf(out, n, "%.1f MiB", bytes / (1 << 20));
    else snprintf(out, n, "%.0f KiB", bytes / 1024);
}

/* The failure message for a phase that does not fit at the recipe's batch size. */
static graft_status too_big(const graft_recipe *r, const graft_device_info *info,
                            const phase_need *n, int phase_epoch, graft_error *e)
{
    char need[32], have[32], w[32], g[32], o[32], a[32], ws[32], big[32], cap[32];
    human((double)n->total, need, sizeof need);
    human((double)info->global_mem_bytes, have, sizeof have);
    human((double)n->mem.weights, w, sizeof w);
    human((double)n->mem.gradients, g, sizeof g);
    human((double)n->mem.optimizer, o, sizeof o);
    human((double)n->mem.activations, a, sizeof a);
    human((double)n->mem.workspace, ws, sizeof ws);
    human((double)n->largest, big, sizeof big);
    human((double)info->max_alloc_bytes, cap, sizeof cap);
    /* the largest batch that fits, by the same plan (activations and workspace grow with it) */
    int lo = 0, hi = r->train.batch_size - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        phase_need m;
        graft_error ig = {0};
        if (need_at(r, info, mid, &m, &ig) == GRAFT_OK && fits(&m, info)) lo = mid;
        else hi = mid - 1;
    }
    char when[64] = "", advice[160];
    if (phase_epoch > 1)
        snprintf(when, sizeof when, " from epoch %d (train.unfreeze)", phase_epoch);
    if (lo > 0)
        snprintf(advice, sizeof advice,
                 "lower train.batch_size to %d or less, or freeze more layers (transfer.freeze)", lo);
    else
        snprintf(advice, sizeof advice,
                 "even train.batch_size 1 does not fit: freeze more layers (transfer.freeze) or "
                 "use a device with more memory");
    if (n->total > info->global_mem_bytes)
        return err_set(e, GRAFT_STATUS_NOMEM,
                       "the recipe needs %s of device memory%s%s at train.batch_size %d (weights "
                       "%s, gradients %s, optimizer state %s, activations %s, workspace %s) but %s "
                       "has %s; %s",
                       need, n->prefix ? " for the frozen prefix's feature pass" : "", when,
                       r->train.batch_size, w, g, o, a, ws, info->name, have, advice);
    return err_set(e, GRAFT_STATUS_NOMEM,
                   "the recipe's largest device buffer%s at train.batch_size %d, %s, takes %s but "
                   "%s allocates at most %s at once; %s",
                   when, r->train.batch_size, n->largest_what, big, info->name, cap, advice);
}

bool plan_overlap_fits(const graft_recipe *r, const graft_device_info *info)
{
    phase_need n;
    graft_error ig = {0};
    if (need_at(r, info, r->train.batch_size, &n, &ig) != GRAFT_OK || !n.both) return false;
    return !info->global_mem_bytes || n.both <= info->global_mem_bytes / 2;
}

graft_status plan_check_memory(graft_recipe *r, const graft_device_info *info,
                               const freeze_spec *current, bool *fits_out, graft_error *e)
{
    graft_status s = GRAFT_OK;
    *fits_out = true;
    /* phase 0: transfer.freeze; then each unfreeze step from its epoch on */
    for (int ph = 0; ph <= r->train.nunfreeze && !s; ph++) {
        const freeze_spec *f = ph ? &r->train.unfreeze[ph - 1].freeze : &r->transfer.freeze;
        if ((s = recipe_apply_freeze(r, f, NULL))) {
            err_set(e, s, "cannot apply a freeze selector of the recipe");
            break;
        }
        phase_need n;
        if ((s = need_at(r, info, r->train.batch_size, &n, e))) break;
        if (!fits(&n, info)) {
            too_big(r, info, &n, ph ? r->train.unfreeze[ph - 1].epoch : 0, e);
            *fits_out = false;
            break;
        }
    }
    graft_status back = recipe_apply_freeze(r, current, NULL);
    if (!s && back) s = err_set(e, back, "cannot apply the freeze selector in force");
    return s;
}
