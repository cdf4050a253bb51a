// A border `width` pixels wide along the inside of the element; transparent inside.
uniform vec4 colour;
uniform float width;
uniform float alpha;
uniform vec2 size;
varying vec2 v_coords;

void main() {
    vec2 px = v_coords * size;
    float d = min(min(px.x, px.y), min(size.x - px.x, size.y - px.y));
    float inside = step(width, d);
    float a = colour.a * (1.0 - inside) * alpha;
    gl_FragColor = vec4(colour.rgb * a, a);
}
