/*
 * The C API end to end, as a C program would use it (capi/tests/c/run.sh builds it against
 * libnetmorph_c.a and runs it under valgrind and AddressSanitizer):
 *
 *   1. build a 20-16-5 MLP from this file's own arrays with nm_model_new, read every layer
 *      back with nm_model_layer and compare bit for bit, and train it a few SGD steps on data
 *      from a fixed random linear rule;
 *   2. write weights back with nm_model_set_layer (a dense layer's weight and bias, the
 *      P-activation's a), read them back, and check that refused writes change nothing;
 *   3. deepen its first dense layer (tanh P-activation), widen the new first layer, deepen
 *      once more through the operation language, split the last layer into a parallel block
 *      (`stack@`), and deepen a layer inside one of its branches by path; check each morph's
 *      report (parameter counts, residual, deviation);
 *   4. run each child with this file's own naive forward pass (double precision, over the
 *      parameters nm_model_layer exposes, walking parallel blocks by path) and compare with
 *      the parent's nm_forward outputs: the relative max-abs deviation must be at most 1e-5;
 *   5. save and load through a temporary file;
 *   6. the error paths: NULL pointers, a bad operation, a missing file, short buffers, bad
 *      layer specs, paths that do not exist, a kernel morph on a dense layer.
 *
 * Prints what it checked; exits non-zero on the first failure. Frees everything it makes.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netmorph.h"

/* The relative max-abs deviation a morphed child may show against its parent in this test:
 * the library refuses children beyond 1e-4; on this small MLP they stay near 1e-7, and this
 * test's own forward pass runs in double, so 1e-5 leaves room only for f32 rounding. */
#define PRESERVATION_TOLERANCE 1e-5
/* The bound the library holds an exact morph's child to (and reports as max_rel_deviation). */
#define MORPH_TOLERANCE 1e-4
/* A decomposition's relative residual: the solver works in double and accepts nothing above
 * 1e-11; 1e-9 leaves room should that default move. */
#define RESIDUAL_TOLERANCE 1e-9

#define N_IN 20
#define N_HIDDEN 16
#define N_OUT 5
#define N_SAMPLES 64
#define BATCH 16
/* The widest blob and the deepest path this file's forward pass handles. */
#define MAX_WIDTH 64
#define MAX_PATH 8

static int failures = 0;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, " (last error: %s)\n", nm_last_error());                          \
            failures++;                                                                       \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)

#define OK(call) CHECK((call) == NM_STATUS_OK, "%s failed", #call)

/* A 64-bit linear congruential generator (Knuth's MMIX constants): the test's own data. */
static uint64_t lcg_state = 0x2545f4914f6cdd1dULL;

static double uniform(void) { /* in [-1, 1) */
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) / (double)(1ULL << 52) - 1.0;
}

static double phi(NmActivation f, double x) {
    switch (f) {
    case NM_ACTIVATION_RELU: return x > 0.0 ? x : 0.0;
    case NM_ACTIVATION_TANH: return tanh(x);
    case NM_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case NM_ACTIVATION_IDENTITY: return x;
    }
    return NAN;
}

/* Runs the sequence of layers that path[0..seq_len) names (seq_len 0: the top level; else a
 * parallel block's path and a branch index) on one flat sample, cur[0..*width), in place:
 * dense y = W x + b, P-activation (1 - a) phi(x) + a x per channel, flatten a no-op on flat
 * blobs, and a parallel block as the sum of its branches, each run on the block's input.
 * path has room for MAX_PATH + 1 indices. Returns 0, or -1 (with a message) for a layer this
 * oracle does not implement, a blob wider than MAX_WIDTH, or sizes that do not chain. */
