// Gaussian falloff, premultiplied output for blend (ONE, ONE_MINUS_SRC_ALPHA), back to front.
#version 330 core

in vec2 v_whitened;
flat in vec4 v_color;

out vec4 f_color;

void main() {
    float alpha = min(0.99, v_color.a * exp(-0.5 * dot(v_whitened, v_whitened)));
    if (alpha < 1.0 / 255.0) {
        discard;
    }
    f_color = vec4(v_color.rgb * alpha, alpha);
}
