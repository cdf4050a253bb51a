// Darkens what lies below (a parent behind its dialog): black at `strength`.
// Flat, so that the Pixman path (a solid fill) shows the same pixels.
uniform float strength;
uniform float alpha;
uniform vec2 size;
varying vec2 v_coords;

void main() {
    float a = strength * alpha;
    gl_FragColor = vec4(0.0, 0.0, 0.0, a);
}