static int naive_sequence(const NmModel *m, size_t *path, size_t seq_len, double *cur,
                          size_t *width) {
    size_t count = 0;
    if (nm_model_layer_count(m, path, seq_len, &count) != NM_STATUS_OK) return -1;
    for (size_t l = 0; l < count; l++) {
        NmLayerInfo info;
        path[seq_len] = l;
        if (nm_model_layer(m, path, seq_len + 1, &info) != NM_STATUS_OK) return -1;
        if (info.out > MAX_WIDTH) {
            fprintf(stderr, "layer %zu: %zu outputs, more than this oracle holds\n", l, info.out);
            return -1;
        }
        switch (info.kind) {
        case NM_LAYER_KIND_FLATTEN: break;
        case NM_LAYER_KIND_DENSE: {
            double next[MAX_WIDTH];
            if (info.in != *width || info.weight_len != info.out * info.in ||
                info.bias_len != info.out) {
                fprintf(stderr, "layer %zu: dense sizes do not chain\n", l);
                return -1;
            }
            for (size_t o = 0; o < info.out; o++) {
                double acc = info.bias[o];
                for (size_t i = 0; i < info.in; i++)
                    acc += (double)info.weight[o * info.in + i] * cur[i];
                next[o] = acc;
            }
            memcpy(cur, next, info.out * sizeof *cur);
            *width = info.out;
            break;
        }
        case NM_LAYER_KIND_ACTIVATION:
            if (info.a_len != *width) return -1;
            for (size_t c = 0; c < *width; c++) {
                double a = info.a[c];
                cur[c] = (1.0 - a) * phi(info.function, cur[c]) + a * cur[c];
            }
            break;
        case NM_LAYER_KIND_PARALLEL_SUM: {
            double input[MAX_WIDTH], sum[MAX_WIDTH] = {0};
            size_t out_width = 0;
            if (seq_len + 2 > MAX_PATH) return -1;
            memcpy(input, cur, *width * sizeof *cur);
            for (size_t b = 0; b < info.branches; b++) {
                double branch[MAX_WIDTH];
                size_t w = *width;
                memcpy(branch, input, w * sizeof *branch);
                path[seq_len + 1] = b;
                if (naive_sequence(m, path, seq_len + 2, branch, &w) != 0) return -1;
                if (b > 0 && w != out_width) return -1;
                out_width = w;
                for (size_t j = 0; j < w; j++) sum[j] += branch[j];
            }
            memcpy(cur, sum, out_width * sizeof *cur);
            *width = out_width;
            break;
        }
        default:
            fprintf(stderr, "layer %zu: kind %d is not in this test's oracle\n", l,
                    (int)info.kind);
            return -1;
        }
    }
    return 0;
}

/* The model's function on n flat samples, computed here from its parameters in double.
 * Writes n * output_len values to y; returns 0 on success, -1 on failure. */
static int naive_forward(const NmModel *m, const float *x, size_t n, double *y) {
    size_t in_len = 0, out_len = 0;
    if (nm_model_input_len(m, &in_len) != NM_STATUS_OK ||
        nm_model_output_len(m, &out_len) != NM_STATUS_OK || in_len > MAX_WIDTH)
        return -1;
    for (size_t s = 0; s < n; s++) {
        double cur[MAX_WIDTH];
        size_t width = in_len, path[MAX_PATH + 1];
        for (size_t i = 0; i < in_len; i++) cur[i] = x[s * in_len + i];
        if (naive_sequence(m, path, 0, cur, &width) != 0 || width != out_len) return -1;
        for (size_t o = 0; o < out_len; o++) y[s * out_len + o] = cur[o];
    }
    return 0;
}

/* max |child - parent| / max |parent| over n * len values. */
static double rel_deviation(const double *child, const float *parent, size_t count) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = fabs(child[i] - (double)parent[i]);
        if (!(d <= diff)) diff = d; /* NaN counts as the largest */
        if (fabs(parent[i]) > scale) scale = fabs(parent[i]);
    }
    return diff / (scale > 0.0 ? scale : 1e-300);
}

