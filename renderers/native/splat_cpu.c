// CPU Gaussian-splat rasteriser: projection, depth sort, tile binning and front-to-back
// compositing, the rules of renderers/reference.py (the torch oracle) in C with OpenMP.
//
// Why it exists: on a machine without a GPU, Mesa's llvmpipe rasterises our splat triangles
// (renderers/gl_splats.py) or tiles (renderers/gl_tiles.py) at ~100 M shaded fragments/s on two
// cores. A tile rasteriser written for the CPU composites each pixel front to back with SIMD
// rows of 16 pixels (one AVX-512 vector, two AVX2 ones), stops a pixel row once all of its
// pixels are opaque, and skips the shader-stage overheads: ~3x faster on the same cores.
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
// Plane atlas (MPI baking): with `plane` given, Gaussian i is composited into image plane[i]
// only (skipped when outside [0, planes)); each plane is its own image with its own
// transmittance, in one pass.
//
// Thread safety: ths_splat_render keeps no global state; concurrent calls are fine.

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define TILE 16            // pixels per tile side; a tile row is one SIMD row of 16 floats
#define MIN_ALPHA (1.0f / 255.0f)
#define MAX_ALPHA 0.99f
#define MIN_T 1e-4f
#define LOW_PASS 0.3f

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

int ths_camera_floats(void) { return CAM_FLOATS; }
int ths_tile_size(void) { return TILE; }

typedef struct {
    float mx, my;          // mean in pixels
    float ca, cb, cc;      // conic: power = -0.5 (ca dx^2 + cc dy^2) - cb dx dy
    float opacity;
    float r, g, b;
    float hy;              // half height of the alpha >= 1/255 ellipse's box (pixels)
} Splat;

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

