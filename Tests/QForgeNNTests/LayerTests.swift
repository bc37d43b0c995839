import QForgeNN
import QForgeTensor
import TestSupport
import XCTest

/// Layers on small inputs with exact expected values.
final class LayerTests: XCTestCase {
    func testDenseExactValues() {
        let d = Dense(weight: Tensor(shape: [2, 3], scalars: [1, 2, 3, -1, 0, 1]), bias: Tensor(shape: [2], scalars: [0.5, -0.5]))
        let y = d(Tensor(shape: [2, 3], scalars: [1, 1, 1, 2, 0, -1]))
        XCTAssertEqual(y.scalars, [6.5, -0.5, -0.5, -3.5])
        XCTAssertEqual(d.namedParameters.map(\.0), ["weight", "bias"])
    }

    func testConvExactValues() {
        // Two input channels, one output channel, 1×1 kernel: a per-pixel weighted sum plus bias.
        let c = Conv2d(weight: Tensor(shape: [1, 2, 1, 1], scalars: [2, -1]), bias: Tensor(shape: [1], scalars: [1]))
        let x = Tensor(shape: [1, 2, 2, 2], scalars: [1, 2, 3, 4, 10, 20, 30, 40])
        XCTAssertEqual(c(x).scalars, [-7, -15, -23, -31])
    }

    func testBatchNormTrainingAndInference() {
        let bn = BatchNorm(features: 2, momentum: 0.5)
        let x = Tensor(shape: [2, 2], scalars: [1, 10, 3, 30])
        let y = LayerContext.with(.training) { bn(x) }
        // Each column normalised: (±1)/√(1+ε) and (±10)/√(100+ε).
        assertClose(y.scalars, [-1, -1, 1, 1], accuracy: 1e-4)
        // Running stats: mean (1−0.5)·0 + 0.5·[2, 20]; unbiased var [2, 200] → 0.5·1 + 0.5·[2, 200].
        assertClose(bn.runningMean.value.scalars, [1, 10])
        assertClose(bn.runningVariance.value.scalars, [1.5, 100.5])
        let z = LayerContext.with(.inference) { bn(Tensor(shape: [1, 2], scalars: [1, 10])) }
        assertClose(z.scalars, [0, 0], accuracy: 1e-4)
    }

    func testActivationsPoolFlattenDropout() {
        let x = Tensor(shape: [1, 4], scalars: [-2, -0.5, 0.5, 2])
        XCTAssertEqual(ReLU()(x).scalars, [0, 0, 0.5, 2])
        assertClose(Sigmoid()(x).scalars, [0.11920292, 0.37754067, 0.62245933, 0.88079708])
        assertClose(Tanh()(x).scalars, [-0.96402758, -0.46211716, 0.46211716, 0.96402758])
        let img = Tensor(shape: [1, 1, 2, 4], scalars: [1, 2, 3, 4, 8, 7, 6, 5])
        XCTAssertEqual(MaxPool2d(kernel: 2)(img).scalars, [8, 6])
        XCTAssertEqual(Flatten()(img).shape, [1, 8])
        XCTAssertEqual(LayerContext.with(.inference) { Dropout(0.5)(x) }.scalars, x.scalars)
        LayerContext.rng = SeededRandom(seed: 3)
        let dropped = LayerContext.with(.training) { Dropout(0.5)(Tensor(repeating: 1, shape: [1000])) }
        XCTAssertTrue(dropped.scalars.allSatisfy { $0 == 0 || $0 == 2 })
        let kept = dropped.scalars.filter { $0 == 2 }.count
        XCTAssertTrue((430...570).contains(kept), "kept \(kept) of 1000 at p = 0.5")
    }

    func testSequentialPathsAndPyTorchInitBounds() {
        var rng = SeededRandom(seed: 0)
        let net = Sequential([Dense(784, 256, rng: &rng), ReLU(), Dense(256, 10, rng: &rng), BatchNorm(features: 10)])
        XCTAssertEqual(net.namedParameters.map(\.0), ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                                                      "layers.3.weight", "layers.3.bias"])
        XCTAssertEqual(net.namedBuffers.map(\.0), ["layers.3.running_mean", "layers.3.running_var"])
        let w = net.namedParameters[0].1.value.scalars
        let bound = 1 / Float(784).squareRoot()
        XCTAssertLessThanOrEqual(w.map(abs).max()!, bound)
        XCTAssertGreaterThan(w.map(abs).max()!, bound * 0.99)
        // Uniform on [-b, b]: variance b²/3.
        let variance = w.map { $0 * $0 }.reduce(0, +) / Float(w.count)
        XCTAssertEqual(variance, bound * bound / 3, accuracy: bound * bound * 0.02)
    }

    func testOptimizersOnAQuadratic() {
        // Minimise (w − 3)²: both optimizers must get close to 3.
        for make in [{ SGD(learningRate: 0.1, momentum: 0.9) as Optimizer }, { Adam(learningRate: 0.1) as Optimizer }] {
            let p = Parameter(Tensor(shape: [1], scalars: [0]))
            let opt = make()
            for _ in 0..<300 {
                ((p.value - 3).squared()).sum().backward()
                opt.step([p])
                opt.zeroGradients([p])
            }
            XCTAssertEqual(p.value.item, 3, accuracy: 1e-2)
        }
    }

    func testAdamFirstStepMatchesFormula() {
        // After one step Adam moves each weight by lr·sign(g) (bias-corrected m/√v = g/|g|).
        let p = Parameter(Tensor(shape: [2], scalars: [1, 1]))
        (p.value * Tensor(shape: [2], scalars: [2, -0.5])).sum().backward()
        Adam(learningRate: 0.01).step([p])
        assertClose(p.value.scalars, [0.99, 1.01], accuracy: 1e-6)
    }

    func testSchedules() {
        XCTAssertEqual(LearningRateSchedule.step(every: 2, gamma: 0.1).rate(base: 1, epoch: 3), 0.1, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.cosine(epochs: 10, minimum: 0).rate(base: 1, epoch: 5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(LearningRateSchedule.cosine(epochs: 10, minimum: 0.1).rate(base: 1, epoch: 10), 0.1, accuracy: 1e-6)
        XCTAssertEqual(LearningRateSchedule.constant.rate(base: 0.3, epoch: 7), 0.3)
    }
}