/* Checks `child` against the parent's outputs `reference` on `x` with the naive pass. */
static int preserved(const char *what, const NmModel *child, const float *x,
                     const float *reference) {
    double own[N_SAMPLES * N_OUT];
    if (naive_forward(child, x, N_SAMPLES, own) != 0) {
        fprintf(stderr, "FAIL %s: the naive forward pass does not run\n", what);
        return 0;
    }
    size_t layers = 0, params = 0;
    nm_model_layer_count(child, NULL, 0, &layers);
    nm_model_param_count(child, &params);
    double dev = rel_deviation(own, reference, N_SAMPLES * N_OUT);
    printf("  %-34s %zu layers, %4zu params, naive forward vs parent: %.2e relative\n", what,
           layers, params, dev);
    if (!(dev <= PRESERVATION_TOLERANCE)) {
        fprintf(stderr, "FAIL %s: deviation %.3e > %.0e\n", what, dev, PRESERVATION_TOLERANCE);
        return 0;
    }
    return 1;
}

/* Checks what every morph report must say: the parent's and the child's parameter counts
 * (the child larger), a deviation within the library's bound, a residual at the solver's
 * precision, and fields that agree on whether a decomposition ran. */
static int plausible(const char *what, const NmMorphReport *r, const NmModel *parent,
                     const NmModel *child) {
    static const char *algorithms[] = {"none", "general", "practical", "auto"};
    size_t before = 0, after = 0;
    nm_model_param_count(parent, &before);
    nm_model_param_count(child, &after);
    int solved = r->solves > 0;
    int ok = r->params_before == before && r->params_after == after && after > before &&
             r->max_rel_deviation >= 0.0 && r->max_rel_deviation <= MORPH_TOLERANCE &&
             r->residual >= 0.0 && r->residual <= RESIDUAL_TOLERANCE &&
             r->nonzero_fraction >= 0.0 && r->nonzero_fraction <= 1.0 && r->new_layers >= 1 &&
             (unsigned)r->algorithm <= NM_ALGORITHM_AUTO &&
             solved == (r->algorithm != NM_ALGORITHM_NONE) &&
             solved == (r->condition7 != -1) && (r->condition7 >= -1 && r->condition7 <= 1);
    printf("    report: %zu -> %zu params, %zu new layers, algorithm %s, condition (7) %s, "
           "residual %.1e in %zu solves, non-zero %.2f, deviation %.1e\n",
           r->params_before, r->params_after, r->new_layers,
           (unsigned)r->algorithm <= NM_ALGORITHM_AUTO ? algorithms[r->algorithm] : "?",
           r->condition7 == 1 ? "held" : r->condition7 == 0 ? "failed" : "n/a", r->residual,
           r->solves, r->nonzero_fraction, r->max_rel_deviation);
    if (!ok) fprintf(stderr, "FAIL %s: implausible report\n", what);
    return ok;
}

/* n values uniform in [-s, s) with s = std sqrt(3): mean 0, standard deviation std. */
static void fill(float *v, size_t n, double std) {
    for (size_t i = 0; i < n; i++) v[i] = (float)(uniform() * std * 1.7320508075688772);
}

/* Whether the layer at path holds exactly these arrays (NULL/0 for an array it has not). */
static int holds(const NmModel *m, const size_t *path, size_t path_len, const float *w,
                 size_t w_len, const float *b, size_t b_len, const float *a, size_t a_len) {
    NmLayerInfo info;
    if (nm_model_layer(m, path, path_len, &info) != NM_STATUS_OK) return 0;
    return info.weight_len == w_len && info.bias_len == b_len && info.a_len == a_len &&
           (w_len == 0 || memcmp(info.weight, w, w_len * sizeof *w) == 0) &&
           (b_len == 0 || memcmp(info.bias, b, b_len * sizeof *b) == 0) &&
           (a_len == 0 || memcmp(info.a, a, a_len * sizeof *a) == 0);
}

