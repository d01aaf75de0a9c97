// Fused cross-entropy over the last axis of contiguous logits [rows, V] with i32 targets, and the
// gather of one value per row (log-prob of given ids). Probabilities are never materialised: the
// forward keeps log-sum-exp per row, the backward recomputes softmax from it (llm.c's classifier).
// A target equal to `ignore` contributes 0 to the loss and gradient and is left out of the mean;
// a target outside [0, V) yields NaN for its row (the caller can check targets on the host).
//
// Logits over one storage binding are bound in blocks of rows, one dispatch each
// (src/autograd/softmax.ts): `rows` is then the block's, `row0` its first row; the logits and dx are
// the block's (indexed from its row 0), the per-row arrays (targets, losses, lse, g) the whole
// tensors' (indexed by row0 + the row in the block). One block: row0 = 0, as before.
//
// V % 4 == 0 takes xent_fwd4 (the row read once into registers, see ops_rows.wgsl, where the
// scalar kernel reads it twice one float at a time) and xent_bwd4 (a vec4 per thread).
struct Params { rows: u32, v: u32, ignore: i32, mean: u32, row0: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> tgt: array<i32>;
@group(0) @binding(2) var<storage, read_write> row_loss: array<f32>; // [rows]
@group(0) @binding(3) var<storage, read_write> lse_out: array<f32>;  // [rows, 2]: max, log Σ exp(x - max)
@group(0) @binding(4) var<uniform> p: Params;

// Thread 0 writes a row's statistics and loss; `xt` is its logit at the target (when in range).
fn finish_row(row: u32, m: f32, s: f32, xt: f32) {
  // max and log Σ kept apart: near -3.4e38, max + log Σ would lose log Σ
  let ls = log(s);
  let t = tgt[row];
  lse_out[2u * row] = m;
  lse_out[2u * row + 1u] = ls;
  if (t == p.ignore) {
    row_loss[row] = 0.0;
  } else if (t < 0 || u32(t) >= p.v) {
    row_loss[row] = sqrt(-1.0 - abs(ls)); // NaN: target out of range
  } else {
    row_loss[row] = ls - (xt - m);
  }
}

// The target's logit, or 0 for an ignored or out-of-range target (finish_row does not use it).
fn target_index(row: u32) -> u32 {
  let t = tgt[row];
  return select(0u, u32(t), t >= 0 && u32(t) < p.v);
}

@compute @workgroup_size(WG)
fn xent_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let local = wid.x + wid.y * nwg.x;
  if (local >= p.rows) { return; }
  let row = p.row0 + local;
  let base = local * p.v;
  // the running max starts at -inf (runtime bits: a constant infinity is a WGSL error), so a row
  // masked with the most negative f32 gives log(V), not -inf
  var m = bitcast<f32>(0xff800000u | (lid & 0u));
  for (var i = lid; i < p.v; i += WG) { m = max(m, x[base + i]); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var i = lid; i < p.v; i += WG) { s += exp(x[base + i] - m); }
  s = wg_sum(s, lid);
  if (lid == 0u) { finish_row(row, m, s, x[base + target_index(row)]); }
}

@group(0) @binding(0) var<storage, read> x4: array<vec4f>;

@compute @workgroup_size(WG)
fn xent_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let local = wid.x + wid.y * nwg.x;
  if (local >= p.rows) { return; }
  let row = p.row0 + local;
  let v4 = p.v / 4u;
  let base = local * v4;
  let nt = tiles(v4);
  let ti = target_index(row);
  let xt = x4[base + ti / 4u][ti % 4u]; // loaded with the row, used by thread 0 at the end
  var a: array<vec4f, KMAX>;
  var mv = vec4f(neg_inf(lid));
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      a[j] = vec4f(neg_inf(lid));
      if (q < v4) { a[j] = x4[base + q]; }
    }
    for (var j = 0u; j < K; j++) { mv = max(mv, a[j]); }
  }
  let m = wg_max(hmax(mv), lid);
  var s = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < v4) {
        if (nt > 1u) { a[j] = x4[base + q]; }
        s += hsum(exp(a[j] - m));
      }
    }
  }
  s = wg_sum(s, lid);
  if (lid == 0u) { finish_row(row, m, s, xt); }
}

// One workgroup: loss[0] = Σ row_loss / max(1, valid) (or Σ when not mean); loss[1] = the scale the
// backward multiplies by (1 / max(1, valid) or 1). Fixed order: deterministic.
@group(0) @binding(0) var<storage, read> rl: array<f32>;
@group(0) @binding(1) var<storage, read> tg: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<uniform> pf: Params;

