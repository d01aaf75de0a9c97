// One decode step of the rollout engine: for each row of logits [B, V] (the model's output at
// position `step`), either feed the next prompt token (teacher forcing while the prompt lasts) or
// sample the next token from the processed distribution and record it. Float64 reference and the
// rules: src/nn/sampling_reference.ts.
//
// One workgroup per row. Exact truncation without sorting: the top-k threshold is the largest
// order-preserving key k* with count(key(z) >= k*) >= top_k, and the top-p threshold the largest key
// whose kept mass reaches top_p of the top-k mass, both found by bisection over the 32 key bits
// (each probe is one strided pass over the row and a workgroup reduction). The draw is the inverse
// CDF in id order with u = uniformAt(seed, stream0 + row, generated index) (rng.wgsl and
// sample_common.wgsl, with the thresholds, are prepended):
// per-thread contiguous chunk sums, then thread 0 walks chunks and the one chunk that holds u.
//
// Writes, for a sampling row, at generated index g = step + 1 - prompt length:
//   out_main[(row, g)] = token, bits(log-prob under the processed distribution), bits(raw log-prob)
//   out_top[(row, g, j)] = id, bits(processed log-prob) of the j-th largest logit (from topk_stream)
// and updates state[row] = finished, generated count, flags (1: NaN/+Inf logits, 2: all -Inf),
// stopped-by-stop-token; next_tok[row] is the model's input at step + 1 (pad once finished).
//
// Logits over one storage binding come in blocks of rows, one dispatch each (src/nn/sample_step.ts):
// `logits` is then the block's, rows row0 .. row0 + block_rows - 1 (indexed from the block's row 0);
// everything else is indexed by the global row. One block: row0 = 0, block_rows = rows.
override CAPK: u32 = 0u;

struct Params {
  rows: u32,
  vocab: u32,
  top_k: u32,       // 0: off
  seed: u32,
  temperature: f32, // 0: greedy
  top_p: f32,       // 1: off
  step: u32,
  prompt_cols: u32,
  max_new: u32,
  pad_id: u32,
  stream0: u32,
  // Up to four stop tokens (Qwen's instruct models end with <|im_end|>, its base models with
  // <|endoftext|>); 0xffffffff fills the unused ones and matches no token.
  stop0: u32,
  stop1: u32,
  stop2: u32,
  stop3: u32,
  row0: u32,       // first row of this dispatch's block of logits
  block_rows: u32, // rows in the block
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> cap_vals: array<f32>;   // [B, CAPK] raw logits
@group(0) @binding(2) var<storage, read> cap_ids: array<u32>;    // [B, CAPK]
@group(0) @binding(3) var<storage, read> prompt: array<i32>;     // [B] lengths, then [B, cols] ids
@group(0) @binding(4) var<storage, read_write> state: array<u32>; // [B, 4]
@group(0) @binding(5) var<storage, read_write> next_tok: array<i32>; // [B]
@group(0) @binding(6) var<storage, read_write> out_main: array<u32>; // [B, max_new, 3]
@group(0) @binding(7) var<storage, read_write> out_top: array<u32>;  // [B, max_new, CAPK, 2]
@group(0) @binding(8) var<uniform> params: Params;

var<workgroup> parts: array<f32, WG>;
var<workgroup> wg_mode: u32;
var<workgroup> wg_token: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let local = wid.x + wid.y * nwg.x;
  if (local >= params.block_rows) { return; }
  let r = params.row0 + local;
  let V = params.vocab;
  let base = local * V;
  let s = params.step;

  if (lid == 0u) {
    let len = u32(prompt[r]);
    var mode = 2u;
    if (s + 1u < len) {
      next_tok[r] = prompt[params.rows + r * params.prompt_cols + s + 1u];
      mode = 0u;
    } else if (state[r * 4u] != 0u || s + 1u - len >= params.max_new) {
      next_tok[r] = i32(params.pad_id);
      state[r * 4u] = 1u;
      mode = 1u;
    }
    wg_mode = mode;
  }
  let mode = workgroupUniformLoad(&wg_mode);
  if (mode != 2u) { return; }
  let g = s + 1u - u32(prompt[r]);

