/*
 * model_impl.h — the GPT forward and backward written once over a real type, included twice by
 * model.c: as fp32 (the model the trainer runs) and as fp64 (the reference of the gradient
 * check). Not a public header.
 *
 * Before including, model.c defines:
 *   GPT_REAL   float or double
 *   GPT_SFX    function suffix token (_f32 / _f64)
 *   GPT_MODEL  the struct name (gpt_model / gpt_model_f64)
 *   GPT_EXP, GPT_LOG, GPT_TANH, GPT_SQRT  the matching libm functions
 * It owns the struct GPT_MODEL (activations of one batch shape) and every kernel: GEMM with
 * runtime ISA dispatch (target_clones), layernorm, causal attention, GELU, softmax cross-entropy,
 * embeddings, and their backward passes.
 *
 * Determinism: every parallel loop splits independent outputs, and each output is summed in a
 * fixed order, so results do not depend on the number of threads (checkpoint resume relies on
 * it).
 */

#define GPT_CAT2(a, b) a##b
#define GPT_CAT(a, b)  GPT_CAT2(a, b)
#define FN(name)       GPT_CAT(name, GPT_SFX)

typedef GPT_REAL FN(real);
#define R FN(real)

struct GPT_MODEL {
    gpt_config cfg;
    gpt_layout lay;
    int max_batch;    /* B of the allocation */
    size_t maxbt;     /* max_batch * max_seq: rows of every (B, T, .) buffer */
    int B, T;         /* shape of the last forward */
    int have_targets; /* the last forward computed a loss: backward allowed */
    int32_t *tokens;  /* (B, T) copy of the last input */
    int32_t *targets; /* (B, T) */
    size_t bytes;     /* bytes allocated for activations and scratch */

    /* forward activations; per-layer arrays hold L slices of maxbt rows */
    R *encoded;                   /* (B, T, C) */
    R *ln1, *ln1_mean, *ln1_rstd; /* (L, B, T, C), (L, B, T) x2 */
    R *qkv;                       /* (L, B, T, 3C) */
    R *atty;                      /* (L, B, T, C) attention output before the projection */
    R *att;                       /* (L, B, NH, T, T) attention probabilities */
    R *res2;                      /* (L, B, T, C) residual after attention */
    R *ln2, *ln2_mean, *ln2_rstd;
    R *fch, *fchg;                /* (L, B, T, 4C) MLP hidden before / after GELU */
    R *res3;                      /* (L, B, T, C) residual after the MLP (block output) */
    R *lnf, *lnf_mean, *lnf_rstd; /* (B, T, C), (B, T) x2 */
    R *logits;                    /* (B, T, V) */
    R *probs;                     /* (B, T, V) softmax of logits */
    R *losses;                    /* (B, T) per-position loss */

    /* backward buffers */
    R *dres;    /* (B, T, C) gradient of the residual stream */
    R *dbig;    /* (B, T, 4C) dfch / dqkv */
    R *dln;     /* (B, T, C) gradient of a layernorm output */
    R *datty;   /* (B, T, C) */
    R *dlogits; /* (B, T, V) */
    R *datt;    /* (B, NH, T) attention row scratch */
    R *tr_act;  /* (max(4C, V) * B * T) transposed activations */
    R *tr_w;    /* (max(4C * C, V * C)) transposed weights */
};

/* ---- GEMM: c (M, N) = [c +] [bias +] a (M, K) @ b (K, N), all row-major ------------------- */
/* Below these sizes a kernel runs on the calling thread: a parallel region costs more than it
 * saves, and much more when other processes hold the cores (a descheduled thread stalls the
 * barrier). */
#define GPT_PAR_MIN_MACS  ((size_t)1 << 18)
#define GPT_PAR_MIN_ELEMS ((size_t)1 << 15)
#define GPT_TM            4  /* rows per block */
#define GPT_TN            64 /* columns per register tile */

/* One tile: c (rows <= TM, nw <= TN) with row stride ldc = [c +] [bias +] a (rows, K) @ b (K, nw)
 * with row stride ldb. */
