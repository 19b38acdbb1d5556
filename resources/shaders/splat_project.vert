// Pass 1 of the Gaussian-splat renderer (transform feedback, no rasterisation).
//
// One vertex per Gaussian, fetched through the depth-sorted element buffer (back to front), so
// the captured buffer is already in drawing order. For each Gaussian we compute the EWA 2D
// covariance (J W Sigma W^T J^T + 0.3 px^2, the same rules as renderers/reference.py) and emit
// ONE triangle circumscribing the ellipse where alpha >= 1/255: three sub-records (one per
// corner) that pass 2 draws with glDrawArrays and a trivial vertex shader.
//
// Why this shape (measured on llvmpipe, see renderers/gl_splats.py): vertex texture fetches and
// instancing are very slow there, and the per-triangle cost dominates, so one triangle per splat
// from plain attributes is the fastest layout; it is also plain GL 3.3 core (macOS-compatible).
//
// The host prepends "#version 330 core", "#define SH_DEGREE n", "#define SH_COEFFS k" and
// "#define GPU_BACKFACE 0|1" (0 for degree 3: its 12 SH inputs leave no room for the normal
// within GL's 16 vertex inputs; the host then culls on the CPU), and fills the two @...@
// placeholders for degree > 0 (coefficients packed into vec4 attributes).

in vec3 a_mean;     // world mean (metres)
in float a_opacity; // in [0, 1]
in vec3 a_cov_a;    // world covariance xx, xy, xz (m^2)
in vec3 a_cov_b;    // world covariance yy, yz, zz
#if GPU_BACKFACE
in vec3 a_normal;   // outward unit normal of a one-sided Gaussian; zero when two-sided
#endif
#if SH_DEGREE == 0
in vec3 a_color;    // view-independent colour, already clamped to [0, 1]
#endif
@SH_DECLARATIONS@

uniform vec3 u_r0;        // world-to-camera rotation rows (OpenCV camera: x right, y down, z fwd)
uniform vec3 u_r1;
uniform vec3 u_r2;
uniform vec3 u_t;         // world-to-camera translation
uniform vec4 u_intr;      // fx, fy, cx, cy (pixels)
uniform vec2 u_size;      // image width, height (pixels)
uniform vec4 u_lim;       // clamp of x/z (xy) and y/z (zw) inside J: frustum widened by 15 %
uniform vec3 u_campos;    // camera centre in world space (SH view direction, back faces)
uniform float u_backface; // cull when cos(normal, mean - camera) > this (> 1: never)
uniform float u_near;

out vec4 v_pos0;  // corner 0: NDC xy, alpha-support radius r (in sigmas), opacity
flat out uint v_col0;  // RGBA8 colour packed little-endian (r in the low byte)
out vec4 v_pos1;
flat out uint v_col1;
out vec4 v_pos2;
flat out uint v_col2;

const float MIN_ALPHA = 1.0 / 255.0;
const float LOW_PASS = 0.3;
const float SQRT3 = 1.7320508075688772;

#if SH_DEGREE > 0
const float SH_C0 = 0.28209479177387814;
const float SH_C1 = 0.4886025119029199;
const float SH_C2_0 = 1.0925484305920792;
const float SH_C2_1 = -1.0925484305920792;
const float SH_C2_2 = 0.31539156525252005;
const float SH_C2_3 = -1.0925484305920792;
const float SH_C2_4 = 0.5462742152960396;
const float SH_C3_0 = -0.5900435899266435;
const float SH_C3_1 = 2.890611442640554;
const float SH_C3_2 = -0.4570457994644658;
const float SH_C3_3 = 0.3731763325901154;
const float SH_C3_4 = -0.4570457994644658;
const float SH_C3_5 = 1.445305721320277;
const float SH_C3_6 = -0.5900435899266435;

vec3 sh_color(vec3 dir) {
    vec3 sh[SH_COEFFS];
    @SH_UNPACK@
    vec3 result = SH_C0 * sh[0];
    float x = dir.x, y = dir.y, z = dir.z;
    result += -SH_C1 * y * sh[1] + SH_C1 * z * sh[2] - SH_C1 * x * sh[3];
#if SH_DEGREE > 1
    float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
    result += SH_C2_0 * xy * sh[4] + SH_C2_1 * yz * sh[5] + SH_C2_2 * (2.0 * zz - xx - yy) * sh[6]
            + SH_C2_3 * xz * sh[7] + SH_C2_4 * (xx - yy) * sh[8];
#if SH_DEGREE > 2
    result += SH_C3_0 * y * (3.0 * xx - yy) * sh[9] + SH_C3_1 * xy * z * sh[10]
            + SH_C3_2 * y * (4.0 * zz - xx - yy) * sh[11]
            + SH_C3_3 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh[12]
            + SH_C3_4 * x * (4.0 * zz - xx - yy) * sh[13] + SH_C3_5 * z * (xx - yy) * sh[14]
            + SH_C3_6 * x * (xx - 3.0 * yy) * sh[15];
#endif
#endif
    return clamp(result + 0.5, 0.0, 1.0);
}
#endif