  // Raw row: max, non-finite flags, log-sum-exp.
  var m_t = bitcast<f32>(NEG_INF_BITS);
  var bad = 0u;
  for (var i = lid; i < V; i += WG) {
    let x = logits[base + i];
    // NaN or +Inf by bit pattern (a float compare may be folded away under fast math).
    let bits = bitcast<u32>(x);
    if ((bits & 0x7fffffffu) >= 0x7f800000u && bits != NEG_INF_BITS) { bad = 1u; } else { m_t = max(m_t, x); }
  }
  let m = reduce_max_f(m_t, lid);
  var flags = reduce_max_u(bad, lid);
  var sr = 0.0;
  for (var i = lid; i < V; i += WG) { sr += exp(logits[base + i] - m); }
  let lse_raw = m + log(reduce_sum_f(sr, lid));
  if (m == bitcast<f32>(NEG_INF_BITS)) { flags |= 2u; }

  var token = 0u;
  var lp = 0.0;
  var th = 0u;
  var lse_kept = 0.0;
  let greedy = params.temperature == 0.0;
  if (greedy) {
    var first = 0xffffffffu;
    for (var i = lid; i < V; i += WG) {
      if (logits[base + i] == m) { first = min(first, i); }
    }
    token = reduce_min_u(first, lid);
    if (token >= V) { token = 0u; }
  } else {
    row_max = m;
    th = truncation_threshold(base, lid);
    // Chunk sums of the kept weights in id order, and the last kept id (fallback of the walk).
    let chunk = (V + WG - 1u) / WG;
    let lo = min(V, lid * chunk);
    let hi = min(V, lo + chunk);
    var part = 0.0;
    var last = 0u;
    for (var i = lo; i < hi; i++) {
      let z = z_at(base, i);
      if (key_of(z) >= th) {
        part += exp(z);
        last = i + 1u;
      }
    }
    parts[lid] = part;
    let mass = reduce_sum_f(part, lid);
    lse_kept = log(mass);
    let last_kept = reduce_max_u(last, lid);
    if (lid == 0u) {
      let u = rng_uniform_at(params.seed, params.stream0 + r, g);
      let goal = u * mass;
      var acc = 0.0;
      var found = 0xffffffffu;
      for (var c = 0u; c < WG; c++) {
        if (acc + parts[c] > goal) {
          // The chunk holding u; rounding may leave the walk short: then its last kept id.
          let clo = min(V, c * chunk);
          let chi = min(V, clo + chunk);
          for (var i = clo; i < chi; i++) {
            let z = z_at(base, i);
            if (key_of(z) >= th) {
              acc += exp(z);
              found = i;
              if (acc > goal) { break; }
            }
          }
          break;
        }
        acc += parts[c];
      }
      if (found == 0xffffffffu) { found = max(last_kept, 1u) - 1u; }
      wg_token = found;
    }
    token = workgroupUniformLoad(&wg_token);
    lp = z_at(base, token) - lse_kept;
  }
  let raw = logits[base + token] - lse_raw;

  let o = (r * params.max_new + g);
  if (lid == 0u) {
    out_main[o * 3u] = token;
    out_main[o * 3u + 1u] = bitcast<u32>(lp);
    out_main[o * 3u + 2u] = bitcast<u32>(raw);
    next_tok[r] = i32(token);
    state[r * 4u + 1u] = g + 1u;
    state[r * 4u + 2u] |= flags;
    if (token == params.stop0 || token == params.stop1 || token == params.stop2 ||
        token == params.stop3) {
      state[r * 4u] = 1u;
      state[r * 4u + 3u] = 1u;
    }
    if (g + 1u >= params.max_new) { state[r * 4u] = 1u; }
  }
  for (var j = lid; j < CAPK; j += WG) {
    let id = cap_ids[r * CAPK + j];
    var clp = bitcast<f32>(NEG_INF_BITS);
    if (greedy) {
      if (id == token) { clp = 0.0; }
    } else {
      let z = (cap_vals[r * CAPK + j] - m) / params.temperature;
      if (key_of(z) >= th) { clp = z - lse_kept; }
    }
    out_top[(o * CAPK + j) * 2u] = id;
    out_top[(o * CAPK + j) * 2u + 1u] = bitcast<u32>(clp);
  }
}