GPT_CLONES static void FN(gemm_tile)(R *restrict c, const R *restrict a, const R *restrict b,
                                     const R *restrict bias, int rows, int nw, int ldc, int ldb,
                                     int K, int accumulate)
{
    R acc[GPT_TM][GPT_TN];
    if (rows == GPT_TM && nw == GPT_TN) { /* the hot path: all sizes constant */
        for (int i = 0; i < GPT_TM; i++)
            for (int j = 0; j < GPT_TN; j++)
                acc[i][j] = (accumulate ? c[(size_t)i * ldc + j] : (R)0) + (bias ? bias[j] : (R)0);
        for (int k = 0; k < K; k++) {
            const R *br = b + (size_t)k * ldb;
            for (int i = 0; i < GPT_TM; i++) {
                R av = a[(size_t)i * K + k];
                for (int j = 0; j < GPT_TN; j++) acc[i][j] += av * br[j];
            }
        }
        for (int i = 0; i < GPT_TM; i++)
            for (int j = 0; j < GPT_TN; j++) c[(size_t)i * ldc + j] = acc[i][j];
        return;
    }
    /* edges: the same order of operations with variable bounds */
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < nw; j++)
            acc[i][j] = (accumulate ? c[(size_t)i * ldc + j] : (R)0) + (bias ? bias[j] : (R)0);
    for (int k = 0; k < K; k++) {
        const R *br = b + (size_t)k * ldb;
        for (int i = 0; i < rows; i++) {
            R av = a[(size_t)i * K + k];
            for (int j = 0; j < nw; j++) acc[i][j] += av * br[j];
        }
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < nw; j++) c[(size_t)i * ldc + j] = acc[i][j];
}

/* Tiles are ordered column tile major, row block minor, and each thread takes a contiguous run
 * of them: it copies the (K, TN) slice of b of its current column tile into a contiguous panel
 * once and reuses it for every row block. Without the copy, b's rows are N floats apart; with N
 * a multiple of 1024 they all fall into the same few cache sets and the weight-gradient GEMM
 * (b = the (B*T, out) output gradient) ran at a third of the speed. */
static void FN(gemm)(R *c, const R *a, const R *b, const R *bias, int M, int N, int K,
                     int accumulate)
{
    int ntm = (M + GPT_TM - 1) / GPT_TM, ntn = (N + GPT_TN - 1) / GPT_TN, ntask = ntm * ntn;
#pragma omp parallel if ((size_t)M * N * K >= GPT_PAR_MIN_MACS)
    {
        int nth = omp_get_num_threads(), me = omp_get_thread_num();
        int first = (int)((int64_t)ntask * me / nth), last = (int)((int64_t)ntask * (me + 1) / nth);
        R *panel = malloc((size_t)K * GPT_TN * sizeof(R));
        int packed = -1; /* column tile held in panel */
        for (int task = first; task < last; task++) {
            int m = task % ntm * GPT_TM, nt = task / ntm, nb = nt * GPT_TN;
            int rows = M - m < GPT_TM ? M - m : GPT_TM, nw = N - nb < GPT_TN ? N - nb : GPT_TN;
            const R *bp = b + nb;
            int ldb = N;
            if (panel) {
                if (packed != nt) {
                    for (int k = 0; k < K; k++)
                        memcpy(panel + (size_t)k * GPT_TN, b + (size_t)k * N + nb,
                               (size_t)nw * sizeof(R));
                    packed = nt;
                }
                bp = panel;
                ldb = GPT_TN;
            }
            FN(gemm_tile)
            (c + (size_t)m * N + nb, a + (size_t)m * K, bp, bias ? bias + nb : NULL, rows, nw, N,
             ldb, K, accumulate);
        }
        free(panel);
    }
}

/* dst (cols, rows) = src (rows, cols)^T */
static void FN(transpose)(R *restrict dst, const R *restrict src, int rows, int cols)
{
    enum { TB = 32 };
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= GPT_PAR_MIN_ELEMS)
    for (int cb = 0; cb < cols; cb += TB) {
        int ce = cb + TB < cols ? cb + TB : cols;
        for (int rb = 0; rb < rows; rb += TB) {
            int re = rb + TB < rows ? rb + TB : rows;
            for (int cc = cb; cc < ce; cc++)
                for (int r = rb; r < re; r++)
                    dst[(size_t)cc * rows + r] = src[(size_t)r * cols + cc];
        }
    }
}

/* db (N) += column sums of dy (M, N), rows summed in order */
static void FN(bias_backward)(R *restrict db, const R *restrict dy, int M, int N)
{
#pragma omp parallel for schedule(static) if ((size_t)M * N >= GPT_PAR_MIN_ELEMS)
    for (int nb = 0; nb < N; nb += GPT_TN) {
        int ne = nb + GPT_TN < N ? nb + GPT_TN : N;
        for (int r = 0; r < M; r++) {
            const R *row = dy + (size_t)r * N;
            for (int j = nb; j < ne; j++) db[j] += row[j];
        }
    }
}

