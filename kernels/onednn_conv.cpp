#include "kernels/onednn_conv.h"

#if LKASEG_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#endif

namespace lk::cpu {

#if !LKASEG_HAVE_DNNL

bool onednn_available() { return false; }
const char* onednn_version() { return ""; }
bool onednn_conv2d_fwd(const ConvGeom&, const float*, const float*, const float*, float*, bool) { return false; }
bool onednn_conv2d_bwd_data(const ConvGeom&, const float*, const float*, float*) { return false; }
bool onednn_conv2d_bwd_weight(const ConvGeom&, const float*, const float*, float*, float*) { return false; }
bool onednn_conv2d_kept_floats(const ConvGeom&, bool, int64_t*, int64_t*) { return false; }
bool onednn_conv2d_fwd_keep(const ConvGeom&, const float*, const float*, const float*, float*, float*, float*) {
  return false;
}
bool onednn_conv2d_bwd(const ConvGeom&, const float*, const float*, const float*, bool, float*, bool, float*, bool,
                       float*, bool, const float*, const float*) {
  return false;
}

#else

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Md = memory::desc;
constexpr memory::data_type kF32 = memory::data_type::f32;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// A grow-only, 64-byte aligned byte buffer.
class Buffer {
 public:
  void* get(size_t bytes) {
    if (bytes > size_) {
      p_.reset(static_cast<char*>(::operator new(bytes, std::align_val_t{64})));
      size_ = bytes;
    }
    return p_.get();
  }

 private:
  struct Free {
    void operator()(char* p) const { ::operator delete(p, std::align_val_t{64}); }
  };
  std::unique_ptr<char, Free> p_;
  size_t size_ = 0;
};

// The per-thread working set of one call: the operands in oneDNN's layouts
// and its scratchpad, plus the stream.
struct Scratch {
  Buffer src, wei, dst, dst2, pad, bias;
  dnnl::stream stream{engine()};
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// One tensor argument: the user's plain layout and the primitive's, with the
// reorders between them that the plan needs.
struct Operand {
  Md user, prim;
  dnnl::reorder in;       // user -> prim, when they differ
  dnnl::reorder out;      // prim -> user, when they differ
  dnnl::reorder out_sum;  // prim -> user, adding into user
  bool same() const { return user == prim; }
};

Operand make_operand(const Md& user, const Md& prim, bool in, bool out, bool out_sum) {
  Operand o{user, prim, {}, {}, {}};
  if (in && !o.same()) o.in = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), prim));
  if (out && !o.same()) o.out = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), prim, engine(), user));
  if (out_sum) {
    dnnl::post_ops po;
    po.append_sum(1.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    o.out_sum = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), prim, engine(), user, attr));
  }
  return o;
}

// The user's tensor as the primitive wants it: the user's memory itself, or
// a reordered copy in `to` (when given) or `buf`.
memory bring_in(const Operand& o, const float* p, Buffer& buf, dnnl::stream& s, float* to = nullptr) {
  memory um(o.user, engine(), const_cast<float*>(p));
  if (o.same()) return um;
  memory pm(o.prim, engine(), to ? static_cast<void*>(to) : buf.get(o.prim.get_size()));
  o.in.execute(s, um, pm);
  return pm;
}

// Where the primitive writes a result meant for the user's p: p itself when
// the layouts agree and p is overwritten, else `buf` (then finish_out).
memory out_mem(const Operand& o, float* p, bool first, Buffer& buf) {
  if (o.same() && first) return memory(o.user, engine(), p);
  return memory(o.prim, engine(), buf.get(o.prim.get_size()));
}
// The primitive's result m into the user's p: overwritten (first) or added.
void finish_out(const Operand& o, memory m, float* p, bool first, dnnl::stream& s) {
  if (o.same() && first) return;
  memory um(o.user, engine(), p);
  (first ? o.out : o.out_sum).execute(s, m, um);
}

enum class Pass { Fwd, FwdAcc, BwdData, BwdWeight };

struct Plan {
  dnnl::primitive prim;
  Operand src, wei, dst;  // for the backward passes: diff_src, diff_wei, diff_dst as the pass uses them
  Md bias;                // the bias (forward) or its gradient (backward weight); zero-sized without
  Md scratchpad;
};

using Key = std::array<int64_t, 14>;
Key key_of(const ConvGeom& g, Pass p, bool bias) {
  return {g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.dil, g.groups, static_cast<int64_t>(p),
          bias ? 1 : 0, 0};
}

