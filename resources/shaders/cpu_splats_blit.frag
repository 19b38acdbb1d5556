// Copies the CPU splat renderer's premultiplied image (row 0 = top image row) into the viewport
// (GL rows go up), blended with (ONE, ONE_MINUS_SRC_ALPHA) over the background or content.
#version 330 core

uniform sampler2D u_image;
uniform ivec4 u_viewport;  // x, y, width, height in window pixels

out vec4 f_color;

void main() {
    ivec2 local = ivec2(gl_FragCoord.xy) - u_viewport.xy;
    f_color = texelFetch(u_image, ivec2(local.x, u_viewport.w - 1 - local.y), 0);
}
