// The work list of a multi-tensor kernel (AdamW: kernels/cuda/adamw.h; the
// loss scaler's unscale: kernels/cuda/loss_scale.h), one launch over every
// tensor. A table is the kernel's per-tensor records (Rec: trivially
// copyable, with an int64_t `numel`), then per kTableChunk elements of each a
// (tensor, chunk) entry; block b of the launch takes entries b, b + gridDim.x,
// ...: no per-element search, and many small tensors cost no more than one
// large one. A table depends only on the tensors' pointers and sizes, so its
// owner builds it on the host once, uploads it once (8-byte aligned) and
// keeps it (engine/cuda/backend_cuda_ops.cpp: one per optimiser or loss
// scaler state); a step that launches over it can be captured in a CUDA Graph
// and replayed.
#pragma once

#include <climits>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cuda/runtime_api.h"

#if defined(__CUDACC__)
#define LK_TABLE_HD __host__ __device__ __forceinline__
#else
#define LK_TABLE_HD inline
#endif

LK_CUDA_NAMESPACE_BEGIN

inline constexpr int64_t kTableChunk = 4096;       // elements per (tensor, chunk) entry
inline constexpr int64_t kTableMaxBlocks = 65535;  // a launch's grid at most (blocks loop over the rest)

struct TableChunk {
  int32_t tensor;  // index into the records
  int32_t index;   // elements [index * kTableChunk, (index + 1) * kTableChunk) of it
};

// The host image of a device table: bytes to upload as they are, and how
// many chunks it lists (0: nothing to do).
struct TensorTable {
  std::vector<unsigned char> bytes;
  int64_t chunks = 0;
  size_t tensor_bytes = 0;  // offset of the chunk list
};

// The table of `recs`, each of numel >= 0 elements (empty ones get no chunk;
// the caller leaves out the tensors a launch must not touch).
// cudaErrorInvalidValue for a null table, a negative numel, or more than
// INT32_MAX records or chunks of one record.
template <class Rec>
cudaError_t make_tensor_table(const std::vector<Rec>& recs, TensorTable* table) {
  static_assert(std::is_trivially_copyable_v<Rec> && alignof(Rec) <= 8);
  if (!table || recs.size() > static_cast<size_t>(INT32_MAX)) return cudaErrorInvalidValue;
  std::vector<TableChunk> chunks;
  for (size_t r = 0; r < recs.size(); ++r) {
    if (recs[r].numel < 0) return cudaErrorInvalidValue;
    const int64_t n = (recs[r].numel + kTableChunk - 1) / kTableChunk;
    if (n > INT32_MAX) return cudaErrorInvalidValue;
    for (int64_t i = 0; i < n; ++i) chunks.push_back({static_cast<int32_t>(r), static_cast<int32_t>(i)});
  }
  table->tensor_bytes = (recs.size() * sizeof(Rec) + 7) / 8 * 8;
  table->chunks = static_cast<int64_t>(chunks.size());
  table->bytes.assign(table->tensor_bytes + chunks.size() * sizeof(TableChunk), 0);
  if (!recs.empty()) std::memcpy(table->bytes.data(), recs.data(), recs.size() * sizeof(Rec));
  if (!chunks.empty())
    std::memcpy(table->bytes.data() + table->tensor_bytes, chunks.data(), chunks.size() * sizeof(TableChunk));
  return cudaSuccess;
}

// A table as a kernel reads it: the records and the chunks at `device` (the
// table's bytes uploaded there).
template <class Rec>
struct TableView {
  const Rec* tensors;
  const TableChunk* chunks;
  int64_t n;  // chunks
};
template <class Rec>
TableView<Rec> table_view(const TensorTable& t, const void* device) {
  const auto* base = static_cast<const unsigned char*>(device);
  return {static_cast<const Rec*>(device), reinterpret_cast<const TableChunk*>(base + t.tensor_bytes), t.chunks};
}
// Blocks of a launch over n chunks.
inline int64_t table_blocks(int64_t n) { return n < kTableMaxBlocks ? n : kTableMaxBlocks; }

// Elements [begin, end) of entry `ch` of a tensor of `numel` elements.
struct ChunkRange {
  int64_t begin, end;
};
LK_TABLE_HD ChunkRange chunk_range(TableChunk ch, int64_t numel) {
  const int64_t begin = int64_t(ch.index) * kTableChunk;
  return {begin, begin + kTableChunk < numel ? begin + kTableChunk : numel};
}

LK_CUDA_NAMESPACE_END
