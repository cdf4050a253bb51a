// Darkens what lies below (a parent behind a modal dialog, the session behind a
// prompt): black at `strength` opacity, softened toward the edges.
uniform float strength;
uniform float alpha;
uniform vec2 size;
varying vec2 v_coords;

void main() {
    vec2 edge = min(v_coords, vec2(1.0) - v_coords) * size;
    float fade = clamp(min(edge.x, edge.y) / 24.0, 0.0, 1.0);
    float a = strength * mix(0.6, 1.0, fade) * alpha;
    gl_FragColor = vec4(0.0, 0.0, 0.0, a);
}