int main(void) {
    NmModel *parent = NULL, *deeper = NULL, *wider = NULL, *third = NULL, *stacked = NULL;
    NmModel *nested = NULL, *loaded = NULL, *none = NULL;
    char dir[] = "/tmp/netmorph-capi-XXXXXX", file[64] = "";
    int have_dir = 0;
    static float x[N_SAMPLES * N_IN], y_parent[N_SAMPLES * N_OUT], y2[N_SAMPLES * N_OUT];
    static uint32_t labels[N_SAMPLES];
    static float w1[N_HIDDEN * N_IN], b1[N_HIDDEN], a1[N_HIDDEN], w2[N_OUT * N_HIDDEN],
        b2[N_OUT];
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and stderr in order when piped */

    /* 1. A 20-16-5 MLP from this file's arrays: dense, ReLU P-activation (a = 0), dense. */
    fill(w1, N_HIDDEN * N_IN, 1.0 / sqrt(N_IN));
    fill(b1, N_HIDDEN, 0.1);
    fill(w2, N_OUT * N_HIDDEN, 1.0 / sqrt(N_HIDDEN));
    fill(b2, N_OUT, 0.1);
    NmLayerSpec specs[3] = {
        {.kind = NM_LAYER_KIND_DENSE, .out = N_HIDDEN, .in = N_IN, .weight = w1,
         .weight_len = N_HIDDEN * N_IN, .bias = b1, .bias_len = N_HIDDEN},
        {.kind = NM_LAYER_KIND_ACTIVATION, .out = N_HIDDEN, .function = NM_ACTIVATION_RELU,
         .a = a1, .a_len = N_HIDDEN},
        {.kind = NM_LAYER_KIND_DENSE, .out = N_OUT, .in = N_HIDDEN, .weight = w2,
         .weight_len = N_OUT * N_HIDDEN, .bias = b2, .bias_len = N_OUT},
    };
    OK(nm_model_new(specs, 3, N_IN, 1, 1, &parent));
    const size_t at0[] = {0}, at1[] = {1}, at2[] = {2};
    CHECK(holds(parent, at0, 1, w1, N_HIDDEN * N_IN, b1, N_HIDDEN, NULL, 0) &&
              holds(parent, at1, 1, NULL, 0, NULL, 0, a1, N_HIDDEN) &&
              holds(parent, at2, 1, w2, N_OUT * N_HIDDEN, b2, N_OUT, NULL, 0),
          "the model holds this file's arrays, bit for bit");
    size_t in_len = 0, out_len = 0, params = 0, layers = 0;
    OK(nm_model_input_len(parent, &in_len));
    OK(nm_model_output_len(parent, &out_len));
    OK(nm_model_param_count(parent, &params));
    OK(nm_model_layer_count(parent, NULL, 0, &layers));
    CHECK(in_len == N_IN && out_len == N_OUT, "sizes %zu -> %zu", in_len, out_len);
    CHECK(params == N_IN * N_HIDDEN + N_HIDDEN + N_HIDDEN + N_HIDDEN * N_OUT + N_OUT,
          "%zu parameters", params);
    CHECK(layers == 3, "%zu layers (dense, activation, dense)", layers);
    CHECK(strcmp(nm_last_error(), "") == 0, "the last error after a success is empty");
    printf("built a %d-%d-%d MLP from its arrays: %zu layers, %zu parameters, read back "
           "bit-identical\n",
           N_IN, N_HIDDEN, N_OUT, layers, params);

    double rule[N_OUT][N_IN];
    for (int o = 0; o < N_OUT; o++)
        for (int i = 0; i < N_IN; i++) rule[o][i] = uniform();
    for (int s = 0; s < N_SAMPLES; s++) {
        double best = -INFINITY;
        for (int i = 0; i < N_IN; i++) x[s * N_IN + i] = (float)uniform();
        for (int o = 0; o < N_OUT; o++) {
            double v = 0.0;
            for (int i = 0; i < N_IN; i++) v += rule[o][i] * x[s * N_IN + i];
            if (v > best) { best = v; labels[s] = (uint32_t)o; }
        }
    }
    double first = 0.0, last = 0.0;
    const int epochs = 8, steps = N_SAMPLES / BATCH;
    for (int e = 0; e < epochs; e++) {
        double sum = 0.0;
        for (int b = 0; b < steps; b++) {
            float loss = NAN;
            OK(nm_sgd_step(parent, x + b * BATCH * N_IN, BATCH * N_IN, labels + b * BATCH,
                           BATCH, 0.05f, 0.9f, &loss));
            CHECK(isfinite(loss), "loss %g", loss);
            sum += loss;
        }
        if (e == 0) first = sum / steps;
        last = sum / steps;
    }
    printf("trained %d SGD steps: mean loss %.4f in the first epoch, %.4f in the last\n",
           epochs * steps, first, last);
    CHECK(last < first, "the loss did not fall (%.4f -> %.4f)", first, last);

    /* 2. Write back: the trained output layer halved with a shifted bias, and a leaky a. */
    NmLayerInfo info;
    OK(nm_model_layer(parent, at2, 1, &info));
    CHECK(info.weight_len == N_OUT * N_HIDDEN && info.bias_len == N_OUT, "layer 2's sizes");
    for (size_t i = 0; i < info.weight_len; i++) w2[i] = 0.5f * info.weight[i];
    for (size_t i = 0; i < info.bias_len; i++) b2[i] = info.bias[i] + 0.125f;
    for (size_t c = 0; c < N_HIDDEN; c++) a1[c] = (float)c / (2 * N_HIDDEN);
    OK(nm_model_set_layer(parent, at2, 1, w2, N_OUT * N_HIDDEN, b2, N_OUT, NULL, 0));
    OK(nm_model_set_layer(parent, at1, 1, NULL, 0, NULL, 0, a1, N_HIDDEN));
    CHECK(holds(parent, at2, 1, w2, N_OUT * N_HIDDEN, b2, N_OUT, NULL, 0) &&
              holds(parent, at1, 1, NULL, 0, NULL, 0, a1, N_HIDDEN),
          "the written arrays read back bit for bit");
    OK(nm_forward(parent, x, N_SAMPLES, sizeof x / sizeof *x, y_parent,
                  sizeof y_parent / sizeof *y_parent));
    /* Refused writes leave every output bit as it was. */
    w2[7] = NAN;
    CHECK(nm_model_set_layer(parent, at2, 1, w2, N_OUT * N_HIDDEN, b2, N_OUT, NULL, 0) ==
              NM_STATUS_ERR_ARGUMENT,
          "a NaN weight");
    CHECK(strstr(nm_last_error(), "`weight[7]` is NaN") != NULL, "message: %s", nm_last_error());
    printf("NaN weight refused: %s\n", nm_last_error());
    w2[7] = 0.0f;
    CHECK(nm_model_set_layer(parent, at2, 1, w2, N_OUT * N_HIDDEN - 1, b2, N_OUT, NULL, 0) ==
              NM_STATUS_ERR_ARGUMENT,
          "a short weight array");
    CHECK(strstr(nm_last_error(), "needs 80 (out x in = 5 x 16)") != NULL, "message: %s",
          nm_last_error());
    printf("short weight array refused: %s\n", nm_last_error());
    a1[3] = 1.5f;
    CHECK(nm_model_set_layer(parent, at1, 1, NULL, 0, NULL, 0, a1, N_HIDDEN) ==
              NM_STATUS_ERR_ARGUMENT,
          "an a outside [0, 1]");
    a1[3] = 0.0f;
    OK(nm_forward(parent, x, N_SAMPLES, sizeof x / sizeof *x, y2, sizeof y2 / sizeof *y2));
    CHECK(memcmp(y2, y_parent, sizeof y2) == 0, "a refused write changed the model");
    printf("wrote layer 2's weight and bias and layer 1's a; refused writes changed nothing\n");
    printf("function preservation (own forward pass in C, tolerance %.0e):\n",
           PRESERVATION_TOLERANCE);
    CHECK(preserved("parent (the oracle itself)", parent, x, y_parent), "oracle");

    /* 3-4. Deepen the first dense layer, widen the new layer, one more morph by string. */
    NmMorphReport report;
    OK(nm_deepen(parent, at0, 1, 16, 1, 1, NM_ACTIVATION_TANH, 7, &deeper, &report));
    CHECK(preserved("depth@0,cl=16,act=tanh", deeper, x, y_parent), "deepen");
    CHECK(plausible("nm_deepen", &report, parent, deeper), "deepen's report");
    CHECK(report.new_layers == 3 && report.solves >= 1, "deepen made F_l, an activation, F_l+1");
    OK(nm_model_layer(deeper, at1, 1, &info));
    CHECK(info.kind == NM_LAYER_KIND_ACTIVATION && info.function == NM_ACTIVATION_TANH &&
              info.a_len == 16 && info.a[0] == 1.0f,
          "layer 1 of the deepened child is a linear tanh P-activation over 16 channels");
    OK(nm_widen(deeper, at0, 1, 24, 8, &wider, &report));
    CHECK(preserved("then width@0,to=24", wider, x, y_parent), "widen");
    CHECK(plausible("nm_widen", &report, deeper, wider), "widen's report");
    CHECK(report.algorithm == NM_ALGORITHM_NONE && report.condition7 == -1,
          "a width morph is closed-form");
    OK(nm_model_layer(wider, at0, 1, &info));
    CHECK(info.kind == NM_LAYER_KIND_DENSE && info.out == 24 && info.in == N_IN,
          "layer 0 of the widened child is dense 20 -> 24");
    OK(nm_morph(wider, "depth@2,cl=16,act=sigmoid", 9, &third, &report));
    CHECK(preserved("then depth@2,cl=16,act=sigmoid", third, x, y_parent), "nm_morph");
    CHECK(plausible("nm_morph", &report, wider, third), "nm_morph's report");

    /* Nested: the last layer (dense 16 -> 5, index 6) split into two branches, then the
     * dense layer of branch 1 deepened by its path {6, 1, 0}. */
    OK(nm_morph(third, "stack@6,n=2", 3, &stacked, &report));
    const size_t block[] = {6}, branch1[] = {6, 1}, inside[] = {6, 1, 0};
    OK(nm_model_layer(stacked, block, 1, &info));
    CHECK(info.kind == NM_LAYER_KIND_PARALLEL_SUM && info.branches == 2,
          "layer 6 is a parallel block of 2 branches");
    CHECK(preserved("then stack@6,n=2", stacked, x, y_parent), "stack");
    CHECK(plausible("stack@6,n=2", &report, third, stacked), "stack's report");
    OK(nm_deepen(stacked, inside, 3, 8, 1, 1, NM_ACTIVATION_RELU, 11, &nested, &report));
    CHECK(preserved("then nm_deepen at path 6.1.0", nested, x, y_parent), "nested deepen");
    CHECK(plausible("nm_deepen at 6.1.0", &report, stacked, nested), "nested report");
    OK(nm_model_layer_count(nested, branch1, 2, &layers));
    CHECK(layers == 3, "branch 6.1 holds %zu layers, not 3", layers);
    /* Written back from its own pointers (the model's arrays as input): nothing changes. */
    OK(nm_forward(nested, x, N_SAMPLES, sizeof x / sizeof *x, y2, sizeof y2 / sizeof *y2));
    OK(nm_model_layer(nested, inside, 3, &info));
    OK(nm_model_set_layer(nested, inside, 3, info.weight, info.weight_len, info.bias,
                          info.bias_len, NULL, 0));
    float y_again[N_SAMPLES * N_OUT];
    OK(nm_forward(nested, x, N_SAMPLES, sizeof x / sizeof *x, y_again, N_SAMPLES * N_OUT));
    CHECK(memcmp(y_again, y2, sizeof y2) == 0, "a layer written from itself changed");
    double dev = INFINITY;
    OK(nm_check_preservation(parent, nested, 128, 5, &dev));
    printf("  nm_check_preservation(parent, last child, 128 probes): %.2e relative\n", dev);
    CHECK(dev <= MORPH_TOLERANCE, "nm_check_preservation: %g", dev);
    float loss = NAN;
    OK(nm_sgd_step(nested, x, sizeof x / sizeof *x, labels, N_SAMPLES, 0.05f, 0.9f, &loss));
    printf("trained the last child one step: loss %.4f\n", loss);

    /* Growing a kernel needs a convolution: on a dense layer it is refused with a message,
     * and the report is not written. */
    report.params_before = 12345;
    CHECK(nm_grow_kernel(parent, at0, 1, 3, &none, &report) == NM_STATUS_ERR_MORPH &&
              none == NULL && report.params_before == 12345,
          "nm_grow_kernel on a dense layer");
    CHECK(strlen(nm_last_error()) > 0, "nm_grow_kernel's error has a message");
    printf("kernel morph of a dense layer refused: %s\n", nm_last_error());

    /* 5. Save and load through a temporary file: the same outputs, bit for bit. */
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    have_dir = 1;
    snprintf(file, sizeof file, "%s/nested.safetensors", dir);
    OK(nm_model_save(nested, file));
    OK(nm_model_load(file, &loaded));
    OK(nm_forward(loaded, x, N_SAMPLES, sizeof x / sizeof *x, y2, N_SAMPLES * N_OUT));
    OK(nm_forward(nested, x, N_SAMPLES, sizeof x / sizeof *x, y_again, N_SAMPLES * N_OUT));
    CHECK(memcmp(y_again, y2, sizeof y2) == 0, "the loaded model computes what was saved");
    printf("saved and loaded %s: outputs bit-identical\n", file);

    /* 6. Error paths. */
    size_t n = 0;
    CHECK(nm_model_layer_count(NULL, NULL, 0, &n) == NM_STATUS_ERR_NULL, "NULL model");
    CHECK(strstr(nm_last_error(), "`m` is NULL") != NULL, "NULL message: %s", nm_last_error());
    CHECK(nm_forward(parent, NULL, 1, N_IN, y2, N_OUT) == NM_STATUS_ERR_NULL, "NULL x");
    const size_t sizes[] = {N_IN, N_HIDDEN, N_OUT};
    CHECK(nm_model_new_mlp(sizes, 3, 1, NULL) == NM_STATUS_ERR_NULL, "NULL out");
    CHECK(nm_morph(parent, "depth@0", 1, &none, NULL) == NM_STATUS_ERR_ARGUMENT && none == NULL,
          "an operation without cl=");
    CHECK(strstr(nm_last_error(), "missing `cl=`") != NULL, "message: %s", nm_last_error());
    printf("bad operation refused: %s\n", nm_last_error());
    CHECK(nm_morph(parent, "depth@9,cl=4", 1, &none, NULL) == NM_STATUS_ERR_ARGUMENT &&
              none == NULL,
          "a morph of a layer that does not exist");
    const size_t missing[] = {6, 2, 0}, through_dense[] = {0, 0, 0};
    CHECK(nm_deepen(stacked, missing, 3, 8, 1, 1, NM_ACTIVATION_RELU, 1, &none, NULL) ==
                  NM_STATUS_ERR_ARGUMENT &&
              none == NULL,
          "a path past the block's branches");
    CHECK(strstr(nm_last_error(), "layer path 6.2.0 does not exist: the parallel block 6 has "
                                  "2 branches") != NULL,
          "message: %s", nm_last_error());
    printf("missing path refused: %s\n", nm_last_error());
    CHECK(nm_model_layer(stacked, through_dense, 3, &info) == NM_STATUS_ERR_ARGUMENT &&
              strstr(nm_last_error(), "layer 0 is a dense layer, not a parallel block") != NULL,
          "a path through a dense layer: %s", nm_last_error());
    CHECK(nm_model_layer(parent, NULL, 1, &info) == NM_STATUS_ERR_NULL, "NULL path");
    CHECK(nm_model_load("/nonexistent/netmorph/model.safetensors", &none) == NM_STATUS_ERR_IO &&
              none == NULL,
          "a missing file");
    printf("missing file refused: %s\n", nm_last_error());
    for (size_t i = 0; i < N_OUT + 1; i++) y2[i] = -7.0f;
    CHECK(nm_forward(parent, x, 1, N_IN, y2, N_OUT - 1) == NM_STATUS_ERR_ARGUMENT,
          "a short output buffer");
    for (size_t i = 0; i < N_OUT + 1; i++) CHECK(y2[i] == -7.0f, "y2[%zu] was written", i);
    CHECK(nm_forward(parent, x, 2, N_IN + 1, y2, 2 * N_OUT) == NM_STATUS_ERR_ARGUMENT,
          "a short input buffer");
    uint32_t bad = N_OUT;
    CHECK(nm_sgd_step(parent, x, N_IN, &bad, 1, 0.1f, 0.0f, NULL) == NM_STATUS_ERR_ARGUMENT,
          "a label out of range");
    const size_t past[] = {3};
    CHECK(nm_model_layer(parent, past, 1, &info) == NM_STATUS_ERR_ARGUMENT, "layer index");
    CHECK(nm_deepen(parent, at0, 1, 8, 1, 1, 42, 1, &none, NULL) == NM_STATUS_ERR_ARGUMENT &&
              none == NULL,
          "an activation out of range");
    const size_t zero[] = {N_IN, 0, N_OUT};
    CHECK(nm_model_new_mlp(zero, 3, 1, &none) == NM_STATUS_ERR_ARGUMENT && none == NULL,
          "a zero width");
    /* Bad layer specs: a length that is not what the sizes need, a layer that does not chain,
     * a NaN. The message names the layer. */
    specs[2].weight_len = N_OUT * N_HIDDEN + 1;
    CHECK(nm_model_new(specs, 3, N_IN, 1, 1, &none) == NM_STATUS_ERR_ARGUMENT && none == NULL,
          "a long weight array");
    CHECK(strstr(nm_last_error(), "layers[2]: `weight_len` is 81 but this dense layer needs "
                                  "80") != NULL,
          "message: %s", nm_last_error());
    printf("bad layer spec refused: %s\n", nm_last_error());
    specs[2].weight_len = N_OUT * N_HIDDEN;
    CHECK(nm_model_new(specs, 3, N_IN + 1, 1, 1, &none) == NM_STATUS_ERR_ARGUMENT &&
              strstr(nm_last_error(), "layer 0 expects 20 input channels but receives 21") !=
                  NULL,
          "inputs that do not chain: %s", nm_last_error());
    b1[4] = INFINITY;
    CHECK(nm_model_new(specs, 3, N_IN, 1, 1, &none) == NM_STATUS_ERR_ARGUMENT &&
              strstr(nm_last_error(), "layers[0]: `bias[4]` is inf") != NULL,
          "an infinite bias: %s", nm_last_error());
    printf("error paths: NULL pointers, bad operation, missing path, missing file, short "
           "buffers, bad label, layer index, activation code, zero width, bad layer specs: "
           "all refused\n");

done:
    if (file[0]) unlink(file);
    if (have_dir) rmdir(dir);
    nm_model_free(loaded);
    nm_model_free(nested);
    nm_model_free(stacked);
    nm_model_free(third);
    nm_model_free(wider);
    nm_model_free(deeper);
    nm_model_free(parent);
    nm_model_free(NULL);
    if (failures) {
        fprintf(stderr, "grow.c: %d check(s) failed\n", failures);
        return 1;
    }
    printf("grow.c: all checks passed\n");
    return 0;
}
