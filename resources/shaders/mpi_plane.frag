// Samples the premultiplied plane bilinearly (border = transparent, like grid_sample's zero
// padding); blended with (ONE, ONE_MINUS_SRC_ALPHA), planes drawn far to near.
#version 330 core

in vec3 v_tex;

uniform sampler2DArray u_planes;

out vec4 f_color;

void main() {
    f_color = texture(u_planes, v_tex);
}
