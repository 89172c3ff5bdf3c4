/*
 * The C API end to end, as a C program would use it (capi/tests/c/run.sh builds it against
 * libnetmorph_c.a and runs it under valgrind and AddressSanitizer):
 *
 *   1. make a 20-16-5 MLP and train it a few SGD steps on data from a fixed random linear rule;
 *   2. deepen its first dense layer (tanh P-activation), widen the new first layer, and deepen
 *      once more through the operation language;
 *   3. run each child with this file's own naive forward pass (double precision, over the
 *      parameters nm_model_layer exposes) and compare with the parent's nm_forward outputs:
 *      the relative max-abs deviation must be at most 1e-5;
 *   4. save and load through a temporary file;
 *   5. the error paths: NULL pointers, a bad operation, a missing file, short buffers, a
 *      kernel morph on a dense layer.
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

#define N_IN 20
#define N_HIDDEN 16
#define N_OUT 5
#define N_SAMPLES 64
#define BATCH 16

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

/* The model's function on n flat samples, computed here from its parameters in double:
 * dense y = W x + b, P-activation (1 - a) phi(x) + a x per channel, flatten a no-op on flat
 * blobs. Writes n * output_len values to y; returns 0 on success, -1 (with a message) for a
 * layer this oracle does not implement or sizes that do not chain. */
