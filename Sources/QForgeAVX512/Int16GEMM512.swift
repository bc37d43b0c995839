import QForgeTensor

/// `Int16GEMM` compiled for AVX-512 (x86-64-v4: AVX512F, BW, CD, DQ, VL): 32 Int16 lanes per
/// instruction and 32 vector registers, so 6 × 32 tiles. Call only on a CPU that has them
/// (`QForgeInteger` checks); in debug builds and on other architectures this module is
/// compiled for the baseline instruction set and runs anywhere.
public enum Int16GEMM512 {
    /// `Int16GEMM.product` on 512-bit lanes: the same arguments and results.
    public static func product(a: UnsafePointer<Int16>, lda: Int, rows: Int, b: UnsafePointer<Int16>, panels: Int,
                               pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int) {
        Int16GEMM.kernelLoop(a: a, lda: lda, rows: rows, b: b, panels: panels, pairs: pairs, chunk: chunk, c: c, ldc: ldc, twoPanels: true)
    }

    /// `Int16GEMM.directProduct` on 512-bit lanes (4 × 48 tiles): the same arguments and results.
    public static func directProduct(a: UnsafePointer<Int16>, lda: Int, rows: Int, image: UnsafePointer<Int16>, offsets: UnsafePointer<Int32>,
                                     positions: Int, pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int) {
        Int16GEMM.directLoop(a: a, lda: lda, rows: rows, image: image, offsets: offsets, positions: positions, pairs: pairs, chunk: chunk,
                             c: c, ldc: ldc, panelsPerTile: 3)
    }
}
