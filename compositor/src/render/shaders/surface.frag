// A client surface: texture times opacity. NO_ALPHA marks XRGB buffers whose
// alpha channel is undefined and must be ignored.
uniform sampler2D tex;
uniform float alpha;
uniform float opacity;
varying vec2 v_coords;

void main() {
    vec4 c = texture2D(tex, v_coords);
#if defined(NO_ALPHA)
    c = vec4(c.rgb, 1.0);
#endif
    gl_FragColor = c * alpha * opacity;
}