@compute @workgroup_size(WG)
fn xent_finalize(@builtin(local_invocation_index) lid: u32) {
  // four rows per trip, loaded before they are summed: one workgroup walks every row, and one
  // load at a time would leave it waiting on memory latency once per 256 rows
  var s4 = vec4f(0.0);
  var c4 = vec4f(0.0);
  var i = lid;
  for (; i + 3u * WG < pf.rows; i += 4u * WG) {
    let l = vec4f(rl[i], rl[i + WG], rl[i + 2u * WG], rl[i + 3u * WG]);
    let t = vec4i(tg[i], tg[i + WG], tg[i + 2u * WG], tg[i + 3u * WG]);
    s4 += l;
    c4 += select(vec4f(1.0), vec4f(0.0), t == vec4i(pf.ignore));
  }
  var s = hsum(s4);
  var c = hsum(c4);
  for (; i < pf.rows; i += WG) {
    s += rl[i];
    c += select(1.0, 0.0, tg[i] == pf.ignore);
  }
  let sc = wg_reduce(vec4f(s, c, 0.0, 0.0), lid, false);
  s = sc.x;
  c = sc.y;
  if (lid == 0u) {
    let scale = select(1.0, 1.0 / max(c, 1.0), pf.mean == 1u);
    loss[0] = s * scale;
    loss[1] = scale;
  }
}

// dx[r, v] = (softmax(x)[r, v] − [v == t_r]) · g · scale, 0 on ignored rows. One thread per element.
// PER_ROW = 1 reads g[r] (reduction "none"), else g[0].
override PER_ROW: u32 = 0u;
@group(0) @binding(0) var<storage, read> xb: array<f32>;
@group(0) @binding(1) var<storage, read> tb: array<i32>;
@group(0) @binding(2) var<storage, read> lseb: array<f32>;
@group(0) @binding(3) var<storage, read> gin: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>; // scale[1] from xent_finalize
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<uniform> pb: Params;

@compute @workgroup_size(WG)
fn xent_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pb.rows * pb.v) { return; }
  let row = pb.row0 + i / pb.v;
  let col = i % pb.v;
  let t = tb[row];
  if (t == pb.ignore) { dx[i] = 0.0; return; }
  let g = select(gin[0] * scale[1], gin[row], PER_ROW == 1u);
  let pr = exp((xb[i] - lseb[2u * row]) - lseb[2u * row + 1u]);
  dx[i] = (pr - select(0.0, 1.0, i32(col) == t)) * g;
}

// The same for V % 4 == 0, one vec4 of a row per thread (one division per four outputs).
@group(0) @binding(0) var<storage, read> xb4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> dx4: array<vec4f>;

@compute @workgroup_size(WG)
fn xent_bwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let v4 = pb.v / 4u;
  if (i >= pb.rows * v4) { return; }
  let row = pb.row0 + i / v4;
  let col = (i % v4) * 4u;
  let t = tb[row];
  if (t == pb.ignore) { dx4[i] = vec4f(0.0); return; }
  let g = select(gin[0] * scale[1], gin[row], PER_ROW == 1u);
  let pr = exp((xb4[i] - lseb[2u * row]) - lseb[2u * row + 1u]);
  let hot = select(vec4f(0.0), vec4f(1.0), vec4i(i32(col)) + vec4i(0, 1, 2, 3) == vec4i(t));
  dx4[i] = (pr - hot) * g;
}

// Gather: out[r] = x[r, ids[r]] (NaN for an id outside [0, V)); backward: dx[r, v] = [v == ids[r]]·g[r].
@group(0) @binding(0) var<storage, read> gx: array<f32>;
@group(0) @binding(1) var<storage, read> gids: array<i32>;
@group(0) @binding(2) var<storage, read_write> gout: array<f32>;
@group(0) @binding(3) var<uniform> pg: Params;

@compute @workgroup_size(WG)
fn gather_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid; // the row in the block
  if (r >= pg.rows) { return; }
  let t = gids[pg.row0 + r];
  if (t < 0 || u32(t) >= pg.v) { gout[pg.row0 + r] = sqrt(-1.0 - abs(gx[r * pg.v])); return; }
  gout[pg.row0 + r] = gx[r * pg.v + u32(t)];
}

@group(0) @binding(0) var<storage, read> gg: array<f32>;
@group(0) @binding(1) var<storage, read> gids2: array<i32>;
@group(0) @binding(2) var<storage, read_write> gdx: array<f32>;
@group(0) @binding(3) var<uniform> pg2: Params;

@compute @workgroup_size(WG)
fn gather_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pg2.rows * pg2.v) { return; }
  let row = pg2.row0 + i / pg2.v;
  gdx[i] = select(0.0, gg[row], i32(i % pg2.v) == gids2[row]);
}