static int naive_forward(const NmModel *m, const float *x, size_t n, double *y) {
    size_t layers = 0, in_len = 0, out_len = 0;
    if (nm_model_layer_count(m, &layers) != NM_STATUS_OK ||
        nm_model_input_len(m, &in_len) != NM_STATUS_OK ||
        nm_model_output_len(m, &out_len) != NM_STATUS_OK)
        return -1;
    size_t width = in_len, widest = in_len;
    for (size_t l = 0; l < layers; l++) {
        NmLayerInfo info;
        if (nm_model_layer(m, l, &info) != NM_STATUS_OK) return -1;
        if (info.out > widest) widest = info.out;
    }
    double *cur = malloc(widest * sizeof *cur), *next = malloc(widest * sizeof *next);
    int status = (cur && next) ? 0 : -1;
    for (size_t s = 0; s < n && status == 0; s++) {
        width = in_len;
        for (size_t i = 0; i < in_len; i++) cur[i] = x[s * in_len + i];
        for (size_t l = 0; l < layers && status == 0; l++) {
            NmLayerInfo info;
            if (nm_model_layer(m, l, &info) != NM_STATUS_OK) { status = -1; break; }
            switch (info.kind) {
            case NM_LAYER_KIND_FLATTEN: break;
            case NM_LAYER_KIND_DENSE:
                if (info.in != width || info.weight_len != info.out * info.in ||
                    info.bias_len != info.out) {
                    fprintf(stderr, "layer %zu: dense sizes do not chain\n", l);
                    status = -1;
                    break;
                }
                for (size_t o = 0; o < info.out; o++) {
                    double acc = info.bias[o];
                    for (size_t i = 0; i < info.in; i++)
                        acc += (double)info.weight[o * info.in + i] * cur[i];
                    next[o] = acc;
                }
                width = info.out;
                { double *t = cur; cur = next; next = t; }
                break;
            case NM_LAYER_KIND_ACTIVATION:
                if (info.a_len != width) { status = -1; break; }
                for (size_t c = 0; c < width; c++) {
                    double a = info.a[c];
                    cur[c] = (1.0 - a) * phi(info.function, cur[c]) + a * cur[c];
                }
                break;
            default:
                fprintf(stderr, "layer %zu: kind %d is not in this test's oracle\n", l,
                        (int)info.kind);
                status = -1;
            }
        }
        if (status == 0 && width != out_len) status = -1;
        for (size_t o = 0; o < out_len && status == 0; o++) y[s * out_len + o] = cur[o];
    }
    free(cur);
    free(next);
    return status;
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
    nm_model_layer_count(child, &layers);
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

int main(void) {
    NmModel *parent = NULL, *deeper = NULL, *wider = NULL, *third = NULL, *loaded = NULL;
    NmModel *none = NULL;
    char dir[] = "/tmp/netmorph-capi-XXXXXX", file[64] = "";
    int have_dir = 0;
    static float x[N_SAMPLES * N_IN], y_parent[N_SAMPLES * N_OUT], y2[N_SAMPLES * N_OUT];
    static uint32_t labels[N_SAMPLES];
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and stderr in order when piped */

    /* 1. A 20-16-5 MLP, data from a fixed random linear rule, a few SGD steps. */
    const size_t sizes[] = {N_IN, N_HIDDEN, N_OUT};
    OK(nm_model_new_mlp(sizes, 3, 42, &parent));
    size_t in_len = 0, out_len = 0, params = 0, layers = 0;
    OK(nm_model_input_len(parent, &in_len));
    OK(nm_model_output_len(parent, &out_len));
    OK(nm_model_param_count(parent, &params));
    OK(nm_model_layer_count(parent, &layers));
    CHECK(in_len == N_IN && out_len == N_OUT, "sizes %zu -> %zu", in_len, out_len);
    CHECK(params == N_IN * N_HIDDEN + N_HIDDEN + N_HIDDEN + N_HIDDEN * N_OUT + N_OUT,
          "%zu parameters", params);
    CHECK(layers == 4, "%zu layers (flatten, dense, activation, dense)", layers);
    CHECK(strcmp(nm_last_error(), "") == 0, "the last error after a success is empty");
    printf("made a %d-%d-%d MLP: %zu layers, %zu parameters\n", N_IN, N_HIDDEN, N_OUT, layers,
           params);

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

    OK(nm_forward(parent, x, N_SAMPLES, sizeof x / sizeof *x, y_parent,
                  sizeof y_parent / sizeof *y_parent));
    printf("function preservation (own forward pass in C, tolerance %.0e):\n",
           PRESERVATION_TOLERANCE);
    CHECK(preserved("parent (the oracle itself)", parent, x, y_parent), "oracle");

    /* 2-3. Deepen the first dense layer, widen the new layer, one more morph by string. */
    OK(nm_deepen(parent, 1, 16, 1, 1, NM_ACTIVATION_TANH, 7, &deeper));
    NmLayerInfo info;
    OK(nm_model_layer(deeper, 2, &info));
    CHECK(info.kind == NM_LAYER_KIND_ACTIVATION && info.function == NM_ACTIVATION_TANH &&
              info.a_len == 16 && info.a[0] == 1.0f,
          "layer 2 of the deepened child is a linear tanh P-activation over 16 channels");
    CHECK(preserved("depth@1,cl=16,act=tanh", deeper, x, y_parent), "deepen");
    OK(nm_widen(deeper, 1, 24, 8, &wider));
    OK(nm_model_layer(wider, 1, &info));
    CHECK(info.kind == NM_LAYER_KIND_DENSE && info.out == 24 && info.in == N_IN,
          "layer 1 of the widened child is dense 20 -> 24");
    CHECK(preserved("then width@1,to=24", wider, x, y_parent), "widen");
    OK(nm_morph(wider, "depth@3,cl=16,act=sigmoid", 9, &third));
    CHECK(preserved("then depth@3,cl=16,act=sigmoid", third, x, y_parent), "nm_morph");
    double dev = INFINITY;
    OK(nm_check_preservation(parent, third, 128, 5, &dev));
    printf("  nm_check_preservation(parent, last child, 128 probes): %.2e relative\n", dev);
    CHECK(dev <= 1e-4, "nm_check_preservation: %g", dev);
    float loss = NAN;
    OK(nm_sgd_step(third, x, sizeof x / sizeof *x, labels, N_SAMPLES, 0.05f, 0.9f, &loss));
    printf("trained the last child one step: loss %.4f\n", loss);

    /* Growing a kernel needs a convolution: on a dense layer it is refused with a message. */
    CHECK(nm_grow_kernel(parent, 1, 3, &none) == NM_STATUS_ERR_MORPH && none == NULL,
          "nm_grow_kernel on a dense layer");
    CHECK(strlen(nm_last_error()) > 0, "nm_grow_kernel's error has a message");
    printf("kernel morph of a dense layer refused: %s\n", nm_last_error());

    /* 4. Save and load through a temporary file: the same outputs, bit for bit. */
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    have_dir = 1;
    snprintf(file, sizeof file, "%s/wider.safetensors", dir);
    OK(nm_model_save(wider, file));
    OK(nm_model_load(file, &loaded));
    float y_wider[N_SAMPLES * N_OUT];
    OK(nm_forward(wider, x, N_SAMPLES, sizeof x / sizeof *x, y_wider, N_SAMPLES * N_OUT));
    OK(nm_forward(loaded, x, N_SAMPLES, sizeof x / sizeof *x, y2, N_SAMPLES * N_OUT));
    CHECK(memcmp(y_wider, y2, sizeof y2) == 0, "the loaded model computes what was saved");
    printf("saved and loaded %s: outputs bit-identical\n", file);

    /* 5. Error paths. */
    size_t n = 0;
    CHECK(nm_model_layer_count(NULL, &n) == NM_STATUS_ERR_NULL, "NULL model");
    CHECK(strstr(nm_last_error(), "`m` is NULL") != NULL, "NULL message: %s", nm_last_error());
    CHECK(nm_forward(parent, NULL, 1, N_IN, y2, N_OUT) == NM_STATUS_ERR_NULL, "NULL x");
    CHECK(nm_model_new_mlp(sizes, 3, 1, NULL) == NM_STATUS_ERR_NULL, "NULL out");
    CHECK(nm_morph(parent, "depth@1", 1, &none) == NM_STATUS_ERR_ARGUMENT && none == NULL,
          "an operation without cl=");
    CHECK(strstr(nm_last_error(), "missing `cl=`") != NULL, "message: %s", nm_last_error());
    printf("bad operation refused: %s\n", nm_last_error());
    CHECK(nm_morph(parent, "depth@9,cl=4", 1, &none) == NM_STATUS_ERR_MORPH && none == NULL,
          "a morph of a layer that does not exist");
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
    CHECK(nm_model_layer(parent, layers, &info) == NM_STATUS_ERR_ARGUMENT, "layer index");
    CHECK(nm_deepen(parent, 1, 8, 1, 1, 42, 1, &none) == NM_STATUS_ERR_ARGUMENT && none == NULL,
          "an activation out of range");
    const size_t zero[] = {N_IN, 0, N_OUT};
    CHECK(nm_model_new_mlp(zero, 3, 1, &none) == NM_STATUS_ERR_ARGUMENT && none == NULL,
          "a zero width");
    printf("error paths: NULL pointers, bad operation, missing file, short buffers, bad label, "
           "layer index, activation code, zero width: all refused\n");

done:
    if (file[0]) unlink(file);
    if (have_dir) rmdir(dir);
    nm_model_free(loaded);
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
