// CPU Gaussian-splat rasteriser: projection, depth sort, tile binning and front-to-back
// compositing, the rules of renderers/reference.py (the torch oracle) in C with OpenMP.
//
// Why it exists: on a machine without a GPU, Mesa's llvmpipe rasterises our splat triangles
// (renderers/gl_splats.py) or tiles (renderers/gl_tiles.py) at ~100 M shaded fragments/s on two
// cores. A tile rasteriser written for the CPU composites each pixel front to back with SIMD
// rows of 16 pixels (one AVX-512 vector, two AVX2 ones), stops a pixel row once all of its
// pixels are opaque, and skips the shader-stage overheads.
//
// Rules (identical to the reference; see its docstring): camera-space means, z < near culled;
// opacity < 1/255 culled; one-sided Gaussians (non-zero normal) culled when
// dot(normal, mean - campos) > backface_cos * |mean - campos|; colour from SH (degree 0..3,
// 3DGS basis and constants) for the world direction camera -> mean, clamp(0.5 + sum, 0, 1);
// 2D covariance J W S W^T J^T + 0.3 I with x/z, y/z clamped to the widened frustum; pixel
// centres at (j + 0.5, i + 0.5); alpha = min(0.99, opacity * exp(-0.5 d^T conic d)), < 1/255
// skipped; depth order by camera z (stable); a Gaussian that would bring T below 1e-4 ends the
// pixel and is not added.
//
// Where the time goes (default head, a 2x512 stereo pair, one thread): ~2/3 the raster. It
// does ~270 k (Gaussian, tile) pairs and ~1.7 M visits of 8x2 pixel blocks; half of its time is
// per pair (the span of rows, the set-up, a mispredicted loop exit), half per visit (~30
// vector instructions). So a Gaussian is binned only into the tiles its alpha >= 1/255 ellipse
// reaches (the ellipse's x-span over each tile row, not its bounding box), a tile visits only
// the row pairs the ellipse reaches within its columns (its y-span there, 16 Gaussians at a
// time as vectors) and the column halves of its box, log2(alpha) goes down a column by a
// second-order recurrence (two adds a block), 2^t is a degree-3 polynomial, and the block loop
// is AVX-512 with masks (no branches). The projection writes the records the
// binning and the raster read, final, in the cloud's order; the binning visits them in depth
// order (random reads, prefetched) and the tile lists hold their indices.
//
// Plane atlas (MPI baking): with `plane` given, Gaussian i is composited into image plane[i]
// only (skipped when outside [0, planes)); each plane is its own image with its own
// transmittance, in one pass.
//
// Several cameras (a stereo pair) are rendered in one call: the camera-independent part of the
// projection (covariance from quats and scales, normal, cut-off radius) once, one depth sort
// when all cameras compute the same camera z (a parallel rig), and one raster pass over the
// tiles of all images, written straight into the caller's (possibly side-by-side) buffer.
//
// Thread safety: no global state. A workspace (ths_workspace_new) keeps the scratch buffers
// between calls (no malloc + page faults per frame); one workspace serves one call at a time.

#define TILE 16  // pixels per tile side; a tile row is one SIMD row of 16 floats
#define TILE_WIDTH_16 (TILE == 16)
#define GATHER_AHEAD 16  // entries the binning prefetches ahead (random reads)

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

// The row loop in AVX-512 intrinsics where the CPU has them (-march=native; -DTHS_PORTABLE for
// the portable loop): the portable loop compiles to the same arithmetic, but gcc sums its stop
// count through the stack (a store-forwarding stall per row) and branches on the colour
// update: ~20% slower on the dev box (and 2 x 256-bit vectors ~35% slower).
#if defined(__AVX512F__) && TILE_WIDTH_16 && !defined(THS_PORTABLE)
#define USE_AVX512 1
#define USE_AVX2 0
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__) && TILE_WIDTH_16 && !defined(THS_PORTABLE)
// Most desktop CPUs (Intel's client cores, AMD before Zen 4): the AVX-512 path's 8x2 blocks and
// batched spans with two 256-bit vectors a block (the compiler-vectorised rows: raster 1.9x).
#define USE_AVX512 0
#define USE_AVX2 1
#include <immintrin.h>
#else
#define USE_AVX512 0
#define USE_AVX2 0
#endif
#define USE_BLOCKS (USE_AVX512 || USE_AVX2)  // the raster's 8x2 block path

#define MIN_ALPHA (1.0f / 255.0f)
#define MAX_ALPHA 0.99f
#define MIN_T 1e-4f
#define LOW_PASS 0.3f
#define MAX_THREADS 64     // more are clamped
#define MAX_CHUNKS 64      // binning chunks (each has its own record buffer)
#define LOG2E 1.4426950408889634f
#define SPAN_EPS 0.01f     // pixels of slack in the ellipse span tests (float rounding)

// Camera parameter block (float32, CAM_FLOATS entries), filled by renderers/cpu_splats.py.
enum {
    CAM_R = 0,          // world-to-camera rotation, row-major [3][3] (OpenCV camera)
    CAM_T = 9,          // translation [3]
    CAM_FX = 12, CAM_FY, CAM_CX, CAM_CY,
    CAM_LIM = 16,       // clamp of x/z (min, max) and y/z (min, max) inside the Jacobian
    CAM_POS = 20,       // camera centre in world [3]
    CAM_BACKFACE = 23,  // cull one-sided Gaussians when cos > this (> 1: never)
    CAM_NEAR = 24,
    CAM_FLOATS = 25
};

enum { ST_PROJECT, ST_SORT, ST_BIN, ST_RASTER, ST_OUTPUT, ST_STAGES };

// ths_splat_render_ex flags.
enum { THS_STRAIGHT = 1, THS_ZEROED = 2 };

int ths_camera_floats(void) { return CAM_FLOATS; }
int ths_tile_size(void) { return TILE; }
// Floats per vector of the raster's block path: 16 (AVX-512), 8 (AVX2), 0 (portable loops).
int ths_simd_width(void) { return USE_AVX512 ? 16 : (USE_AVX2 ? 8 : 0); }

// The binning's records, one per tile row of a Gaussian (piece): tile columns [x0, x1) of the
// tile row whose first tile is tile[r], for record index entry[r] (Splat and Bin). In arrays
// (one buffer of cap records, each array cap long), so that the vector binning stores a
// Gaussian's records in three vector stores.
typedef struct {
    int32_t* tile;
    uint32_t* xs;          // x0 | x1 << 16 (tiles_x <= 65535, width <= 1048560)
    uint32_t* entry;
    size_t cap;
} Records;

// The projection writes, per camera c, Gaussian i and piece q (P pieces: 2 when split between
// two planes, 0 near, 1 far), a Splat at (c n + i) P + q and a Bin at (i ncams + c) P + q: the
// records the raster and the binning read, final (a tile's list holds Splat indices). No gather
// into depth order: that scalar gather spent ~40 ns a record (random reads, a log2f, two
// divisions) on a stereo frame of the default head, the projection derives the fields 16 at a
// time; the binning reads its Bins in depth order through the sorted indices (random,
// prefetched; a stereo pair's two in one cache line), and a tile's Splats were scattered over a
// few MB either way (the raster takes the same time).

// What the binning reads.
typedef struct {
    float mx, my, hx, hy, k, w, dys;
    int32_t row;           // first tile row of its image (camera, plane), -1: not visible
} Bin;

// What the raster reads.
typedef struct {
    float mx, my;
    float qa, qb, qc;
    float opacity;
    float r, g, b;
    float hx, k2, w2, dxs;
    float hy;
    float log2_opacity;    // folded into the exponent: alpha = 2^(power + log2 opacity)
    float pad;
} Splat;                   // 64 bytes: one cache line (the workspace aligns to 64)

static const float SH_C0 = 0.28209479177387814f;
static const float SH_C1 = 0.4886025119029199f;
static const float SH_C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                               -1.0925484305920792f, 0.5462742152960396f};
static const float SH_C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                               0.3731763325901154f, -0.4570457994644658f, 1.445305721320277f,
                               -0.5900435899266435f};

// One channel of the SH sum (3DGS order), coefficients sh[j * 3 + ch].
static inline float sh_channel(const float* sh, int k, int ch, float x, float y, float z) {
    float v = SH_C0 * sh[ch];
    if (k > 1) {
        v += -SH_C1 * y * sh[3 + ch] + SH_C1 * z * sh[6 + ch] - SH_C1 * x * sh[9 + ch];
        if (k > 4) {
            float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
            v += SH_C2[0] * xy * sh[12 + ch] + SH_C2[1] * yz * sh[15 + ch] +
                 SH_C2[2] * (2.0f * zz - xx - yy) * sh[18 + ch] + SH_C2[3] * xz * sh[21 + ch] +
                 SH_C2[4] * (xx - yy) * sh[24 + ch];
            if (k > 9) {
                v += SH_C3[0] * y * (3.0f * xx - yy) * sh[27 + ch] +
                     SH_C3[1] * xy * z * sh[30 + ch] +
                     SH_C3[2] * y * (4.0f * zz - xx - yy) * sh[33 + ch] +
                     SH_C3[3] * z * (2.0f * zz - 3.0f * xx - 3.0f * yy) * sh[36 + ch] +
                     SH_C3[4] * x * (4.0f * zz - xx - yy) * sh[39 + ch] +
                     SH_C3[5] * z * (xx - yy) * sh[42 + ch] +
                     SH_C3[6] * x * (xx - 3.0f * yy) * sh[45 + ch];
            }
        }
    }
    v += 0.5f;
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

// 2^t for t <= 0 (clamped at -60: alpha is far below 1/255 there, and products stay normal
// floats, see the row loop): integer and fraction, a degree-3 polynomial for 2^f (relative
// error 7.5e-5, the AVX-512 path's). Written out so that the row loop vectorises; log2(e) is folded into the conic.
static inline float exp2_nonpositive(float t) {
    t = t < -60.0f ? -60.0f : t;
    float fi = floorf(t);
    float f = t - fi;
    float p = 7.8024192e-2f;
    p = p * f + 2.2606721e-1f;
    p = p * f + 6.9583374e-1f;
    p = p * f + 9.9992517e-1f;
    union { float f; int32_t i; } u;
    u.f = p;
    u.i += (int32_t)fi << 23;
    return u.f;
}

// Finite test on the bit pattern: the library is built with -ffast-math, under which the
// compiler may assume no NaN/inf and drop isfinite() or NaN-false comparisons.
static inline int finite_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u & 0x7f800000u) != 0x7f800000u;
}

#define MIN_PIECE (1.0f / 512.0f)  // renderers/bake.py's _MIN_PIECE

// Opacities of the two pieces of Gaussians [i0, i1) (opacity o) split between two planes with
// far weight w, renderers/bake.py's rule (assign_planes / plane_pieces): w below 1/512 (above
// 1 - 1/512) becomes 0 (1); the near piece (share 1 - w, present when w < 1) and the far piece
// (share w, present when w > 0) get 1 - (1 - o)^share (share 1 keeps o bit for bit; o >= 1
// stays 1); an absent piece gets 0. pieces [n][2]: near, far. (NaN inputs give garbage that
// prepare_one culls.)
//
// A branch-free loop of its own, so that gcc vectorises it with glibc's vector logf / expf:
// scalar log1pf + two expm1f calls per Gaussian cost ~4 ms per 50k Gaussians on the dev box,
// as much as the rest of the projection. log1p(-o) = log(u) (-o) / (u - 1) with u = 1 - o
// rounded (Goldberg's trick: a few ulp); 1 - e^y by its Taylor series for |y| < 0.25 (9
// terms, < 1e-9 relative; no cancellation) and 1 - exp(y) beyond.
static void split_opacities(int64_t i0, int64_t i1, const float* opacity, const float* far_w,
                            float* pieces) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        float o = opacity[i], w = far_w[i];
        w = w < MIN_PIECE ? 0.0f : (w > 1.0f - MIN_PIECE ? 1.0f : w);
        float oc = fminf(fmaxf(o, 0.0f), 0.99999988f);  // float32(1 - 1e-7), as bake.py clamps
        float u = 1.0f - oc, um1 = u - 1.0f;
        float log_t = um1 == 0.0f ? -oc : logf(u) * (-oc) / (um1 == 0.0f ? -1.0f : um1);
        float res[2];
        for (int q = 0; q < 2; q++) {
            float share = q ? w : 1.0f - w, y = share * log_t;
            float p = 1.0f / 362880.0f;
            p = p * y + 1.0f / 40320.0f;
            p = p * y + 1.0f / 5040.0f;
            p = p * y + 1.0f / 720.0f;
            p = p * y + 1.0f / 120.0f;
            p = p * y + 1.0f / 24.0f;
            p = p * y + 1.0f / 6.0f;
            p = p * y + 0.5f;
            p = p * y + 1.0f;
            float v = y > -0.25f ? -(p * y) : 1.0f - expf(fmaxf(y, -80.0f));
            v = share >= 1.0f ? o : v;
            v = o >= 1.0f ? 1.0f : v;
            res[q] = share > 0.0f ? v : 0.0f;
        }
        pieces[2 * i] = res[0];
        pieces[2 * i + 1] = res[1];
    }
}

// ------------------------------------------------------------------------------ projection
// The projection in blocks of PBLOCK Gaussians, vectorised across Gaussians (16 per AVX-512
// vector; gcc's `omp simd` with glibc's vector logf): the camera-independent part (covariance,
// normal, cut-off radius, the piece opacities' culling) into a block of arrays, then per camera
// the 2D covariance, culling and colour, branch-free (culling is a mask; a culled Gaussian's
// record is written too, with garbage, and never read). The scalar loop (one Gaussian at a
// time, early returns: a long dependent chain of divisions and square roots per Gaussian) took
// ~3.3 ms per 512 mono frame of the default head on 2 cores; this takes ~1/4 of that (SH of
// degree > 0 and given covariances still run scalar: gcc does not vectorise those loops).
#define PBLOCK 256
#define VLANES 16  // the vector loops' width (floats per AVX-512 vector)

typedef struct {
    float m0[PBLOCK], m1[PBLOCK], m2[PBLOCK];   // mean
    float c[6][PBLOCK];                         // world covariance xx, xy, xz, yy, yz, zz
    float on[PBLOCK], of[PBLOCK], r2[PBLOCK];   // piece opacities, cut-off of the heavier
    float rn[PBLOCK], rf[PBLOCK];               // split: each piece's own cut-off (0: none)
    float ln[PBLOCK], lf[PBLOCK];               // log2 of the piece opacities
    int32_t prow[PBLOCK];                       // plane * tiles_y (the image's first tile row)
    float n0[PBLOCK], n1[PBLOCK], n2[PBLOCK];   // outward normal (0 when two-sided)
    int32_t ok[PBLOCK], one_sided[PBLOCK];
} PrepBlock;

