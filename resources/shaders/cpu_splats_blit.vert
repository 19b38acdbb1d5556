// CPU splat renderer: one full-viewport triangle; the fragment shader copies the CPU image.
#version 330 core

void main() {
    vec2 corner = vec2(float((gl_VertexID & 1) << 2) - 1.0, float((gl_VertexID & 2) << 1) - 1.0);
    gl_Position = vec4(corner, 0.0, 1.0);
}