uint pack_rgb(vec3 c) {
    uvec3 q = uvec3(clamp(c, 0.0, 1.0) * 255.0 + 0.5);
    return q.r | (q.g << 8) | (q.b << 16) | (255u << 24);
}

void cull() {
    // A degenerate triangle far outside the clip volume: rejected by triangle setup at once.
    v_pos0 = vec4(-4.0, -4.0, 0.0, 0.0);
    v_pos1 = v_pos0;
    v_pos2 = v_pos0;
    v_col0 = 0u;
    v_col1 = 0u;
    v_col2 = 0u;
}

void main() {
    vec3 m = a_mean;
    float opacity = a_opacity;
    vec3 p = vec3(dot(u_r0, m), dot(u_r1, m), dot(u_r2, m)) + u_t;
    if (!(p.z >= u_near) || !(opacity >= MIN_ALPHA)) {
        cull();
        return;
    }
    // One-sided surfel facing away from the camera: hidden behind the front of its own closed
    // surface (renderers.gaussians.backfacing, the same rule).
#if GPU_BACKFACE
    vec3 view = m - u_campos;
    if (dot(a_normal, view) > u_backface * length(view)) {
        cull();
        return;
    }
#endif
    float iz = 1.0 / p.z;
    float tx = clamp(p.x * iz, u_lim.x, u_lim.y) * p.z;
    float ty = clamp(p.y * iz, u_lim.z, u_lim.w) * p.z;
    // Rows of T = J W (J: Jacobian of the pinhole projection at the mean).
    vec3 t0 = (u_intr.x * iz) * u_r0 - (u_intr.x * tx * iz * iz) * u_r2;
    vec3 t1 = (u_intr.y * iz) * u_r1 - (u_intr.y * ty * iz * iz) * u_r2;
    mat3 S = mat3(a_cov_a.x, a_cov_a.y, a_cov_a.z,
                  a_cov_a.y, a_cov_b.x, a_cov_b.y,
                  a_cov_a.z, a_cov_b.y, a_cov_b.z);
    vec3 st0 = S * t0;
    vec3 st1 = S * t1;
    float a = dot(t0, st0) + LOW_PASS;
    float b = dot(t0, st1);
    float c = dot(t1, st1) + LOW_PASS;
    vec2 mean2d = vec2(u_intr.x * p.x * iz + u_intr.z, u_intr.y * p.y * iz + u_intr.w);

    // Mahalanobis radius of the alpha >= 1/255 ellipse (<= 3.33 sigma), as in the reference.
    float r = sqrt(2.0 * log(255.0 * opacity));
    vec2 half_extent = r * sqrt(vec2(a, c));
    if (any(lessThan(mean2d + half_extent, vec2(0.0)))
        || any(greaterThan(mean2d - half_extent, u_size))) {
        cull();
        return;
    }

    // Eigen-decomposition of the 2D covariance: ellipse axes in pixels per sigma.
    float mid = 0.5 * (a + c);
    float disc = sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0));
    float l1 = mid + disc;
    float l2 = max(mid - disc, 1e-6);
    vec2 e1 = vec2(b, l1 - a);
    vec2 e2 = vec2(l1 - c, b);
    vec2 v1 = dot(e1, e1) > dot(e2, e2) ? e1 : e2;
    float n2 = dot(v1, v1);
    v1 = n2 > 1e-30 ? v1 * inversesqrt(n2) : vec2(1.0, 0.0);
    vec2 ax1 = v1 * sqrt(l1);
    vec2 ax2 = vec2(-v1.y, v1.x) * sqrt(l2);

    // Equilateral triangle circumscribing the circle of radius r in the whitened frame: its
    // corners lie at 2r from the centre (pass 2 rebuilds the same whitened coordinates).
    vec2 q0 = 2.0 * r * vec2(0.0, 1.0);
    vec2 q1 = 2.0 * r * vec2(-0.5 * SQRT3, -0.5);
    vec2 q2 = 2.0 * r * vec2(0.5 * SQRT3, -0.5);
    vec2 px0 = mean2d + ax1 * q0.x + ax2 * q0.y;
    vec2 px1 = mean2d + ax1 * q1.x + ax2 * q1.y;
    vec2 px2 = mean2d + ax1 * q2.x + ax2 * q2.y;
    // Pixels (v down) -> NDC (y up): NDC x = 2u/W - 1, NDC y = 1 - 2v/H (renderers.camera).
    vec2 s = 2.0 / u_size;
    v_pos0 = vec4(px0.x * s.x - 1.0, 1.0 - px0.y * s.y, r, opacity);
    v_pos1 = vec4(px1.x * s.x - 1.0, 1.0 - px1.y * s.y, r, opacity);
    v_pos2 = vec4(px2.x * s.x - 1.0, 1.0 - px2.y * s.y, r, opacity);

#if SH_DEGREE == 0
    vec3 color = a_color;
#else
    vec3 color = sh_color(normalize(m - u_campos));
#endif
    uint rgba8 = pack_rgb(color);
    v_col0 = rgba8;
    v_col1 = rgba8;
    v_col2 = rgba8;
}
