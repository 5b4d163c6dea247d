// What oneDNN (version 2 as Jittor ships it, or version 3 from its wheel; cuda_ops/onednn_library.py) achieves
// on this machine for one 3x3 convolution shape, reached directly: the primitive is created once, its weights
// are reordered once into the layout oneDNN prefers, source and destination are NHWC (as this project's CPU
// inference keeps them), and only execute() is timed. Built and run by tools/bench_peak.py.
//
//   onednn_peak f32|bf16 REPEATS C O H W [C O H W ...]
//
// prints per shape: "shape C O H W impl=<oneDNN implementation> median_ms=<ms> gflops=<GFLOP/s>"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "dnnl.hpp"

using namespace dnnl;

static double measure(int c, int o, int h, int w, memory::data_type dt, int repeats, std::string& impl) {
    engine eng(engine::kind::cpu, 0);
    stream strm(eng);
    const memory::dims src_dims{1, c, h, w}, wei_dims{o, c, 3, 3}, dst_dims{1, o, h, w}, bias_dims{o};
    auto src_md = memory::desc(src_dims, dt, memory::format_tag::nhwc);
    auto dst_md = memory::desc(dst_dims, dt, memory::format_tag::nhwc);
    auto wei_md = memory::desc(wei_dims, dt, memory::format_tag::any);
    auto bias_md = memory::desc(bias_dims, memory::data_type::f32, memory::format_tag::x);
#if DNNL_VERSION_MAJOR >= 3
    auto pd = convolution_forward::primitive_desc(eng, prop_kind::forward_inference, algorithm::convolution_direct,
                                                  src_md, wei_md, bias_md, dst_md, {1, 1}, {1, 1}, {1, 1});
#else
    auto desc = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, src_md,
                                          wei_md, bias_md, dst_md, {1, 1}, {1, 1}, {1, 1});
    auto pd = convolution_forward::primitive_desc(desc, eng);
#endif
    impl = pd.impl_info_str();
    memory src(src_md, eng), dst(dst_md, eng), bias(bias_md, eng);
    memory user_wei({wei_dims, dt, memory::format_tag::oihw}, eng), wei(pd.weights_desc(), eng);
    // fill with small values; the timing does not depend on them, but denormals would distort it
    for (auto* m : {&src, &user_wei, &bias}) {
        auto* p = static_cast<unsigned char*>(m->get_data_handle());
        size_t n = m->get_desc().get_size();
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 % 61 + 60);
    }
    reorder(user_wei, wei).execute(strm, user_wei, wei);
    convolution_forward conv(pd);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, bias},
                                         {DNNL_ARG_DST, dst}};
    conv.execute(strm, args);  // warm-up
    strm.wait();
    std::vector<double> ms;
    for (int r = 0; r < repeats; r++) {
        auto t0 = std::chrono::steady_clock::now();
        conv.execute(strm, args);
        strm.wait();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

int main(int argc, char** argv) {
    if (argc < 7 || (argc - 3) % 4 != 0) {
        std::fprintf(stderr, "usage: %s f32|bf16 REPEATS C O H W [C O H W ...]\n", argv[0]);
        return 2;
    }
    const std::string type = argv[1];
    const auto dt = type == "bf16" ? memory::data_type::bf16 : memory::data_type::f32;
    const int repeats = std::atoi(argv[2]);
    for (int i = 3; i < argc; i += 4) {
        int c = std::atoi(argv[i]), o = std::atoi(argv[i + 1]), h = std::atoi(argv[i + 2]), w = std::atoi(argv[i + 3]);
        std::string impl;
        try {
            double ms = measure(c, o, h, w, dt, repeats, impl);
            double gflop = 2.0 * c * o * 9 * h * w / 1e9;
            std::printf("shape %d %d %d %d impl=%s median_ms=%.3f gflops=%.1f\n", c, o, h, w, impl.c_str(), ms,
                        gflop / (ms / 1e3));
        } catch (const dnnl::error& e) {
            std::printf("shape %d %d %d %d impl=none error=%s\n", c, o, h, w, e.what());
        }
        std::fflush(stdout);
    }
    return 0;
}