// Inputs of one block, pointers at its first Gaussian (indexed by j in the block).
typedef struct {
    const float *means, *cov6, *quats, *scales, *opacity, *far_w, *pieces, *sh;
    const int8_t* facing;
    const int32_t* plane;
} BlockIn;

static inline __attribute__((always_inline)) void prep_block(const int from_cov, int cnt,
                                                             const BlockIn* in, int planes,
                                                             int tiles_y, PrepBlock* b) {
    // The optional inputs first, scalar (gcc vectorises no load behind a NULL test). The log2
    // of the opacities here, once per Gaussian and piece for every camera, scalar (glibc's
    // log2f, as the gather had it per record: its vector variant may round differently).
    for (int j = 0; j < cnt; j++) {
        float op = in->opacity[j];
        int finite = finite_bits(op);
        int p = in->plane ? in->plane[j] : 0;
        float on = op, of = 0.0f;
        if (in->far_w) {
            finite &= finite_bits(in->far_w[j]);
            on = in->pieces[2 * j];
            of = p + 1 < planes ? in->pieces[2 * j + 1] : 0.0f;
        }
        b->on[j] = on;
        b->of[j] = of;
        b->ln[j] = log2f(fmaxf(on, MIN_ALPHA));  // (below 1/255: culled, never read)
        b->lf[j] = b->rn[j] = b->rf[j] = 0.0f;
        if (in->far_w) {  // each piece's own cut-off
            b->lf[j] = log2f(fmaxf(of, MIN_ALPHA));
            b->rn[j] = on >= MIN_ALPHA ? 2.0f * logf(255.0f * on) : 0.0f;
            b->rf[j] = of >= MIN_ALPHA ? 2.0f * logf(255.0f * of) : 0.0f;
        }
        b->prow[j] = p * tiles_y;
        b->ok[j] = finite & (p >= 0) & (p < planes);
        b->one_sided[j] = in->facing != NULL && !from_cov ? in->facing[j] : 0;
    }
    // (Bitwise & of the conditions, no &&: gcc vectorises no _Bool conversion; the covariance
    // and finiteness tests written out: it vectorises no loop with two inner loops.)
    const float *mb = in->means, *cb = in->cov6, *qb = in->quats, *sb = in->scales;
#pragma omp simd
    for (int j = 0; j < cnt; j++) {
        const float* m = mb + 3 * j;
        float c0, c1, c2, c3, c4, c5;
        float qw = 1.0f, qx = 0.0f, qy = 0.0f, qz = 0.0f, qn2 = 1.0f;
        if (from_cov) {
            const float* cv = cb + 6 * j;
            c0 = cv[0], c1 = cv[1], c2 = cv[2], c3 = cv[3], c4 = cv[4], c5 = cv[5];
        } else {
            const float* q = qb + 4 * j;
            const float* s = sb + 3 * j;
            qw = q[0], qx = q[1], qy = q[2], qz = q[3];
            qn2 = qw * qw + qx * qx + qy * qy + qz * qz;
            float inv = 1.0f / sqrtf(qn2);
            float w = qw * inv, x = qx * inv, y = qy * inv, z = qz * inv;
            float xx = x * x, yy = y * y, zz = z * z, xy = x * y, xz = x * z, yz = y * z;
            float wx = w * x, wy = w * y, wz = w * z;
            float s0 = s[0], s1 = s[1], s2 = s[2];
            float m00 = (1 - 2 * (yy + zz)) * s0, m01 = 2 * (xy - wz) * s1,
                  m02 = 2 * (xz + wy) * s2;
            float m10 = 2 * (xy + wz) * s0, m11 = (1 - 2 * (xx + zz)) * s1,
                  m12 = 2 * (yz - wx) * s2;
            float m20 = 2 * (xz - wy) * s0, m21 = 2 * (yz + wx) * s1,
                  m22 = (1 - 2 * (xx + yy)) * s2;
            c0 = m00 * m00 + m01 * m01 + m02 * m02;
            c1 = m00 * m10 + m01 * m11 + m02 * m12;
            c2 = m00 * m20 + m01 * m21 + m02 * m22;
            c3 = m10 * m10 + m11 * m11 + m12 * m12;
            c4 = m10 * m20 + m11 * m21 + m12 * m22;
            c5 = m20 * m20 + m21 * m21 + m22 * m22;
        }
        int finite = finite_bits(m[0]) & finite_bits(m[1]) & finite_bits(m[2]) &
                     finite_bits(c0) & finite_bits(c1) & finite_bits(c2) & finite_bits(c3) &
                     finite_bits(c4) & finite_bits(c5);
        float ope = fmaxf(b->on[j], b->of[j]);
        // A NaN/inf Gaussian is culled (finite first: -ffast-math comparisons assume no NaN).
        int ok = finite & b->ok[j] & (ope >= MIN_ALPHA) & (ope <= 1.0f);
        float f = (float)b->one_sided[j] / qn2;  // facing / |q|^2 (0: two-sided)
        b->m0[j] = m[0];
        b->m1[j] = m[1];
        b->m2[j] = m[2];
        b->c[0][j] = c0;
        b->c[1][j] = c1;
        b->c[2][j] = c2;
        b->c[3][j] = c3;
        b->c[4][j] = c4;
        b->c[5][j] = c5;
        b->r2[j] = 2.0f * logf(255.0f * fminf(fmaxf(ope, MIN_ALPHA), 1.0f));
        b->n0[j] = 2 * (qx * qz + qw * qy) * f;
        b->n1[j] = 2 * (qy * qz - qw * qx) * f;
        b->n2[j] = (qw * qw - qx * qx - qy * qy + qz * qz) * f;
        b->ok[j] = ok;
    }
}

// A block's projected Gaussians, as the projection's vector loop writes them: field PJ_x of
// Gaussian j at [PJ_x][j] (whole vectors stored), what derive_records turns into the records.
enum {
    PJ_MX, PJ_MY,          // mean in pixels
    PJ_QA, PJ_QB, PJ_QC,   // log2(alpha / opacity) = qa dx^2 + qb dx dy + qc dy^2
    PJ_OPACITY,            // split between two planes: the near piece's
    PJ_R, PJ_G, PJ_B,
    PJ_HX, PJ_HY,          // half width and height of the alpha >= 1/255 ellipse's box (split:
                           // the heavier piece's)
    PJ_A, PJ_B2, PJ_C,     // 2D covariance [[A, B], [B, C]]
    PJ_SD,                 // sqrt(det)
    PJ_OP_FAR,             // split: the far piece's opacity
    PJ_FIELDS
};

#if USE_AVX512
// Transposes the 16 x 16 floats r[row] (lane = column) in place: r[c] = old column c.
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

// a * b and 1 / a correctly rounded, as scalar code computes them: with an explicit rounding
// mode gcc neither reassociates them (-ffast-math) nor turns the division into a reciprocal
// estimate + Newton step (what it does for vector divisions), so the records' fields are
// bit for bit those of the scalar gather this replaced.
#define RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
static inline __m512 mulr(__m512 a, __m512 b) { return _mm512_mul_round_ps(a, b, RN); }
static inline __m512 recr(__m512 a) { return _mm512_div_round_ps(_mm512_set1_ps(1.0f), a, RN); }
#endif

// Piece q's Splat and Bin of Gaussians [0, cnt) of a block (cnt: a multiple of 16) at
// splats[j * sstride + q], bins[j * bstride + q]: the span parameters from the 2D covariance
// (see span_over), each piece's own box when split (its own opacity, as renderers/bake.py), the
// record's tile row. Vectorised by hand (16 Gaussians a vector, transposed into records in
// registers, whole lines stored): written field by field from gcc's vector loop, the records
// cost ~2 ms more per stereo frame of the default head. Not inlined: inlined into the
// projection, it changed how gcc contracted and reassociated that loop's arithmetic (-ffast-
// math), a few ulps off the previous build's.
static __attribute__((noinline)) void derive_records(
    const int P, int q, int cnt, const float (*pj)[PBLOCK], const int32_t* vis32,
    const PrepBlock* b, int32_t row_c, int tiles_y, size_t sstride, Splat* splats,
    size_t bstride, Bin* bins) {
    const float* l2q = q ? b->lf : b->ln;
    const float* r2q = q ? b->rf : b->rn;
#if USE_AVX512
    for (int j0 = 0; j0 < cnt; j0 += 16) {
        __m512 f[PJ_FIELDS];
        for (int g = 0; g < PJ_FIELDS; g++) f[g] = _mm512_load_ps(&pj[g][j0]);
        const __m512 z = _mm512_setzero_ps(), A = f[PJ_A], B = f[PJ_B2], C = f[PJ_C],
                     sd = f[PJ_SD], op = q ? f[PJ_OP_FAR] : f[PJ_OPACITY];
        const __m512 inv_a = recr(A), inv_c = recr(C), k2 = mulr(B, inv_a), k = mulr(B, inv_c);
        __mmask16 vis = _mm512_test_epi32_mask(_mm512_load_si512(vis32 + j0),
                                               _mm512_set1_epi32(-1));
        __m512 hx = f[PJ_HX], hy = f[PJ_HY];
        if (P == 2) {
            vis &= _mm512_cmp_ps_mask(op, _mm512_set1_ps(MIN_ALPHA), _CMP_GE_OQ);
            const __m512 r2 = _mm512_maskz_mov_ps(vis, _mm512_load_ps(r2q + j0));
            hx = _mm512_sqrt_round_ps(mulr(r2, A), RN);
            hy = _mm512_sqrt_round_ps(mulr(r2, C), RN);
        }
        const __m512i row = _mm512_mask_add_epi32(
            _mm512_set1_epi32(-1), vis, _mm512_load_si512(b->prow + j0),
            _mm512_set1_epi32(row_c + q * tiles_y));
        // dxs = hy B / C, dys = hx B / A: with the products in the order gcc gave the scalar
        // gather (the unsplit one shared B / C and B / A with k and k2).
        const __m512 dxs = P == 1 ? mulr(hy, k) : mulr(mulr(hy, B), inv_c);
        const __m512 dys = P == 1 ? mulr(hx, k2) : mulr(mulr(hx, B), inv_a);
        __m512 r[16] = {f[PJ_MX], f[PJ_MY], f[PJ_QA], f[PJ_QB], f[PJ_QC], op, f[PJ_R],
                        f[PJ_G],  f[PJ_B],  hx,       k2,       mulr(sd, inv_a), dxs, hy,
                        _mm512_load_ps(l2q + j0), z};  // Splat's fields
        transpose16(r);
        for (int g = 0; g < 16; g++)
            _mm512_store_ps((float*)(splats + (j0 + g) * sstride + q), r[g]);
        __m512 t[16] = {f[PJ_MX], f[PJ_MY], hx, hy, k, mulr(sd, inv_c), dys,
                        _mm512_castsi512_ps(row), z, z, z, z, z, z, z, z};  // Bin's
        transpose16(t);
        for (int g = 0; g < 16; g++)
            _mm256_store_ps((float*)(bins + (j0 + g) * bstride + q), _mm512_castps512_ps256(t[g]));
    }
#else
    for (int j = 0; j < cnt; j++) {
        float A = pj[PJ_A][j], B = pj[PJ_B2][j], C = pj[PJ_C][j], sd = pj[PJ_SD][j];
        float inv_a = 1.0f / A, inv_c = 1.0f / C, op = q ? pj[PJ_OP_FAR][j] : pj[PJ_OPACITY][j];
        float hx = pj[PJ_HX][j], hy = pj[PJ_HY][j];
        int vis = vis32[j];
        if (P == 2) {
            vis &= op >= MIN_ALPHA;
            float r2 = vis ? r2q[j] : 0.0f;
            hx = sqrtf(r2 * A);
            hy = sqrtf(r2 * C);
        }
        Bin* bn = bins + j * bstride + q;
        bn->mx = pj[PJ_MX][j];
        bn->my = pj[PJ_MY][j];
        bn->hx = hx;
        bn->hy = hy;
        bn->k = B * inv_c;
        bn->w = sd * inv_c;
        bn->dys = hx * B * inv_a;
        bn->row = vis ? row_c + b->prow[j] + q * tiles_y : -1;
        Splat* s = splats + j * sstride + q;
        s->mx = pj[PJ_MX][j];
        s->my = pj[PJ_MY][j];
        s->qa = pj[PJ_QA][j];
        s->qb = pj[PJ_QB][j];
        s->qc = pj[PJ_QC][j];
        s->opacity = op;
        s->r = pj[PJ_R][j];
        s->g = pj[PJ_G][j];
        s->b = pj[PJ_B][j];
        s->hx = hx;
        s->k2 = B * inv_a;
        s->w2 = sd * inv_a;
        s->dxs = hy * B * inv_c;
        s->hy = hy;
        s->log2_opacity = l2q[j];
        s->pad = 0.0f;
    }
#endif
}

