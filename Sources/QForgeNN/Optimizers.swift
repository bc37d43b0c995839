import Foundation
import QForgeTensor

/// Updates parameters in place from their gradients.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    func step(_ parameters: [Parameter])
}

extension Optimizer {
    /// Clears every parameter's gradient.
    public func zeroGradients(_ parameters: [Parameter]) { parameters.forEach { $0.zeroGradient() } }
}

/// Stochastic gradient descent with optional momentum and weight decay (PyTorch's form:
/// v = μ·v + g; p −= lr·v).
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float
    public let weightDecay: Float
    private var velocity: [ObjectIdentifier: [Float]] = [:]

    public init(learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.momentum = momentum; self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        for p in parameters {
            guard let g = p.gradient else { continue }
            let n = p.value.count
            var v = velocity[ObjectIdentifier(p), default: momentum == 0 ? [] : [Float](repeating: 0, count: n)]
            let lr = learningRate, mu = momentum, wd = weightDecay
            p.value.withUnsafeMutableBufferPointer { w in
                let gp = g.storage.pointer
                if mu == 0 {
                    for i in 0..<n { w[i] -= lr * (gp[i] + wd * w[i]) }
                } else {
                    v.withUnsafeMutableBufferPointer { vp in
                        for i in 0..<n { vp[i] = mu * vp[i] + gp[i] + wd * w[i]; w[i] -= lr * vp[i] }
                    }
                }
            }
            if mu != 0 { velocity[ObjectIdentifier(p)] = v }
        }
    }
}

/// Adam (Kingma & Ba), with PyTorch's defaults and bias correction.
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    private var state: [ObjectIdentifier: (m: TensorStorage, v: TensorStorage)] = [:]
    private var t = 0

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.epsilon = epsilon; self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        t += 1
        let b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        let c1 = 1 - powf(b1, Float(t)), c2 = 1 - powf(b2, Float(t))
        let stepSize = learningRate / c1, c2root = c2.squareRoot()
        for p in parameters {
            guard let g = p.gradient else { continue }
            let n = p.value.count
            let key = ObjectIdentifier(p)
            if state[key] == nil { state[key] = (TensorStorage(zeros: n), TensorStorage(zeros: n)) }
            let (m, v) = state[key]!
            let gp = g.storage.pointer, mp = m.pointer, vp = v.pointer
            p.value.withUnsafeMutableBufferPointer { w in
                let wp = w.baseAddress!
                Parallel.forRange(n, cost: 8) { r in
                    for i in r {
                        let gi = gp[i] + wd * wp[i]
                        mp[i] = b1 * mp[i] + (1 - b1) * gi
                        vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                        wp[i] -= stepSize * mp[i] / (vp[i].squareRoot() / c2root + eps)
                    }
                }
            }
        }
    }
}

/// Learning rate as a function of the epoch.
public enum LearningRateSchedule: Equatable, Sendable {
    case constant
    /// Multiply by `gamma` every `every` epochs.
    case step(every: Int, gamma: Float)
    /// Cosine from the base rate down to `minimum` over `epochs` epochs.
    case cosine(epochs: Int, minimum: Float)

    public func rate(base: Float, epoch: Int) -> Float {
        switch self {
        case .constant: return base
        case let .step(every, gamma): return base * powf(gamma, Float(epoch / Swift.max(every, 1)))
        case let .cosine(epochs, minimum):
            let t = Float(Swift.min(epoch, epochs)) / Float(Swift.max(epochs, 1))
            return minimum + (base - minimum) * 0.5 * (1 + cosf(Float.pi * t))
        }
    }
}