/* y (N, OC) = [y +] x (N, IC) @ w (IC, OC) + b */
static void FN(linear_forward)(R *y, const R *x, const R *w, const R *b, int N, int IC, int OC,
                               int accumulate)
{
    FN(gemm)(y, x, w, b, N, OC, IC, accumulate);
}

/* dx (N, IC) = dy @ w^T; dw (IC, OC) += x^T @ dy; db (OC) += colsum(dy) (db may be NULL) */
static void FN(linear_backward)(struct GPT_MODEL *m, R *dx, R *dw, R *db, const R *dy, const R *x,
                                const R *w, int N, int IC, int OC)
{
    FN(transpose)(m->tr_w, w, IC, OC); /* (OC, IC) */
    FN(gemm)(dx, dy, m->tr_w, NULL, N, IC, OC, 0);
    FN(transpose)(m->tr_act, x, N, IC); /* (IC, N) */
    FN(gemm)(dw, m->tr_act, dy, NULL, IC, OC, N, 1);
    if (db) FN(bias_backward)(db, dy, N, OC);
}

/* ---- layernorm over C, eps 1e-5 ---------------------------------------------------------- */
static void FN(layernorm_forward)(R *out, R *mean, R *rstd, const R *inp, const R *w, const R *b,
                                  int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= GPT_PAR_MIN_ELEMS)
    for (int r = 0; r < N; r++) {
        const R *x = inp + (size_t)r * C;
        R s = 0;
        for (int i = 0; i < C; i++) s += x[i];
        R mu = s / (R)C;
        R v = 0;
        for (int i = 0; i < C; i++) v += (x[i] - mu) * (x[i] - mu);
        R rs = (R)1 / GPT_SQRT(v / (R)C + (R)1e-5);
        R *o = out + (size_t)r * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - mu) * rs * w[i] + b[i];
        mean[r] = mu;
        rstd[r] = rs;
    }
}

/* dinp += LN backward of dout; dw, db += */
static void FN(layernorm_backward)(R *dinp, R *dw, R *db, const R *dout, const R *inp, const R *w,
                                   const R *mean, const R *rstd, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= GPT_PAR_MIN_ELEMS)
    for (int r = 0; r < N; r++) {
        const R *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        R mu = mean[r], rs = rstd[r];
        R dsum = 0, dnsum = 0;
        for (int i = 0; i < C; i++) {
            R norm = (x[i] - mu) * rs;
            R dnorm = dy[i] * w[i];
            dsum += dnorm;
            dnsum += dnorm * norm;
        }
        dsum /= (R)C;
        dnsum /= (R)C;
        R *dx = dinp + (size_t)r * C;
        for (int i = 0; i < C; i++) {
            R norm = (x[i] - mu) * rs;
            dx[i] += (dy[i] * w[i] - dsum - norm * dnsum) * rs;
        }
    }
#pragma omp parallel for schedule(static) if ((size_t)N * C >= GPT_PAR_MIN_ELEMS)
    for (int cb = 0; cb < C; cb += GPT_TN) {
        int ce = cb + GPT_TN < C ? cb + GPT_TN : C;
        for (int r = 0; r < N; r++) {
            const R *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
            R mu = mean[r], rs = rstd[r];
            for (int i = cb; i < ce; i++) {
                dw[i] += dy[i] * (x[i] - mu) * rs;
                db[i] += dy[i];
            }
        }
    }
}

/* ---- causal multi-head attention ---------------------------------------------------------- */
/* Dot product of n elements; the simd reduction lets the compiler reorder the sum (a fixed order
 * for a given ISA variant, so results stay reproducible). */
static inline R FN(dot)(const R *restrict a, const R *restrict b, int n)
{
    R s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One query row t of one head: scores against keys 0..t, softmax into row[0..T), weighted sum of
 * the values into o (hs). k and v point at the head's slice of position 0; rows are `stride`
 * apart. */
GPT_CLONES static void FN(attn_fwd_row)(R *restrict o, R *restrict row, const R *restrict q,
                                        const R *restrict k, const R *restrict v, size_t stride,
                                        int t, int T, int hs, R scale)
{
    R maxv = -INFINITY;
    for (int t2 = 0; t2 <= t; t2++) {
        R s = FN(dot)(q, k + (size_t)t2 * stride, hs) * scale;
        row[t2] = s;
        maxv = s > maxv ? s : maxv;
    }
    R sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int t2 = 0; t2 <= t; t2++) {
        R e = GPT_EXP(row[t2] - maxv);
        row[t2] = e;
        sum += e;
    }
    R inv = (R)1 / sum;
    for (int t2 = 0; t2 <= t; t2++) row[t2] *= inv;
    for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0;
    for (int i = 0; i < hs; i++) o[i] = 0;
    for (int t2 = 0; t2 <= t; t2++) {
        const R *vr = v + (size_t)t2 * stride;
        R a = row[t2];
        for (int i = 0; i < hs; i++) o[i] += a * vr[i];
    }
}

