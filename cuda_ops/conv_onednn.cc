// Channels-last convolution through oneDNN with a cached primitive, for CPU inference (conv_onednn.py).
//
// Built by onednn_library.py into a shared library of its own, against one oneDNN (version 2 as Jittor ships
// it, or version 3 from the onednn-cpu-gomp wheel, whose bf16 kernels use AMX), and called through the plain C
// functions at the end of this file. The primitive for a shape is created once and kept; source and destination
// stay NHWC (the layout this project's CPU inference keeps between the layers of a stack); the weights (small
// next to the activations) are reordered on each call into the layout and type the primitive prefers; a
// (leaky) ReLU can be fused. In bf16 mode the source is converted to bfloat16 and the convolution accumulates
// and writes float32, so the layers around it are unchanged (Jittor 1.3.11 has no bf16 convolution on the
// CPU). In fp32 mode it computes what Jittor's own convolution does, to float rounding.

#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "dnnl.hpp"

namespace {

struct Conv {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
    dnnl::memory src_low;  // bf16 copy of the source (bf16 mode only)
    dnnl::memory weights;  // weights in the primitive's layout and type
};

dnnl::engine& engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

// The primitive descriptor of one convolution: the two major versions of oneDNN spell it differently.
dnnl::convolution_forward::primitive_desc describe(const dnnl::memory::desc& src, const dnnl::memory::desc& wei,
                                                   const dnnl::memory::desc& bias, const dnnl::memory::desc& dst,
                                                   int stride, int pad, int dilation, bool relu, float slope) {
    using namespace dnnl;
    primitive_attr attr;
    if (relu) {
        post_ops ops;
#if DNNL_VERSION_MAJOR >= 3
        ops.append_eltwise(algorithm::eltwise_relu, slope, 0.f);
#else
        ops.append_eltwise(1.f, algorithm::eltwise_relu, slope, 0.f);
#endif
        attr.set_post_ops(ops);
    }
    const memory::dims strides{stride, stride}, dilations{dilation - 1, dilation - 1}, pads{pad, pad};
#if DNNL_VERSION_MAJOR >= 3
    return convolution_forward::primitive_desc(engine(), prop_kind::forward_inference,
                                               algorithm::convolution_direct, src, wei, bias, dst, strides,
                                               dilations, pads, pads, attr);
#else
    auto desc = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, src, wei,
                                          bias, dst, strides, dilations, pads, pads);
    return convolution_forward::primitive_desc(desc, attr, engine());
#endif
}

// The cached convolution of one shape and mode. Shapes: source N x C x H x W, weights O x C x KH x KW,
// destination N x O x OH x OW (NHWC in memory), symmetric padding, stride, dilation (PyTorch's convention).
// ``relu``: whether a ReLU follows, with negative slope ``slope`` (0: plain ReLU, 0.1: PWC-Net's leaky one).
Conv& get(int n, int c, int h, int w, int o, int kh, int kw, int oh, int ow, int stride, int pad, int dilation,
          bool bf16, bool relu, float slope) {
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
    auto pd = describe(memory::desc({n, c, h, w}, low, nhwc),
                       memory::desc({o, c, kh, kw}, low, memory::format_tag::any),
                       memory::desc({o}, f32, memory::format_tag::x), memory::desc({n, o, oh, ow}, f32, nhwc),
                       stride, pad, dilation, relu, slope);
    auto conv = std::unique_ptr<Conv>(new Conv{pd, convolution_forward(pd), {}, memory(pd.weights_desc(), engine())});
    if (bf16) conv->src_low = memory(pd.src_desc(), engine());
    return *cache.emplace(key, std::move(conv)).first->second;
}

void forward(const float* x, const float* weight, const float* bias, float* out, int n, int h, int w, int c, int o,
             int kh, int kw, int oh, int ow, int stride, int pad, int dilation, bool bf16, bool relu, float slope) {
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

int report(const std::exception& e, char* error, int error_size) {
    std::snprintf(error, error_size, "%s", e.what());
    return 1;
}

}  // namespace

extern "C" {

// out[n, oh, ow, o] = conv(x[n, h, w, c], weight[o, c, kh, kw]) + bias[o] (then a ReLU of negative slope
// ``slope`` when ``relu``). Returns 0, or 1 with oneDNN's message in ``error``.
int sbvsr_conv_forward(const float* x, const float* weight, const float* bias, float* out, int n, int h, int w,
                       int c, int o, int kh, int kw, int oh, int ow, int stride, int pad, int dilation, int bf16,
                       int relu, float slope, char* error, int error_size) {
    try {
        forward(x, weight, bias, out, n, h, w, c, o, kh, kw, oh, ow, stride, pad, dilation, bf16, relu, slope);
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_size);
    }
}

// "oneDNN <version>; <implementation>" of a 3x3 convolution 128 -> 128 channels at 64 x 64 in the given
// precision: which kernels (and so which instructions) this machine's convolutions get. Returns 0 or 1.
int sbvsr_describe(int bf16, char* text, int text_size) {
    try {
        const auto* v = dnnl::version();
        auto& conv = get(1, 128, 64, 64, 128, 3, 3, 64, 64, 1, 1, 1, bf16, false, 0.f);
        std::snprintf(text, text_size, "oneDNN %d.%d.%d; %s", v->major, v->minor, v->patch,
                      conv.pd.impl_info_str());
        return 0;
    } catch (const std::exception& e) {
        return report(e, text, text_size);
    }
}

}  // extern "C"