struct Geometry {
  Md src, wei, dst, bias, src_any, wei_any, dst_any;
  memory::dims strides, dilates, pad_l, pad_r;
};

Geometry geometry(const ConvGeom& g, bool bias) {
  Geometry d;
  const memory::dims src{g.n, g.c_in, g.h, g.w}, dst{g.n, g.c_out, g.oh, g.ow};
  const memory::dims wei = g.groups == 1 ? memory::dims{g.c_out, g.c_in, g.kh, g.kw}
                                         : memory::dims{g.groups, g.c_out / g.groups, g.c_in / g.groups, g.kh, g.kw};
  d.src = Md(src, kF32, Tag::nchw);
  d.dst = Md(dst, kF32, Tag::nchw);
  d.wei = Md(wei, kF32, g.groups == 1 ? Tag::oihw : Tag::goihw);
  d.src_any = Md(src, kF32, Tag::any);
  d.dst_any = Md(dst, kF32, Tag::any);
  d.wei_any = Md(wei, kF32, Tag::any);
  if (bias) d.bias = Md({g.c_out}, kF32, Tag::x);
  d.strides = {g.stride, g.stride};
  d.dilates = {g.dil - 1, g.dil - 1};
  d.pad_l = {g.pad, g.pad};
  // oneDNN wants the right padding that makes its output size ours (floor).
  d.pad_r = {(g.oh - 1) * g.stride + (g.kh - 1) * g.dil + 1 - g.h - g.pad,
             (g.ow - 1) * g.stride + (g.kw - 1) * g.dil + 1 - g.w - g.pad};
  return d;
}

// Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions (oneDNN's
// jit_wino_4x3 takes them when the channels suit it, else direct): about 1.6x
// faster here, within the float32 golden tolerances (value-scaled 2e-5 per op,
// 1e-4 for the networks). LKASEG_ONEDNN_WINOGRAD=0 keeps every convolution
// direct, as PyTorch runs them.
// A forward with fewer than 16 input channels (the network's first
// convolution, 4 MRI channels) stays direct: its Winograd transform costs
// more than it saves (measured: 17 ms against 1.2 ms at 8x4x128x128 -> 32,
// one thread), while its weight gradient still gains from Winograd.
dnnl::algorithm algo(const ConvGeom& g, Pass pass) {
  static const bool wino = [] {
    const char* e = std::getenv("LKASEG_ONEDNN_WINOGRAD");
    return !(e && e[0] == '0');
  }();
  const bool narrow_fwd = g.c_in < 16 && (pass == Pass::Fwd || pass == Pass::FwdAcc);
  return wino && !narrow_fwd && g.kh == 3 && g.kw == 3 && g.stride == 1 && g.dil == 1 && g.groups == 1
             ? dnnl::algorithm::convolution_winograd
             : dnnl::algorithm::convolution_direct;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Geometry& d, bool bias, dnnl::algorithm al) {
  using F = dnnl::convolution_forward;
  const auto desc = bias ? F::desc(dnnl::prop_kind::forward_training, al, d.src_any,
                                   d.wei_any, d.bias, d.dst_any, d.strides, d.dilates, d.pad_l, d.pad_r)
                         : F::desc(dnnl::prop_kind::forward_training, al, d.src_any,
                                   d.wei_any, d.dst_any, d.strides, d.dilates, d.pad_l, d.pad_r);
  return F::primitive_desc(desc, user_scratchpad(), engine());
}

