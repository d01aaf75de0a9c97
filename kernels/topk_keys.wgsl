// Order keys shared by topk_stream.wgsl and topk_split.wgsl (prepended to both; WGSL has no
// includes). A candidate is (key, id); "better" is key descending, then id ascending.
const EMPTY_ID: u32 = 0xffffffffu;
const NEG_INF_BITS: u32 = 0xff800000u;

// Monotone map f32 -> u32 (larger float, larger key); -0 and +0 share a key so they tie by id.
fn order_key(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_value(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

fn better(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia < ib);
}