// exp(x) for x <= 0 (clamped at -80): 2^x split into integer and fraction, a degree-5
// polynomial for 2^f (relative error ~2e-7). Written out so that the row loop vectorises.
static inline float exp_nonpositive(float x) {
    x = x < -80.0f ? -80.0f : x;
    float t = x * 1.4426950408889634f;
    float fi = floorf(t);
    float f = t - fi;
    float p = 1.8775767e-3f;
    p = p * f + 8.9893397e-3f;
    p = p * f + 5.5826318e-2f;
    p = p * f + 2.4015361e-1f;
    p = p * f + 6.9315308e-1f;
    p = p * f + 9.9999994e-1f;
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

// Projects Gaussian i; returns 1 and fills *s, the tile box [x0, x1) x [y0, y1) and the depth
// when it is visible, 0 when culled.
static int project_one(int i, const float* means, const float* cov6, const float* opacity,
                       const float* normals, const float* sh, int k, const float* cam, int width,
                       int height, int tiles_x, int tiles_y, Splat* s, int32_t* box,
                       float* depth) {
    const float* R = cam + CAM_R;
    const float* m = means + 3 * (size_t)i;
    float op = opacity[i];
    const float* c = cov6 + 6 * (size_t)i;  // xx, xy, xz, yy, yz, zz
    int finite = finite_bits(op) & finite_bits(m[0]) & finite_bits(m[1]) & finite_bits(m[2]);
    for (int j = 0; j < 6; j++) finite &= finite_bits(c[j]);
    if (!finite) return 0;  // a NaN/inf Gaussian is culled, never rasterised
    float px = R[0] * m[0] + R[1] * m[1] + R[2] * m[2] + cam[CAM_T];
    float py = R[3] * m[0] + R[4] * m[1] + R[5] * m[2] + cam[CAM_T + 1];
    float pz = R[6] * m[0] + R[7] * m[1] + R[8] * m[2] + cam[CAM_T + 2];
    if (!(pz >= cam[CAM_NEAR]) || !(op >= MIN_ALPHA) || !(op <= 1.0f)) return 0;
    float vx = m[0] - cam[CAM_POS], vy = m[1] - cam[CAM_POS + 1], vz = m[2] - cam[CAM_POS + 2];
    float vlen = sqrtf(vx * vx + vy * vy + vz * vz);
    if (normals) {
        const float* nn = normals + 3 * (size_t)i;
        if (nn[0] * vx + nn[1] * vy + nn[2] * vz > cam[CAM_BACKFACE] * vlen) return 0;
    }
    float fx = cam[CAM_FX], fy = cam[CAM_FY];
    float iz = 1.0f / pz;
    float ux = fminf(fmaxf(px * iz, cam[CAM_LIM]), cam[CAM_LIM + 1]) * pz;
    float uy = fminf(fmaxf(py * iz, cam[CAM_LIM + 2]), cam[CAM_LIM + 3]) * pz;
    // Rows of J W (2 x 3).
    float a0 = fx * iz, a2 = -fx * ux * iz * iz, b1 = fy * iz, b2 = -fy * uy * iz * iz;
    float t0[3] = {a0 * R[0] + a2 * R[6], a0 * R[1] + a2 * R[7], a0 * R[2] + a2 * R[8]};
    float t1[3] = {b1 * R[3] + b2 * R[6], b1 * R[4] + b2 * R[7], b1 * R[5] + b2 * R[8]};
    float s0[3] = {c[0] * t0[0] + c[1] * t0[1] + c[2] * t0[2],
                   c[1] * t0[0] + c[3] * t0[1] + c[4] * t0[2],
                   c[2] * t0[0] + c[4] * t0[1] + c[5] * t0[2]};
    float s1[3] = {c[0] * t1[0] + c[1] * t1[1] + c[2] * t1[2],
                   c[1] * t1[0] + c[3] * t1[1] + c[4] * t1[2],
                   c[2] * t1[0] + c[4] * t1[1] + c[5] * t1[2]};
    float A = t0[0] * s0[0] + t0[1] * s0[1] + t0[2] * s0[2] + LOW_PASS;
    float B = t0[0] * s1[0] + t0[1] * s1[1] + t0[2] * s1[2];
    float C = t1[0] * s1[0] + t1[1] * s1[1] + t1[2] * s1[2] + LOW_PASS;
    float det = A * C - B * B;
    float mx = fx * px * iz + cam[CAM_CX], my = fy * py * iz + cam[CAM_CY];
    // Degenerate or overflowing projections are culled before the float -> int conversions.
    if (!(finite_bits(A) & finite_bits(C) & finite_bits(det) & finite_bits(mx) &
          finite_bits(my)) || !(det > 0.0f) || !(A > 0.0f) || !(C > 0.0f) ||
        !(fabsf(mx) < 1e7f) || !(fabsf(my) < 1e7f))
        return 0;
    float r = sqrtf(2.0f * logf(255.0f * op));
    float hx = r * sqrtf(A), hy = r * sqrtf(C);
    if (!(finite_bits(hx) & finite_bits(hy)) || !(hx < 1e7f) || !(hy < 1e7f)) return 0;
    if (mx + hx < 0.0f || my + hy < 0.0f || mx - hx > (float)width || my - hy > (float)height)
        return 0;
    int x0 = (int)floorf((mx - hx) / TILE), x1 = (int)floorf((mx + hx) / TILE) + 1;
    int y0 = (int)floorf((my - hy) / TILE), y1 = (int)floorf((my + hy) / TILE) + 1;
    box[0] = x0 < 0 ? 0 : x0;
    box[1] = y0 < 0 ? 0 : y0;
    box[2] = x1 > tiles_x ? tiles_x : x1;
    box[3] = y1 > tiles_y ? tiles_y : y1;
    if (box[0] >= box[2] || box[1] >= box[3]) return 0;
    float inv_det = 1.0f / det;
    s->mx = mx;
    s->my = my;
    s->ca = C * inv_det;
    s->cb = -B * inv_det;
    s->cc = A * inv_det;
    s->opacity = op;
    s->hy = hy;
    const float* shi = sh + (size_t)i * (size_t)k * 3;
    float il = vlen > 1e-12f ? 1.0f / vlen : 0.0f;
    float dx = vx * il, dy = vy * il, dz = vz * il;
    s->r = sh_channel(shi, k, 0, dx, dy, dz);
    s->g = sh_channel(shi, k, 1, dx, dy, dz);
    s->b = sh_channel(shi, k, 2, dx, dy, dz);
    *depth = pz;
    return 1;
}

// Stable LSD radix sort of idx[0..m) by the float bits of key[idx] (all keys >= near > 0, so
// the bit patterns order like the floats). tmp: scratch of m entries. Returns the sorted array
// (idx or tmp).
static uint32_t* sort_by_depth(uint32_t* idx, uint32_t* tmp, int64_t m, const float* key) {
    static const int BITS = 11, PASSES = 3;  // 33 bits cover the 32-bit keys
    int64_t* counts = malloc(sizeof(int64_t) * ((1 << 11) + 1));
    for (int pass = 0; pass < PASSES; pass++) {
        int shift = pass * BITS;
        memset(counts, 0, sizeof(int64_t) * ((1 << BITS) + 1));
        for (int64_t j = 0; j < m; j++) {
            uint32_t u;
            memcpy(&u, key + idx[j], 4);
            counts[((u >> shift) & ((1u << BITS) - 1)) + 1]++;
        }
        for (int b = 0; b < (1 << BITS); b++) counts[b + 1] += counts[b];
        for (int64_t j = 0; j < m; j++) {
            uint32_t u;
            memcpy(&u, key + idx[j], 4);
            tmp[counts[(u >> shift) & ((1u << BITS) - 1)]++] = idx[j];
        }
        uint32_t* swap = idx;
        idx = tmp;
        tmp = swap;
    }
    free(counts);
    return idx;
}

// Composites one tile's Gaussians (list[begin..end), front to back) into out (premultiplied).
static void raster_tile(const Splat* splats, const uint32_t* list, int64_t begin, int64_t end,
                        int ox, int oy, int width, int height, float* out_f32, uint8_t* out_u8,
                        const float* bg) {
    float T[TILE * TILE], cr[TILE * TILE], cg[TILE * TILE], cbl[TILE * TILE];
    int alive_row[TILE];
    int alive = TILE * TILE;
    for (int j = 0; j < TILE * TILE; j++) {
        T[j] = 1.0f;
        cr[j] = cg[j] = cbl[j] = 0.0f;
    }
    for (int y = 0; y < TILE; y++) alive_row[y] = TILE;
    float px0 = (float)ox + 0.5f;
    for (int64_t e = begin; e < end && alive > 0; e++) {
        const Splat* s = splats + list[e];
        int ya = (int)floorf(s->my - s->hy - (float)oy - 0.5f);
        int yb = (int)ceilf(s->my + s->hy - (float)oy - 0.5f);
        if (ya < 0) ya = 0;
        if (yb > TILE - 1) yb = TILE - 1;
        const float ca = -0.5f * s->ca, cb = -s->cb, cc = -0.5f * s->cc, op = s->opacity;
        const float sr = s->r, sg = s->g, sb = s->b, dx0 = px0 - s->mx;
        for (int y = ya; y <= yb; y++) {
            if (!alive_row[y]) continue;
            float dy = (float)(oy + y) + 0.5f - s->my;
            float rowc = cc * dy * dy, rowb = cb * dy;
            float* Tr = T + y * TILE;
            float* rr = cr + y * TILE;
            float* gg = cg + y * TILE;
            float* bb = cbl + y * TILE;
            int stopped = 0;
#pragma omp simd reduction(+ : stopped)
            for (int x = 0; x < TILE; x++) {
                float dx = dx0 + (float)x;
                float power = ca * dx * dx + rowb * dx + rowc;
                float a = fminf(MAX_ALPHA, op * exp_nonpositive(power));
                float tc = Tr[x];  // < 0: the pixel has ended (stored as -T)
                int take = (a >= MIN_ALPHA) & (power <= 0.0f) & (tc > 0.0f);
                float tn = tc * (1.0f - a);
                int stop = take & (tn < MIN_T);
                float w = (take & !stop) ? a * tc : 0.0f;
                rr[x] += w * sr;
                gg[x] += w * sg;
                bb[x] += w * sb;
                Tr[x] = stop ? -tc : (take ? tn : tc);
                stopped += stop;
            }
            alive_row[y] -= stopped;
            alive -= stopped;
        }
    }
    for (int y = 0; y < TILE && oy + y < height; y++) {
        size_t row = ((size_t)(oy + y) * (size_t)width + (size_t)ox) * 4;
        for (int x = 0; x < TILE && ox + x < width; x++) {
            int j = y * TILE + x;
            float t = fabsf(T[j]);
            if (out_f32) {
                float* o = out_f32 + row + 4 * (size_t)x;
                o[0] = cr[j] + t * bg[0];
                o[1] = cg[j] + t * bg[1];
                o[2] = cbl[j] + t * bg[2];
                o[3] = 1.0f - t;
            } else {
                uint8_t* o = out_u8 + row + 4 * (size_t)x;
                float v[4] = {cr[j] + t * bg[0], cg[j] + t * bg[1], cbl[j] + t * bg[2], 1.0f - t};
                for (int c = 0; c < 4; c++) {
                    float q = v[c] * 255.0f + 0.5f;
                    o[c] = (uint8_t)(q < 0.0f ? 0.0f : (q > 255.0f ? 255.0f : q));
                }
            }
        }
    }
}

// Renders n Gaussians for one camera.
//   means [n, 3], cov6 [n, 6] (world covariance xx, xy, xz, yy, yz, zz), opacity [n],
//   normals [n, 3] or NULL (zero rows: two-sided), sh [n, k, 3] with k in {1, 4, 9, 16},
//   plane [n] or NULL (see "Plane atlas"), cam [CAM_FLOATS].
//   Output: planes x height x width x 4, row 0 at the top, into out_f32 (float32) or, when
//   out_f32 is NULL, out_u8 (uint8, rounded): rgb = sum(c alpha T) + T * bg, alpha = 1 - T
//   (bg = 0 gives premultiplied colour).
// Returns the number of (Gaussian, tile) pairs composited, or -1 when out of memory / bad
// arguments (the output is then untouched).
int64_t ths_splat_render(int n, const float* means, const float* cov6, const float* opacity,
                         const float* normals, const float* sh, int k, const int32_t* plane,
                         int planes, const float* cam, int width, int height, const float* bg,
                         float* out_f32, uint8_t* out_u8, int threads) {
    if (n < 0 || width <= 0 || height <= 0 || planes <= 0 || (k != 1 && k != 4 && k != 9 &&
        k != 16) || (!out_f32 && !out_u8) || threads <= 0)
        return -1;
    int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    int64_t tiles_per_plane = (int64_t)tiles_x * tiles_y;
    int64_t num_tiles = tiles_per_plane * planes;
    size_t nn = n > 0 ? (size_t)n : 1;
    Splat* splats = malloc(sizeof(Splat) * nn);
    int32_t* boxes = malloc(sizeof(int32_t) * 4 * nn);
    float* depth = malloc(sizeof(float) * nn);
    uint8_t* visible = malloc(nn);
    uint32_t* order = malloc(sizeof(uint32_t) * nn);
    uint32_t* scratch = malloc(sizeof(uint32_t) * nn);
    int64_t* offsets = calloc((size_t)num_tiles + 1, sizeof(int64_t));
    int64_t* fill = malloc(sizeof(int64_t) * ((size_t)num_tiles + 1));
    uint32_t* list = NULL;
    int64_t result = -1;
    if (!splats || !boxes || !depth || !visible || !order || !scratch || !offsets || !fill)
        goto done;

#pragma omp parallel for schedule(static) num_threads(threads)
    for (int i = 0; i < n; i++) {
        int p = plane ? plane[i] : 0;
        visible[i] = (p >= 0 && p < planes) &&
                     project_one(i, means, cov6, opacity, normals, sh, k, cam, width, height,
                                 tiles_x, tiles_y, splats + i, boxes + 4 * (size_t)i, depth + i);
    }
    int64_t m = 0;
    for (int i = 0; i < n; i++)
        if (visible[i]) order[m++] = (uint32_t)i;
    uint32_t* sorted = sort_by_depth(order, scratch, m, depth);

    // Binning in depth order, so every tile's list comes out sorted. Threads own bands of tile
    // rows (each scans all Gaussians and counts / writes only its rows): no atomics.
    int64_t band_rows = (int64_t)tiles_y * planes;
#pragma omp parallel num_threads(threads)
    {
        int nth = 1, me = 0;
#ifdef _OPENMP
        nth = omp_get_num_threads();
        me = omp_get_thread_num();
#endif
        int64_t r0 = band_rows * me / nth, r1 = band_rows * (me + 1) / nth;
        for (int64_t j = 0; j < m; j++) {
            uint32_t i = sorted[j];
            const int32_t* b = boxes + 4 * (size_t)i;
            int64_t base = plane ? (int64_t)plane[i] * tiles_y : 0;
            int64_t ya = base + b[1], yb = base + b[3];
            if (ya < r0) ya = r0;
            if (yb > r1) yb = r1;
            for (int64_t y = ya; y < yb; y++)
                for (int x = b[0]; x < b[2]; x++) offsets[y * tiles_x + x + 1]++;
        }
#pragma omp barrier
#pragma omp single
        {
            for (int64_t t = 0; t < num_tiles; t++) offsets[t + 1] += offsets[t];
            memcpy(fill, offsets, sizeof(int64_t) * (size_t)num_tiles);
            list = malloc(sizeof(uint32_t) * (size_t)(offsets[num_tiles] > 0 ? offsets[num_tiles]
                                                                              : 1));
        }
        if (list) {
            for (int64_t j = 0; j < m; j++) {
                uint32_t i = sorted[j];
                const int32_t* b = boxes + 4 * (size_t)i;
                int64_t base = plane ? (int64_t)plane[i] * tiles_y : 0;
                int64_t ya = base + b[1], yb = base + b[3];
                if (ya < r0) ya = r0;
                if (yb > r1) yb = r1;
                for (int64_t y = ya; y < yb; y++)
                    for (int x = b[0]; x < b[2]; x++) list[fill[y * tiles_x + x]++] = i;
            }
        }
    }
    if (!list) goto done;

    float zero[3] = {0.0f, 0.0f, 0.0f};
    const float* bgc = bg ? bg : zero;
#pragma omp parallel for schedule(dynamic, 2) num_threads(threads)
    for (int64_t t = 0; t < num_tiles; t++) {
        int64_t p = t / tiles_per_plane, local = t % tiles_per_plane;
        int ox = (int)(local % tiles_x) * TILE, oy = (int)(local / tiles_x) * TILE;
        size_t plane_offset = (size_t)p * (size_t)width * (size_t)height * 4;
        raster_tile(splats, list, offsets[t], offsets[t + 1], ox, oy, width, height,
                    out_f32 ? out_f32 + plane_offset : NULL, out_u8 ? out_u8 + plane_offset : NULL,
                    bgc);
    }
    result = offsets[num_tiles];

done:
    free(splats);
    free(boxes);
    free(depth);
    free(visible);
    free(order);
    free(scratch);
    free(offsets);
    free(fill);
    free(list);
    return result;
}
