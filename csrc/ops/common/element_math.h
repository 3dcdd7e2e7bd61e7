// Per-element arithmetic of the DFF ops, written once and compiled for both the CPU kernels
// (plain C++) and the CUDA kernels (nvcc, __host__ __device__). The CPU tests therefore check
// the very arithmetic the GPU runs. Semantics follow the MXNet operators the official Deep
// Feature Flow release used (semantics: docs/ops.md).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DFF_HD __host__ __device__ __forceinline__
#else
#define DFF_HD inline
#endif

namespace dff {
namespace math {

// exp in the input's precision on both sides (the original decodes proposals in float32).
template <typename T>
DFF_HD T texp(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

template <typename T>
DFF_HD T tmin(T a, T b) { return a < b ? a : b; }
template <typename T>
DFF_HD T tmax(T a, T b) { return a > b ? a : b; }

// ------------------------------------------------------------------------------------------
// PSROIPooling (MXNet contrib.PSROIPooling / R-FCN): the spatial extent of one output bin.
// roi = [batch_index, x1, y1, x2, y2] in input-image pixels. The image-space corners are rounded
// (C round: half away from zero) *before* scaling, the far edge gets +1, the minimum roi side
// is 0.1 feature pixels, bins start at floor() and end at ceil(), all clipped to [0, H] / [0, W].
// ------------------------------------------------------------------------------------------
struct PSBin {
  int hstart, hend, wstart, wend;
  DFF_HD bool empty() const { return hend <= hstart || wend <= wstart; }
  DFF_HD int area() const { return (hend - hstart) * (wend - wstart); }
};

template <typename T>
DFF_HD PSBin psroi_bin(const T* roi, T spatial_scale, int pooled_size, int height, int width,
                       int ph, int pw) {
  const T roi_start_w = static_cast<T>(round(roi[1])) * spatial_scale;
  const T roi_start_h = static_cast<T>(round(roi[2])) * spatial_scale;
  const T roi_end_w = static_cast<T>(round(roi[3]) + T(1)) * spatial_scale;
  const T roi_end_h = static_cast<T>(round(roi[4]) + T(1)) * spatial_scale;
  const T roi_w = tmax(roi_end_w - roi_start_w, T(0.1));
  const T roi_h = tmax(roi_end_h - roi_start_h, T(0.1));
  const T bin_w = roi_w / static_cast<T>(pooled_size);
  const T bin_h = roi_h / static_cast<T>(pooled_size);
  PSBin b;
  b.hstart = static_cast<int>(floor(static_cast<T>(ph) * bin_h + roi_start_h));
  b.wstart = static_cast<int>(floor(static_cast<T>(pw) * bin_w + roi_start_w));
  b.hend = static_cast<int>(ceil(static_cast<T>(ph + 1) * bin_h + roi_start_h));
  b.wend = static_cast<int>(ceil(static_cast<T>(pw + 1) * bin_w + roi_start_w));
  b.hstart = tmin(tmax(b.hstart, 0), height);
  b.hend = tmin(tmax(b.hend, 0), height);
  b.wstart = tmin(tmax(b.wstart, 0), width);
  b.wend = tmin(tmax(b.wend, 0), width);
  return b;
}

// Input channel read by output (ctop, ph, pw): class-major layout, channel = (ctop*G + gh)*G + gw.
DFF_HD int psroi_channel(int ctop, int ph, int pw, int pooled_size, int group_size) {
  int gh = static_cast<int>(floor(static_cast<float>(ph) * group_size / pooled_size));
  int gw = static_cast<int>(floor(static_cast<float>(pw) * group_size / pooled_size));
  gh = tmin(tmax(gh, 0), group_size - 1);
  gw = tmin(tmax(gw, 0), group_size - 1);
  return (ctop * group_size + gh) * group_size + gw;
}

// Mean of one channel over the bin (0 for an empty bin): element (h, w) at plane[h * stride_h + w * stride_w],
// so any memory format reads in place (NCHW: (W, 1); channels_last: (W*C, C)). Summed row by row.
template <typename T>
DFF_HD T psroi_bin_mean(const T* plane, int64_t stride_h, int64_t stride_w, const PSBin& b) {
  if (b.empty()) return T(0);
  T sum = T(0);
  for (int h = b.hstart; h < b.hend; ++h)
    for (int w = b.wstart; w < b.wend; ++w) sum += plane[h * stride_h + w * stride_w];
  return sum / static_cast<T>(b.area());
}

// ------------------------------------------------------------------------------------------
// Flow warp (MXNet GridGenerator(transform_type='warp') + BilinearSampler, fused):
// out[n,c,y,x] = bilinear sample of data[n,c] at (x + flow_x, y + flow_y); each of the four
// neighbours that lies outside the map contributes 0.
// ------------------------------------------------------------------------------------------
template <typename T>
struct WarpTaps {
  int64_t off[4];  // plane offsets of (y0,x0), (y0,x0+1), (y0+1,x0), (y0+1,x0+1); -1 = outside
  T fx, fy;        // fractional parts: weight of the right / lower neighbours
};

template <typename T>
DFF_HD WarpTaps<T> warp_taps(T xs, T ys, int height, int width) {
  WarpTaps<T> t;
  const T xf = floor(xs), yf = floor(ys);
  t.fx = xs - xf;
  t.fy = ys - yf;
  // Far-away samples: keep the integer conversion defined; they are outside anyway.
  const bool finite = xf > T(-2) && xf < static_cast<T>(width) + T(1) && yf > T(-2) &&
                      yf < static_cast<T>(height) + T(1);
  const int x0 = finite ? static_cast<int>(xf) : -2;
  const int y0 = finite ? static_cast<int>(yf) : -2;
  const bool vx0 = x0 >= 0 && x0 <= width - 1, vx1 = x0 + 1 >= 0 && x0 + 1 <= width - 1;
  const bool vy0 = y0 >= 0 && y0 <= height - 1, vy1 = y0 + 1 >= 0 && y0 + 1 <= height - 1;
  const int64_t base = static_cast<int64_t>(y0) * width + x0;
  t.off[0] = (vy0 && vx0) ? base : -1;
  t.off[1] = (vy0 && vx1) ? base + 1 : -1;
  t.off[2] = (vy1 && vx0) ? base + width : -1;
  t.off[3] = (vy1 && vx1) ? base + width + 1 : -1;
  return t;
}

template <typename T>
DFF_HD T tap_value(const T* plane, int64_t off) { return off >= 0 ? plane[off] : T(0); }

template <typename T>
DFF_HD void warp_weights(const WarpTaps<T>& t, T w[4]) {
  w[0] = (T(1) - t.fy) * (T(1) - t.fx);
  w[1] = (T(1) - t.fy) * t.fx;
  w[2] = t.fy * (T(1) - t.fx);
  w[3] = t.fy * t.fx;
}

// One channel's sample; pixel y*W + x of the channel at plane[(y*W + x) * pixel_stride] (NCHW: 1,
// channels_last: C).
template <typename T>
DFF_HD T warp_sample(const T* plane, const WarpTaps<T>& t, int64_t pixel_stride = 1) {
  T w[4];
  warp_weights(t, w);
  T v = T(0);
  for (int k = 0; k < 4; ++k)
    if (t.off[k] >= 0) v += w[k] * plane[t.off[k] * pixel_stride];
  return v;
}

// d(sample)/dx and d(sample)/dy at the sampling point (one-sided at integer positions, as MXNet).
template <typename T>
DFF_HD void warp_sample_grad_xy(const T* plane, const WarpTaps<T>& t, T* dx, T* dy) {
  const T v00 = tap_value(plane, t.off[0]), v01 = tap_value(plane, t.off[1]);
  const T v10 = tap_value(plane, t.off[2]), v11 = tap_value(plane, t.off[3]);
  *dx = (T(1) - t.fy) * (v01 - v00) + t.fy * (v11 - v10);
  *dy = (T(1) - t.fx) * (v10 - v00) + t.fx * (v11 - v01);
}

// ------------------------------------------------------------------------------------------
// Boxes with the "+1" pixel convention (py-faster-rcnn / MXNet Proposal).
// ------------------------------------------------------------------------------------------

// Base anchor `a` of (ratio-major, scale-minor) order around the 16x16 base box [0,0,15,15].
// MXNet rule: size = w*h; size_ratios = floor(size / ratio); ws = floor(sqrt(size_ratios)+0.5)*scale,
// hs = floor(ws/scale*ratio + 0.5)*scale; centred at 7.5.
DFF_HD void base_anchor(float feature_stride, float ratio, float scale, float out[4]) {
  const float w = feature_stride, h = feature_stride;
  const float x_ctr = 0.5f * (w - 1.0f), y_ctr = 0.5f * (h - 1.0f);
  const float size = w * h;
  const float size_ratios = floorf(size / ratio);
  const float new_w = floorf(sqrtf(size_ratios) + 0.5f) * scale;
  const float new_h = floorf((new_w / scale * ratio) + 0.5f) * scale;
  out[0] = x_ctr - 0.5f * (new_w - 1.0f);
  out[1] = y_ctr - 0.5f * (new_h - 1.0f);
  out[2] = x_ctr + 0.5f * (new_w - 1.0f);
  out[3] = y_ctr + 0.5f * (new_h - 1.0f);
}

// Decode (dx, dy, dw, dh) against an anchor and clip to [0, im_w-1] x [0, im_h-1].
template <typename T>
DFF_HD void decode_clip_box(const T anchor[4], T dx, T dy, T dw, T dh, T im_h, T im_w, T out[4]) {
  const T width = anchor[2] - anchor[0] + T(1);
  const T height = anchor[3] - anchor[1] + T(1);
  const T ctr_x = anchor[0] + T(0.5) * (width - T(1));
  const T ctr_y = anchor[1] + T(0.5) * (height - T(1));
  const T pred_ctr_x = dx * width + ctr_x;
  const T pred_ctr_y = dy * height + ctr_y;
  const T pred_w = texp(dw) * width;
  const T pred_h = texp(dh) * height;
  out[0] = tmax(tmin(pred_ctr_x - T(0.5) * (pred_w - T(1)), im_w - T(1)), T(0));
  out[1] = tmax(tmin(pred_ctr_y - T(0.5) * (pred_h - T(1)), im_h - T(1)), T(0));
  out[2] = tmax(tmin(pred_ctr_x + T(0.5) * (pred_w - T(1)), im_w - T(1)), T(0));
  out[3] = tmax(tmin(pred_ctr_y + T(0.5) * (pred_h - T(1)), im_h - T(1)), T(0));
}

// One image of the proposal op: its size (im_info = [height, width, scale]), the feature cells that
// lie inside it (int(height / stride) x int(width / stride); the others are padding) and the smallest
// box side kept, min_size * scale.
template <typename T>
struct ProposalImage {
  T im_h, im_w, min_size;
  int64_t real_h, real_w;
};

template <typename T>
DFF_HD ProposalImage<T> proposal_image(const T* im_info, int64_t feature_stride, T min_size) {
  ProposalImage<T> img;
  img.im_h = im_info[0];
  img.im_w = im_info[1];
  img.real_h = static_cast<int64_t>(im_info[0] / static_cast<T>(feature_stride));
  img.real_w = static_cast<int64_t>(im_info[1] / static_cast<T>(feature_stride));
  img.min_size = min_size * im_info[2];
  return img;
}

// Anchor `a` of feature cell (h, w) of one image (MXNet MultiProposal): the base anchor shifted to the
// cell, decoded with its deltas and clipped (box, 4 values), and its score, returned: the foreground
// probability, or -1 for a cell outside the image or a box with a side below min_size (such a box is
// also grown by min_size / 2 on every side, as the original). cls: the image's (2A, H, W)
// probabilities (foreground = channels A..2A-1); deltas: its (4A, H, W) deltas, channel a*4 + k;
// base_anchors: the A base anchors (base_anchor above), 4 floats each.
template <typename T>
DFF_HD T proposal_anchor(const float* base_anchors, const T* cls, const T* deltas, int64_t A, int64_t H, int64_t W,
                         int64_t feature_stride, int64_t a, int64_t h, int64_t w, const ProposalImage<T>& img,
                         T box[4]) {
  const int64_t cell = h * W + w, plane = H * W;
  const float* base = base_anchors + 4 * a;
  const T anchor[4] = {static_cast<T>(base[0] + w * feature_stride), static_cast<T>(base[1] + h * feature_stride),
                       static_cast<T>(base[2] + w * feature_stride), static_cast<T>(base[3] + h * feature_stride)};
  decode_clip_box(anchor, deltas[(a * 4 + 0) * plane + cell], deltas[(a * 4 + 1) * plane + cell],
                  deltas[(a * 4 + 2) * plane + cell], deltas[(a * 4 + 3) * plane + cell], img.im_h, img.im_w, box);
  T score = cls[(A + a) * plane + cell];
  if (h >= img.real_h || w >= img.real_w) score = T(-1);
  const T iw = box[2] - box[0] + T(1), ih = box[3] - box[1] + T(1);
  if (iw < img.min_size || ih < img.min_size) {
    box[0] -= img.min_size / 2;
    box[1] -= img.min_size / 2;
    box[2] += img.min_size / 2;
    box[3] += img.min_size / 2;
    score = T(-1);
  }
  return score;
}

template <typename T>
DFF_HD T box_area_plus1(const T* b) { return (b[2] - b[0] + T(1)) * (b[3] - b[1] + T(1)); }

// IoU with +1 areas, exactly as the original greedy NMS evaluates it (0 when the boxes do not overlap).
template <typename T>
DFF_HD T iou_plus1(const T* a, const T* b, T area_a, T area_b) {
  const T iw = tmin(a[2], b[2]) - tmax(a[0], b[0]) + T(1);
  const T ih = tmin(a[3], b[3]) - tmax(a[1], b[1]) + T(1);
  if (!(iw > T(0) && ih > T(0))) return T(0);
  const T inter = iw * ih;
  return inter / (area_a + area_b - inter);
}

}  // namespace math
}  // namespace dff
