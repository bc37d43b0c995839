// Integer dot-product kernels written in C because Swift cannot reach the instructions they
// use: LLVM forms AVX-512 VNNI's `vpdpwssd` only from vector patterns that Swift's SIMD types
// do not produce, and Swift has no intrinsics. QForgeInteger calls them only after a run-time
// check of the CPU (`qf_cpu_has_avx512_vnni`); every function has the same arguments and
// results as its Swift counterpart in `Int16GEMM`, which the tests compare it with.
#ifndef CQFORGEKERNELS_H
#define CQFORGEKERNELS_H

#include <stdint.h>

/// 1 when this CPU runs AVX-512 F, BW and VNNI (and the OS saves their registers), else 0.
int qf_cpu_has_avx512_vnni(void);

/// `Int16GEMM.product` with `vpdpwssd`: C[r, j] = Σ_k A[r, k] · B[j, k] for rows 0..<rows (a
/// multiple of 6) and all panels · 16 columns of the packed B, at c[r · ldc + j]. Each lane adds
/// a pair of 16-bit products straight into its 32-bit sum (wrapping), so the result is exact
/// whenever every final C[r, j] fits Int32: no 16-bit chunks.
void qf_int16_gemm_vnni(const int16_t *a, long lda, long rows, const int16_t *b, long panels, long pairs,
                        int32_t *c, long ldc);

/// `Int16GEMM.directLoop` with `vpdpwssd`: C[r, p] for rows 0..<rows (a multiple of 4) and
/// positions 0..<positions (a multiple of 48), exact whenever every C[r, p] fits Int32.
void qf_int16_direct_vnni(const int16_t *a, long lda, long rows, const int16_t *image, const int32_t *offsets,
                          long positions, long pairs, int32_t *c, long ldc);

/// The direct convolution on bytes with `vpdpbusd`: C[r, p] = Σ_q Σ_{i<4} A[r, 4q + i] · X[p + o_q, i]
/// for rows 0..<rows (a multiple of 4) and positions 0..<positions (a multiple of 48), where A
/// holds signed bytes (4 per k-quad, quads adjacent; lda bytes per row) and X unsigned bytes
/// (one 32-bit word per position: four channels), o_q = offsets[q] in words. Each lane adds
/// four 8-bit products (each within ±32640) into its 32-bit sum, wrapping: exact whenever every
/// C[r, p] fits Int32.
void qf_uint8_direct_vnni(const int8_t *a, long lda, long rows, const uint8_t *image, const int32_t *offsets,
                          long positions, long quads, int32_t *c, long ldc);

/// The GEMM on bytes with `vpdpbusd`: C[r, j] = Σ_k A[r, k] · B[j, k] for rows 0..<rows (a
/// multiple of 6) and all panels · 16 columns, A unsigned bytes (lda bytes per row, k-quads
/// adjacent), B signed bytes packed by panels of 16 columns, each holding per quad q the 16
/// columns' four bytes (64 bytes). Exact whenever every C[r, j] fits Int32.
void qf_uint8_gemm_vnni(const uint8_t *a, long lda, long rows, const int8_t *b, long panels, long quads,
                        int32_t *c, long ldc);

#endif