static inline __attribute__((always_inline)) void project_block(
    const int K, int cnt, const PrepBlock* b, const float* sh, const float* cam, int width,
    int height, float (*pf)[PBLOCK], int32_t* vis32, float* depth, uint8_t* visible) {
    const float R0 = cam[CAM_R], R1 = cam[CAM_R + 1], R2 = cam[CAM_R + 2], R3 = cam[CAM_R + 3],
                R4 = cam[CAM_R + 4], R5 = cam[CAM_R + 5], R6 = cam[CAM_R + 6],
                R7 = cam[CAM_R + 7], R8 = cam[CAM_R + 8];
    const float T0 = cam[CAM_T], T1 = cam[CAM_T + 1], T2 = cam[CAM_T + 2];
    const float fx = cam[CAM_FX], fy = cam[CAM_FY], ccx = cam[CAM_CX], ccy = cam[CAM_CY];
    const float lx0 = cam[CAM_LIM], lx1 = cam[CAM_LIM + 1], ly0 = cam[CAM_LIM + 2],
                ly1 = cam[CAM_LIM + 3];
    const float P0 = cam[CAM_POS], P1 = cam[CAM_POS + 1], P2 = cam[CAM_POS + 2];
    const float lim = cam[CAM_BACKFACE], lim2 = lim * lim, near = cam[CAM_NEAR];
    const int lim_pos = lim >= 0.0f;
    const float W = (float)width, H = (float)height, h = -0.5f * LOG2E;
    // 32-bit flags in the vector loop: with uint8 stores gcc picks 64 lanes per iteration, and
    // a block of fewer runs in its 8-lane remainder loop, whose estimates differ (see below).
#pragma omp simd
    for (int j = 0; j < cnt; j++) {
        float m0 = b->m0[j], m1 = b->m1[j], m2 = b->m2[j];
        float px = R0 * m0 + R1 * m1 + R2 * m2 + T0;
        float py = R3 * m0 + R4 * m1 + R5 * m2 + T1;
        float pz = R6 * m0 + R7 * m1 + R8 * m2 + T2;
        depth[j] = pz;  // also for culled ones: the shared depth order of a stereo pair uses it
        int vis = b->ok[j] & (pz >= near);
        float vx = m0 - P0, vy = m1 - P1, vz = m2 - P2;
        float vlen2 = vx * vx + vy * vy + vz * vz;
        // One-sided, facing away: d > lim |v| without the square root (signs first).
        float d = b->n0[j] * vx + b->n1[j] * vy + b->n2[j] * vz, dd = d * d, l2v = lim2 * vlen2;
        int away = lim_pos ? (d > 0.0f) & (dd > l2v) : (d >= 0.0f) | (dd < l2v);
        vis = b->one_sided[j] != 0 && away ? 0 : vis;
        float iz = 1.0f / (vis ? pz : 1.0f);
        float mx = fx * px * iz + ccx, my = fy * py * iz + ccy;
        float ux = fminf(fmaxf(px * iz, lx0), lx1) * pz;
        float uy = fminf(fmaxf(py * iz, ly0), ly1) * pz;
        float a0 = fx * iz, a2 = -fx * ux * iz * iz, b1 = fy * iz, b2 = -fy * uy * iz * iz;
        float t00 = a0 * R0 + a2 * R6, t01 = a0 * R1 + a2 * R7, t02 = a0 * R2 + a2 * R8;
        float t10 = b1 * R3 + b2 * R6, t11 = b1 * R4 + b2 * R7, t12 = b1 * R5 + b2 * R8;
        float c0 = b->c[0][j], c1 = b->c[1][j], c2 = b->c[2][j], c3 = b->c[3][j],
              c4 = b->c[4][j], c5 = b->c[5][j];
        float s00 = c0 * t00 + c1 * t01 + c2 * t02, s01 = c1 * t00 + c3 * t01 + c4 * t02,
              s02 = c2 * t00 + c4 * t01 + c5 * t02;
        float s10 = c0 * t10 + c1 * t11 + c2 * t12, s11 = c1 * t10 + c3 * t11 + c4 * t12,
              s12 = c2 * t10 + c4 * t11 + c5 * t12;
        float A = t00 * s00 + t01 * s01 + t02 * s02 + LOW_PASS;
        float B = t00 * s10 + t01 * s11 + t02 * s12;
        float C = t10 * s10 + t11 * s11 + t12 * s12 + LOW_PASS;
        float det = A * C - B * B;
        // Degenerate or overflowing projections are culled before the float -> int conversions.
        vis &= finite_bits(A) & finite_bits(C) & finite_bits(det) & finite_bits(mx) &
               finite_bits(my);
        vis &= (det > 0.0f) & (A > 0.0f) & (C > 0.0f) & (fabsf(mx) < 1e7f) & (fabsf(my) < 1e7f);
        float r2 = b->r2[j];
        float hx = sqrtf(fmaxf(r2 * A, 0.0f)), hy = sqrtf(fmaxf(r2 * C, 0.0f));
        vis &= (hx < 1e7f) & (hy < 1e7f);
        vis &= (mx + hx >= 0.0f) & (my + hy >= 0.0f) & (mx - hx <= W) & (my - hy <= H);
        float inv_det = 1.0f / (vis ? det : 1.0f);
        pf[PJ_MX][j] = mx;
        pf[PJ_MY][j] = my;
        pf[PJ_QA][j] = h * C * inv_det;
        pf[PJ_QB][j] = -2.0f * h * B * inv_det;
        pf[PJ_QC][j] = h * A * inv_det;
        pf[PJ_OPACITY][j] = b->on[j];
        pf[PJ_OP_FAR][j] = b->of[j];
        pf[PJ_HX][j] = hx;
        pf[PJ_HY][j] = hy;
        pf[PJ_A][j] = A;
        pf[PJ_B2][j] = B;
        pf[PJ_C][j] = C;
        pf[PJ_SD][j] = sqrtf(fmaxf(det, 0.0f));
        const float* shi = sh + (size_t)j * K * 3;
        float il = K > 1 && vlen2 > 1e-24f ? 1.0f / sqrtf(vlen2) : 0.0f;
        float dx = vx * il, dy = vy * il, dz = vz * il;
        pf[PJ_R][j] = sh_channel(shi, K, 0, dx, dy, dz);
        pf[PJ_G][j] = sh_channel(shi, K, 1, dx, dy, dz);
        pf[PJ_B][j] = sh_channel(shi, K, 2, dx, dy, dz);
        vis32[j] = vis;
    }
    for (int j = 0; j < cnt; j++) visible[j] = (uint8_t)vis32[j];
}

// Every camera of cams: depth/visible of camera c at c * cam_step, Gaussian j's piece q for
// camera c: Splat at (c * cam_step + j) * P + q, Bin at (j * ncams + c) * P + q.
static __attribute__((noinline)) void project_cams(int cnt, const BlockIn* in, int planes, int k,
                                                   int P, int ncams, const float* cams,
                                                   int width, int height, int64_t rows_per_cam,
                                                   int tiles_y, Splat* splats, Bin* bins,
                                                   float* depth, uint8_t* visible,
                                                   size_t cam_step) {
    PrepBlock b __attribute__((aligned(64)));
    float proj[PJ_FIELDS][PBLOCK] __attribute__((aligned(64)));
    int32_t vis32[PBLOCK] __attribute__((aligned(64)));
    if (in->cov6)
        prep_block(1, cnt, in, planes, tiles_y, &b);
    else
        prep_block(0, cnt, in, planes, tiles_y, &b);
    for (int c = 0; c < ncams; c++) {
        const float* cam = cams + c * CAM_FLOATS;
        size_t o = (size_t)c * cam_step, bstride = (size_t)ncams * P;
        Splat* sp = splats + o * P;
        Bin* bn = bins + c * P;
        float* de = depth + o;
        uint8_t* vi = visible + o;
        int32_t row_c = (int32_t)(rows_per_cam * c);
#define PROJECT_BLOCK(K_) \
    project_block(K_, cnt, &b, in->sh, cam, width, height, proj, vis32, de, vi)
        switch (k) {
            case 1: PROJECT_BLOCK(1); break;
            case 4: PROJECT_BLOCK(4); break;
            case 9: PROJECT_BLOCK(9); break;
            default: PROJECT_BLOCK(16); break;
        }
        if (P == 2) {
            derive_records(2, 0, cnt, proj, vis32, &b, row_c, tiles_y, 2, sp, bstride, bn);
            derive_records(2, 1, cnt, proj, vis32, &b, row_c, tiles_y, 2, sp, bstride, bn);
        } else {
            derive_records(1, 0, cnt, proj, vis32, &b, row_c, tiles_y, 1, sp, bstride, bn);
        }
#undef PROJECT_BLOCK
    }
}

// Projects Gaussians [i0, i0 + cnt) for every camera (depth/visible at c * n + i, splats at
// (c * n + i) * P + q, bins at (i * ncams + c) * P + q: a Gaussian's Bins for the cameras of a
// stereo pair share a cache line, read together by the binning). A block
// whose count is not a multiple of the vector width (the cloud's last) is projected from
// zero-padded copies: every Gaussian goes through the vector loop, never a scalar remainder
// (whose rounding differs: vector sqrt and division are estimates + a Newton step under
// -ffast-math), so a Gaussian's record does not depend on where it sits in the cloud.
static void project_range(int i0, int cnt, int n, const float* means, const float* cov6,
                          const float* quats, const float* scales, const int8_t* facing,
                          const float* opacity, const int32_t* plane, const float* far_w,
                          const float* pieces, int planes, const float* sh, int k, int P,
                          int ncams, const float* cams, int width, int height,
                          int64_t rows_per_cam, int tiles_y, Splat* splats, Bin* bins,
                          float* depth, uint8_t* visible) {
    size_t i = (size_t)i0;
    BlockIn in = {means + 3 * i,
                  cov6 ? cov6 + 6 * i : NULL,
                  quats ? quats + 4 * i : NULL,
                  scales ? scales + 3 * i : NULL,
                  opacity + i,
                  far_w ? far_w + i : NULL,
                  pieces ? pieces + 2 * i : NULL,
                  sh + 3 * (size_t)k * i,
                  facing ? facing + i : NULL,
                  plane ? plane + i : NULL};
    if (cnt % VLANES == 0) {
        project_cams(cnt, &in, planes, k, P, ncams, cams, width, height, rows_per_cam, tiles_y,
                     splats + i * P, bins + i * ncams * P, depth + i, visible + i,
                     (size_t)n);
        return;
    }
    int cntp = (cnt + VLANES - 1) / VLANES * VLANES;  // <= PBLOCK
    struct {
        float means[3 * PBLOCK], cov6[6 * PBLOCK], quats[4 * PBLOCK], scales[3 * PBLOCK],
            opacity[PBLOCK], far_w[PBLOCK], pieces[2 * PBLOCK], sh[3 * 16 * PBLOCK];
        int8_t facing[PBLOCK];
        int32_t plane[PBLOCK];
    }* pad = calloc(1, sizeof(*pad));  // once per call (the last block): ~150 KB, zeroed
    // Its records, every camera's (whole lines stored: 64-byte aligned).
    size_t nrec = (size_t)cntp * ncams * P;
    size_t bytes = (sizeof(Splat) + sizeof(Bin)) * nrec + (sizeof(float) + 1) * cntp * ncams;
    char* outs = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!pad || !outs) {  // out of memory: cull the block (the caller's result is then incomplete)
        free(pad);
        free(outs);
        for (int c = 0; c < ncams; c++) memset(visible + (size_t)c * n + i, 0, (size_t)cnt);
        return;
    }
    BlockIn lp = {pad->means, cov6 ? pad->cov6 : NULL, quats ? pad->quats : NULL,
                  scales ? pad->scales : NULL, pad->opacity, far_w ? pad->far_w : NULL,
                  pieces ? pad->pieces : NULL, pad->sh, facing ? pad->facing : NULL,
                  plane ? pad->plane : NULL};
    memcpy(pad->means, in.means, sizeof(float) * 3 * cnt);
    if (cov6) memcpy(pad->cov6, in.cov6, sizeof(float) * 6 * cnt);
    if (quats) memcpy(pad->quats, in.quats, sizeof(float) * 4 * cnt);
    if (scales) memcpy(pad->scales, in.scales, sizeof(float) * 3 * cnt);
    memcpy(pad->opacity, in.opacity, sizeof(float) * cnt);
    if (far_w) memcpy(pad->far_w, in.far_w, sizeof(float) * cnt);
    if (pieces) memcpy(pad->pieces, in.pieces, sizeof(float) * 2 * cnt);
    memcpy(pad->sh, in.sh, sizeof(float) * 3 * (size_t)k * cnt);
    if (facing) memcpy(pad->facing, in.facing, (size_t)cnt);
    if (plane) memcpy(pad->plane, in.plane, sizeof(int32_t) * cnt);
    for (int j = cnt; j < cntp; j++) pad->quats[4 * j] = 1.0f;  // padding: culled (opacity 0)
    Splat* ps = (Splat*)outs;
    Bin* pb = (Bin*)(ps + nrec);
    float* pd = (float*)(pb + nrec);
    uint8_t* pv = (uint8_t*)(pd + (size_t)cntp * ncams);
    project_cams(cntp, &lp, planes, k, P, ncams, cams, width, height, rows_per_cam, tiles_y, ps,
                 pb, pd, pv, (size_t)cntp);
    memcpy(bins + i * ncams * P, pb, sizeof(Bin) * cnt * ncams * P);
    for (int c = 0; c < ncams; c++) {
        size_t o = (size_t)c * n + i;
        memcpy(splats + o * P, ps + (size_t)c * cntp * P, sizeof(Splat) * cnt * P);
        memcpy(depth + o, pd + (size_t)c * cntp, sizeof(float) * cnt);
        memcpy(visible + o, pv + (size_t)c * cntp, (size_t)cnt);
    }
    free(pad);
    free(outs);
}

// x-range [*lo, *hi] of the ellipse over dy in [dlo, dhi] (already inside [-hy, hy]): the right
// edge mx + k dy + w sqrt(hy^2 - dy^2) is concave with its maximum at dys, the left edge convex
// with its minimum at -dys, so each extreme sits at that point clamped into the interval. (The
// same with x and y swapped gives the y-range over an x interval.)
static inline void span_over(float m, float k, float w, float h, float ds, float dlo, float dhi,
                             float* lo, float* hi) {
    float dr = fminf(fmaxf(ds, dlo), dhi), dl = fminf(fmaxf(-ds, dlo), dhi);
    *hi = m + k * dr + w * sqrtf(fmaxf(h * h - dr * dr, 0.0f));
    *lo = m + k * dl - w * sqrtf(fmaxf(h * h - dl * dl, 0.0f));
}

// First and one-past-last tile index whose pixel centres (t TILE + 0.5 .. t TILE + TILE - 0.5)
// the interval [lo, hi] reaches, clamped to [0, count).
static inline void tile_range(float lo, float hi, int count, int* t0, int* t1) {
    int a = (int)ceilf((lo + 0.5f - SPAN_EPS) / TILE) - 1;
    int b = (int)floorf((hi - 0.5f + SPAN_EPS) / TILE) + 1;
    *t0 = a < 0 ? 0 : a;
    *t1 = b > count ? count : b;
}

