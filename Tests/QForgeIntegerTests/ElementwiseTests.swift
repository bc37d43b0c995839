import QForgeInteger
import QForgeTensor
import XCTest

/// Max pooling, residual add, arg-max, flatten, and the tensor type.
final class ElementwiseTests: XCTestCase {
    func testHalvingMaxPoolMatchesItsDefinition() {
        // 2×2 windows with stride 2 (the vectorised case), odd sizes dropping the last row and column.
        var rng = SeededRandom(seed: 37)
        for (h, w) in [(2, 2), (5, 7), (14, 14), (3, 33)] {
            let x = QTensor(shape: [2, 3, h, w], values: (0..<(6 * h * w)).map { _ in Int32.random(in: -1000...1000, using: &rng) })
            var expected = [Int32]()
            for plane in 0..<6 {
                for i in 0..<(h / 2) {
                    for j in 0..<(w / 2) {
                        let at = { (y: Int, xx: Int) in x.values[(plane * h + y) * w + xx] }
                        expected.append(max(at(2 * i, 2 * j), at(2 * i, 2 * j + 1), at(2 * i + 1, 2 * j), at(2 * i + 1, 2 * j + 1)))
                    }
                }
            }
            XCTAssertEqual(IntegerOps.maxPool2d(x, kernel: (2, 2)), QTensor(shape: [2, 3, h / 2, w / 2], values: expected), "\(h)×\(w)")
        }
    }

    func testMaxPoolWithoutPadding() {
        let x = QTensor(shape: [1, 2, 4, 4], values: [
            1, 2, -3, 4,
            5, -6, 7, 8,
            -9, -10, -11, -12,
            -13, -14, -15, -1,
            0, 0, 0, 0,
            0, 3, 0, -2,
            -1, -1, 9, 9,
            -1, -5, 9, 9,
        ])
        XCTAssertEqual(IntegerOps.maxPool2d(x, kernel: (2, 2)), QTensor(shape: [1, 2, 2, 2], values: [5, 8, -9, -1, 3, 0, -1, 9]))
        // Kernel 3, stride 1 on the first plane: 2×2 outputs.
        XCTAssertEqual(IntegerOps.maxPool2d(QTensor(shape: [1, 1, 4, 4], values: Array(x.values[0..<16])), kernel: (3, 3), stride: (1, 1)).values,
                       [7, 8, 7, 8])
    }

    func testMaxPoolPaddingIsMinusInfinity() {
        // All inputs negative: zero padding would win every border window; −∞ padding never does.
        let x = QTensor(shape: [1, 1, 2, 2], values: [-5, -3, -8, -1])
        XCTAssertEqual(IntegerOps.maxPool2d(x, kernel: (2, 2), stride: (1, 1), padding: (1, 1)),
                       QTensor(shape: [1, 1, 3, 3], values: [-5, -3, -3, -5, -1, -1, -8, -1, -1]))
        // Kernel 3, stride 2, padding 1 on 3×3: outputs at window starts −1 and 1.
        let y = QTensor(shape: [1, 1, 3, 3], values: [-1, -2, -3, -4, -5, -6, -7, -8, -9])
        XCTAssertEqual(IntegerOps.maxPool2d(y, kernel: (3, 3), stride: (2, 2), padding: (1, 1)).values, [-1, -2, -4, -5])
    }

    func testArgmaxTiesGoToTheLowestIndex() {
        XCTAssertEqual(IntegerOps.argmax(QTensor(shape: [2, 4], values: [3, 7, 7, 1, -2, -2, -5, -9])), [1, 0])
        XCTAssertEqual(IntegerOps.argmax(AccTensor(shape: [3, 2], values: [Int64.min, Int64.min, 1 << 40, (1 << 40) + 1, 0, -1])), [0, 1, 0])
        XCTAssertEqual(IntegerOps.argmax(QTensor(shape: [2, 1, 3], values: [0, 0, 0, 1, 2, 2])), [0, 1])
    }

    func testExactAdd() {
        let a = QTensor(shape: [3], values: [Int32.max, Int32.min, 5]), b = QTensor(shape: [3], values: [Int32.max, Int32.min, -7])
        XCTAssertEqual(IntegerOps.add(a, b), AccTensor(shape: [3], values: [4_294_967_294, -4_294_967_296, -2]))
        let big = AccTensor(shape: [1, 2], values: [1 << 62, -(1 << 62)])
        XCTAssertEqual(IntegerOps.add(big, AccTensor(shape: [1, 2], values: [(1 << 62) - 1, -(1 << 62)])).values, [Int64.max, Int64.min])
    }

    func testFlattenAndWidening() {
        let x = QTensor(shape: [2, 3, 1, 2], values: Array(-6..<6))
        XCTAssertEqual(x.flattened(), QTensor(shape: [2, 6], values: Array(-6..<6)))
        XCTAssertEqual(AccTensor(x).values, (-6..<6).map { Int64($0) })
        XCTAssertEqual(QTensor(zeros: [2, 0]).count, 0)
    }
}
