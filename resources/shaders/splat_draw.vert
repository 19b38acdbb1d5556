// Pass 2 of the Gaussian-splat renderer: one triangle per Gaussian, three consecutive vertices
// captured by splat_project.vert. Everything is precomputed, so this shader is trivial.
#version 330 core

in vec4 a_pos;    // NDC xy, alpha-support radius r (sigmas), opacity
in vec4 a_color;  // RGBA8 normalised colour

out vec2 v_whitened;      // position in the ellipse's whitened frame (units of sigma)
flat out vec4 v_color;    // rgb, opacity

const float SQRT3 = 1.7320508075688772;
const vec2 CORNERS[3] = vec2[3](vec2(0.0, 1.0), vec2(-0.5 * SQRT3, -0.5), vec2(0.5 * SQRT3, -0.5));

void main() {
    // The whitening map is affine, so interpolating these corner values across the triangle gives
    // exactly the whitened coordinates of every pixel centre.
    v_whitened = 2.0 * a_pos.z * CORNERS[gl_VertexID % 3];
    v_color = vec4(a_color.rgb, a_pos.w);
    gl_Position = vec4(a_pos.xy, 0.0, 1.0);
}