// The tile columns [*tx0, *tx1) whose pixel centres the ellipse reaches within tile row ty.
// Returns 0 when it reaches none.
static inline int row_tiles(const Bin* s, int ty, int tiles_x, int* tx0, int* tx1) {
    float dlo = (float)(ty * TILE) + 0.5f - s->my, dhi = (float)(ty * TILE + TILE) - 0.5f - s->my;
    dlo = fmaxf(dlo, -s->hy);
    dhi = fminf(dhi, s->hy);
    if (dlo > dhi + SPAN_EPS) return 0;
    if (dlo > dhi) dlo = dhi;
    float lo, hi;
    span_over(s->mx, s->k, s->w, s->hy, s->dys, dlo, dhi, &lo, &hi);
    tile_range(lo, hi, tiles_x, tx0, tx1);
    return *tx0 < *tx1;
}

// Stable LSD radix sort of idx[0..m) by key[idx] (uint32, ascending). tmp: scratch of m
// entries; kbuf, kbuf2: scratch of m keys. Passes whose digit is the same for all keys (the
// high bits of nearby depths) are skipped. Returns the sorted array (idx or tmp).
static uint32_t* radix_sort(uint32_t* idx, uint32_t* tmp, uint32_t* kbuf, uint32_t* kbuf2,
                            int64_t m, const uint32_t* key) {
    enum { BITS = 11, BINS = 1 << 11, PASSES = 3 };
    static const int shifts[PASSES] = {0, 11, 22};
    int64_t counts[PASSES][BINS];
    memset(counts, 0, sizeof(counts));
    for (int64_t j = 0; j < m; j++) {
        uint32_t u = key[idx[j]];
        kbuf[j] = u;
        for (int p = 0; p < PASSES; p++) counts[p][(u >> shifts[p]) & (BINS - 1)]++;
    }
    for (int p = 0; p < PASSES; p++) {
        int64_t* cnt = counts[p];
        int shift = shifts[p];
        int skip = 0;
        for (int b = 0; b < BINS; b++)
            if (cnt[b] == m) skip = 1;
        if (skip) continue;
        int64_t sum = 0;
        for (int b = 0; b < BINS; b++) {
            int64_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (int64_t j = 0; j < m; j++) {
            uint32_t u = kbuf[j];
            int64_t at = cnt[(u >> shift) & (BINS - 1)]++;
            tmp[at] = idx[j];
            kbuf2[at] = u;
        }
        uint32_t* swap = idx;
        idx = tmp;
        tmp = swap;
        swap = kbuf;
        kbuf = kbuf2;
        kbuf2 = swap;
    }
    return idx;
}

// Float -> uint32 with the same order (negative floats too).
static inline uint32_t order_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// ------------------------------------------------------------------------------ output
typedef struct {
    float* f32;            // float32 output, or NULL
    uint8_t* u8;           // uint8 output (rounded), used when f32 is NULL
    int channels;          // 4: rgba, 3: rgb
    int64_t cam_stride;    // elements between cameras' images
    int64_t plane_stride;  // elements between planes' images
    int64_t row_stride;    // elements between rows
    int straight;          // straight colour (colour / alpha) instead of premultiplied
    int skip_empty;        // the output is zeroed and bg is 0: tiles with nothing are not written
} Output;

static double now(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0.0;
#endif
}

#if USE_AVX512
// The AVX-512 raster works on 8x2 pixel blocks: a tile is 8 row pairs x 2 column halves, block
// b = 2 * row pair + half at T + 16 b, lane l = pixel (row 2 * pair + l / 8, column 8 * half +
// l % 8). A Gaussian visits the blocks of its rows' span and of the halves its box reaches:
// ~18% fewer visits than whole 16-pixel rows for the default head (most of its ellipses are a
// few pixels wide). block_permute() turns a finished tile back into rows.

// Composites one splat into block b (T, cr, cg, cbl: [TILE * TILE], block layout above), whose
// log2(alpha) before the 0.99 clamp is `power`. Returns the lanes that ended (T below 1e-4).
static inline __attribute__((always_inline)) __mmask16 visit_block(
    float* T, float* cr, float* cg, float* cbl, int b, __m512 power, __m512 v_r, __m512 v_g,
    __m512 v_b) {
    const __m512 v_min_alpha = _mm512_set1_ps(MIN_ALPHA), v_max_alpha = _mm512_set1_ps(MAX_ALPHA);
    const __m512 v_min_t = _mm512_set1_ps(MIN_T), v_zero = _mm512_setzero_ps();
    const __m512 v_one = _mm512_set1_ps(1.0f), v_exp_min = _mm512_set1_ps(-60.0f);
    // Clamped at 2^-60: alpha far below 1/255 either way, and every product below stays a
    // normal float (a denormal costs a ~150-cycle microcode assist: the library runs inside
    // Python, without -ffast-math's flush-to-zero start-up code). 2^t = 2^frac(t) (a degree-3
    // polynomial of vreduceps' fraction, relative error 7.5e-5) scaled by 2^floor(t)
    // (vscalefps floors t itself).
    __m512 t = _mm512_max_ps(power, v_exp_min);
    __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 p = _mm512_set1_ps(7.8024192e-2f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.2606721e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9583374e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.9992517e-1f));
    __m512 a = _mm512_min_ps(v_max_alpha, _mm512_scalef_ps(p, t));
    float* Tb = T + 16 * b;
    __m512 tc = _mm512_load_ps(Tb);  // < 0: the pixel has ended (stored as -T)
    __mmask16 take = _mm512_cmp_ps_mask(a, v_min_alpha, _CMP_GE_OQ) &
                     _mm512_cmp_ps_mask(tc, v_zero, _CMP_GT_OQ);
    __m512 tn = _mm512_mul_ps(tc, _mm512_sub_ps(v_one, a));
    __mmask16 stop = _mm512_mask_cmp_ps_mask(take, tn, v_min_t, _CMP_LT_OQ);
    __mmask16 add = take & (__mmask16)~stop;
    __m512 wgt = _mm512_mul_ps(a, tc);
    float* rr = cr + 16 * b;
    float* gg = cg + 16 * b;
    float* bb = cbl + 16 * b;
    _mm512_mask_store_ps(rr, add, _mm512_fmadd_ps(wgt, v_r, _mm512_load_ps(rr)));
    _mm512_mask_store_ps(gg, add, _mm512_fmadd_ps(wgt, v_g, _mm512_load_ps(gg)));
    _mm512_mask_store_ps(bb, add, _mm512_fmadd_ps(wgt, v_b, _mm512_load_ps(bb)));
    tc = _mm512_mask_mov_ps(tc, add, tn);
    tc = _mm512_mask_sub_ps(tc, stop, v_zero, tc);
    _mm512_store_ps(Tb, tc);
    return stop;
}

// Composites one splat into the blocks of row pairs [pa, pb] and halves [ha, hb] of a tile.
// fx: the tile's first pixel column centre minus the splat's mean x; fy: row pair pa's first
// row centre minus its mean y. Returns whether some pixel ended.
static inline __attribute__((always_inline)) int splat_blocks(
    float* T, float* cr, float* cg, float* cbl, int pa, int pb, int ha, int hb, float fx, float fy,
    const Splat* s) {
    const __m512 lx = _mm512_set_ps(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 ly = _mm512_set_ps(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 v_r = _mm512_set1_ps(s->r), v_g = _mm512_set1_ps(s->g), v_b = _mm512_set1_ps(s->b);
    const __m512 qa = _mm512_set1_ps(s->qa), qb = _mm512_set1_ps(s->qb), qc = _mm512_set1_ps(s->qc);
    // log2(alpha) = qa dx^2 + qb dx dy + qc dy^2 + log2(opacity), block by block down the
    // column as a second-order recurrence (two adds a block): two rows down, power grows by
    // step = 2 qb dx + 4 qc (dy + 1), and step by 8 qc.
    const __m512 dy = _mm512_add_ps(_mm512_set1_ps(fy), ly);
    const __m512 row = _mm512_fmadd_ps(_mm512_mul_ps(qc, dy), dy, _mm512_set1_ps(s->log2_opacity));
    const __m512 bdy = _mm512_mul_ps(qb, dy);
    const __m512 qb2 = _mm512_add_ps(qb, qb);
    const __m512 step_y = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(4.0f), qc),
                                        _mm512_add_ps(dy, _mm512_set1_ps(1.0f)));
    const __m512 v_step2 = _mm512_mul_ps(_mm512_set1_ps(8.0f), qc);
    const __m512 dx0 = _mm512_add_ps(_mm512_set1_ps(fx + 8.0f * (float)ha), lx);
    __m512 power0 = _mm512_fmadd_ps(_mm512_fmadd_ps(qa, dx0, bdy), dx0, row);
    __m512 step0 = _mm512_fmadd_ps(qb2, dx0, step_y);
    __mmask16 ended = 0;
    if (ha == hb) {
        for (int pr = pa; pr <= pb; pr++) {
            ended |= visit_block(T, cr, cg, cbl, 2 * pr + ha, power0, v_r, v_g, v_b);
            power0 = _mm512_add_ps(power0, step0);
            step0 = _mm512_add_ps(step0, v_step2);
        }
        return ended != 0;
    }
    const __m512 dx1 = _mm512_add_ps(dx0, _mm512_set1_ps(8.0f));
    __m512 power1 = _mm512_fmadd_ps(_mm512_fmadd_ps(qa, dx1, bdy), dx1, row);
    __m512 step1 = _mm512_fmadd_ps(qb2, dx1, step_y);
    for (int pr = pa; pr <= pb; pr++) {
        ended |= visit_block(T, cr, cg, cbl, 2 * pr, power0, v_r, v_g, v_b);
        ended |= visit_block(T, cr, cg, cbl, 2 * pr + 1, power1, v_r, v_g, v_b);
        power0 = _mm512_add_ps(power0, step0);
        step0 = _mm512_add_ps(step0, v_step2);
        power1 = _mm512_add_ps(power1, step1);
        step1 = _mm512_add_ps(step1, v_step2);
    }
    return ended != 0;
}

// Block layout -> rows, in place (one array of a tile): row pair p's blocks 2p (columns 0-7 of
// both rows) and 2p + 1 (columns 8-15) hold the same 32 floats as rows 2p and 2p + 1.
static inline void block_permute(float* a) {
    for (int p = 0; p < TILE / 2; p++) {
        __m512 b0 = _mm512_load_ps(a + 32 * p), b1 = _mm512_load_ps(a + 32 * p + 16);
        _mm512_store_ps(a + 32 * p, _mm512_shuffle_f32x4(b0, b1, 0x44));       // 128-bit parts 0, 1 | 0, 1
        _mm512_store_ps(a + 32 * p + 16, _mm512_shuffle_f32x4(b0, b1, 0xEE));  // 2, 3 | 2, 3
    }
}

// Whether every pixel of the tile has ended (all T stored negative).
static inline int tile_ended(const float* T) {
    __m512 m = _mm512_load_ps(T);
    for (int y = 1; y < TILE; y++) m = _mm512_max_ps(m, _mm512_load_ps(T + y * TILE));
    return _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_LT_OQ) == 0xFFFF;
}
#endif

// The pixel rows [*ya, *yb] of the tile at (ox, oy) that the ellipse of s reaches within the
// tile's pixel columns (its y-span there; *ya > *yb: none).
static inline void tile_rows(const Splat* s, int ox, int oy, int* ya, int* yb) {
    const float px0 = (float)ox + 0.5f, pxl = (float)ox + (float)TILE - 0.5f;
    float dlo = fmaxf(px0 - s->mx, -s->hx), dhi = fminf(pxl - s->mx, s->hx);
    if (dlo > dhi) dlo = dhi;  // the binning found it within SPAN_EPS
    float ylo, yhi;
    span_over(s->my, s->k2, s->w2, s->hx, s->dxs, dlo, dhi, &ylo, &yhi);
    // Clamped before rounding: a far-off mean must not overflow the int conversion.
    *ya = (int)ceilf(fminf(fmaxf(ylo - (float)oy - 0.5f - SPAN_EPS, 0.0f), (float)TILE));
    *yb = (int)floorf(fminf(fmaxf(yhi - (float)oy - 0.5f + SPAN_EPS, -1.0f), (float)(TILE - 1)));
}