/* qkv (B, T, 3C) -> out (B, T, C); att (B, NH, T, T) keeps the probabilities */
static void FN(attention_forward)(R *out, R *att, const R *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    R scale = (R)1 / GPT_SQRT((R)hs);
    size_t stride = 3 * (size_t)C;
#pragma omp parallel for collapse(3) schedule(static) if ((size_t)B * T * T * C >= GPT_PAR_MIN_MACS)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const R *base = qkv + (size_t)b * T * stride + (size_t)h * hs;
                FN(attn_fwd_row)
                (out + ((size_t)b * T + t) * C + (size_t)h * hs,
                 att + (((size_t)b * NH + h) * T + t) * T, base + (size_t)t * stride, base + C,
                 base + 2 * (size_t)C, stride, t, T, hs, scale);
            }
}

/* Backward of one (batch, head): q, k, v and dq, dk, dv point at the head's slice of position 0
 * (rows `stride` apart), dy at its slice of dout (rows C apart), att at its (T, T) block. Serial
 * over queries, so the sums into dk and dv keep a fixed order. */
GPT_CLONES static void FN(attn_bwd_head)(R *restrict dq, R *restrict dk, R *restrict dv,
                                         R *restrict datt, const R *restrict dy,
                                         const R *restrict q, const R *restrict k,
                                         const R *restrict v, const R *restrict att, size_t stride,
                                         int C, int T, int hs, R scale)
{
    for (int t = 0; t < T; t++) {
        const R *row = att + (size_t)t * T;
        const R *dyt = dy + (size_t)t * C, *qt = q + (size_t)t * stride;
        R *dqt = dq + (size_t)t * stride;
        R dot = 0;
        for (int t2 = 0; t2 <= t; t2++) {
            R *dvr = dv + (size_t)t2 * stride;
            R a = row[t2];
            R s = FN(dot)(dyt, v + (size_t)t2 * stride, hs);
            for (int i = 0; i < hs; i++) dvr[i] += a * dyt[i];
            datt[t2] = s;
            dot += a * s;
        }
        for (int t2 = 0; t2 <= t; t2++) {
            const R *kr = k + (size_t)t2 * stride;
            R *dkr = dk + (size_t)t2 * stride;
            R dpre = row[t2] * (datt[t2] - dot) * scale;
            for (int i = 0; i < hs; i++) {
                dqt[i] += dpre * kr[i];
                dkr[i] += dpre * qt[i];
            }
        }
    }
}

/* dqkv (B, T, 3C) = gradient of qkv given dout (B, T, C); one (b, h) per task */
static void FN(attention_backward)(R *dqkv, R *datt_scratch, const R *dout, const R *qkv,
                                   const R *att, int B, int T, int C, int NH)
{
    int hs = C / NH;
    R scale = (R)1 / GPT_SQRT((R)hs);
    size_t stride = 3 * (size_t)C;
    memset(dqkv, 0, (size_t)B * T * stride * sizeof(R));
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * T * C >= GPT_PAR_MIN_MACS)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t off = (size_t)b * T * stride + (size_t)h * hs;
            FN(attn_bwd_head)
            (dqkv + off, dqkv + off + C, dqkv + off + 2 * (size_t)C,
             datt_scratch + ((size_t)b * NH + h) * T, dout + (size_t)b * T * C + (size_t)h * hs,
             qkv + off, qkv + off + C, qkv + off + 2 * (size_t)C,
             att + ((size_t)b * NH + h) * T * T, stride, C, T, hs, scale);
        }
}

/* ---- GELU (tanh approximation) ------------------------------------------------------------ */
#define GPT_GELU_K ((R)0.7978845608028654) /* sqrt(2 / pi) */
#define GPT_CHUNK  4096                    /* elements per task of the element-wise kernels */

GPT_CLONES static void FN(gelu_fwd_chunk)(R *restrict out, const R *restrict inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        R x = inp[i];
        R u = GPT_GELU_K * (x + (R)0.044715 * x * x * x);
        out[i] = (R)0.5 * x * ((R)1 + GPT_TANH(u));
    }
}

