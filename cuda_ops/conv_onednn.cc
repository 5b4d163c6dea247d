// Channels-last convolution through oneDNN with a cached primitive, for CPU inference (conv_onednn.py).
//
// The primitive for a shape is created once and kept; source and destination stay NHWC (the layout this
// project's CPU inference keeps between the layers of a stack); the weights (small next to the activations)
// are reordered on each call into the layout and type the primitive prefers; a (leaky) ReLU can be fused. In bf16
// mode the source is converted to bfloat16 and the convolution accumulates and writes float32, so the
// layers around it are unchanged (Jittor 1.3.11 has no bf16 convolution on the CPU). In fp32 mode it
// computes what Jittor's own convolution does, to float rounding.

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "dnnl.hpp"

namespace sbvsr_onednn {

struct Conv {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
    dnnl::memory src_low;  // bf16 copy of the source (bf16 mode only)
    dnnl::memory weights;  // weights in the primitive's layout and type
};

inline dnnl::engine& engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

// The cached convolution of one shape and mode. Shapes: source N x C x H x W, weights O x C x KH x KW,
// destination N x O x OH x OW (NHWC in memory), symmetric padding, stride, dilation (PyTorch's convention).
// ``relu``: whether a ReLU follows, with negative slope ``slope`` (0: plain ReLU, 0.1: PWC-Net's leaky one).
inline Conv& get(int n, int c, int h, int w, int o, int kh, int kw, int oh, int ow, int stride, int pad,
                 int dilation, bool bf16, bool relu, float slope) {
    using namespace dnnl;
    static std::unordered_map<std::string, std::unique_ptr<Conv>> cache;
    static std::mutex lock;
    std::string key;
    for (int v : {n, c, h, w, o, kh, kw, oh, ow, stride, pad, dilation, int(bf16), int(relu)})
        key += std::to_string(v) + ",";
    key += std::to_string(slope);
    std::lock_guard<std::mutex> guard(lock);
    auto found = cache.find(key);
    if (found != cache.end()) return *found->second;

    const auto low = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
    const auto f32 = memory::data_type::f32;
    const auto nhwc = memory::format_tag::nhwc;
    auto src_md = memory::desc({n, c, h, w}, low, nhwc);
    auto wei_md = memory::desc({o, c, kh, kw}, low, memory::format_tag::any);
    auto bias_md = memory::desc({o}, f32, memory::format_tag::x);
    auto dst_md = memory::desc({n, o, oh, ow}, f32, nhwc);
    auto desc = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, src_md,
                                          wei_md, bias_md, dst_md, {stride, stride}, {dilation - 1, dilation - 1},
                                          {pad, pad}, {pad, pad});
    primitive_attr attr;
    if (relu) {
        post_ops ops;
        ops.append_eltwise(1.f, algorithm::eltwise_relu, slope, 0.f);
        attr.set_post_ops(ops);
    }
    auto conv = std::unique_ptr<Conv>(new Conv{convolution_forward::primitive_desc(desc, attr, engine()), {}, {}, {}});
    conv->prim = convolution_forward(conv->pd);
    if (bf16) conv->src_low = memory(conv->pd.src_desc(), engine());
    conv->weights = memory(conv->pd.weights_desc(), engine());
    return *cache.emplace(key, std::move(conv)).first->second;
}

// out[n, oh, ow, o] = conv(x[n, h, w, c], weight[o, c, kh, kw]) + bias[o] (then a ReLU of negative slope
// ``slope`` when ``relu``).
inline void forward(const float* x, const float* weight, const float* bias, float* out, int n, int h, int w, int c,
                    int o, int kh, int kw, int oh, int ow, int stride, int pad, int dilation, bool bf16,
                    bool relu, float slope) {
    using namespace dnnl;
    Conv& conv = get(n, c, h, w, o, kh, kw, oh, ow, stride, pad, dilation, bf16, relu, slope);
    stream strm(engine());
    const auto f32 = memory::data_type::f32;
    const auto nhwc = memory::format_tag::nhwc;
    memory src({{n, c, h, w}, f32, nhwc}, engine(), const_cast<float*>(x));
    memory user_weights({{o, c, kh, kw}, f32, memory::format_tag::oihw}, engine(), const_cast<float*>(weight));
    memory bias_mem({{o}, f32, memory::format_tag::x}, engine(), const_cast<float*>(bias));
    memory dst({{n, o, oh, ow}, f32, nhwc}, engine(), out);
    reorder(user_weights, conv.weights).execute(strm, user_weights, conv.weights);
    memory conv_src = src;
    if (bf16) {
        reorder(src, conv.src_low).execute(strm, src, conv.src_low);
        conv_src = conv.src_low;
    }
    conv.prim.execute(strm, {{DNNL_ARG_SRC, conv_src}, {DNNL_ARG_WEIGHTS, conv.weights}, {DNNL_ARG_BIAS, bias_mem},
                             {DNNL_ARG_DST, dst}});
    strm.wait();
}

}  // namespace sbvsr_onednn