#if USE_AVX512
// tile_rows of the splats of ids[0..cnt) (cnt <= 16), in one vector pass, into ya[], yb[].
// Done per batch in the raster rather than per Gaussian: there the scalar chain (two square
// roots, rounding) feeding the row loop's bounds stalled every (Gaussian, tile) pair for ~100
// cycles; as a vector it costs a few cycles a pair. Splat field k sits at float 16 entry + k
// (gathered with scale 8 from index 8 entry: entries < 2^28, see ths_splat_render_ex).
static inline void tile_rows16(const Splat* splats, const uint32_t* ids, int cnt, int ox, int oy,
                               int32_t* pa, int32_t* pb, int32_t* ha, int32_t* hb) {
    const __mmask16 m = (__mmask16)((1u << cnt) - 1u);
    const __m512i at = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, ids), 3);
    const float* f = (const float*)splats;
    const __m512 z = _mm512_setzero_ps();
    const __m512 mx = _mm512_mask_i32gather_ps(z, m, at, f + offsetof(Splat, mx) / 4, 8);
    const __m512 my = _mm512_mask_i32gather_ps(z, m, at, f + offsetof(Splat, my) / 4, 8);
    const __m512 hx = _mm512_mask_i32gather_ps(z, m, at, f + offsetof(Splat, hx) / 4, 8);
    const __m512 k2 = _mm512_mask_i32gather_ps(z, m, at, f + offsetof(Splat, k2) / 4, 8);
    const __m512 w2 = _mm512_mask_i32gather_ps(z, m, at, f + offsetof(Splat, w2) / 4, 8);
    const __m512 ds = _mm512_mask_i32gather_ps(z, m, at, f + offsetof(Splat, dxs) / 4, 8);
    const __m512 px0 = _mm512_set1_ps((float)ox + 0.5f);
    const __m512 pxl = _mm512_set1_ps((float)ox + (float)TILE - 0.5f);
    __m512 dhi = _mm512_min_ps(_mm512_sub_ps(pxl, mx), hx);
    __m512 dlo = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(px0, mx), _mm512_sub_ps(z, hx)), dhi);
    // span_over, both edges
    __m512 dr = _mm512_min_ps(_mm512_max_ps(ds, dlo), dhi);
    __m512 dl = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(z, ds), dlo), dhi);
    __m512 hh = _mm512_mul_ps(hx, hx);
    __m512 sr = _mm512_sqrt_ps(_mm512_max_ps(_mm512_fnmadd_ps(dr, dr, hh), z));
    __m512 sl = _mm512_sqrt_ps(_mm512_max_ps(_mm512_fnmadd_ps(dl, dl, hh), z));
    __m512 hi = _mm512_fmadd_ps(w2, sr, _mm512_fmadd_ps(k2, dr, my));
    __m512 lo = _mm512_fnmadd_ps(w2, sl, _mm512_fmadd_ps(k2, dl, my));
    const __m512 row0 = _mm512_set1_ps((float)oy + 0.5f);
    __m512 ra = _mm512_sub_ps(_mm512_sub_ps(lo, row0), _mm512_set1_ps(SPAN_EPS));
    __m512 rb = _mm512_add_ps(_mm512_sub_ps(hi, row0), _mm512_set1_ps(SPAN_EPS));
    ra = _mm512_min_ps(_mm512_max_ps(ra, z), _mm512_set1_ps((float)TILE));
    rb = _mm512_min_ps(_mm512_max_ps(rb, _mm512_set1_ps(-1.0f)), _mm512_set1_ps((float)(TILE - 1)));
    __m512i ya = _mm512_cvt_roundps_epi32(ra, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __m512i yb = _mm512_cvt_roundps_epi32(rb, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    // The pixel columns [ca, cb] of the ellipse's box within the tile, as halves.
    const __m512 c0 = _mm512_set1_ps((float)ox + 0.5f);
    __m512 ca = _mm512_sub_ps(_mm512_sub_ps(_mm512_sub_ps(mx, hx), c0), _mm512_set1_ps(SPAN_EPS));
    __m512 cb = _mm512_add_ps(_mm512_sub_ps(_mm512_add_ps(mx, hx), c0), _mm512_set1_ps(SPAN_EPS));
    ca = _mm512_min_ps(_mm512_max_ps(ca, z), _mm512_set1_ps((float)TILE));
    cb = _mm512_min_ps(_mm512_max_ps(cb, _mm512_set1_ps(-1.0f)), _mm512_set1_ps((float)(TILE - 1)));
    __m512i xa = _mm512_cvt_roundps_epi32(ca, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __m512i xb = _mm512_cvt_roundps_epi32(cb, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    // Row pairs [ya / 2, yb / 2] (arithmetic shifts: yb = -1 gives -1, no pairs), none either
    // when no column is reached.
    __m512i qa = _mm512_srai_epi32(ya, 1), qb = _mm512_srai_epi32(yb, 1);
    __mmask16 none = _mm512_cmpgt_epi32_mask(xa, xb);
    qb = _mm512_mask_mov_epi32(qb, none, _mm512_set1_epi32(-1));
    _mm512_store_si512(pa, qa);
    _mm512_store_si512(pb, qb);
    _mm512_store_si512(ha, _mm512_srai_epi32(xa, 3));
    _mm512_store_si512(hb, _mm512_srai_epi32(xb, 3));
}
#endif

#if USE_AVX2
// The AVX-512 block path (see above) with 256-bit vectors: block b's 16 floats are two vectors,
// lanes 0-7 (the pair's upper row) and 8-15 (its lower row). The same arithmetic in the same
// order (fused multiply-adds where it has them; 2^floor(t) added to the exponent bits instead
// of vscalefps, t - floor(t) instead of vreduceps: equal for t in [-60, 0]), so the two paths
// give the same image.

// One half block (8 pixels at T + off) of visit_block. Returns the lanes that ended, as bits.
static inline __attribute__((always_inline)) int visit_half(float* T, float* cr, float* cg,
                                                          float* cbl, int off, __m256 power,
                                                          __m256 v_r, __m256 v_g, __m256 v_b) {
    const __m256 v_zero = _mm256_setzero_ps(), v_one = _mm256_set1_ps(1.0f);
    __m256 t = _mm256_max_ps(power, _mm256_set1_ps(-60.0f));
    __m256 fi = _mm256_floor_ps(t);
    __m256 f = _mm256_sub_ps(t, fi);
    __m256 p = _mm256_set1_ps(7.8024192e-2f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.2606721e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9583374e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.9992517e-1f));
    __m256i e = _mm256_slli_epi32(_mm256_cvttps_epi32(fi), 23);
    __m256 a = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    a = _mm256_min_ps(_mm256_set1_ps(MAX_ALPHA), a);
    float* Tb = T + off;
    __m256 tc = _mm256_load_ps(Tb);  // < 0: the pixel has ended (stored as -T)
    __m256 take = _mm256_and_ps(_mm256_cmp_ps(a, _mm256_set1_ps(MIN_ALPHA), _CMP_GE_OQ),
                                _mm256_cmp_ps(tc, v_zero, _CMP_GT_OQ));
    __m256 tn = _mm256_mul_ps(tc, _mm256_sub_ps(v_one, a));
    __m256 stop = _mm256_and_ps(take, _mm256_cmp_ps(tn, _mm256_set1_ps(MIN_T), _CMP_LT_OQ));
    __m256 add = _mm256_andnot_ps(stop, take);
    // Zero weight where nothing is added: x + 0 * c is x, bit for bit (the masked store's
    // result).
    __m256 wgt = _mm256_and_ps(add, _mm256_mul_ps(a, tc));
    float* rr = cr + off;
    float* gg = cg + off;
    float* bb = cbl + off;
    _mm256_store_ps(rr, _mm256_fmadd_ps(wgt, v_r, _mm256_load_ps(rr)));
    _mm256_store_ps(gg, _mm256_fmadd_ps(wgt, v_g, _mm256_load_ps(gg)));
    _mm256_store_ps(bb, _mm256_fmadd_ps(wgt, v_b, _mm256_load_ps(bb)));
    tc = _mm256_blendv_ps(tc, tn, add);
    tc = _mm256_blendv_ps(tc, _mm256_sub_ps(v_zero, tc), stop);
    _mm256_store_ps(Tb, tc);
    return _mm256_movemask_ps(stop);
}

// splat_blocks of the AVX-512 path: the column of blocks in half `h`, both rows of each pair,
// each row's log2(alpha) by its own second-order recurrence.
static inline __attribute__((always_inline)) int splat_column(
    float* T, float* cr, float* cg, float* cbl, int pa, int pb, int h, __m256 dx, __m256 fy,
    const Splat* s, __m256 v_r, __m256 v_g, __m256 v_b) {
    const __m256 qa = _mm256_set1_ps(s->qa), qb = _mm256_set1_ps(s->qb), qc = _mm256_set1_ps(s->qc);
    const __m256 lop = _mm256_set1_ps(s->log2_opacity), one = _mm256_set1_ps(1.0f);
    const __m256 four_qc = _mm256_mul_ps(_mm256_set1_ps(4.0f), qc);
    const __m256 v_step2 = _mm256_mul_ps(_mm256_set1_ps(8.0f), qc);
    const __m256 qb2 = _mm256_add_ps(qb, qb);
    const __m256 dy0 = fy, dy1 = _mm256_add_ps(fy, one);
    __m256 power0 = _mm256_fmadd_ps(_mm256_fmadd_ps(qa, dx, _mm256_mul_ps(qb, dy0)), dx,
                                    _mm256_fmadd_ps(_mm256_mul_ps(qc, dy0), dy0, lop));
    __m256 power1 = _mm256_fmadd_ps(_mm256_fmadd_ps(qa, dx, _mm256_mul_ps(qb, dy1)), dx,
                                    _mm256_fmadd_ps(_mm256_mul_ps(qc, dy1), dy1, lop));
    __m256 step0 = _mm256_fmadd_ps(qb2, dx, _mm256_mul_ps(four_qc, _mm256_add_ps(dy0, one)));
    __m256 step1 = _mm256_fmadd_ps(qb2, dx, _mm256_mul_ps(four_qc, _mm256_add_ps(dy1, one)));
    int ended = 0;
    for (int pr = pa; pr <= pb; pr++) {
        const int off = 16 * (2 * pr + h);
        ended |= visit_half(T, cr, cg, cbl, off, power0, v_r, v_g, v_b);
        ended |= visit_half(T, cr, cg, cbl, off + 8, power1, v_r, v_g, v_b);
        power0 = _mm256_add_ps(power0, step0);
        step0 = _mm256_add_ps(step0, v_step2);
        power1 = _mm256_add_ps(power1, step1);
        step1 = _mm256_add_ps(step1, v_step2);
    }
    return ended;
}

static inline __attribute__((always_inline)) int splat_blocks(
    float* T, float* cr, float* cg, float* cbl, int pa, int pb, int ha, int hb, float fx, float fy,
    const Splat* s) {
    const __m256 lx = _mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256 v_r = _mm256_set1_ps(s->r), v_g = _mm256_set1_ps(s->g), v_b = _mm256_set1_ps(s->b);
    const __m256 vfy = _mm256_set1_ps(fy);
    // As the AVX-512 path: the second half's dx is the first's + 8 (the same roundings).
    const __m256 dx0 = _mm256_add_ps(_mm256_set1_ps(fx + 8.0f * (float)ha), lx);
    int ended = splat_column(T, cr, cg, cbl, pa, pb, ha, dx0, vfy, s, v_r, v_g, v_b);
    if (hb > ha) {
        const __m256 dx1 = _mm256_add_ps(dx0, _mm256_set1_ps(8.0f));
        ended |= splat_column(T, cr, cg, cbl, pa, pb, ha + 1, dx1, vfy, s, v_r, v_g, v_b);
    }
    return ended != 0;
}

// Block layout -> rows (see the AVX-512 block_permute): row pair p's 32 floats are
// [upper 0-7, lower 0-7, upper 8-15, lower 8-15]; rows swap the middle two.
static inline void block_permute(float* a) {
    for (int p = 0; p < TILE / 2; p++) {
        __m256 lower_left = _mm256_load_ps(a + 32 * p + 8);
        _mm256_store_ps(a + 32 * p + 8, _mm256_load_ps(a + 32 * p + 16));
        _mm256_store_ps(a + 32 * p + 16, lower_left);
    }
}

static inline int tile_ended(const float* T) {
    __m256 m = _mm256_load_ps(T);
    for (int j = 8; j < TILE * TILE; j += 8) m = _mm256_max_ps(m, _mm256_load_ps(T + j));
    return _mm256_movemask_ps(_mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_LT_OQ)) == 0xFF;
}

// tile_rows16 of the AVX-512 path, 8 splats a pass. ids[] holds 16 valid entries (the caller
// pads a short batch with its first entry; the padding lanes are ignored).
static inline void tile_rows8(const Splat* splats, const uint32_t* ids, int ox, int oy,
                              int32_t* pa, int32_t* pb, int32_t* ha, int32_t* hb) {
    const __m256i at = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)ids), 3);
    const float* f = (const float*)splats;
    const __m256 z = _mm256_setzero_ps();
    const __m256 mx = _mm256_i32gather_ps(f + offsetof(Splat, mx) / 4, at, 8);
    const __m256 my = _mm256_i32gather_ps(f + offsetof(Splat, my) / 4, at, 8);
    const __m256 hx = _mm256_i32gather_ps(f + offsetof(Splat, hx) / 4, at, 8);
    const __m256 k2 = _mm256_i32gather_ps(f + offsetof(Splat, k2) / 4, at, 8);
    const __m256 w2 = _mm256_i32gather_ps(f + offsetof(Splat, w2) / 4, at, 8);
    const __m256 ds = _mm256_i32gather_ps(f + offsetof(Splat, dxs) / 4, at, 8);
    const __m256 px0 = _mm256_set1_ps((float)ox + 0.5f);
    const __m256 pxl = _mm256_set1_ps((float)ox + (float)TILE - 0.5f);
    const __m256 eps = _mm256_set1_ps(SPAN_EPS), m1 = _mm256_set1_ps(-1.0f);
    const __m256 tile = _mm256_set1_ps((float)TILE), last = _mm256_set1_ps((float)(TILE - 1));
    __m256 dhi = _mm256_min_ps(_mm256_sub_ps(pxl, mx), hx);
    __m256 dlo = _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(px0, mx), _mm256_sub_ps(z, hx)), dhi);
    __m256 dr = _mm256_min_ps(_mm256_max_ps(ds, dlo), dhi);
    __m256 dl = _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(z, ds), dlo), dhi);
    __m256 hh = _mm256_mul_ps(hx, hx);
    __m256 sr = _mm256_sqrt_ps(_mm256_max_ps(_mm256_fnmadd_ps(dr, dr, hh), z));
    __m256 sl = _mm256_sqrt_ps(_mm256_max_ps(_mm256_fnmadd_ps(dl, dl, hh), z));
    __m256 hi = _mm256_fmadd_ps(w2, sr, _mm256_fmadd_ps(k2, dr, my));
    __m256 lo = _mm256_fnmadd_ps(w2, sl, _mm256_fmadd_ps(k2, dl, my));
    const __m256 row0 = _mm256_set1_ps((float)oy + 0.5f);
    __m256 ra = _mm256_sub_ps(_mm256_sub_ps(lo, row0), eps);
    __m256 rb = _mm256_add_ps(_mm256_sub_ps(hi, row0), eps);
    ra = _mm256_min_ps(_mm256_max_ps(ra, z), tile);
    rb = _mm256_min_ps(_mm256_max_ps(rb, m1), last);
    __m256i ya = _mm256_cvttps_epi32(_mm256_ceil_ps(ra));
    __m256i yb = _mm256_cvttps_epi32(_mm256_floor_ps(rb));
    __m256 ca = _mm256_sub_ps(_mm256_sub_ps(_mm256_sub_ps(mx, hx), px0), eps);
    __m256 cb = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(mx, hx), px0), eps);
    ca = _mm256_min_ps(_mm256_max_ps(ca, z), tile);
    cb = _mm256_min_ps(_mm256_max_ps(cb, m1), last);
    __m256i xa = _mm256_cvttps_epi32(_mm256_ceil_ps(ca));
    __m256i xb = _mm256_cvttps_epi32(_mm256_floor_ps(cb));
    __m256i qa = _mm256_srai_epi32(ya, 1), qb = _mm256_srai_epi32(yb, 1);
    __m256i none = _mm256_cmpgt_epi32(xa, xb);
    qb = _mm256_blendv_epi8(qb, _mm256_set1_epi32(-1), none);
    _mm256_store_si256((__m256i*)pa, qa);
    _mm256_store_si256((__m256i*)pb, qb);
    _mm256_store_si256((__m256i*)ha, _mm256_srai_epi32(xa, 3));
    _mm256_store_si256((__m256i*)hb, _mm256_srai_epi32(xb, 3));
}