/* d *= gelu'(inp) */
GPT_CLONES static void FN(gelu_bwd_chunk)(R *restrict d, const R *restrict inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        R x = inp[i];
        R u = GPT_GELU_K * (x + (R)0.044715 * x * x * x);
        R th = GPT_TANH(u);
        R du = GPT_GELU_K * ((R)1 + (R)3 * (R)0.044715 * x * x);
        d[i] *= (R)0.5 * ((R)1 + th) + (R)0.5 * x * ((R)1 - th * th) * du;
    }
}

static void FN(gelu_forward)(R *out, const R *inp, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= GPT_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i += GPT_CHUNK)
        FN(gelu_fwd_chunk)(out + i, inp + i, n - i < GPT_CHUNK ? n - i : GPT_CHUNK);
}

static void FN(gelu_backward)(R *d, const R *inp, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= GPT_PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i += GPT_CHUNK)
        FN(gelu_bwd_chunk)(d + i, inp + i, n - i < GPT_CHUNK ? n - i : GPT_CHUNK);
}

/* ---- embeddings --------------------------------------------------------------------------- */
static void FN(encoder_forward)(R *out, const int32_t *tokens, const R *wte, const R *wpe, int B,
                                int T, int C)
{
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= GPT_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            R *o = out + ((size_t)b * T + t) * C;
            const R *te = wte + (size_t)tokens[(size_t)b * T + t] * C;
            const R *pe = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) o[i] = te[i] + pe[i];
        }
}

static void FN(encoder_backward)(R *dwte, R *dwpe, const R *dout, const int32_t *tokens, int B,
                                 int T, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)B * T * C >= GPT_PAR_MIN_ELEMS)
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            const R *d = dout + ((size_t)b * T + t) * C;
            R *dp = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) dp[i] += d[i];
        }
#pragma omp parallel for schedule(static) if ((size_t)B * T * C >= GPT_PAR_MIN_ELEMS)
    for (int cb = 0; cb < C; cb += GPT_TN) {
        int ce = cb + GPT_TN < C ? cb + GPT_TN : C;
        for (size_t r = 0; r < (size_t)B * T; r++) {
            const R *d = dout + r * C;
            R *dt = dwte + (size_t)tokens[r] * C;
            for (int i = cb; i < ce; i++) dt[i] += d[i];
        }
    }
}

/* ---- loss --------------------------------------------------------------------------------- */
static R FN(crossentropy_forward)(R *probs, R *losses, const R *logits, const int32_t *targets,
                                  int N, int V)
{
#pragma omp parallel for schedule(static) if ((size_t)N * V >= GPT_PAR_MIN_ELEMS)
    for (int r = 0; r < N; r++) {
        const R *l = logits + (size_t)r * V;
        R *p = probs + (size_t)r * V;
        R maxv = l[0];
        for (int v = 1; v < V; v++)
            if (l[v] > maxv) maxv = l[v];
        R sum = 0;
        for (int v = 0; v < V; v++) {
            p[v] = GPT_EXP(l[v] - maxv);
            sum += p[v];
        }
        R inv = (R)1 / sum;
        for (int v = 0; v < V; v++) p[v] *= inv;
        /* -log softmax computed from the logits (no log(0) when a probability underflows) */
        losses[r] = GPT_LOG(sum) + maxv - l[targets[r]];
    }
    R total = 0;
    for (int r = 0; r < N; r++) total += losses[r];
    return total / (R)N;
}

/* ---- the model ---------------------------------------------------------------------------- */
static void FN(model_destroy)(struct GPT_MODEL *m)
{
    if (!m) return;
    R **bufs[] = {&m->encoded, &m->ln1,    &m->ln1_mean, &m->ln1_rstd, &m->qkv,      &m->atty,
                  &m->att,     &m->res2,   &m->ln2,      &m->ln2_mean, &m->ln2_rstd, &m->fch,
                  &m->fchg,    &m->res3,   &m->lnf,      &m->lnf_mean, &m->lnf_rstd, &m->logits,
                  &m->probs,   &m->losses, &m->dres,     &m->dbig,     &m->dln,      &m->datty,
                  &m->dlogits, &m->datt,   &m->tr_act,   &m->tr_w};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    free(m->tokens);
    free(m->targets);
    gpt_layout_free(&m->lay);
    free(m);
}

