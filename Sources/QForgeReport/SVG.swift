import Foundation

/// Escapes text for XML content and attribute values (SVG and XHTML).
public func xmlEscaped(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for c in text.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default:
            // XML 1.0 allows no control characters other than tab, newline and return.
            if c.value < 0x20 && c != "\t" && c != "\n" && c != "\r" { out += "\u{FFFD}" } else { out.unicodeScalars.append(c) }
        }
    }
    return out
}

/// A number as a short axis or table label: 3 significant digits, k/M/G above 10⁴.
public func shortNumber(_ v: Double) -> String {
    guard v.isFinite else { return "—" }
    let a = abs(v)
    // Three significant digits without an exponent: 1390, 12.5, 0.25.
    func trimmed(_ x: Double) -> String {
        if abs(x) >= 100 { return String(format: "%.0f", x) }
        var s = String(format: "%.3g", x)
        if s.contains("e") { return s }
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }
    if a >= 1e9 { return trimmed(v / 1e9) + "G" }
    if a >= 1e6 { return trimmed(v / 1e6) + "M" }
    if a >= 1e4 { return trimmed(v / 1e3) + "k" }
    return trimmed(v)
}

/// One axis of a plot: a data range mapped onto pixels, linear or logarithmic, with ticks.
public struct PlotAxis: Sendable {
    public var label: String
    public var logarithmic: Bool
    /// The visible range (after rounding out to ticks).
    public var lower: Double
    public var upper: Double
    public var ticks: [Double]

    /// An axis covering `values`; logarithmic when asked and every value is positive.
    public init(label: String, values: [Double], logarithmic: Bool = false) {
        self.label = label
        let finite = values.filter(\.isFinite)
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        self.logarithmic = logarithmic && lo > 0
        if self.logarithmic {
            let a = floor(log10(lo)), b = max(ceil(log10(hi)), a + 1)
            let (first, last) = (pow(10, a), pow(10, b))
            let steps: [Double] = Int(b - a) <= 2 ? [1, 2, 5] : [1]
            ticks = (Int(a)...Int(b)).flatMap { e in steps.map { $0 * pow(10, Double(e)) } }.filter { $0 >= first && $0 <= last }
            lower = first; upper = last
        } else {
            if lo == hi { lo -= max(abs(lo) * 0.1, 0.5); hi += max(abs(hi) * 0.1, 0.5) }
            let step = PlotAxis.niceStep((hi - lo) / 5)
            let first = floor(lo / step) * step, last = ceil(hi / step) * step
            let n = Int(((last - first) / step).rounded())
            ticks = (0...n).map { first + Double($0) * step }
            lower = first; upper = last
        }
    }

    /// 1, 2 or 5 × 10ᵏ, the nearest at or above `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let e = pow(10, floor(log10(raw)))
        for m in [1.0, 2, 5, 10] where m * e >= raw * 0.999 { return m * e }
        return 10 * e
    }

    /// Where `v` sits between the ends, 0...1.
    public func fraction(_ v: Double) -> Double {
        if logarithmic { return (log10(v) - log10(lower)) / (log10(upper) - log10(lower)) }
        return (v - lower) / (upper - lower)
    }
}

/// A scatter plot of design points, accuracy up, a cost or a speed across, with the Pareto
/// front drawn as a line through its points and its points filled.
public struct ParetoPlot: Sendable {
    public struct Point: Sendable {
        public var x: Double
        public var y: Double
        /// Shown beside the marker (e.g. "w4 ×8").
        public var label: String
        /// The colour group (e.g. the bit width): one legend entry each.
        public var group: String
        public init(x: Double, y: Double, label: String, group: String) {
            self.x = x; self.y = y; self.label = label; self.group = group
        }
    }

    public var title: String
    public var x: PlotAxis
    public var y: PlotAxis
    public var points: [Point]
    /// Indices into `points` on the front.
    public var front: Set<Int>
    public var width = 640.0, height = 440.0

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    public init(title: String, x: PlotAxis, y: PlotAxis, points: [Point], front: [Int]) {
        self.title = title; self.x = x; self.y = y; self.points = points; self.front = Set(front)
    }

