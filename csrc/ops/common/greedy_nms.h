// Host-side greedy NMS and stable descending argsort, used by the nms and proposal CPU kernels
// (and by the host reduction of the CUDA kernels' suppression masks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "element_math.h"

namespace dff {

// Indices of `scores` sorted by descending score; ties keep their index order (stable), as the
// original's stable sort. NaN sorts last.
template <typename T>
std::vector<int64_t> stable_argsort_desc(const T* scores, int64_t n) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](int64_t i) { return std::isnan(scores[i]) ? -INFINITY : static_cast<double>(scores[i]); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
  return order;
}

// Greedy NMS over boxes (K, 4) already in priority order: keep i unless a kept box overlaps it with
// IoU > threshold (+1 areas). Stops after max_keep kept boxes (<= 0: no limit). Returns positions.
template <typename T>
std::vector<int64_t> greedy_nms_sorted(const T* boxes, int64_t K, T threshold, int64_t max_keep) {
  std::vector<T> area(K);
  for (int64_t i = 0; i < K; ++i) area[i] = math::box_area_plus1(boxes + 4 * i);
  std::vector<char> suppressed(K, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < K; ++i) {
    if (max_keep > 0 && static_cast<int64_t>(keep.size()) >= max_keep) break;
    if (suppressed[i]) continue;
    keep.push_back(i);
    for (int64_t j = i + 1; j < K; ++j) {
      if (suppressed[j]) continue;
      if (math::iou_plus1(boxes + 4 * i, boxes + 4 * j, area[i], area[j]) > threshold) suppressed[j] = 1;
    }
  }
  return keep;
}

// Greedy reduction of a suppression bitmask (mask[i * blocks + j] bit b set when box i suppresses
// box 64*j + b, for j*64+b > i), as produced by the CUDA NMS kernel. Same result as greedy_nms_sorted.
inline std::vector<int64_t> reduce_nms_mask(const uint64_t* mask, int64_t K, int64_t max_keep) {
  const int64_t blocks = (K + 63) / 64;
  std::vector<uint64_t> removed(blocks, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < K; ++i) {
    if (max_keep > 0 && static_cast<int64_t>(keep.size()) >= max_keep) break;
    const int64_t nb = i / 64, ib = i % 64;
    if (removed[nb] & (1ULL << ib)) continue;
    keep.push_back(i);
    const uint64_t* row = mask + i * blocks;
    for (int64_t j = nb; j < blocks; ++j) removed[j] |= row[j];
  }
  return keep;
}

}  // namespace dff
