// Tiled splat renderer, pass 2: one workgroup per TILE_W x TILE_H pixel tile (3DGS / gsplat
// style), one invocation per pixel COLUMN of the tile (TILE_H pixels each).
//
// The tile's Gaussians (a [start, end) range of the per-tile, front-to-back index list built on
// the CPU) are streamed through shared memory in batches, loaded cooperatively. Each pixel
// composites front to back with the reference's rules (alpha = min(0.99, o exp(-d^T Q d / 2)),
// skipped below 1/255; the Gaussian that would bring T below 1e-4 ends the pixel and is not
// added). An invocation leaves its loop when all of its pixels are done, the workgroup stops
// loading batches when all invocations are: unlike GL blending, layers behind opaque ones cost
// nothing. Writes premultiplied (rgb, 1 - T), image row 0 at the top, into an image the host
// cleared to 0 (empty tiles are not dispatched); the host blends it over the background.
//
// Why columns and small tiles (measured on llvmpipe, the default head at 512x512): llvmpipe runs
// 8 invocations per SIMD vector, and skipping work inside a branch saved nothing measurable
// (the exp below the alpha threshold, the rows outside the ellipse): only loop exits save work. One invocation per pixel (16x16 tiles) was ~2x slower than one per column:
// each splat is read from shared memory once per column instead of once per pixel. 8x8 tiles
// halve the (pixel, splat) pairs evaluated outside the splats' ellipses against 16x16 (~0.5x
// raster time) for ~1.6x the CPU binning. Batches of 32..128 splats time the same, 256 slower.
// Dropping the splats whose ellipse misses the tile (25 % of the box-binned pairs) when loading
// a batch saved ~17 % of the raster time.
//
// The host prepends "#version 430 core" and "#define TILE_W w", "#define TILE_H h", "#define
// BATCH b" (a multiple of TILE_W), "#define IMAGE_FORMAT rgba8|rgba16f".

layout(local_size_x = TILE_W) in;

layout(std430, binding = 5) readonly buffer Splats { vec4 b_splat[]; };  // see the projection
layout(std430, binding = 7) readonly buffer List { uint b_list[]; };     // Gaussian indices
layout(std430, binding = 8) readonly buffer Ranges { uint b_start[]; };  // [tiles + 1]
// The non-empty tiles, one workgroup each: empty ones cost a workgroup launch (~3 us on
// llvmpipe, 11 ms for the 4096 tiles of 512x512) and only need the cleared image.
layout(std430, binding = 9) readonly buffer Tiles { uint b_tile[]; };
layout(IMAGE_FORMAT, binding = 0) writeonly uniform image2D u_out;  // rgba8 or rgba16f

uniform ivec2 u_size;  // image width, height (pixels)
uniform uint u_tiles_x;  // tiles across the image

const float MIN_ALPHA = 1.0 / 255.0;
const float MAX_ALPHA = 0.99;
const float MIN_TRANSMITTANCE = 1e-4;

shared vec4 s_a[BATCH];  // mean2d, conic xx, conic xy
shared vec4 s_b[BATCH];  // conic yy, opacity, packed colour, -
shared uint s_done;      // invocations with all of their pixels done
shared uint s_count[TILE_W];  // splats kept by each invocation in the current batch

const uint PER = uint(BATCH / TILE_W);

// Whether the ellipse q(d) = d^T Q d <= 2 ln(255 o) (alpha >= 1/255; conic Q) reaches the
// rectangle [lo, hi] of pixel centres: the minimum of q over the rectangle is 0 when the mean
// is inside, else it lies on an edge, where q is a 1D quadratic minimised in closed form.
float edge_min(float d_fixed, float lo_free, float hi_free, float q_fixed, float q_cross,
               float q_free) {
    // q = q_fixed d_fixed^2 + 2 q_cross d_fixed t + q_free t^2 for t in [lo_free, hi_free]
    float t = clamp(-q_cross * d_fixed / q_free, lo_free, hi_free);
    return q_fixed * d_fixed * d_fixed + 2.0 * q_cross * d_fixed * t + q_free * t * t;
}

bool touches_tile(vec4 a, vec4 b, vec2 lo, vec2 hi) {
    vec2 dlo = lo - a.xy;
    vec2 dhi = hi - a.xy;
    if (all(lessThanEqual(dlo, vec2(0.0))) && all(greaterThanEqual(dhi, vec2(0.0)))) {
        return true;
    }
    float m = min(min(edge_min(dlo.x, dlo.y, dhi.y, a.z, a.w, b.x),
                      edge_min(dhi.x, dlo.y, dhi.y, a.z, a.w, b.x)),
                  min(edge_min(dlo.y, dlo.x, dhi.x, b.x, a.w, a.z),
                      edge_min(dhi.y, dlo.x, dhi.x, b.x, a.w, a.z)));
    // A little slack: this is a float test of a float rule, and extra splats are harmless.
    return m <= 2.0 * log(255.0 * b.y) * 1.001 + 1e-3;
}

