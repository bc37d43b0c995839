/// Reverse-mode automatic differentiation.
///
/// An op whose inputs track gradients records a `GradNode` on its output: the input nodes and
/// a pullback that maps the output's gradient to one gradient per input (nil where an input
/// takes none). Each op's pullback is written once, next to its forward, in `Ops*.swift`.
/// `backward()` is the one backward loop: it orders the nodes topologically, runs each
/// pullback once, and sums the gradients reaching each node.
final class GradNode {
    let inputs: [GradNode?]
    let pullback: ((Tensor) -> [Tensor?])?
    /// Leaf nodes (parameters) keep their accumulated gradient here.
    var grad: Tensor?
    let shape: [Int]

    init(shape: [Int], inputs: [GradNode?], pullback: ((Tensor) -> [Tensor?])?) {
        self.shape = shape
        self.inputs = inputs
        self.pullback = pullback
    }
}

/// Whether ops record autodiff nodes. Turn it off for evaluation with `withoutGradients`.
public enum GradientMode {
    nonisolated(unsafe) public static var isEnabled = true
}

/// Runs `body` without recording autodiff nodes (inference, evaluation).
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let saved = GradientMode.isEnabled
    GradientMode.isEnabled = false
    defer { GradientMode.isEnabled = saved }
    return try body()
}

extension Tensor {
    /// Whether gradients flow back through this tensor.
    public var requiresGradient: Bool { node != nil }

    /// A leaf that collects gradients: a trainable parameter.
    public func trackingGradients() -> Tensor {
        var t = detached
        t.node = GradNode(shape: shape, inputs: [], pullback: nil)
        return t
    }

    /// The gradient accumulated on this leaf by `backward()`, if any.
    public var gradient: Tensor? { node?.grad }

    /// Clears the gradient accumulated on this leaf.
    public func zeroGradient() { node?.grad = nil }

    /// Records `output` as computed from `inputs` with the given pullback, when any input tracks
    /// gradients and gradient mode is on; otherwise returns `output` unchanged.
    public static func record(_ output: Tensor, _ inputs: [Tensor], pullback: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard GradientMode.isEnabled, inputs.contains(where: { $0.node != nil }) else { return output }
        var out = output
        out.node = GradNode(shape: output.shape, inputs: inputs.map { $0.node }, pullback: pullback)
        return out
    }

    /// Back-propagates from this tensor (a scalar unless `seed` is given) to every leaf that
    /// tracks gradients, adding into the leaves' `gradient`.
    public func backward(seed: Tensor? = nil) {
        guard let root = node else { return }
        withoutGradients { runBackward(root: root, seed: seed) }
    }

    private func runBackward(root: GradNode, seed: Tensor?) {
        let seedGrad = seed ?? Tensor(repeating: 1, shape: shape)
        precondition(seedGrad.shape == shape, "backward seed shape \(seedGrad.shape) != \(shape)")

        // Topological order by iterative depth-first search.
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradNode, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (n, i) = stack.popLast() {
            if i < n.inputs.count {
                stack.append((n, i + 1))
                if let child = n.inputs[i], visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(n)
            }
        }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seedGrad]
        for n in order.reversed() {
            guard let g = grads.removeValue(forKey: ObjectIdentifier(n)) else { continue }
            guard let pullback = n.pullback else {
                n.grad = n.grad.map { $0.adding(g) } ?? g
                continue
            }
            let inputGrads = pullback(g)
            for (child, cg) in zip(n.inputs, inputGrads) {
                guard let child, let cg else { continue }
                precondition(cg.shape == child.shape, "gradient shape \(cg.shape) != input shape \(child.shape)")
                let key = ObjectIdentifier(child)
                if let existing = grads[key] { grads[key] = existing.adding(cg) } else { grads[key] = cg }
            }
        }
    }
}
