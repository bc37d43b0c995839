import QForgeTensor
import TestSupport
import XCTest

/// Every differentiable op against central finite differences.
final class GradientTests: XCTestCase {
    func testAddSubMulDivWithBroadcasting() {
        let a = randomTensor([3, 4], seed: 1), b = randomTensor([4], seed: 2), c = randomTensor([3, 1], seed: 3)
        checkGradients([a, b]) { $0[0] + $0[1] }
        checkGradients([a, c]) { $0[0] - $0[1] }
        checkGradients([a, b]) { $0[0] * $0[1] }
        checkGradients([a, randomTensor([3, 1], seed: 4, low: 1, high: 2)]) { $0[0] / $0[1] }
        checkGradients([a]) { -$0[0] * 3 + 1 }
    }

    func testUnaryFunctions() {
        let x = randomAwayFromZero([2, 5], seed: 5)
        checkGradients([x]) { $0[0].exp() }
        checkGradients([randomTensor([2, 5], seed: 6, low: 0.5, high: 2)]) { $0[0].log() }
        checkGradients([randomTensor([2, 5], seed: 7, low: 0.5, high: 2)]) { $0[0].sqrt() }
        checkGradients([x]) { $0[0].squared() }
        checkGradients([x]) { $0[0].relu() }
        checkGradients([x]) { $0[0].sigmoid() }
        checkGradients([x]) { $0[0].tanh() }
    }

    func testReductions() {
        let x = randomTensor([2, 3, 4], seed: 8)
        checkGradients([x]) { $0[0].sum() }
        checkGradients([x]) { $0[0].sum(alongAxes: [1]) }
        checkGradients([x]) { $0[0].sum(alongAxes: [0, 2], keepingDimensions: true) }
        checkGradients([x]) { $0[0].mean(alongAxes: [-1]) }
        checkGradients([x]) { $0[0].mean() }
    }

    func testShapeOps() {
        let x = randomTensor([2, 3, 4], seed: 9)
        checkGradients([x]) { $0[0].reshaped(to: [6, 4]) }
        checkGradients([x]) { $0[0].transposed([2, 0, 1]) }
        checkGradients([randomTensor([3, 5], seed: 10)]) { $0[0].T }
        checkGradients([x]) { $0[0].slice(axis: 1, 1..<3) }
        checkGradients([x, randomTensor([2, 2, 4], seed: 11)]) { Tensor.concat([$0[0], $0[1]], axis: 1) }
        checkGradients([randomTensor([3], seed: 12)]) { $0[0].broadcast(to: [2, 3]) }
        checkGradients([randomTensor([3, 4], seed: 13)]) { $0[0].gather(IntTensor(shape: [3], scalars: [2, 0, 3])) }
    }

    func testMatmulAndLinear() {
        let a = randomTensor([3, 4], seed: 14), b = randomTensor([4, 2], seed: 15)
        checkGradients([a, b]) { $0[0].matmul($0[1]) }
        let w = randomTensor([5, 4], seed: 16), bias = randomTensor([5], seed: 17)
        checkGradients([a, w, bias]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([a, w]) { Tensor.linear($0[0], weight: $0[1], bias: nil) }
    }

    func testConv2d() {
        let x = randomTensor([2, 3, 5, 5], seed: 18), w = randomTensor([4, 3, 3, 3], seed: 19), b = randomTensor([4], seed: 20)
        checkGradients([x, w, b]) { Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], padding: (1, 1)) }
        checkGradients([x, w]) { Tensor.conv2d($0[0], weight: $0[1], stride: (2, 2), padding: (0, 1)) }
        checkGradients([randomTensor([1, 2, 6, 4], seed: 21), randomTensor([3, 2, 2, 3], seed: 22)]) {
            Tensor.conv2d($0[0], weight: $0[1], stride: (2, 1))
        }
    }

    func testMaxPool() {
        // Distinct values so the window maxima are unique (no kinks).
        let x = Tensor(shape: [2, 2, 4, 6], scalars: (0..<96).map { Float(($0 * 37) % 96) / 10 })
        checkGradients([x]) { $0[0].maxPool2d(kernel: (2, 2)) }
        checkGradients([x]) { $0[0].maxPool2d(kernel: (3, 3), stride: (1, 2)) }
    }

    func testBatchNorm() {
        let x = randomTensor([4, 3, 2, 2], seed: 23), g = randomTensor([3], seed: 24, low: 0.5, high: 1.5), b = randomTensor([3], seed: 25)
        checkGradients([x, g, b], step: 1e-2, absolute: 5e-3) { Tensor.batchNorm($0[0], gamma: $0[1], beta: $0[2], epsilon: 1e-5).output }
        let x1 = randomTensor([6, 3], seed: 26)
        checkGradients([x1, g, b], absolute: 5e-3) { Tensor.batchNorm($0[0], gamma: $0[1], beta: $0[2], epsilon: 1e-5).output }
    }

    func testSoftmaxAndLosses() {
        let x = randomTensor([3, 5], seed: 27, low: -2, high: 2)
        checkGradients([x]) { $0[0].logSoftmax() }
        checkGradients([x]) { $0[0].softmax() }
        let labels = IntTensor(shape: [3], scalars: [4, 0, 2])
        checkGradients([x]) { Tensor.softmaxCrossEntropy(logits: $0[0], labels: labels) }
        checkGradients([x, randomTensor([3, 5], seed: 28)]) { Tensor.meanSquaredError($0[0], $0[1]) }
    }

    func testSharedInputAccumulatesGradient() {
        // y = x·x + x: dy/dx = 2x + 1, the two uses of x must add.
        let x = Tensor(shape: [3], scalars: [1, -2, 0.5]).trackingGradients()
        (x * x + x).sum().backward()
        XCTAssertEqual(x.gradient?.scalars, [3, -3, 2])
    }
}

extension GradientTests {
    func testFusedBatchNormReLU() {
        // Each channel holds 16 evenly spaced values in a shuffled order, and β shifts them so
        // that no pre-activation lies within 0.02 of the ReLU kink.
        var rng = SeededRandom(seed: 40)
        var values = [Float](repeating: 0, count: 48)
        for ch in 0..<3 {
            let order = rng.permutation(16)
            for (k, slot) in order.enumerated() {
                let (sample, pos) = (slot / 4, slot % 4)
                values[(sample * 3 + ch) * 4 + pos] = (Float(k) - 7.5) * Float(ch + 1) + Float(ch)
            }
        }
        let x = Tensor(shape: [4, 3, 2, 2], scalars: values)
        let g = Tensor(shape: [3], scalars: [1, 0.8, 1.2]), b = Tensor(shape: [3], scalars: [0.2, -0.2, 0])
        let pre = Tensor.batchNorm(x, gamma: g, beta: b, epsilon: 1e-5).output
        XCTAssertGreaterThan(pre.scalars.map(abs).min()!, 0.02)
        checkGradients([x, g, b], step: 1e-3, absolute: 5e-3) { Tensor.batchNorm($0[0], gamma: $0[1], beta: $0[2], epsilon: 1e-5, relu: true).output }
        // Same values as batch norm then relu.
        let fused = Tensor.batchNorm(x, gamma: g, beta: b, epsilon: 1e-5, relu: true).output
        let separate = Tensor.batchNorm(x, gamma: g, beta: b, epsilon: 1e-5).output.relu()
        XCTAssertEqual(fused.scalars, separate.scalars)
    }
}
