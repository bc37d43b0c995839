/// Named networks, so results compare side by side with published ones.
public enum Presets {
    public static let names = ["mlp", "cnn", "tfc", "sfc", "lfc", "jet", "magnet", "magnet-small"]

    typealias E = ModelDescription.LayerEntry

    /// Dense layers with ReLU between them (none after the last).
    static func mlp(_ name: String, _ sizes: [Int], task: ModelDescription.Task) -> ModelDescription {
        var layers: [E] = []
        for (i, s) in sizes.dropFirst().enumerated() {
            layers.append(E(type: "Dense", out: s))
            if i < sizes.count - 2 { layers.append(E(type: "ReLU")) }
        }
        return ModelDescription(name: name, input: [sizes[0]], task: task, layers: layers)
    }

    /// FINN's fully connected networks: bias-free Dense + BatchNorm + ReLU per hidden layer.
    static func finnFC(_ name: String, _ sizes: [Int]) -> ModelDescription {
        var layers: [E] = []
        for s in sizes.dropFirst().dropLast() {
            layers += [E(type: "Dense", out: s, bias: false), E(type: "BatchNorm"), E(type: "ReLU")]
        }
        layers.append(E(type: "Dense", out: sizes.last!))
        return ModelDescription(name: name, input: [sizes[0]], task: .classification, layers: layers)
    }

    public static func description(_ name: String) throws -> ModelDescription {
        switch name {
        case "mlp": return mlp("mlp", [784, 256, 256, 10], task: .classification)
        case "cnn":
            // Exactly the anchors' CNN: convolutions and fc1 without bias (each feeds BatchNorm).
            let conv = { (c: Int) in E(type: "Conv2d", out: c, kernel: 3, padding: 1, bias: false) }
            return ModelDescription(name: "cnn", input: [1, 28, 28], task: .classification, layers: [
                conv(16), E(type: "BatchNorm"), E(type: "ReLU"),
                conv(32), E(type: "BatchNorm"), E(type: "ReLU"), E(type: "MaxPool2d", kernel: 2),
                conv(64), E(type: "BatchNorm"), E(type: "ReLU"), E(type: "MaxPool2d", kernel: 2),
                E(type: "Flatten"),
                E(type: "Dense", out: 128, bias: false), E(type: "BatchNorm"), E(type: "ReLU"),
                E(type: "Dense", out: 10),
            ])
        case "tfc": return finnFC("tfc", [784, 64, 64, 64, 10])
        case "sfc": return finnFC("sfc", [784, 256, 256, 256, 10])
        case "lfc": return finnFC("lfc", [784, 1024, 1024, 1024, 10])
        case "jet": return mlp("jet", [16, 64, 32, 32, 5], task: .classification)
        case "magnet": return mlp("magnet", [27, 512, 1024, 1024, 1024, 1024, 512, 512, 256, 6], task: .regression)
        case "magnet-small": return mlp("magnet-small", [27, 128, 128, 6], task: .regression)
        default: throw ModelError.unknownPreset(name)
        }
    }
}
