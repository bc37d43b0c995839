import Foundation
import QForgeTensor
import XCTest

/// Checks an op's gradients against central finite differences.
///
/// The scalar checked is L = Σ f(x)·r with a fixed random r, so every output element matters.
/// Inputs are perturbed one element at a time by ±`step`; analytic and numeric gradients must
/// agree within `absolute + relative·|numeric|`. Keep inputs away from kinks (relu at 0,
/// max-pool ties), where the derivative is undefined.
public func checkGradients(_ inputs: [Tensor], step: Float = 1e-2, absolute: Float = 2e-3, relative: Float = 2e-2,
                           file: StaticString = #filePath, line: UInt = #line,
                           _ f: ([Tensor]) -> Tensor) {
    var rng = SeededRandom(seed: 99)
    let probe = withoutGradients { f(inputs) }
    let r = Tensor.uniform(shape: probe.shape, low: -1, high: 1, rng: &rng)
    func loss(_ xs: [Tensor]) -> Double {
        let y = withoutGradients { f(xs) }
        var acc: Double = 0
        for i in 0..<y.count { acc += Double(y.storage.pointer[i]) * Double(r.storage.pointer[i]) }
        return acc
    }
    let tracked = inputs.map { $0.trackingGradients() }
    let y = f(tracked)
    XCTAssertTrue(y.requiresGradient, "output does not track gradients", file: file, line: line)
    y.backward(seed: r)
    for (k, x) in inputs.enumerated() {
        guard let g = tracked[k].gradient else {
            XCTFail("input \(k) received no gradient", file: file, line: line)
            continue
        }
        XCTAssertEqual(g.shape, x.shape, file: file, line: line)
        for i in 0..<x.count {
            var plus = inputs, minus = inputs
            plus[k] = x.copy(); minus[k] = x.copy()
            plus[k].withUnsafeMutableBufferPointer { $0[i] += step }
            minus[k].withUnsafeMutableBufferPointer { $0[i] -= step }
            let numeric = Float((loss(plus) - loss(minus)) / Double(2 * step))
            let analytic = g.storage.pointer[i]
            if abs(numeric - analytic) > absolute + relative * abs(numeric) {
                XCTFail("input \(k) element \(i): analytic \(analytic), finite difference \(numeric)", file: file, line: line)
                return
            }
        }
    }
}

/// Asserts two float arrays agree elementwise within `accuracy`.
public func assertClose(_ a: [Float], _ b: [Float], accuracy: Float = 1e-5,
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "lengths differ", file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where !(abs(x - y) <= accuracy) {
        XCTFail("element \(i): \(x) vs \(y) (accuracy \(accuracy))", file: file, line: line)
        return
    }
}

/// A reproducible random tensor in [low, high).
public func randomTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
    var rng = SeededRandom(seed: seed)
    return Tensor.uniform(shape: shape, low: low, high: high, rng: &rng)
}

/// A random tensor whose values stay at least `gap` away from zero (for relu-like kinks).
public func randomAwayFromZero(_ shape: [Int], seed: UInt64, gap: Float = 0.1) -> Tensor {
    var rng = SeededRandom(seed: seed)
    return Tensor(shape: shape) { out in
        for i in 0..<out.count {
            let v = rng.uniform(gap, 1)
            out[i] = rng.nextUniform() < 0.5 ? -v : v
        }
    }
}