std::unique_ptr<Plan> build(const ConvGeom& g, Pass pass, bool bias) {
  const Geometry d = geometry(g, bias);
  auto p = std::make_unique<Plan>();
  if (pass == Pass::Fwd || pass == Pass::FwdAcc) {
    const auto pd = forward_pd(d, bias, algo(g, pass));
    p->prim = dnnl::convolution_forward(pd);
    p->src = make_operand(d.src, pd.src_desc(), true, false, false);
    p->wei = make_operand(d.wei, pd.weights_desc(), true, false, false);
    p->dst = make_operand(d.dst, pd.dst_desc(), false, pass == Pass::Fwd, pass == Pass::FwdAcc);
    p->bias = d.bias;
    p->scratchpad = pd.scratchpad_desc();
  } else if (pass == Pass::BwdData) {
    using B = dnnl::convolution_backward_data;
    const auto hint = forward_pd(d, false, algo(g, pass));
    const B::desc desc(algo(g, pass), d.src_any, d.wei_any, d.dst_any, d.strides, d.dilates,
                       d.pad_l, d.pad_r);
    const B::primitive_desc pd(desc, user_scratchpad(), engine(), hint);
    p->prim = B(pd);
    p->src = make_operand(d.src, pd.diff_src_desc(), false, true, true);
    p->wei = make_operand(d.wei, pd.weights_desc(), true, false, false);
    p->dst = make_operand(d.dst, pd.diff_dst_desc(), true, false, false);
    p->scratchpad = pd.scratchpad_desc();
  } else {
    using B = dnnl::convolution_backward_weights;
    const auto hint = forward_pd(d, bias, algo(g, pass));
    const auto desc = bias ? B::desc(algo(g, pass), d.src_any, d.wei_any, d.bias, d.dst_any,
                                     d.strides, d.dilates, d.pad_l, d.pad_r)
                           : B::desc(algo(g, pass), d.src_any, d.wei_any, d.dst_any, d.strides,
                                     d.dilates, d.pad_l, d.pad_r);
    const B::primitive_desc pd(desc, user_scratchpad(), engine(), hint);
    p->prim = B(pd);
    p->src = make_operand(d.src, pd.src_desc(), true, false, false);
    p->wei = make_operand(d.wei, pd.diff_weights_desc(), false, true, true);
    p->dst = make_operand(d.dst, pd.diff_dst_desc(), true, false, false);
    p->bias = d.bias;
    p->scratchpad = pd.scratchpad_desc();
  }
  return p;
}

// The plan for (geometry, pass), built on first use; null when oneDNN
// refuses it (remembered, so the fallback costs nothing the next time).
const Plan* plan(const ConvGeom& g, Pass pass, bool bias) {
  static std::mutex m;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  const Key k = key_of(g, pass, bias);
  std::lock_guard<std::mutex> lock(m);
  auto it = plans.find(k);
  if (it != plans.end()) return it->second.get();
  std::unique_ptr<Plan> p;
  try {
    p = build(g, pass, bias);
  } catch (const dnnl::error&) {
    p.reset();  // unimplemented or unsupported geometry: the caller falls back
  }
  return plans.emplace(k, std::move(p)).first->second.get();
}

memory scratchpad(const Plan& p, Scratch& s) { return memory(p.scratchpad, engine(), s.pad.get(p.scratchpad.get_size())); }

[[noreturn]] void fail(const char* pass, const dnnl::error& e) {
  throw std::runtime_error(std::string("oneDNN ") + pass + ": " + e.what() + " (status " + std::to_string(e.status) + ")");
}

}  // namespace

bool onednn_available() { return true; }

const char* onednn_version() {
  static const std::string v = [] {
    const dnnl_version_t* ver = dnnl_version();
    return std::to_string(ver->major) + "." + std::to_string(ver->minor) + "." + std::to_string(ver->patch);
  }();
  return v.c_str();
}

namespace {

bool forward(const ConvGeom& g, const float* x, const float* w, const float* b, float* y, bool accumulate,
             float* kept_src, float* kept_wei) {
  const Plan* p = plan(g, accumulate ? Pass::FwdAcc : Pass::Fwd, b != nullptr);
  if (!p) return false;
  Scratch& s = scratch();
  try {
    const memory src = bring_in(p->src, x, s.src, s.stream, kept_src);
    const memory wei = bring_in(p->wei, w, s.wei, s.stream, kept_wei);
    memory user_dst(p->dst.user, engine(), y);
    const bool direct = p->dst.same() && !accumulate;
    memory dst = direct ? user_dst : memory(p->dst.prim, engine(), s.dst.get(p->dst.prim.get_size()));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_WEIGHTS, wei},
                                         {DNNL_ARG_DST, dst},
                                         {DNNL_ARG_SCRATCHPAD, scratchpad(*p, s)}};
    if (b) args.emplace(DNNL_ARG_BIAS, memory(p->bias, engine(), const_cast<float*>(b)));
    p->prim.execute(s.stream, args);
    if (accumulate) p->dst.out_sum.execute(s.stream, dst, user_dst);
    else if (!direct) p->dst.out.execute(s.stream, dst, user_dst);
    s.stream.wait();
  } catch (const dnnl::error& e) {
    fail("convolution forward", e);
  }
  return true;
}

}  // namespace

bool onednn_conv2d_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                       bool accumulate) {
  return forward(g, x, w, b, y, accumulate, nullptr, nullptr);
}

