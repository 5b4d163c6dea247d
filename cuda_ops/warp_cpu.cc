// Backward warping with a validity mask, for CPU inference (warp.py): what PWC-Net's and the reconstruction's
// grid_sample calls compute (bilinear, align_corners=True), in one pass over the image instead of Jittor's
// generic gather, which took a tenth of a bf16 inference window.
//
// out[b, c, y, x] = bilinear(image[b, c], y + flow[b, 1, y, x], x + flow[b, 0, y, x]) * mask[b, 0, y, x]
// where the mask is 1 when the bilinear weights of the taps inside the image sum to more than the threshold
// (or to at least it, ``inclusive``), else 0. Taps outside the image read 0 (``border`` false) or the nearest
// edge pixel (``border`` true: the same values as clamping the sample coordinate into the image).

#include <cmath>
#include <vector>

namespace sbvsr_warp {

template <typename T>
void forward_cpu(const T* image, const T* flow, T* out, T* mask, int batch, int channels, int h, int w, bool border,
                 float threshold, bool inclusive) {
    const long plane = long(h) * w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++) {
        for (int y = 0; y < h; y++) {
            // the row's taps first (offsets into a plane, weights; 0 where masked or outside) ...
            std::vector<long> offset(4 * long(w));
            std::vector<float> weight(4 * long(w));
            const T* fx = flow + long(b) * 2 * plane + long(y) * w;
            const T* fy = fx + plane;
            T* valid = mask + long(b) * plane + long(y) * w;
            for (int x = 0; x < w; x++) {
                // clamped a little outside the image: the same taps and weights there, and no integer overflow
                const float sx = std::fmin(std::fmax(x + float(fx[x]), -2.f), w + 1.f);
                const float sy = std::fmin(std::fmax(y + float(fy[x]), -2.f), h + 1.f);
                const float x0f = std::floor(sx), y0f = std::floor(sy), ax = sx - x0f, ay = sy - y0f;
                const int x0 = int(x0f), y0 = int(y0f);
                const float wk[4] = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
                const int tx[4] = {x0, x0 + 1, x0, x0 + 1}, ty[4] = {y0, y0, y0 + 1, y0 + 1};
                float inside = 0;
                for (int k = 0; k < 4; k++) {
                    const bool in = tx[k] >= 0 && tx[k] < w && ty[k] >= 0 && ty[k] < h;
                    if (in) inside += wk[k];
                    const int cx = tx[k] < 0 ? 0 : tx[k] >= w ? w - 1 : tx[k];
                    const int cy = ty[k] < 0 ? 0 : ty[k] >= h ? h - 1 : ty[k];
                    offset[4 * x + k] = long(cy) * w + cx;
                    weight[4 * x + k] = border || in ? wk[k] : 0.f;
                }
                const bool keep = inclusive ? inside >= threshold : inside > threshold;
                valid[x] = keep ? T(1) : T(0);
                if (!keep)
                    for (int k = 0; k < 4; k++) weight[4 * x + k] = 0.f;
            }
            // ... then every channel, reading near its row and writing it in order
            for (int c = 0; c < channels; c++) {
                const T* src = image + (long(b) * channels + c) * plane;
                T* dst = out + (long(b) * channels + c) * plane + long(y) * w;
                for (int x = 0; x < w; x++) {
                    const long* o = &offset[4 * x];
                    const float* k = &weight[4 * x];
                    dst[x] = T(k[0] * float(src[o[0]]) + k[1] * float(src[o[1]]) + k[2] * float(src[o[2]]) +
                               k[3] * float(src[o[3]]));
                }
            }
        }
    }
}

}  // namespace sbvsr_warp
