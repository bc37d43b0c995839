#include "CQForgeKernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define QF_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define QF_INLINE static inline __attribute__((always_inline))

int qf_cpu_has_avx512_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}

// The Int16 and the byte kernels share their loops: both read 4 bytes of A per k-group (a pair
// of Int16 codes, or a quad of bytes) broadcast to every lane, 64 bytes of B or of the image per
// group and panel of 16 columns or positions, and add one group per lane per instruction
// (`vpdpwssd` or `vpdpbusd`). Pointers and strides below are in bytes; `bytes` (a constant after
// inlining) picks the instruction.

/// Four bytes of A (one k-group) in every 32-bit lane.
QF_INLINE QF_VNNI __m512i group_of(const uint8_t *a) {
    int32_t v;
    memcpy(&v, a, sizeof v);
    return _mm512_set1_epi32(v);
}

/// acc + the k-group dot products of `codes` and `weights`, lane by lane: Int16 pairs, or
/// unsigned code bytes times signed weight bytes.
QF_INLINE QF_VNNI __m512i dot_groups(__m512i acc, __m512i codes, __m512i weights, const int bytes) {
    return bytes ? _mm512_dpbusd_epi32(acc, codes, weights) : _mm512_dpwssd_epi32(acc, codes, weights);
}

/// Rows r…r+5 × `np` panels (np ≤ 4, a constant after inlining: the accumulators stay in
/// registers). Lane j of a panel's vector is column j's sum, so it is stored as it is.
QF_INLINE QF_VNNI void gemm_tile(const uint8_t *a, long lda, const uint8_t *b, long panel_stride, long groups,
                                 int32_t *c, long ldc, const int np, const int bytes) {
    __m512i acc[6][4];
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < np; j++) acc[r][j] = _mm512_setzero_si512();
    for (long q = 0; q < groups; q++) {
        __m512i w[4];
        for (int j = 0; j < np; j++) w[j] = _mm512_loadu_si512((const void *)(b + j * panel_stride + 64 * q));
        for (int r = 0; r < 6; r++) {
            const __m512i x = group_of(a + r * lda + 4 * q);
            for (int j = 0; j < np; j++) acc[r][j] = dot_groups(acc[r][j], x, w[j], bytes);
        }
    }
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < np; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

/// All rows (a multiple of 6) × all panels, four panels per tile where they last.
QF_INLINE QF_VNNI void gemm(const uint8_t *a, long lda, long rows, const uint8_t *b, long panels, long groups,
                            int32_t *c, long ldc, const int bytes) {
    const long panel_stride = groups * 64;
    for (long r = 0; r < rows; r += 6) {
        long p = 0;
        for (; p + 4 <= panels; p += 4) gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, groups, c + r * ldc + p * 16, ldc, 4, bytes);
        for (; p + 2 <= panels; p += 2) gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, groups, c + r * ldc + p * 16, ldc, 2, bytes);
        for (; p < panels; p++) gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, groups, c + r * ldc + p * 16, ldc, 1, bytes);
    }
}

QF_VNNI void qf_int16_gemm_vnni(const int16_t *a, long lda, long rows, const int16_t *b, long panels, long pairs,
                                int32_t *c, long ldc) {
    gemm((const uint8_t *)a, 2 * lda, rows, (const uint8_t *)b, panels, pairs, c, ldc, 0);
}

QF_VNNI void qf_uint8_gemm_vnni(const uint8_t *a, long lda, long rows, const int8_t *b, long panels, long quads,
                                int32_t *c, long ldc) {
    gemm(a, lda, rows, (const uint8_t *)b, panels, quads, c, ldc, 1);
}

/// Rows r…r+nr−1 (nr 4 or 8) × positions p…p+47 of the direct convolution: per k-group q, the
/// 48 positions' words at word offset offsets[q] (three vectors of 16 words) times each row's
/// group of weights.
QF_INLINE QF_VNNI void direct_tile(const uint8_t *a, long lda, const uint8_t *x, const int32_t *offsets, long groups,
                                   int32_t *c, long ldc, const int nr, const int bytes) {
    __m512i acc[8][3];
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 3; j++) acc[r][j] = _mm512_setzero_si512();
    for (long q = 0; q < groups; q++) {
        const uint8_t *words = x + 4 * (long)offsets[q];
        __m512i w[3];
        for (int j = 0; j < 3; j++) w[j] = _mm512_loadu_si512((const void *)(words + 64 * j));
        for (int r = 0; r < nr; r++) {
            const __m512i v = group_of(a + r * lda + 4 * q);
            for (int j = 0; j < 3; j++) acc[r][j] = dot_groups(acc[r][j], w[j], v, bytes);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 3; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

/// All rows (a multiple of 4) × all positions (a multiple of 48), eight rows per tile where they last.
QF_INLINE QF_VNNI void direct(const uint8_t *a, long lda, long rows, const uint8_t *image, const int32_t *offsets,
                              long positions, long groups, int32_t *c, long ldc, const int bytes) {
    for (long p = 0; p < positions; p += 48) {
        long r = 0;
        for (; r + 8 <= rows; r += 8) direct_tile(a + r * lda, lda, image + 4 * p, offsets, groups, c + r * ldc + p, ldc, 8, bytes);
        for (; r < rows; r += 4) direct_tile(a + r * lda, lda, image + 4 * p, offsets, groups, c + r * ldc + p, ldc, 4, bytes);
    }
}

QF_VNNI void qf_int16_direct_vnni(const int16_t *a, long lda, long rows, const int16_t *image, const int32_t *offsets,
                                  long positions, long pairs, int32_t *c, long ldc) {
    direct((const uint8_t *)a, 2 * lda, rows, (const uint8_t *)image, offsets, positions, pairs, c, ldc, 0);
}

QF_VNNI void qf_uint8_direct_vnni(const int8_t *a, long lda, long rows, const uint8_t *image, const int32_t *offsets,
                                  long positions, long quads, int32_t *c, long ldc) {
    direct((const uint8_t *)a, lda, rows, image, offsets, positions, quads, c, ldc, 1);
}

#else

int qf_cpu_has_avx512_vnni(void) { return 0; }

void qf_uint8_gemm_vnni(const uint8_t *a, long lda, long rows, const int8_t *b, long panels, long quads,
                        int32_t *c, long ldc) {
    (void)a; (void)lda; (void)rows; (void)b; (void)panels; (void)quads; (void)c; (void)ldc;
    abort();
}

void qf_uint8_direct_vnni(const int8_t *a, long lda, long rows, const uint8_t *image, const int32_t *offsets,
                          long positions, long quads, int32_t *c, long ldc) {
    (void)a; (void)lda; (void)rows; (void)image; (void)offsets; (void)positions; (void)quads; (void)c; (void)ldc;
    abort();
}

// Never called: QForgeInteger offers these kernels only where qf_cpu_has_avx512_vnni() is 1.
void qf_int16_gemm_vnni(const int16_t *a, long lda, long rows, const int16_t *b, long panels, long pairs,
                        int32_t *c, long ldc) {
    (void)a; (void)lda; (void)rows; (void)b; (void)panels; (void)pairs; (void)c; (void)ldc;
    abort();
}

void qf_int16_direct_vnni(const int16_t *a, long lda, long rows, const int16_t *image, const int32_t *offsets,
                          long positions, long pairs, int32_t *c, long ldc) {
    (void)a; (void)lda; (void)rows; (void)image; (void)offsets; (void)positions; (void)pairs; (void)c; (void)ldc;
    abort();
}

#endif