static int FN(model_create)(const gpt_config *cfg, int max_batch, struct GPT_MODEL **out)
{
    char err[128];
    if (!out || max_batch < 1 || gpt_config_check(cfg, err, sizeof err) != 0) return -EINVAL;
    struct GPT_MODEL *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    int rc = 0;
    m->cfg = *cfg;
    m->max_batch = max_batch;
    if ((rc = gpt_layout_init(&m->lay, cfg)) != 0) goto fail;
    size_t L = (size_t)cfg->layers, C = (size_t)cfg->width, V = (size_t)cfg->vocab;
    size_t T = (size_t)cfg->max_seq, NH = (size_t)cfg->heads;
    size_t bt = (size_t)max_batch * T;
    m->maxbt = bt;
    size_t big = 4 * C > V ? 4 * C : V;
    size_t wsz = 4 * C * C > V * C ? 4 * C * C : V * C;
    struct {
        R **p;
        size_t n;
    } plan[] = {
        {&m->encoded, bt * C},      {&m->ln1, L * bt * C},
        {&m->ln1_mean, L * bt},     {&m->ln1_rstd, L * bt},
        {&m->qkv, L * bt * 3 * C},  {&m->atty, L * bt * C},
        {&m->att, L * bt * NH * T}, {&m->res2, L * bt * C},
        {&m->ln2, L * bt * C},      {&m->ln2_mean, L * bt},
        {&m->ln2_rstd, L * bt},     {&m->fch, L * bt * 4 * C},
        {&m->fchg, L * bt * 4 * C}, {&m->res3, L * bt * C},
        {&m->lnf, bt * C},          {&m->lnf_mean, bt},
        {&m->lnf_rstd, bt},         {&m->logits, bt * V},
        {&m->probs, bt * V},        {&m->losses, bt},
        {&m->dres, bt * C},         {&m->dbig, bt * 4 * C},
        {&m->dln, bt * C},          {&m->datty, bt * C},
        {&m->dlogits, bt * V},      {&m->datt, bt * NH},
        {&m->tr_act, big * bt},     {&m->tr_w, wsz},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        *plan[i].p = calloc(plan[i].n, sizeof(R));
        if (!*plan[i].p) {
            rc = -ENOMEM;
            goto fail;
        }
        m->bytes += plan[i].n * sizeof(R);
    }
    m->tokens = calloc(bt, sizeof(int32_t));
    m->targets = calloc(bt, sizeof(int32_t));
    if (!m->tokens || !m->targets) {
        rc = -ENOMEM;
        goto fail;
    }
    m->bytes += 2 * bt * sizeof(int32_t);
    *out = m;
    return 0;
fail:
    FN(model_destroy)(m);
    return rc;
}

/* Pointer to tensor `k` of block `l` (or a global tensor with l < 0: k is the tensor index). */
static inline const R *FN(ptensor)(const struct GPT_MODEL *m, const R *p, int l, int k)
{
    int idx = l < 0 ? k : 2 + l * GPT_BLOCK_TENSORS + k;
    return p + m->lay.tensors[idx].offset;
}

static inline R *FN(gtensor)(const struct GPT_MODEL *m, R *g, int l, int k)
{
    int idx = l < 0 ? k : 2 + l * GPT_BLOCK_TENSORS + k;
    return g + m->lay.tensors[idx].offset;
}