static inline void tile_rows16(const Splat* splats, const uint32_t* ids, int cnt, int ox, int oy,
                               int32_t* pa, int32_t* pb, int32_t* ha, int32_t* hb) {
    uint32_t padded[16];
    for (int i = 0; i < 16; i++) padded[i] = ids[i < cnt ? i : 0];
    tile_rows8(splats, padded, ox, oy, pa, pb, ha, hb);
    if (cnt > 8) tile_rows8(splats, padded + 8, ox, oy, pa + 8, pb + 8, ha + 8, hb + 8);
}
#endif

// Composites one tile's Gaussians (list[begin..end), front to back) and writes the tile.
// Returns the seconds spent writing (the "output" stage).
static double raster_tile(const Splat* splats, const uint32_t* list, int64_t begin,
                          int64_t end, int ox, int oy, int width, int height, const Output* o,
                          int64_t offset, const float* bg) {
    float T[TILE * TILE] __attribute__((aligned(64)));
    float cr[TILE * TILE] __attribute__((aligned(64)));
    float cg[TILE * TILE] __attribute__((aligned(64)));
    float cbl[TILE * TILE] __attribute__((aligned(64)));
    if (o->skip_empty && begin == end) return 0.0;  // zeros already there
    for (int j = 0; j < TILE * TILE; j++) {
        T[j] = 1.0f;
        cr[j] = cg[j] = cbl[j] = 0.0f;
    }
    const float px0 = (float)ox + 0.5f;
#if USE_BLOCKS
    int32_t pair_a[16] __attribute__((aligned(64))), pair_b[16] __attribute__((aligned(64)));
    int32_t half_a[16] __attribute__((aligned(64))), half_b[16] __attribute__((aligned(64)));
    int ended = 0;  // some pixel ended since the last tile_ended() test
    for (int64_t e0 = begin; e0 < end; e0 += 16) {
        // Whether the whole tile has ended, tested once a batch (it rarely has: most tiles
        // have an edge where the background shows).
        if (ended && tile_ended(T)) break;
        ended = 0;
        const int cnt = end - e0 < 16 ? (int)(end - e0) : 16;
        // The rows of this tile the next 16 ellipses reach, in one vector pass (its gathers
        // also fetch their splats' cache lines).
        tile_rows16(splats, list + e0, cnt, ox, oy, pair_a, pair_b, half_a, half_b);
        for (int i = 0; i < cnt; i++) {
            const Splat* s = splats + list[e0 + i];
            // The splats of a tile are scattered over a few MB (L2 misses): fetch the next
            // batch's ahead.
            if (e0 + i + 16 < end) __builtin_prefetch(splats + list[e0 + i + 16]);
            // One AVX-512 vector (two AVX2 ones) per 8x2 block; masks instead of branches. Every block in the
            // span, also blocks whose pixels have all ended (their masks are empty): a branch
            // on a per-block count mispredicts more than the block costs. Whether the whole
            // tile has ended is checked only after a Gaussian that ended some pixel.
            const int pa = pair_a[i];
            ended |= splat_blocks(T, cr, cg, cbl, pa, pair_b[i], half_a[i], half_b[i],
                                  px0 - s->mx, (float)(oy + 2 * pa) + 0.5f - s->my, s);
        }
    }
    block_permute(T);
    block_permute(cr);
    block_permute(cg);
    block_permute(cbl);
#else
    // The same arithmetic as the AVX-512 path (spans per batch, power by recurrence, 2^t of
    // log2 alpha) on 16-pixel rows, vectorised by the compiler.
    int alive = TILE * TILE;
    int rows_a[16], rows_b[16];
    for (int64_t e0 = begin; e0 < end && alive > 0; e0 += 16) {
        const int cnt = end - e0 < 16 ? (int)(end - e0) : 16;
#pragma omp simd
        for (int i = 0; i < 16; i++)  // lanes past cnt repeat entry e0 (ignored)
            tile_rows(splats + list[e0 + (i < cnt ? i : 0)], ox, oy, &rows_a[i], &rows_b[i]);
        for (int i = 0; i < cnt && alive > 0; i++) {
            const int64_t e = e0 + i;
            const Splat* s = splats + list[e];
            // The splats of a tile are scattered over a few MB (L2 misses): fetch ahead.
            if (e + 16 < end) __builtin_prefetch(splats + list[e + 16]);
            const int ya = rows_a[i], yb = rows_b[i];
            const float qa = s->qa, qb = s->qb, qc = s->qc, sr = s->r, sg = s->g, sb = s->b;
            const float dx0 = px0 - s->mx, dy0 = (float)(oy + ya) + 0.5f - s->my;
            const float lop = s->log2_opacity, step2 = 2.0f * qc;
            float power[TILE], step[TILE];  // log2(alpha) of row y and its change to row y + 1
#pragma omp simd
            for (int x = 0; x < TILE; x++) {
                float dx = dx0 + (float)x;
                power[x] = (qa * dx + qb * dy0) * dx + qc * dy0 * dy0 + lop;
                step[x] = qb * dx + qc * (2.0f * dy0 + 1.0f);
            }
            for (int y = ya; y <= yb; y++) {
                float* Tr = T + y * TILE;
                float* rr = cr + y * TILE;
                float* gg = cg + y * TILE;
                float* bb = cbl + y * TILE;
                int stopped = 0;
#pragma omp simd reduction(+ : stopped)
                for (int x = 0; x < TILE; x++) {
                    float a = fminf(MAX_ALPHA, exp2_nonpositive(power[x]));
                    power[x] += step[x];
                    step[x] += step2;
                    float tc = Tr[x];  // < 0: the pixel has ended (stored as -T)
                    int take = (a >= MIN_ALPHA) & (tc > 0.0f);
                    float tn = tc * (1.0f - a);
                    int stop = take & (tn < MIN_T);
                    float w = (take & !stop) ? a * tc : 0.0f;
                    rr[x] += w * sr;
                    gg[x] += w * sg;
                    bb[x] += w * sb;
                    Tr[x] = stop ? -tc : (take ? tn : tc);
                    stopped += stop;
                }
                alive -= stopped;
            }
        }
    }
#endif
    double t_out = now();
    if (o->skip_empty) {
        // Nothing composited (every pixel's T still exactly 1): zeros already there. Most
        // tiles of an MPI's planes (24 x 512 x 512 x 4 bytes a frame, mostly zeros).
        int touched = 0;
        for (int j = 0; j < TILE * TILE; j++) touched |= T[j] != 1.0f;
        if (!touched) return now() - t_out;
    }
    const int ch = o->channels;
    const int straight = o->straight;
    for (int y = 0; y < TILE && oy + y < height; y++) {
        int64_t row = offset + (int64_t)(oy + y) * o->row_stride + (int64_t)ox * ch;
        int nx = width - ox < TILE ? width - ox : TILE;
        if (o->f32) {
            float* dst = o->f32 + row;
            for (int x = 0; x < nx; x++) {
                int j = y * TILE + x;
                float t = fabsf(T[j]);
                if (straight) {  // colour / alpha (bg ignored), 0 where alpha is 0
                    float a = 1.0f - t, ia = a > 0.0f ? 1.0f / a : 0.0f;
                    dst[ch * x] = fminf(cr[j] * ia, 1.0f);
                    dst[ch * x + 1] = fminf(cg[j] * ia, 1.0f);
                    dst[ch * x + 2] = fminf(cbl[j] * ia, 1.0f);
                    if (ch == 4) dst[ch * x + 3] = a;
                    continue;
                }
                dst[ch * x] = cr[j] + t * bg[0];
                dst[ch * x + 1] = cg[j] + t * bg[1];
                dst[ch * x + 2] = cbl[j] + t * bg[2];
                if (ch == 4) dst[ch * x + 3] = 1.0f - t;
            }
        } else {
            // Rounded in SIMD (vectorised: convert, then narrow), interleaved byte by byte.
            uint8_t q[4][TILE];
#pragma omp simd
            for (int x = 0; x < TILE; x++) {
                int j = y * TILE + x;
                float t = fabsf(T[j]);
                float v0 = (cr[j] + t * bg[0]) * 255.0f + 0.5f;
                float v1 = (cg[j] + t * bg[1]) * 255.0f + 0.5f;
                float v2 = (cbl[j] + t * bg[2]) * 255.0f + 0.5f;
                float v3 = (1.0f - t) * 255.0f + 0.5f;
                q[0][x] = (uint8_t)(int)fminf(fmaxf(v0, 0.0f), 255.0f);
                q[1][x] = (uint8_t)(int)fminf(fmaxf(v1, 0.0f), 255.0f);
                q[2][x] = (uint8_t)(int)fminf(fmaxf(v2, 0.0f), 255.0f);
                q[3][x] = (uint8_t)(int)fminf(fmaxf(v3, 0.0f), 255.0f);
            }
            if (straight) {
                // The 8-bit premultiplied values divided by their 8-bit alpha, exactly as
                // OpenCV's mRGBA2RGBA (floor((c 255 + floor(a / 2)) / a), 255 at most; 0 where
                // a is 0): the planes equal the old bake's premultiplied output + cv2 pass. The
                // quotient's fraction is 0 or >= 1/255, so + 1e-3 absorbs division rounding.
#pragma omp simd
                for (int x = 0; x < TILE; x++) {
                    float a8 = (float)q[3][x], h = floorf(0.5f * a8), ia = 1.0f / fmaxf(a8, 1.0f);
                    float s0 = floorf(((float)q[0][x] * 255.0f + h) * ia + 1e-3f);
                    float s1 = floorf(((float)q[1][x] * 255.0f + h) * ia + 1e-3f);
                    float s2 = floorf(((float)q[2][x] * 255.0f + h) * ia + 1e-3f);
                    q[0][x] = (uint8_t)(int)(a8 > 0.0f ? fminf(s0, 255.0f) : 0.0f);
                    q[1][x] = (uint8_t)(int)(a8 > 0.0f ? fminf(s1, 255.0f) : 0.0f);
                    q[2][x] = (uint8_t)(int)(a8 > 0.0f ? fminf(s2, 255.0f) : 0.0f);
                }
            }
            uint8_t* dst = o->u8 + row;
            if (ch == 4)
                for (int x = 0; x < nx; x++) {
                    dst[4 * x] = q[0][x];
                    dst[4 * x + 1] = q[1][x];
                    dst[4 * x + 2] = q[2][x];
                    dst[4 * x + 3] = q[3][x];
                }
            else
                for (int x = 0; x < nx; x++) {
                    dst[3 * x] = q[0][x];
                    dst[3 * x + 1] = q[1][x];
                    dst[3 * x + 2] = q[2][x];
                }
        }
    }
    return now() - t_out;
}

// ------------------------------------------------------------------------------ workspace
typedef struct {
    void* p;
    size_t cap;
} Buf;

enum { B_PIECES, B_ENT, B_ENTB, B_BINS, B_SPLATS, B_DEPTH, B_VIS, B_ORDER, B_SCRATCH, B_KEYS,
       B_KB1, B_KB2, B_OFFSETS,
       B_LIST, B_TCOUNT, B_REC0, B_BUFS = B_REC0 + MAX_CHUNKS };

typedef struct {
    Buf b[B_BUFS];
} Workspace;

void* ths_workspace_new(void) { return calloc(1, sizeof(Workspace)); }

void ths_workspace_free(void* ws) {
    Workspace* w = ws;
    if (!w) return;
    for (int i = 0; i < B_BUFS; i++) free(w->b[i].p);
    free(w);
}

// A buffer of at least `bytes`, kept between calls (grown by 1/4 more than asked, so that a
// list that grows a little each frame does not reallocate every frame; the contents are kept),
// 64-byte aligned (a Splat is then one cache line). NULL when out of memory (the old buffer
// stays owned by the workspace).
static void* ws_get(Workspace* w, int which, size_t bytes) {
    Buf* b = &w->b[which];
    if (bytes == 0) bytes = 1;
    if (bytes > b->cap) {
        size_t cap = (bytes + bytes / 4 + 63) & ~(size_t)63;
        void* p = aligned_alloc(64, cap);
        if (!p) return NULL;
        if (b->p) memcpy(p, b->p, b->cap);
        free(b->p);
        b->p = p;
        b->cap = cap;
    }
    return b->p;
}

// The record arrays of chunk ck with room for `want` records, the first `keep` kept (the arrays
// moved apart when the buffer grows). 0 when out of memory.
static int records_reserve(Workspace* w, int ck, size_t keep, size_t want, Records* rc) {
    Buf* b = &w->b[B_REC0 + ck];
    size_t old = b->cap / 12;
    if (want > old || !b->p) {
        if (!ws_get(w, B_REC0 + ck, 12 * want)) return 0;
        size_t cap = b->cap / 12;
        char* p = b->p;
        memmove(p + 8 * cap, p + 8 * old, 4 * keep);  // entry (the last array first)
        memmove(p + 4 * cap, p + 4 * old, 4 * keep);  // xs
        old = cap;
    }
    rc->tile = (int32_t*)b->p;
    rc->xs = (uint32_t*)b->p + old;
    rc->entry = (uint32_t*)b->p + 2 * old;
    rc->cap = old;
    return 1;
}

#if USE_AVX512
// tile_range of 16 intervals (lanes) [m + lo, m + hi], or with box: [m - h, m + h] (h = hi).
// Rounded operation by operation as gcc compiles the scalar tile_range / row_tiles (with the
// association -ffast-math gave them), so both bin the same tiles.
static inline void tile_range16(__m512 m, __m512 lo, __m512 hi, const int box, int count,
                                __m512i* t0, __m512i* t1) {
    const __m512 inv = _mm512_set1_ps(1.0f / TILE), off = _mm512_set1_ps(0.5f - SPAN_EPS);
    const __m512i one = _mm512_set1_epi32(1);
    __m512 u, v;
    if (box) {  // ((m + 0.49) - h) / 16, ((m + h) - 0.49) / 16
        u = _mm512_sub_round_ps(_mm512_add_round_ps(m, off, RN), hi, RN);
        v = _mm512_sub_round_ps(_mm512_add_round_ps(m, hi, RN), off, RN);
    } else {  // ((m + 0.49) + lo) / 16, ((m - 0.49) + hi) / 16
        u = _mm512_add_round_ps(_mm512_add_round_ps(m, off, RN), lo, RN);
        v = _mm512_add_round_ps(_mm512_sub_round_ps(m, off, RN), hi, RN);
    }
    __m512i a = _mm512_sub_epi32(
        _mm512_cvt_roundps_epi32(mulr(u, inv), _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC), one);
    __m512i b = _mm512_add_epi32(
        _mm512_cvt_roundps_epi32(mulr(v, inv), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), one);
    *t0 = _mm512_max_epi32(a, _mm512_setzero_si512());
    *t1 = _mm512_min_epi32(b, _mm512_set1_epi32(count));
}