    /// The plot as a standalone SVG document (no scripts, fonts or links).
    public func svg() -> String {
        let left = 78.0, right = 150.0, top = 40.0, bottom = 58.0
        let pw = width - left - right, ph = height - top - bottom
        func px(_ v: Double) -> Double { left + x.fraction(v) * pw }
        func py(_ v: Double) -> Double { top + (1 - y.fraction(v)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s: [String] = []
        s.append(##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(f(width))" height="\##(f(height))" viewBox="0 0 \##(f(width)) \##(f(height))" font-family="sans-serif" font-size="12">"##)
        s.append("<title>\(xmlEscaped(title))</title>")
        s.append(##"<rect x="0" y="0" width="\##(f(width))" height="\##(f(height))" fill="white"/>"##)
        s.append(##"<text x="\##(f(left + pw / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\##(xmlEscaped(title))</text>"##)
        // Grid and ticks.
        for t in x.ticks {
            let p = px(t)
            s.append(##"<line x1="\##(f(p))" y1="\##(f(top))" x2="\##(f(p))" y2="\##(f(top + ph))" stroke="#e4e4e4"/>"##)
            s.append(##"<line x1="\##(f(p))" y1="\##(f(top + ph))" x2="\##(f(p))" y2="\##(f(top + ph + 5))" stroke="black"/>"##)
            s.append(##"<text x="\##(f(p))" y="\##(f(top + ph + 18))" text-anchor="middle">\##(xmlEscaped(shortNumber(t)))</text>"##)
        }
        for t in y.ticks {
            let p = py(t)
            s.append(##"<line x1="\##(f(left))" y1="\##(f(p))" x2="\##(f(left + pw))" y2="\##(f(p))" stroke="#e4e4e4"/>"##)
            s.append(##"<line x1="\##(f(left - 5))" y1="\##(f(p))" x2="\##(f(left))" y2="\##(f(p))" stroke="black"/>"##)
            s.append(##"<text x="\##(f(left - 8))" y="\##(f(p + 4))" text-anchor="end">\##(xmlEscaped(shortNumber(t)))</text>"##)
        }
        s.append(##"<rect x="\##(f(left))" y="\##(f(top))" width="\##(f(pw))" height="\##(f(ph))" fill="none" stroke="black"/>"##)
        s.append(##"<text x="\##(f(left + pw / 2))" y="\##(f(height - 14))" text-anchor="middle">\##(xmlEscaped(x.label + (x.logarithmic ? " (log scale)" : "")))</text>"##)
        s.append(##"<text transform="translate(18 \##(f(top + ph / 2))) rotate(-90)" text-anchor="middle">\##(xmlEscaped(y.label))</text>"##)
        // The front, left to right.
        let frontPoints = front.sorted { points[$0].x < points[$1].x || (points[$0].x == points[$1].x && points[$0].y > points[$1].y) }
        if frontPoints.count > 1 {
            let path = frontPoints.map { "\(f(px(points[$0].x))),\(f(py(points[$0].y)))" }.joined(separator: " ")
            s.append(##"<polyline points="\##(path)" fill="none" stroke="black" stroke-width="1.5" stroke-dasharray="5 3"/>"##)
        }
        let groups = orderedGroups()
        for (i, p) in points.enumerated() {
            let colour = ParetoPlot.palette[(groups.firstIndex(of: p.group) ?? 0) % ParetoPlot.palette.count]
            let onFront = front.contains(i)
            let fill = onFront ? colour : "white"
            s.append(##"<circle cx="\##(f(px(p.x)))" cy="\##(f(py(p.y)))" r="\##(onFront ? "6" : "5")" fill="\##(fill)" stroke="\##(colour)" stroke-width="2"><title>\##(xmlEscaped("\(p.label): \(shortNumber(p.x)), \(shortNumber(p.y))" + (onFront ? " (Pareto front)" : "")))</title></circle>"##)
            s.append(##"<text x="\##(f(px(p.x) + 8))" y="\##(f(py(p.y) - 6))" font-size="10" fill="#444">\##(xmlEscaped(p.label))</text>"##)
        }
        // Legend: one entry per group, then the front.
        let lx = left + pw + 16
        for (i, g) in groups.enumerated() {
            let ly = top + 10 + Double(i) * 20
            s.append(##"<circle cx="\##(f(lx + 6))" cy="\##(f(ly))" r="5" fill="white" stroke="\##(ParetoPlot.palette[i % ParetoPlot.palette.count])" stroke-width="2"/>"##)
            s.append(##"<text x="\##(f(lx + 16))" y="\##(f(ly + 4))">\##(xmlEscaped(g))</text>"##)
        }
        let ly = top + 10 + Double(groups.count) * 20 + 6
        s.append(##"<line x1="\##(f(lx))" y1="\##(f(ly))" x2="\##(f(lx + 12))" y2="\##(f(ly))" stroke="black" stroke-width="1.5" stroke-dasharray="5 3"/>"##)
        s.append(##"<text x="\##(f(lx + 16))" y="\##(f(ly + 4))">Pareto front</text>"##)
        s.append(##"<text x="\##(f(lx))" y="\##(f(ly + 22))" font-size="10" fill="#444">filled: on the front</text>"##)
        s.append("</svg>")
        return s.joined(separator: "\n") + "\n"
    }

    func orderedGroups() -> [String] {
        var seen: [String] = []
        for p in points where !seen.contains(p.group) { seen.append(p.group) }
        return seen
    }
}

/// A horizontal bar chart (one bar per row), for per-layer figures in the HTML report.
public struct BarChart: Sendable {
    public var title: String
    public var unit: String
    public var bars: [(label: String, value: Double)]
    public var width = 640.0

    public init(title: String, unit: String, bars: [(label: String, value: Double)]) {
        self.title = title; self.unit = unit; self.bars = bars
    }

    public func svg() -> String {
        let left = 150.0, right = 90.0, top = 36.0, row = 24.0
        let height = top + Double(max(bars.count, 1)) * row + 16
        let largest = max(bars.map(\.value).filter(\.isFinite).max() ?? 0, 1e-300)
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s: [String] = []
        s.append(##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(f(width))" height="\##(f(height))" viewBox="0 0 \##(f(width)) \##(f(height))" font-family="sans-serif" font-size="12">"##)
        s.append("<title>\(xmlEscaped(title))</title>")
        s.append(##"<rect x="0" y="0" width="\##(f(width))" height="\##(f(height))" fill="white"/>"##)
        s.append(##"<text x="\##(f(width / 2))" y="20" text-anchor="middle" font-size="14" font-weight="bold">\##(xmlEscaped(title))</text>"##)
        let span = width - left - right
        for (i, b) in bars.enumerated() {
            let y = top + Double(i) * row
            let w = b.value.isFinite ? max(0, b.value / largest * span) : 0
            s.append(##"<text x="\##(f(left - 8))" y="\##(f(y + 15))" text-anchor="end">\##(xmlEscaped(b.label))</text>"##)
            s.append(##"<rect x="\##(f(left))" y="\##(f(y + 4))" width="\##(f(w))" height="\##(f(row - 8))" fill="#1f77b4"/>"##)
            s.append(##"<text x="\##(f(left + w + 6))" y="\##(f(y + 15))">\##(xmlEscaped(shortNumber(b.value) + (unit.isEmpty ? "" : " " + unit)))</text>"##)
        }
        s.append(##"<line x1="\##(f(left))" y1="\##(f(top))" x2="\##(f(left))" y2="\##(f(height - 16))" stroke="black"/>"##)
        s.append("</svg>")
        return s.joined(separator: "\n") + "\n"
    }
}

/// The indices of the points no other point beats: none has at least the accuracy `y` at
/// an `x` at least as good (lower when `minimizeX`, else higher), and is strictly better in
/// one of them. Sorted by x, best first. Points with a non-finite coordinate are never on it.
public func paretoFront(_ points: [(x: Double, y: Double)], minimizeX: Bool) -> [Int] {
    func better(_ a: Double, _ b: Double) -> Bool { minimizeX ? a < b : a > b }
    let valid = points.indices.filter { points[$0].x.isFinite && points[$0].y.isFinite }
    let front = valid.filter { i in
        !valid.contains { j in
            let (a, b) = (points[j], points[i])
            let noWorse = !better(b.x, a.x) && a.y >= b.y
            return j != i && noWorse && (better(a.x, b.x) || a.y > b.y)
        }
    }
    return front.sorted { better(points[$0].x, points[$1].x) || (points[$0].x == points[$1].x && $0 < $1) }
}
