// One MPI plane (or a rectangular cell of it) as a world-space quad seen by the target camera.
// Texture coordinates are interpolated perspective-correctly, which is exactly the plane-induced
// homography of renderers.reference.render_mpi_reference.
#version 330 core

in vec3 a_world;   // corner in world space (metres)
in vec3 a_tex;     // s, t in [0, 1] of the plane image (t down, row 0 first), layer index

uniform mat4 u_mvp;  // camera.gl_projection(near, far) @ camera.gl_view()

out vec3 v_tex;

void main() {
    v_tex = a_tex;
    gl_Position = u_mvp * vec4(a_world, 1.0);
}