// The records of the tile rows that the Gaussians of entries [e0, e1) reach (see
// ths_splat_render_ex), 16 Gaussians a vector: their boxes' tile rows, then their (Gaussian,
// tile row) pairs 16 a vector, in entry order (a tile's list must come out in depth order):
// each pair's tile columns (row_tiles; the box where the box is one tile row or column), the
// pairs that reach a tile compressed into the record arrays. A Gaussian at a time, the scalar
// loop took ~60 ns an entry (mispredicted branches over the 1..3 tile rows and columns of each,
// a long dependent chain of conversions and square roots), a vector over one Gaussian's tile
// rows ~45, this ~20 (default head, stereo). Returns the records written, -1 when out of memory.
#define BIN_ROWS 64  // tile rows of a Gaussian at most in the vector binning; taller: scalar
static int64_t bin_records16(Workspace* w, int ck, const Bin* bins, const uint32_t* ent,
                             const uint32_t* entb, int64_t e0, int64_t e1, int tiles_x,
                             int tiles_y, int64_t t_lo) {
    const float* bf = (const float*)bins;
    const __m512 z = _mm512_setzero_ps();
    const __m512i zi = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    Records rc;
    size_t nr = 0;
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i minus1 = _mm512_set1_epi32(-1);
    int32_t firsts[16 * BIN_ROWS] __attribute__((aligned(64)));  // lane at each lane's first pair
    if (!records_reserve(w, ck, 0, 4096, &rc)) return -1;
    for (int64_t e = e0; e < e1; e += 16) {
        const __mmask16 m = e1 - e >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (e1 - e)) - 1u);
        // Random reads of a few MB: fetch two batches ahead.
        for (int g = 32; g < 48 && e + g < e1; g++) __builtin_prefetch(bins + entb[e + g]);
        const __m512i id = _mm512_maskz_loadu_epi32(m, ent + e);
        // Bin: 8 floats (entries < 2^28)
        const __m512i at = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, entb + e), 3);
        const __m512i row =
            _mm512_mask_i32gather_epi32(_mm512_set1_epi32(-1), m, at, (const int*)bf + 7, 4);
        const __mmask16 vis = _mm512_mask_cmp_epi32_mask(m, row, zi, _MM_CMPINT_NLT);
        const __m512 mx = _mm512_mask_i32gather_ps(z, vis, at, bf, 4);
        const __m512 my = _mm512_mask_i32gather_ps(z, vis, at, bf + 1, 4);
        const __m512 hx = _mm512_mask_i32gather_ps(z, vis, at, bf + 2, 4);
        const __m512 hy = _mm512_mask_i32gather_ps(z, vis, at, bf + 3, 4);
        const __m512 k = _mm512_mask_i32gather_ps(z, vis, at, bf + 4, 4);
        const __m512 wv = _mm512_mask_i32gather_ps(z, vis, at, bf + 5, 4);
        const __m512 ds = _mm512_mask_i32gather_ps(z, vis, at, bf + 6, 4);
        __m512i y0, y1, bx0, bx1;
        tile_range16(my, z, hy, 1, tiles_y, &y0, &y1);
        tile_range16(mx, z, hx, 1, tiles_x, &bx0, &bx1);
        const __m512i ny = _mm512_maskz_max_epi32(vis, _mm512_sub_epi32(y1, y0), zi);
        const int rows = _mm512_reduce_max_epi32(ny);
        if (rows == 0) continue;
        if (rows > BIN_ROWS) {  // a tall one among them: these 16 scalar
            for (int g = 0; g < 16 && e + g < e1; g++) {
                const Bin* b = bins + entb[e + g];
                if (b->row < 0) continue;
                int ya, yb, xa, xb;
                tile_range(b->my - b->hy, b->my + b->hy, tiles_y, &ya, &yb);
                tile_range(b->mx - b->hx, b->mx + b->hx, tiles_x, &xa, &xb);
                if (nr + (size_t)(yb - ya) + 16 > rc.cap &&
                    !records_reserve(w, ck, nr, 2 * nr + 4096 + yb - ya, &rc))
                    return -1;
                for (int y = ya; y < yb; y++) {
                    int tx0 = xa, tx1 = xb;
                    if (yb - ya > 1 && xb - xa > 1 && !row_tiles(b, y, tiles_x, &tx0, &tx1))
                        continue;
                    if (tx0 >= tx1) continue;
                    rc.tile[nr] = (int32_t)((b->row + y) * tiles_x - t_lo);
                    rc.xs[nr] = (uint32_t)tx0 | (uint32_t)tx1 << 16;
                    rc.entry[nr] = ent[e + g];
                    nr++;
                }
            }
            continue;
        }
        if (nr + (size_t)rows * 16 + 16 > rc.cap &&
            !records_reserve(w, ck, nr, 2 * nr + 4096 + (size_t)rows * 16, &rc))
            return -1;
        // One tile row or column: the box is the ellipse's span there.
        const __mmask16 multi =
            _mm512_cmp_epi32_mask(ny, one, _MM_CMPINT_NLE) &
            _mm512_cmp_epi32_mask(_mm512_sub_epi32(bx1, bx0), one, _MM_CMPINT_NLE);
        const __m512i multi_v = _mm512_movm_epi32(multi);
        const __m512i t0 = _mm512_sub_epi32(
            _mm512_mullo_epi32(_mm512_add_epi32(row, y0), _mm512_set1_epi32(tiles_x)),
            _mm512_set1_epi32((int32_t)t_lo));
        // The (Gaussian, tile row) pairs of the 16, in entry order, 16 a vector (not 16
        // Gaussians' first tile rows, then their second ones...: the tallest of 16 sets that
        // count, most lanes would idle): pair s belongs to lane l when pos[l] <= s < pos[l] +
        // ny[l] (pos: exclusive scan of ny); its lane is the running maximum of the lane
        // numbers stored at each lane's first pair.
        __m512i pos = ny;
        pos = _mm512_add_epi32(pos, _mm512_alignr_epi32(pos, zi, 15));
        pos = _mm512_add_epi32(pos, _mm512_alignr_epi32(pos, zi, 14));
        pos = _mm512_add_epi32(pos, _mm512_alignr_epi32(pos, zi, 12));
        pos = _mm512_add_epi32(pos, _mm512_alignr_epi32(pos, zi, 8));
        const int total = _mm512_reduce_max_epi32(pos);
        pos = _mm512_sub_epi32(pos, ny);
        for (int v = 0; v < total; v += 16) _mm512_store_si512(firsts + v, minus1);
        _mm512_mask_i32scatter_epi32(firsts, _mm512_cmp_epi32_mask(ny, zi, _MM_CMPINT_NLE), pos,
                                     iota, 4);
        __m512i last = minus1;
        for (int v = 0; v < total; v += 16) {
            __m512i l = _mm512_load_si512(firsts + v);
            l = _mm512_max_epi32(l, _mm512_alignr_epi32(l, last, 15));
            l = _mm512_max_epi32(l, _mm512_alignr_epi32(l, last, 14));
            l = _mm512_max_epi32(l, _mm512_alignr_epi32(l, last, 12));
            l = _mm512_max_epi32(l, _mm512_alignr_epi32(l, last, 8));
            last = _mm512_permutexvar_epi32(_mm512_set1_epi32(15), l);
            const __m512i sv = _mm512_add_epi32(_mm512_set1_epi32(v), iota);
            const __m512i r = _mm512_sub_epi32(sv, _mm512_permutexvar_epi32(l, pos));
            __mmask16 act = _mm512_cmp_epi32_mask(sv, _mm512_set1_epi32(total), _MM_CMPINT_LT);
            // The pair's Gaussian's parameters.
            const __m512 pmx = _mm512_permutexvar_ps(l, mx), pmy = _mm512_permutexvar_ps(l, my);
            const __m512 phy = _mm512_permutexvar_ps(l, hy), pk = _mm512_permutexvar_ps(l, k);
            const __m512 pw = _mm512_permutexvar_ps(l, wv), pds = _mm512_permutexvar_ps(l, ds);
            const __m512i py = _mm512_add_epi32(_mm512_permutexvar_epi32(l, y0), r);
            const __mmask16 pm = _mm512_test_epi32_mask(_mm512_permutexvar_epi32(l, multi_v),
                                                        _mm512_permutexvar_epi32(l, multi_v));
            __m512i tx0 = _mm512_permutexvar_epi32(l, bx0), tx1 = _mm512_permutexvar_epi32(l, bx1);
            // row_tiles (span_over), rounded as gcc compiles the scalar one (see tile_range16)
            const __m512i ty = _mm512_slli_epi32(py, 4);  // tile row * TILE
            const __m512 top = _mm512_cvtepi32_ps(ty);
            const __m512 bottom = _mm512_cvtepi32_ps(_mm512_add_epi32(ty, _mm512_set1_epi32(TILE)));
            __m512 dlo = _mm512_add_round_ps(
                top, _mm512_sub_round_ps(_mm512_set1_ps(0.5f), pmy, RN), RN);
            __m512 dhi = _mm512_add_round_ps(
                bottom, _mm512_sub_round_ps(_mm512_set1_ps(-0.5f), pmy, RN), RN);
            dlo = _mm512_max_ps(dlo, _mm512_sub_ps(z, phy));
            dhi = _mm512_min_ps(dhi, phy);
            const __mmask16 none = _mm512_cmp_ps_mask(
                dlo, _mm512_add_round_ps(dhi, _mm512_set1_ps(SPAN_EPS), RN), _CMP_GT_OQ);
            dlo = _mm512_min_ps(dlo, dhi);
            const __m512 dr = _mm512_min_ps(_mm512_max_ps(pds, dlo), dhi);
            const __m512 dl = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(z, pds), dlo), dhi);
            const __m512 sr = _mm512_sqrt_ps(
                _mm512_max_ps(_mm512_fmsub_round_ps(phy, phy, mulr(dr, dr), RN), z));
            const __m512 sl = _mm512_sqrt_ps(
                _mm512_max_ps(_mm512_fmsub_round_ps(phy, phy, mulr(dl, dl), RN), z));
            const __m512 hi = _mm512_fmadd_round_ps(pk, dr, mulr(pw, sr), RN);  // right of mx
            const __m512 lo = _mm512_fmsub_round_ps(pk, dl, mulr(pw, sl), RN);  // left of mx
            __m512i rx0, rx1;
            tile_range16(pmx, lo, hi, 0, tiles_x, &rx0, &rx1);
            tx0 = _mm512_mask_mov_epi32(tx0, pm, rx0);
            tx1 = _mm512_mask_mov_epi32(tx1, pm, rx1);
            act &= (__mmask16)~(pm & none);
            // Empty spans (also a split piece's box beyond the image edge): nothing to record.
            act &= _mm512_cmp_epi32_mask(tx0, tx1, _MM_CMPINT_LT);
            const __m512i t = _mm512_add_epi32(
                _mm512_permutexvar_epi32(l, t0), _mm512_mullo_epi32(r, _mm512_set1_epi32(tiles_x)));
            const __m512i xs = _mm512_or_si512(tx0, _mm512_slli_epi32(tx1, 16));
            // Compressed in registers, stored whole (the arrays have 16 spare entries).
            _mm512_storeu_si512(rc.tile + nr, _mm512_maskz_compress_epi32(act, t));
            _mm512_storeu_si512(rc.xs + nr, _mm512_maskz_compress_epi32(act, xs));
            _mm512_storeu_si512(rc.entry + nr,
                                _mm512_maskz_compress_epi32(act, _mm512_permutexvar_epi32(l, id)));
            nr += (size_t)__builtin_popcount(act);
        }
    }
    return (int64_t)nr;
}
#endif