bool onednn_conv2d_kept_floats(const ConvGeom& g, bool bias, int64_t* src_floats, int64_t* wei_floats) {
  const Plan* p = plan(g, Pass::Fwd, bias);
  if (!p) return false;
  *src_floats = p->src.same() ? 0 : static_cast<int64_t>(p->src.prim.get_size() / sizeof(float));
  *wei_floats = p->wei.same() ? 0 : static_cast<int64_t>(p->wei.prim.get_size() / sizeof(float));
  return true;
}

bool onednn_conv2d_fwd_keep(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                            float* kept_src, float* kept_wei) {
  return forward(g, x, w, b, y, false, kept_src, kept_wei);
}

bool onednn_conv2d_bwd(const ConvGeom& g, const float* dy, const float* x, const float* w, bool bias, float* dx,
                       bool dx_first, float* dw, bool dw_first, float* db, bool db_first, const float* kept_src,
                       const float* kept_wei) {
  const Plan* pd = dx ? plan(g, Pass::BwdData, false) : nullptr;
  const Plan* pw = dw || db ? plan(g, Pass::BwdWeight, db != nullptr) : nullptr;
  if ((dx && !pd) || ((dw || db) && !pw)) return false;
  // The forward's plan, whose layouts kept_src / kept_wei are in.
  const Plan* pf = kept_src || kept_wei ? plan(g, Pass::Fwd, bias) : nullptr;
  const auto kept = [&](const float* k, const Operand* fwd, const Operand& want) {
    return k && fwd && !fwd->same() && fwd->prim == want.prim;
  };
  Scratch& s = scratch();
  try {
    memory ddst_d, ddst_w;  // dy, reordered once when both primitives take the same layout
    if (pd) ddst_d = bring_in(pd->dst, dy, s.dst, s.stream);
    if (pw) ddst_w = pd && pw->dst.prim == pd->dst.prim ? ddst_d : bring_in(pw->dst, dy, s.dst2, s.stream);
    if (pd) {
      const memory wei = kept(kept_wei, pf ? &pf->wei : nullptr, pd->wei)
                             ? memory(pd->wei.prim, engine(), const_cast<float*>(kept_wei))
                             : bring_in(pd->wei, w, s.wei, s.stream);
      const memory dsrc = out_mem(pd->src, dx, dx_first, s.src);
      pd->prim.execute(s.stream, {{DNNL_ARG_DIFF_DST, ddst_d},
                                  {DNNL_ARG_WEIGHTS, wei},
                                  {DNNL_ARG_DIFF_SRC, dsrc},
                                  {DNNL_ARG_SCRATCHPAD, scratchpad(*pd, s)}});
      finish_out(pd->src, dsrc, dx, dx_first, s.stream);
    }
    if (pw) {
      const memory src = kept(kept_src, pf ? &pf->src : nullptr, pw->src)
                             ? memory(pw->src.prim, engine(), const_cast<float*>(kept_src))
                             : bring_in(pw->src, x, s.src, s.stream);
      const memory dwei = dw ? out_mem(pw->wei, dw, dw_first, s.wei)
                             : memory(pw->wei.prim, engine(), s.wei.get(pw->wei.prim.get_size()));
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                           {DNNL_ARG_DIFF_DST, ddst_w},
                                           {DNNL_ARG_DIFF_WEIGHTS, dwei},
                                           {DNNL_ARG_SCRATCHPAD, scratchpad(*pw, s)}};
      float* dbias = db ? static_cast<float*>(s.bias.get(static_cast<size_t>(g.c_out) * sizeof(float))) : nullptr;
      if (db) args.emplace(DNNL_ARG_DIFF_BIAS, memory(pw->bias, engine(), dbias));
      pw->prim.execute(s.stream, args);
      if (dw) finish_out(pw->wei, dwei, dw, dw_first, s.stream);
      s.stream.wait();
      if (db)
        for (int64_t c = 0; c < g.c_out; ++c) db[c] = db_first ? dbias[c] : db[c] + dbias[c];
    }
    s.stream.wait();
  } catch (const dnnl::error& e) {
    fail("convolution backward", e);
  }
  return true;
}

bool onednn_conv2d_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  return onednn_conv2d_bwd(g, dy, nullptr, w, false, dx, false, nullptr, false, nullptr, false, nullptr, nullptr);
}

bool onednn_conv2d_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db) {
  return onednn_conv2d_bwd(g, dy, x, nullptr, false, nullptr, false, dw, false, db, false, nullptr, nullptr);
}

#endif

}  // namespace lk::cpu
