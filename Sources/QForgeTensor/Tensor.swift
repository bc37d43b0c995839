import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Heap buffer of Float32 shared by tensors. Ops never write into a buffer they did not
/// allocate, except through `Tensor.withUnsafeMutableBufferPointer`, which copies first
/// when the buffer is shared.
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        _ = TensorStorage.allocatorConfigured
        self.count = count
        pointer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
    }

    public convenience init(zeros count: Int) {
        self.init(count: count)
        pointer.initialize(repeating: 0, count: count)
    }

    deinit { pointer.deallocate() }

    /// Training allocates and frees the same large buffers every step. By default glibc
    /// serves those with fresh mmaps (or trims the heap after each free), so every step pays
    /// page faults and zeroing for memory it just gave back. Keeping freed memory in the heap
    /// removes that cost.
    static let allocatorConfigured: Bool = {
        #if canImport(Glibc)
        // mallopt is glibc's; looked up at run time as Swift's Glibc module does not export it.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            let mallopt = unsafeBitCast(sym, to: Mallopt.self)
            _ = mallopt(-3, 32 << 20)  // M_MMAP_THRESHOLD: the largest allowed
            _ = mallopt(-1, 1 << 30)   // M_TRIM_THRESHOLD
        }
        #endif
        return true
    }()

    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}

/// A contiguous Float32 tensor in row-major (C) order.
///
/// Tensors are values. A tensor produced by an op from inputs that track gradients carries
/// an autodiff node (see `Autodiff.swift`); `backward()` on a scalar walks those nodes.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public private(set) var storage: TensorStorage
    var node: GradNode?

    /// Wraps an existing storage (no copy). `storage.count` must equal the shape's product.
    public init(shape: [Int], storage: TensorStorage) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == storage.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) elements, storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.node = nil
    }

    public init(shape: [Int], scalars: [Float]) {
        let st = TensorStorage(count: scalars.count)
        scalars.withUnsafeBufferPointer { st.pointer.initialize(from: $0.baseAddress!, count: scalars.count) }
        self.init(shape: shape, storage: st)
    }

    /// A rank-0 tensor.
    public init(_ value: Float) { self.init(shape: [], scalars: [value]) }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(zeros: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        let st = TensorStorage(count: shape.reduce(1, *))
        st.pointer.initialize(repeating: value, count: st.count)
        self.init(shape: shape, storage: st)
    }

    /// A tensor whose elements are produced by `body` writing into an uninitialised buffer.
    public init(shape: [Int], body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let st = TensorStorage(count: shape.reduce(1, *))
        body(st.buffer)
        self.init(shape: shape, storage: st)
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var scalars: [Float] { Array(storage.buffer) }
    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return storage.pointer[0]
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(storage.buffer))
    }

    /// Writes in place; copies the storage first unless this tensor holds it alone.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: count)
            copy.pointer.initialize(from: storage.pointer, count: count)
            let keptNode = node
            self = Tensor(shape: shape, storage: copy)
            node = keptNode
        }
        return try body(storage.buffer)
    }

    /// The same values, detached from autodiff.
    public var detached: Tensor { Tensor(shape: shape, storage: storage) }

    /// A copy with its own storage.
    public func copy() -> Tensor {
        Tensor(shape: shape) { out in out.baseAddress!.initialize(from: storage.pointer, count: count) }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(16).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 16 ? ", …" : "")])"
    }
}

/// Integer tensor: labels, indices, and (later) the integer model's values.
public struct IntTensor: Sendable, Equatable {
    public var shape: [Int]
    public var scalars: [Int]

    public init(shape: [Int], scalars: [Int]) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public var count: Int { scalars.count }
}

/// Row-major strides of a shape.
public func stridesOf(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

extension Tensor {
    /// Elementwise sum of two same-shaped tensors, outside autodiff (used by the backward loop).
    public func adding(_ other: Tensor) -> Tensor {
        precondition(shape == other.shape, "adding: shapes \(shape) and \(other.shape) differ")
        return Tensor(shape: shape) { out in
            let a = storage.pointer, b = other.storage.pointer
            for i in 0..<out.count { out[i] = a[i] + b[i] }
        }
    }
}