static int FN(model_forward)(struct GPT_MODEL *m, const R *p, const int32_t *tokens,
                             const int32_t *targets, int B, int T, R *loss)
{
    const gpt_config *cfg = &m->cfg;
    if (!p || !tokens || B < 1 || T < 1 || B > m->max_batch || T > cfg->max_seq) return -EINVAL;
    size_t bt = (size_t)B * T;
    for (size_t i = 0; i < bt; i++) {
        if (tokens[i] < 0 || tokens[i] >= cfg->vocab) return -EINVAL;
        if (targets && (targets[i] < 0 || targets[i] >= cfg->vocab)) return -EINVAL;
    }
    int C = cfg->width, V = cfg->vocab, NH = cfg->heads, L = cfg->layers, N = (int)bt;
    size_t mb = m->maxbt;
    memcpy(m->tokens, tokens, bt * sizeof(int32_t));
    if (targets) memcpy(m->targets, targets, bt * sizeof(int32_t));
    m->B = B;
    m->T = T;
    m->have_targets = 0;

    const R *wte = FN(ptensor)(m, p, -1, 0), *wpe = FN(ptensor)(m, p, -1, 1);
    FN(encoder_forward)(m->encoded, tokens, wte, wpe, B, T, C);
    const R *x = m->encoded;
    for (int l = 0; l < L; l++) {
        size_t o1 = (size_t)l * mb;
        R *ln1 = m->ln1 + o1 * C, *qkv = m->qkv + o1 * 3 * C, *atty = m->atty + o1 * C;
        R *att = m->att + o1 * NH * cfg->max_seq, *res2 = m->res2 + o1 * C;
        R *ln2 = m->ln2 + o1 * C, *fch = m->fch + o1 * 4 * C, *fchg = m->fchg + o1 * 4 * C;
        R *res3 = m->res3 + o1 * C;
        FN(layernorm_forward)
        (ln1, m->ln1_mean + o1, m->ln1_rstd + o1, x, FN(ptensor)(m, p, l, GPT_LN1_W),
         FN(ptensor)(m, p, l, GPT_LN1_B), N, C);
        FN(linear_forward)
        (qkv, ln1, FN(ptensor)(m, p, l, GPT_QKV_W), FN(ptensor)(m, p, l, GPT_QKV_B), N, C, 3 * C,
         0);
        FN(attention_forward)(atty, att, qkv, B, T, C, NH);
        memcpy(res2, x, bt * C * sizeof(R));
        FN(linear_forward)
        (res2, atty, FN(ptensor)(m, p, l, GPT_PROJ_W), FN(ptensor)(m, p, l, GPT_PROJ_B), N, C, C,
         1);
        FN(layernorm_forward)
        (ln2, m->ln2_mean + o1, m->ln2_rstd + o1, res2, FN(ptensor)(m, p, l, GPT_LN2_W),
         FN(ptensor)(m, p, l, GPT_LN2_B), N, C);
        FN(linear_forward)
        (fch, ln2, FN(ptensor)(m, p, l, GPT_FC_W), FN(ptensor)(m, p, l, GPT_FC_B), N, C, 4 * C, 0);
        FN(gelu_forward)(fchg, fch, bt * 4 * C);
        memcpy(res3, res2, bt * C * sizeof(R));
        FN(linear_forward)
        (res3, fchg, FN(ptensor)(m, p, l, GPT_FCPROJ_W), FN(ptensor)(m, p, l, GPT_FCPROJ_B), N,
         4 * C, C, 1);
        x = res3;
    }
    int nt = m->lay.ntensors;
    int ilnf = 2 + L * GPT_BLOCK_TENSORS;
    FN(layernorm_forward)
    (m->lnf, m->lnf_mean, m->lnf_rstd, x, FN(ptensor)(m, p, -1, ilnf),
     FN(ptensor)(m, p, -1, ilnf + 1), N, C);
    if (cfg->tied) {
        FN(transpose)(m->tr_w, wte, V, C); /* (C, V) */
        FN(gemm)(m->logits, m->lnf, m->tr_w, NULL, N, V, C, 0);
    } else {
        FN(gemm)(m->logits, m->lnf, FN(ptensor)(m, p, -1, nt - 1), NULL, N, V, C, 0);
    }
    if (targets) {
        R l = FN(crossentropy_forward)(m->probs, m->losses, m->logits, targets, N, V);
        if (loss) *loss = l;
        m->have_targets = 1;
    }
    return 0;
}

