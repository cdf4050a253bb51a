// Shared prelude: lets one source compile as GLSL ES 1.00 (what smithay's GLES
// renderer links, it prepends `#version 100`) and as GLSL ES 3.00.
precision mediump float;
#if __VERSION__ >= 300
#define varying in
out vec4 tessera_frag_color;
#define gl_FragColor tessera_frag_color
#define texture2D texture
#endif
