// A solid colour with premultiplied alpha.
uniform vec4 colour;
uniform float alpha;
varying vec2 v_coords;

void main() {
    gl_FragColor = vec4(colour.rgb * colour.a, colour.a) * alpha;
}
