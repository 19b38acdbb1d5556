// Tiled splat renderer, pass 1: per-Gaussian projection (compute shader, one invocation each).
//
// Same rules as splat_project.vert and renderers/reference.py: near-plane, opacity and one-sided
// back-face culling, EWA 2D covariance with the clamped Jacobian + 0.3 px^2 low-pass, SH colour
// for the view direction, and the alpha >= 1/255 ellipse's bounding box. Instead of a triangle it
// writes what the tile rasteriser needs (conic = inverse 2D covariance) and, for the CPU binning,
// the box in tiles plus the camera depth.
//
// The host prepends "#version 430 core", "#define SH_COEFFS k", "#define COLOR_STRIDE s"
// (floats per Gaussian in the colour buffer: 3 clamped RGB for k == 1, else k*3 SH padded to
// vec4s, the layout GaussianSplatRenderer.update writes) and "#define TILE_W w", "#define
// TILE_H h" (tile size in pixels). The normals are zero for two-sided Gaussians and, with 16 SH
// coefficients, for all (the host culls those on the CPU, as GaussianSplatRenderer does).

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Means { float b_mean[]; };       // [N * 3]
layout(std430, binding = 1) readonly buffer Opacities { float b_opacity[]; }; // [N]
layout(std430, binding = 2) readonly buffer Covs { float b_cov[]; };          // [N * 6]
layout(std430, binding = 3) readonly buffer Normals { float b_normal[]; };    // [N * 3]
layout(std430, binding = 4) readonly buffer Colors { float b_color[]; };      // [N * COLOR_STRIDE]
// [N * 2]: (mean2d.x, mean2d.y, conic xx, conic xy), (conic yy, opacity, packed RGBA8, 0)
layout(std430, binding = 5) writeonly buffer Splats { vec4 b_splat[]; };
// [N]: (x0 | y0 << 16, x1 | y1 << 16 (exclusive), depth bits, 0); x1 == 0 means culled.
layout(std430, binding = 6) writeonly buffer Keys { uvec4 b_key[]; };

uniform uint u_count;
uniform vec3 u_r0;        // world-to-camera rotation rows (OpenCV camera)
uniform vec3 u_r1;
uniform vec3 u_r2;
uniform vec3 u_t;
uniform vec4 u_intr;      // fx, fy, cx, cy (pixels)
uniform vec2 u_size;      // image width, height (pixels)
uniform ivec2 u_tiles;    // tiles across, down
uniform vec4 u_lim;       // clamp of x/z (xy) and y/z (zw) inside J
uniform vec3 u_campos;
uniform float u_backface; // cull when cos(normal, mean - camera) > this (> 1: never)
uniform float u_near;

const float MIN_ALPHA = 1.0 / 255.0;
const float LOW_PASS = 0.3;

vec3 fetch3(uint base) { return vec3(b_color[base], b_color[base + 1u], b_color[base + 2u]); }

