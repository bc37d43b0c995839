import Foundation
import QForgeNN

/// Renders training progress on standard error: a bar redrawn in place on a terminal, plain
/// lines (one per epoch) otherwise.
final class ProgressPrinter {
    let isTTY = isatty(2) != 0
    var lastDraw = 0.0

    func update(_ p: TrainingProgress) {
        guard isTTY else { return }
        let now = Date().timeIntervalSince1970
        if now - lastDraw < 0.1 && p.batch < p.batches { return }
        lastDraw = now
        let width = 24
        let done = Int(Double(width) * Double(p.batch) / Double(Swift.max(p.batches, 1)))
        let bar = String(repeating: "█", count: done) + String(repeating: "·", count: width - done)
        var line = String(format: "epoch %d/%d %@ %d/%d loss %.4f", p.epoch, p.epochs, bar, p.batch, p.batches, p.loss)
        if let a = p.accuracy { line += String(format: " acc %.4f", a) }
        line += String(format: " %.0f samples/s ETA %@", p.samplesPerSecond, formatDuration(p.eta))
        FileHandle.standardError.write(("\r" + line + "\u{1B}[K").data(using: .utf8)!)
    }

    func epochEnd(_ r: EpochReport) {
        var line = String(format: "epoch %d: loss %.4f", r.epoch, r.loss)
        if let a = r.trainAccuracy { line += String(format: ", train acc %.4f", a) }
        if let t = r.test {
            if let a = t.accuracy { line += String(format: ", test acc %.4f", a) }
            if let r2 = t.r2Mean { line += String(format: ", test R² %.4f", r2) }
        }
        line += String(format: ", %.1f s, %.0f samples/s", r.seconds, r.samplesPerSecond)
        FileHandle.standardError.write(((isTTY ? "\r" : "") + line + (isTTY ? "\u{1B}[K" : "") + "\n").data(using: .utf8)!)
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}