void main() {
    uint tile = b_tile[gl_WorkGroupID.x];
    uvec2 wg = uvec2(tile % u_tiles_x, tile / u_tiles_x);
    uint lid = gl_LocalInvocationIndex;
    ivec2 pix0 = ivec2(wg.x * uint(TILE_W) + lid, wg.y * uint(TILE_H));
    float T[TILE_H];
    vec3 C[TILE_H];
    bool live[TILE_H];
    bool any_live = false;
    for (int k = 0; k < TILE_H; ++k) {
        T[k] = 1.0;
        C[k] = vec3(0.0);
        live[k] = pix0.x < u_size.x && pix0.y + k < u_size.y;
        any_live = any_live || live[k];
    }
    vec2 p = vec2(pix0) + 0.5;
    vec2 lo = vec2(wg * uvec2(TILE_W, TILE_H)) + 0.5;  // pixel centres of the tile
    vec2 hi = lo + vec2(TILE_W - 1, TILE_H - 1);
    uint start = b_start[tile];
    uint end = b_start[tile + 1u];
    if (lid == 0u) {
        s_done = 0u;
    }
    barrier();
    if (!any_live) {
        atomicAdd(s_done, 1u);
    }
    for (uint base = start; base < end; base += uint(BATCH)) {
        // After this barrier no invocation is compositing, so all read the same s_done.
        memoryBarrierShared();
        barrier();
        if (s_done == uint(TILE_W)) {
            break;
        }
        // Each invocation loads PER consecutive entries and keeps those whose alpha >= 1/255
        // ellipse reaches a pixel centre of this tile (the box binning is coarser), then the
        // kept ones are packed into shared memory in their front-to-back order.
        vec4 la[PER];
        vec4 lb[PER];
        uint keep = 0u;
        for (uint q = 0u; q < PER; ++q) {
            uint e = base + lid * PER + q;
            if (e < end) {
                uint g = b_list[e];
                la[q] = b_splat[2u * g];
                lb[q] = b_splat[2u * g + 1u];
                if (touches_tile(la[q], lb[q], lo, hi)) {
                    keep |= 1u << q;
                }
            }
        }
        s_count[lid] = uint(bitCount(keep));
        memoryBarrierShared();
        barrier();
        uint slot = 0u;
        uint n = 0u;
        for (uint i = 0u; i < uint(TILE_W); ++i) {
            slot += i < lid ? s_count[i] : 0u;
            n += s_count[i];
        }
        for (uint q = 0u; q < PER; ++q) {
            if ((keep & (1u << q)) != 0u) {
                s_a[slot] = la[q];
                s_b[slot] = lb[q];
                ++slot;
            }
        }
        memoryBarrierShared();
        barrier();
        if (any_live) {
            for (uint j = 0u; j < n; ++j) {
                vec4 a = s_a[j];
                vec4 b = s_b[j];
                vec3 col = unpackUnorm4x8(floatBitsToUint(b.z)).rgb;
                // The exponent along this column, a quadratic in the row offset dy.
                float dx = p.x - a.x;
                float dy0 = p.y - a.y;
                float pa = -0.5 * a.z * dx * dx;
                float pb = -a.w * dx;
                float pc = -0.5 * b.x;
                any_live = false;
                for (int k = 0; k < TILE_H; ++k) {
                    float dy = dy0 + float(k);
                    float alpha = min(MAX_ALPHA, b.y * exp(pa + dy * (pb + pc * dy)));
                    if (live[k] && alpha >= MIN_ALPHA) {
                        float next_t = T[k] * (1.0 - alpha);
                        if (next_t < MIN_TRANSMITTANCE) {
                            live[k] = false;
                        } else {
                            C[k] += col * (alpha * T[k]);
                            T[k] = next_t;
                        }
                    }
                    any_live = any_live || live[k];
                }
                if (!any_live) {
                    break;
                }
            }
            if (!any_live) {
                atomicAdd(s_done, 1u);
            }
        }
    }
    for (int k = 0; k < TILE_H; ++k) {
        ivec2 pix = pix0 + ivec2(0, k);
        if (all(lessThan(pix, u_size))) {
            imageStore(u_out, pix, vec4(C[k], 1.0 - T[k]));
        }
    }
}