vec3 gaussian_color(uint i, vec3 dir) {
    uint o = i * uint(COLOR_STRIDE);
#if SH_COEFFS == 1
    return fetch3(o);
#else
    vec3 result = 0.28209479177387814 * fetch3(o);
    float x = dir.x, y = dir.y, z = dir.z;
    const float C1 = 0.4886025119029199;
    result += -C1 * y * fetch3(o + 3u) + C1 * z * fetch3(o + 6u) - C1 * x * fetch3(o + 9u);
#if SH_COEFFS > 4
    float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
    result += 1.0925484305920792 * xy * fetch3(o + 12u) - 1.0925484305920792 * yz * fetch3(o + 15u)
            + 0.31539156525252005 * (2.0 * zz - xx - yy) * fetch3(o + 18u)
            - 1.0925484305920792 * xz * fetch3(o + 21u)
            + 0.5462742152960396 * (xx - yy) * fetch3(o + 24u);
#if SH_COEFFS > 9
    result += -0.5900435899266435 * y * (3.0 * xx - yy) * fetch3(o + 27u)
            + 2.890611442640554 * xy * z * fetch3(o + 30u)
            - 0.4570457994644658 * y * (4.0 * zz - xx - yy) * fetch3(o + 33u)
            + 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * fetch3(o + 36u)
            - 0.4570457994644658 * x * (4.0 * zz - xx - yy) * fetch3(o + 39u)
            + 1.445305721320277 * z * (xx - yy) * fetch3(o + 42u)
            - 0.5900435899266435 * x * (xx - 3.0 * yy) * fetch3(o + 45u);
#endif
#endif
    return clamp(result + 0.5, 0.0, 1.0);
#endif
}

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= u_count) {
        return;
    }
    b_key[i] = uvec4(0u);
    vec3 m = vec3(b_mean[3u * i], b_mean[3u * i + 1u], b_mean[3u * i + 2u]);
    float opacity = b_opacity[i];
    vec3 p = vec3(dot(u_r0, m), dot(u_r1, m), dot(u_r2, m)) + u_t;
    if (!(p.z >= u_near) || !(opacity >= MIN_ALPHA)) {
        return;
    }
    vec3 view = m - u_campos;
    vec3 normal = vec3(b_normal[3u * i], b_normal[3u * i + 1u], b_normal[3u * i + 2u]);
    if (dot(normal, view) > u_backface * length(view)) {
        return;
    }
    float iz = 1.0 / p.z;
    float tx = clamp(p.x * iz, u_lim.x, u_lim.y) * p.z;
    float ty = clamp(p.y * iz, u_lim.z, u_lim.w) * p.z;
    vec3 t0 = (u_intr.x * iz) * u_r0 - (u_intr.x * tx * iz * iz) * u_r2;
    vec3 t1 = (u_intr.y * iz) * u_r1 - (u_intr.y * ty * iz * iz) * u_r2;
    uint c6 = 6u * i;
    mat3 S = mat3(b_cov[c6], b_cov[c6 + 1u], b_cov[c6 + 2u],
                  b_cov[c6 + 1u], b_cov[c6 + 3u], b_cov[c6 + 4u],
                  b_cov[c6 + 2u], b_cov[c6 + 4u], b_cov[c6 + 5u]);
    vec3 st0 = S * t0;
    vec3 st1 = S * t1;
    float a = dot(t0, st0) + LOW_PASS;
    float b = dot(t0, st1);
    float c = dot(t1, st1) + LOW_PASS;
    vec2 mean2d = vec2(u_intr.x * p.x * iz + u_intr.z, u_intr.y * p.y * iz + u_intr.w);

    float r = sqrt(2.0 * log(255.0 * opacity));
    vec2 half_extent = r * sqrt(vec2(a, c));
    vec2 lo = mean2d - half_extent;
    vec2 hi = mean2d + half_extent;
    if (any(lessThan(hi, vec2(0.0))) || any(greaterThan(lo, u_size))) {
        return;
    }
    // Tiles whose pixel squares the box touches (a superset of the pixel centres it covers; the
    // rasteriser drops the tiles the ellipse itself misses).
    vec2 tile = vec2(TILE_W, TILE_H);
    ivec2 t_lo = clamp(ivec2(floor(lo / tile)), ivec2(0), u_tiles - 1);
    ivec2 t_hi = clamp(ivec2(floor(hi / tile)), ivec2(0), u_tiles - 1) + 1;

    float inv_det = 1.0 / (a * c - b * b);
    vec3 color = gaussian_color(i, normalize(view));
    b_splat[2u * i] = vec4(mean2d, c * inv_det, -b * inv_det);
    b_splat[2u * i + 1u] = vec4(a * inv_det, opacity, uintBitsToFloat(packUnorm4x8(vec4(color, 1.0))), 0.0);
    b_key[i] = uvec4(uint(t_lo.x) | (uint(t_lo.y) << 16), uint(t_hi.x) | (uint(t_hi.y) << 16),
                     floatBitsToUint(p.z), 0u);
}