static int FN(model_backward)(struct GPT_MODEL *m, const R *p, R *g, R dloss, gpt_stage_fn on_stage,
                              void *user)
{
    if (!m->have_targets || !p || !g) return -EINVAL;
    const gpt_config *cfg = &m->cfg;
    int B = m->B, T = m->T, C = cfg->width, V = cfg->vocab, NH = cfg->heads, L = cfg->layers;
    int N = B * T, nt = m->lay.ntensors, ilnf = 2 + L * GPT_BLOCK_TENSORS;
    size_t bt = (size_t)N, mb = m->maxbt;
    int rc = 0;

    /* softmax cross-entropy: dlogits = (p - onehot) * dloss / N */
    R dscale = dloss / (R)N;
#pragma omp parallel for schedule(static) if ((size_t)N * V >= GPT_PAR_MIN_ELEMS)
    for (int r = 0; r < N; r++) {
        const R *pr = m->probs + (size_t)r * V;
        R *d = m->dlogits + (size_t)r * V;
        for (int v = 0; v < V; v++) d[v] = pr[v] * dscale;
        d[m->targets[r]] -= dscale;
    }
    /* output head */
    R *dwte = FN(gtensor)(m, g, -1, 0), *dwpe = FN(gtensor)(m, g, -1, 1);
    const R *wte = FN(ptensor)(m, p, -1, 0);
    if (cfg->tied) {
        FN(gemm)(m->dln, m->dlogits, wte, NULL, N, C, V, 0); /* dlnf = dlogits @ wte */
        FN(transpose)(m->tr_act, m->dlogits, N, V);          /* (V, N) */
        FN(gemm)(dwte, m->tr_act, m->lnf, NULL, V, C, N, 1); /* dwte += dlogits^T @ lnf */
    } else {
        FN(linear_backward)
        (m, m->dln, FN(gtensor)(m, g, -1, nt - 1), NULL, m->dlogits, m->lnf,
         FN(ptensor)(m, p, -1, nt - 1), N, C, V);
    }
    const R *xl = L > 0 ? m->res3 + (size_t)(L - 1) * mb * C : m->encoded;
    memset(m->dres, 0, bt * C * sizeof(R));
    FN(layernorm_backward)
    (m->dres, FN(gtensor)(m, g, -1, ilnf), FN(gtensor)(m, g, -1, ilnf + 1), m->dln, xl,
     FN(ptensor)(m, p, -1, ilnf), m->lnf_mean, m->lnf_rstd, N, C);
    if (on_stage && (rc = on_stage(0, user)) < 0) return rc;

    for (int l = L - 1; l >= 0; l--) {
        size_t o1 = (size_t)l * mb;
        const R *x = l > 0 ? m->res3 + (size_t)(l - 1) * mb * C : m->encoded;
        R *ln1 = m->ln1 + o1 * C, *qkv = m->qkv + o1 * 3 * C, *atty = m->atty + o1 * C;
        R *att = m->att + o1 * NH * cfg->max_seq, *res2 = m->res2 + o1 * C;
        R *ln2 = m->ln2 + o1 * C, *fch = m->fch + o1 * 4 * C, *fchg = m->fchg + o1 * 4 * C;
        /* MLP: res3 = res2 + fcproj(gelu(fc(ln2(res2)))) */
        FN(linear_backward)
        (m, m->dbig, FN(gtensor)(m, g, l, GPT_FCPROJ_W), FN(gtensor)(m, g, l, GPT_FCPROJ_B),
         m->dres, fchg, FN(ptensor)(m, p, l, GPT_FCPROJ_W), N, 4 * C, C);
        FN(gelu_backward)(m->dbig, fch, bt * 4 * C);
        FN(linear_backward)
        (m, m->dln, FN(gtensor)(m, g, l, GPT_FC_W), FN(gtensor)(m, g, l, GPT_FC_B), m->dbig, ln2,
         FN(ptensor)(m, p, l, GPT_FC_W), N, C, 4 * C);
        FN(layernorm_backward)
        (m->dres, FN(gtensor)(m, g, l, GPT_LN2_W), FN(gtensor)(m, g, l, GPT_LN2_B), m->dln, res2,
         FN(ptensor)(m, p, l, GPT_LN2_W), m->ln2_mean + o1, m->ln2_rstd + o1, N, C);
        /* attention: res2 = x + proj(attn(qkv(ln1(x)))) */
        FN(linear_backward)
        (m, m->datty, FN(gtensor)(m, g, l, GPT_PROJ_W), FN(gtensor)(m, g, l, GPT_PROJ_B), m->dres,
         atty, FN(ptensor)(m, p, l, GPT_PROJ_W), N, C, C);
        FN(attention_backward)(m->dbig, m->datt, m->datty, qkv, att, B, T, C, NH);
        FN(linear_backward)
        (m, m->dln, FN(gtensor)(m, g, l, GPT_QKV_W), FN(gtensor)(m, g, l, GPT_QKV_B), m->dbig, ln1,
         FN(ptensor)(m, p, l, GPT_QKV_W), N, C, 3 * C);
        FN(layernorm_backward)
        (m->dres, FN(gtensor)(m, g, l, GPT_LN1_W), FN(gtensor)(m, g, l, GPT_LN1_B), m->dln, x,
         FN(ptensor)(m, p, l, GPT_LN1_W), m->ln1_mean + o1, m->ln1_rstd + o1, N, C);
        if (on_stage && (rc = on_stage(L - l, user)) < 0) return rc;
    }
    FN(encoder_backward)(dwte, dwpe, m->dres, m->tokens, B, T, C);
    if (on_stage && (rc = on_stage(L + 1, user)) < 0) return rc;
    return 0;
}

#undef R
#undef FN
#undef GPT_CAT
#undef GPT_CAT2
#undef GPT_TM
#undef GPT_PAR_MIN_MACS
#undef GPT_PAR_MIN_ELEMS
#undef GPT_TN
#undef GPT_GELU_K
#undef GPT_CHUNK
