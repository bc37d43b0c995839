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

/// The k-pair (A[r, 2q], A[r, 2q + 1]) in every 32-bit lane.
QF_INLINE QF_VNNI __m512i pair_of(const int16_t *a) {
    int32_t v;
    memcpy(&v, a, sizeof v);
    return _mm512_set1_epi32(v);
}

/// Rows r…r+5 × `np` panels (np ≤ 4, a constant after inlining: the accumulators stay in
/// registers). Lane j of a panel's vector is column j's sum, so it is stored as it is.
QF_INLINE QF_VNNI void gemm_tile(const int16_t *a, long lda, const int16_t *b, long panel_stride, long pairs,
                                 int32_t *c, long ldc, const int np) {
    __m512i acc[6][4];
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < np; j++) acc[r][j] = _mm512_setzero_si512();
    for (long q = 0; q < pairs; q++) {
        __m512i w[4];
        for (int j = 0; j < np; j++) w[j] = _mm512_loadu_si512((const void *)(b + j * panel_stride + 32 * q));
        for (int r = 0; r < 6; r++) {
            const __m512i x = pair_of(a + r * lda + 2 * q);
            for (int j = 0; j < np; j++) acc[r][j] = _mm512_dpwssd_epi32(acc[r][j], x, w[j]);
        }
    }
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < np; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

QF_VNNI void qf_int16_gemm_vnni(const int16_t *a, long lda, long rows, const int16_t *b, long panels, long pairs,
                                int32_t *c, long ldc) {
    const long panel_stride = pairs * 32;
    for (long r = 0; r < rows; r += 6) {
        long p = 0;
        for (; p + 4 <= panels; p += 4) gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, pairs, c + r * ldc + p * 16, ldc, 4);
        for (; p + 2 <= panels; p += 2) gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, pairs, c + r * ldc + p * 16, ldc, 2);
        for (; p < panels; p++) gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, pairs, c + r * ldc + p * 16, ldc, 1);
    }
}

/// Rows r…r+nr−1 (nr 4 or 8) × positions p…p+47 of the direct convolution: per k-pair q, the
/// 48 positions' channel pairs at word offset offsets[q] (three vectors of 16 words) times
/// each row's pair.
QF_INLINE QF_VNNI void direct_tile(const int16_t *a, long lda, const int16_t *x, const int32_t *offsets, long pairs,
                                   int32_t *c, long ldc, const int nr) {
    __m512i acc[8][3];
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 3; j++) acc[r][j] = _mm512_setzero_si512();
    for (long q = 0; q < pairs; q++) {
        const int16_t *words = x + 2 * (long)offsets[q];
        __m512i w[3];
        for (int j = 0; j < 3; j++) w[j] = _mm512_loadu_si512((const void *)(words + 32 * j));
        for (int r = 0; r < nr; r++) {
            const __m512i v = pair_of(a + r * lda + 2 * q);
            for (int j = 0; j < 3; j++) acc[r][j] = _mm512_dpwssd_epi32(acc[r][j], v, w[j]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 3; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

QF_VNNI void qf_int16_direct_vnni(const int16_t *a, long lda, long rows, const int16_t *image, const int32_t *offsets,
                                  long positions, long pairs, int32_t *c, long ldc) {
    for (long p = 0; p < positions; p += 48) {
        long r = 0;
        for (; r + 8 <= rows; r += 8) direct_tile(a + r * lda, lda, image + 2 * p, offsets, pairs, c + r * ldc + p, ldc, 8);
        for (; r < rows; r += 4) direct_tile(a + r * lda, lda, image + 2 * p, offsets, pairs, c + r * ldc + p, ldc, 4);
    }
}

/// Rows r…r+nr−1 × positions p…p+47 on bytes: per k-quad q, the 48 positions' four channels
/// at word offset offsets[q] (unsigned) times each row's four weights (signed, broadcast).
QF_INLINE QF_VNNI void byte_tile(const int8_t *a, long lda, const uint8_t *x, const int32_t *offsets, long quads,
                                 int32_t *c, long ldc, const int nr) {
    __m512i acc[8][3];
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 3; j++) acc[r][j] = _mm512_setzero_si512();
    for (long q = 0; q < quads; q++) {
        const uint8_t *words = x + 4 * (long)offsets[q];
        __m512i w[3];
        for (int j = 0; j < 3; j++) w[j] = _mm512_loadu_si512((const void *)(words + 64 * j));
        for (int r = 0; r < nr; r++) {
            int32_t quad;
            memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
            const __m512i v = _mm512_set1_epi32(quad);
            for (int j = 0; j < 3; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], w[j], v);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 3; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

QF_VNNI void qf_uint8_direct_vnni(const int8_t *a, long lda, long rows, const uint8_t *image, const int32_t *offsets,
                                  long positions, long quads, int32_t *c, long ldc) {
    for (long p = 0; p < positions; p += 48) {
        long r = 0;
        for (; r + 8 <= rows; r += 8) byte_tile(a + r * lda, lda, image + 4 * p, offsets, quads, c + r * ldc + p, ldc, 8);
        for (; r < rows; r += 4) byte_tile(a + r * lda, lda, image + 4 * p, offsets, quads, c + r * ldc + p, ldc, 4);
    }
}

/// Rows r…r+5 × `np` panels on bytes (the activations' quad broadcast, unsigned; the weights'
/// panel vector, signed).
QF_INLINE QF_VNNI void byte_gemm_tile(const uint8_t *a, long lda, const int8_t *b, long panel_stride, long quads,
                                      int32_t *c, long ldc, const int np) {
    __m512i acc[6][4];
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < np; j++) acc[r][j] = _mm512_setzero_si512();
    for (long q = 0; q < quads; q++) {
        __m512i w[4];
        for (int j = 0; j < np; j++) w[j] = _mm512_loadu_si512((const void *)(b + j * panel_stride + 64 * q));
        for (int r = 0; r < 6; r++) {
            int32_t quad;
            memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
            const __m512i x = _mm512_set1_epi32(quad);
            for (int j = 0; j < np; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], x, w[j]);
        }
    }
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < np; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

QF_VNNI void qf_uint8_gemm_vnni(const uint8_t *a, long lda, long rows, const int8_t *b, long panels, long quads,
                                int32_t *c, long ldc) {
    const long panel_stride = quads * 64;
    for (long r = 0; r < rows; r += 6) {
        long p = 0;
        for (; p + 4 <= panels; p += 4) byte_gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, quads, c + r * ldc + p * 16, ldc, 4);
        for (; p + 2 <= panels; p += 2) byte_gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, quads, c + r * ldc + p * 16, ldc, 2);
        for (; p < panels; p++) byte_gemm_tile(a + r * lda, lda, b + p * panel_stride, panel_stride, quads, c + r * ldc + p * 16, ldc, 1);
    }
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