// Renders n Gaussians for ncams cameras of one image size.
//   means [n, 3]; cov6 [n, 6] (world covariance xx, xy, xz, yy, yz, zz) or NULL, then the
//   covariance comes from quats [n, 4] (wxyz) and scales [n, 3]; facing [n] int8 or NULL
//   (non-zero: one-sided, needs quats); opacity [n]; sh [n, k, 3] with k in {1, 4, 9, 16};
//   plane [n] or NULL (see "Plane atlas"); cams [ncams, CAM_FLOATS].
//   Output: pixel (camera c, plane p, row y (0 at the top), column x, channel ch) at
//   c * cam_stride + p * plane_stride + y * row_stride + x * channels + ch of out_f32 (float32)
//   or, when out_f32 is NULL, out_u8 (uint8, rounded); channels 4: rgb = sum(c alpha T) +
//   T * bg, alpha = 1 - T (bg = 0: premultiplied colour); channels 3: rgb only.
//   far_w [n] or NULL (needs plane): Gaussian i split into a near piece for plane[i] and a far
//   piece for plane[i] + 1 (see "Plane atlas"). flags: THS_STRAIGHT (straight colour, see
//   Output; bg ignored), THS_ZEROED (the caller's output is zeroed: tiles that receive nothing
//   are not written; ignored with a non-zero bg).
//   ws: a workspace (ths_workspace_new) or NULL (scratch allocated and freed in the call).
//   stages: NULL or [5] seconds, added to: project, sort, bin, raster, output (the tiles'
//   writes, as a share of the raster's wall time).
// Returns the number of (piece, tile) pairs composited, or -1 when out of memory / bad
// arguments (the output is then untouched).
int64_t ths_splat_render_ex(int n, const float* means, const float* cov6, const float* quats,
                            const float* scales, const int8_t* facing, const float* opacity,
                            const float* sh, int k, const int32_t* plane, const float* far_w,
                            int planes, int ncams, const float* cams, int width, int height,
                            const float* bg, float* out_f32, uint8_t* out_u8, int channels,
                            int64_t cam_stride, int64_t plane_stride, int64_t row_stride,
                            int flags, int threads, void* ws, double* stages) {
    if (far_w && !plane) return -1;
    if (n < 0 || width <= 0 || height <= 0 || planes <= 0 || ncams <= 0 ||
        (k != 1 && k != 4 && k != 9 && k != 16) || (!out_f32 && !out_u8) || threads <= 0 ||
        (channels != 3 && channels != 4) || (!cov6 && (!quats || !scales)) ||
        width > 65535 * TILE || height > 65535 * TILE ||
        (int64_t)n * ncams * (far_w ? 2 : 1) >= ((int64_t)1 << 28) ||  // tile_rows16's gathers
        (int64_t)((width + TILE - 1) / TILE) * ((height + TILE - 1) / TILE) * planes * ncams >
            INT32_MAX)
        return -1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    Workspace local;
    Workspace* w = ws ? (Workspace*)ws : &local;
    if (!ws) memset(&local, 0, sizeof(local));
    double t_start = now();
    const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    const int64_t tiles_per_plane = (int64_t)tiles_x * tiles_y;
    const int64_t tiles_per_cam = tiles_per_plane * planes;
    const int64_t num_tiles = tiles_per_cam * ncams;
    const int64_t rows_per_cam = (int64_t)tiles_y * planes;
    const size_t nc = (size_t)n * (size_t)ncams;
    const int P = far_w ? 2 : 1;  // pieces per Gaussian (entries per sorted Gaussian)
    uint32_t* ent = ws_get(w, B_ENT, sizeof(uint32_t) * nc * P);
    uint32_t* entb = ws_get(w, B_ENTB, sizeof(uint32_t) * nc * P);
    Bin* bins = ws_get(w, B_BINS, sizeof(Bin) * nc * P);
    Splat* splats = ws_get(w, B_SPLATS, sizeof(Splat) * nc * P);
    float* depth = ws_get(w, B_DEPTH, sizeof(float) * nc);
    uint8_t* visible = ws_get(w, B_VIS, nc);
    float* pieces = far_w ? ws_get(w, B_PIECES, sizeof(float) * 2 * (size_t)n) : NULL;
    uint32_t* order = ws_get(w, B_ORDER, sizeof(uint32_t) * (size_t)n);
    uint32_t* scratch = ws_get(w, B_SCRATCH, sizeof(uint32_t) * (size_t)n);
    uint32_t* keys = ws_get(w, B_KEYS, sizeof(uint32_t) * (size_t)n);
    uint32_t* kb1 = ws_get(w, B_KB1, sizeof(uint32_t) * (size_t)n);
    uint32_t* kb2 = ws_get(w, B_KB2, sizeof(uint32_t) * (size_t)n);
    int64_t* offsets = ws_get(w, B_OFFSETS, sizeof(int64_t) * ((size_t)num_tiles + 1));
    uint32_t* list = NULL;
    int64_t result = -1;
    if (!ent || !entb || !bins || !splats || !depth || !visible || !order || !scratch || !keys ||
        !kb1 || !kb2 || !offsets || (far_w && !pieces))
        goto done;
    memset(offsets, 0, sizeof(int64_t) * ((size_t)num_tiles + 1));

    // One depth order for all cameras when their camera z is the same function of the mean
    // (same third row of [R | t], bit for bit: a parallel rig), so the order is exactly theirs.
    int shared = 1;
    for (int c = 1; c < ncams; c++)
        shared &= memcmp(cams + c * CAM_FLOATS + CAM_R + 6, cams + CAM_R + 6, 3 * sizeof(float)) ==
                      0 &&
                  memcmp(cams + c * CAM_FLOATS + CAM_T + 2, cams + CAM_T + 2, sizeof(float)) == 0;

    // Dynamic schedules throughout: on a shared machine (the GUI renders while a capture
    // thread tracks faces) a descheduled thread's static share would stall the whole stage.
    if (far_w) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t c = 0; c < (n + 4095) / 4096; c++)
            split_opacities(c * 4096, c * 4096 + 4096 < n ? c * 4096 + 4096 : n, opacity, far_w,
                            pieces);
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (int i0 = 0; i0 < n; i0 += PBLOCK) {
        int cnt = n - i0 < PBLOCK ? n - i0 : PBLOCK;
        project_range(i0, cnt, n, means, cov6, quats, scales, facing, opacity, plane, far_w,
                      pieces, planes, sh, k, P, ncams, cams, width, height, rows_per_cam,
                      tiles_y, splats, bins, depth, visible);
        if (shared && ncams > 1)
            for (int i = i0; i < i0 + cnt; i++) keys[i] = order_bits(depth[i]);  // every z
    }
    double t_proj = now();

    // Depth orders: per sort, the Gaussians of cameras [cfirst, clast) front to back (shared:
    // those any camera sees; a camera's Bin row is -1 where it does not).
    int64_t total = 0;
    double t_sort = t_proj, t_bin = t_proj;
    int nsorts = shared ? 1 : ncams;
    for (int c0 = 0; c0 < nsorts; c0++) {
        double ta = now();
        int64_t m = 0;
        if (shared && ncams > 1) {
            for (int i = 0; i < n; i++) {
                int any = 0;
                for (int c = 0; c < ncams; c++) any |= visible[(size_t)c * n + i];
                if (any) order[m++] = (uint32_t)i;
            }
        } else {
            const uint8_t* vis = visible + (size_t)c0 * n;
            const float* dep = depth + (size_t)c0 * n;
            for (int i = 0; i < n; i++)
                if (vis[i]) {
                    order[m] = (uint32_t)i;
                    keys[i] = order_bits(dep[i]);
                    m++;
                }
        }
        uint32_t* sorted = radix_sort(order, scratch, kb1, kb2, m, keys);
        int cfirst = shared ? 0 : c0, clast = shared ? ncams : c0 + 1, ns = clast - cfirst;
        // The binning's entries in depth order: entry e = (j ns + c - cfirst) P + q, piece q
        // (split: 0 near, 1 far) of the j-th nearest for camera c, is Splat ent[e] and Bin
        // entb[e] (the cameras' entries of a Gaussian together: their Bins share a line;
        // each tile's list still comes out in depth order, a tile being one camera's).
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t j = 0; j < m; j++)
            for (int c = cfirst; c < clast; c++)
                for (int q = 0; q < P; q++) {
                    int64_t e = ((int64_t)j * ns + c - cfirst) * P + q;
                    ent[e] = (uint32_t)(((size_t)c * n + sorted[j]) * P + q);
                    entb[e] = (uint32_t)(((size_t)sorted[j] * ncams + c) * P + q);
                }
        double tb = now();
        t_sort += tb - ta;

        // Binning in depth order, so every tile's list comes out sorted: the sorted entries are
        // cut into `chunks` contiguous ranges (a few per thread, taken dynamically); a chunk
        // records (tile row, tile columns, Splat index) for each tile row its Gaussians'
        // ellipses reach (row_tiles) and counts them per tile; the lists are laid out per tile
        // chunk by chunk (lower entries first) and each chunk writes its records: one pass over
        // the Gaussians, no atomics.
        int64_t band_rows = rows_per_cam * ns;
        int64_t row_base = rows_per_cam * cfirst;
        int64_t t_lo = row_base * tiles_x, slice = band_rows * tiles_x;
        int chunks = threads == 1 ? 1 : (4 * threads < MAX_CHUNKS ? 4 * threads : MAX_CHUNKS);
        const size_t cstride = (size_t)slice + 1;  // a chunk's counters (one spare)
        int32_t* tcount = ws_get(w, B_TCOUNT, sizeof(int32_t) * cstride * chunks);
        if (!tcount) goto done;
        size_t nrec[MAX_CHUNKS];
        int failed = 0;
#pragma omp parallel num_threads(threads)
        {
#pragma omp for schedule(dynamic, 1)
            for (int ck = 0; ck < chunks; ck++) {
                int32_t* cnt = tcount + cstride * ck;
                memset(cnt, 0, sizeof(int32_t) * cstride);
                int64_t e0 = m * ns * P * ck / chunks, e1 = m * ns * P * (ck + 1) / chunks;
                int64_t nr = 0;
#if USE_AVX512
                nr = bin_records16(w, ck, bins, ent, entb, e0, e1, tiles_x, tiles_y, t_lo);
#else
                Records rc;
                if (!records_reserve(w, ck, 0, 4096, &rc)) nr = -1;
                for (int64_t e = e0; e < e1 && nr >= 0; e++) {
                    // Random reads of a few MB: fetch ahead.
                    if (e + GATHER_AHEAD < e1) __builtin_prefetch(bins + entb[e + GATHER_AHEAD]);
                    const Bin* b = bins + entb[e];
                    if (b->row < 0) continue;
                    int y0, y1, bx0, bx1;
                    tile_range(b->my - b->hy, b->my + b->hy, tiles_y, &y0, &y1);
                    tile_range(b->mx - b->hx, b->mx + b->hx, tiles_x, &bx0, &bx1);
                    if ((size_t)nr + (size_t)(y1 - y0) > rc.cap &&
                        !records_reserve(w, ck, (size_t)nr, 2 * (size_t)nr + 4096 + y1 - y0, &rc)) {
                        nr = -1;
                        break;
                    }
                    for (int y = y0; y < y1; y++) {
                        int tx0 = bx0, tx1 = bx1;
                        // One tile row or column: the box is the ellipse's span there.
                        if (y1 - y0 > 1 && bx1 - bx0 > 1 && !row_tiles(b, y, tiles_x, &tx0, &tx1))
                            continue;
                        if (tx0 >= tx1) continue;  // (a split piece's box beyond the edge)
                        rc.tile[nr] = (int32_t)((b->row + y) * tiles_x - t_lo);
                        rc.xs[nr] = (uint32_t)tx0 | (uint32_t)tx1 << 16;
                        rc.entry[nr] = ent[e];
                        nr++;
                    }
                }
#endif
                if (nr < 0) {
                    failed = 1;
                    nr = 0;
                }
                // The counts per tile: +1 at a record's first tile, -1 past its last, summed
                // (no loop over each record's tiles, whose count a branch mispredicts).
                Records rs;
                records_reserve(w, ck, (size_t)nr, 0, &rs);
                for (int64_t r = 0; r < nr; r++) {
                    cnt[rs.tile[r] + (rs.xs[r] & 0xFFFF)]++;
                    cnt[rs.tile[r] + (rs.xs[r] >> 16)]--;
                }
                int32_t run = 0;
                for (int64_t t = 0; t < slice; t++) {
                    run += cnt[t];
                    cnt[t] = run;
                }
                nrec[ck] = (size_t)nr;
            }
#pragma omp single
            {
                int64_t run = total;
                for (int64_t t = 0; t < slice; t++) {
                    offsets[t_lo + t] = run;
                    for (int ck = 0; ck < chunks; ck++) {
                        int32_t c = tcount[cstride * ck + t];
                        tcount[cstride * ck + t] = (int32_t)(run - offsets[t_lo + t]);
                        run += c;
                    }
                }
                offsets[t_lo + slice] = run;
                list = ws_get(w, B_LIST, sizeof(uint32_t) * (size_t)run);  // keeps [0, total)
                if (!list) failed = 1;
            }
            if (!failed) {
#pragma omp for schedule(dynamic, 1)
                for (int ck = 0; ck < chunks; ck++) {
                    // cnt[t]: this chunk's next slot in tile t, relative to offsets[t].
                    int32_t* cnt = tcount + cstride * ck;
                    Records rs;
                    records_reserve(w, ck, nrec[ck], 0, &rs);
                    for (size_t r = 0; r < nrec[ck]; r++) {
                        const int32_t tile = rs.tile[r];
                        const uint32_t entry = rs.entry[r];
                        for (int x = (int)(rs.xs[r] & 0xFFFF); x < (int)(rs.xs[r] >> 16); x++)
                            list[offsets[t_lo + tile + x] + cnt[tile + x]++] = entry;
                    }
                }
            }
        }
        if (failed) goto done;
        total = offsets[(row_base + band_rows) * tiles_x];
        t_bin += now() - tb;
    }
    if (!list) list = ws_get(w, B_LIST, sizeof(uint32_t));
    if (!list) goto done;
    double t_output = 0.0;

    {
        float zero[3] = {0.0f, 0.0f, 0.0f};
        const float* bgc = bg ? bg : zero;
        int straight = (flags & THS_STRAIGHT) != 0;
        int zero_bg = straight || (bgc[0] == 0.0f && bgc[1] == 0.0f && bgc[2] == 0.0f);
        Output o = {out_f32,      out_u8,       channels, cam_stride, plane_stride, row_stride,
                    straight, (flags & THS_ZEROED) && zero_bg};
        if (straight) bgc = zero;
        double t_write = 0.0;
        int nth = 1;
#pragma omp parallel num_threads(threads) reduction(+ : t_write)
        {
#ifdef _OPENMP
#pragma omp single
            nth = omp_get_num_threads();
#endif
#pragma omp for schedule(dynamic, 2)
            for (int64_t t = 0; t < num_tiles; t++) {
                int64_t c = t / tiles_per_cam, p = (t / tiles_per_plane) % planes;
                int64_t local = t % tiles_per_plane;
                int ox = (int)(local % tiles_x) * TILE, oy = (int)(local / tiles_x) * TILE;
                t_write += raster_tile(splats, list, offsets[t], offsets[t + 1], ox, oy, width,
                                       height, &o, c * cam_stride + p * plane_stride, bgc);
            }
        }
        t_output = t_write / nth;  // the threads' summed time as a share of the wall time
    }
    result = offsets[num_tiles];
    if (stages) {
        double t_end = now();
        stages[ST_PROJECT] += t_proj - t_start;
        stages[ST_SORT] += t_sort - t_proj;
        stages[ST_BIN] += t_bin - t_proj;
        stages[ST_RASTER] += t_end - (t_sort + t_bin - t_proj) - t_output;
        stages[ST_OUTPUT] += t_output;
    }

done:
    if (!ws)
        for (int i = 0; i < B_BUFS; i++) free(local.b[i].p);
    return result;
}

// The entry point without split planes or flags (the previous version's; benchmarks drive old
// builds through it).
int64_t ths_splat_render_cams(int n, const float* means, const float* cov6, const float* quats,
                              const float* scales, const int8_t* facing, const float* opacity,
                              const float* sh, int k, const int32_t* plane, int planes,
                              int ncams, const float* cams, int width, int height,
                              const float* bg, float* out_f32, uint8_t* out_u8, int channels,
                              int64_t cam_stride, int64_t plane_stride, int64_t row_stride,
                              int threads, void* ws, double* stages) {
    return ths_splat_render_ex(n, means, cov6, quats, scales, facing, opacity, sh, k, plane, NULL,
                               planes, ncams, cams, width, height, bg, out_f32, out_u8, channels,
                               cam_stride, plane_stride, row_stride, 0, threads, ws, stages);
}
