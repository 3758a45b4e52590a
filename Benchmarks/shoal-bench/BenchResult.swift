import Foundation

/// One benchmark result line: `{"bench", "metric", "value", "unit", "baseline", "baseline_name"}`.
struct BenchResult {
    let bench: String
    let metric: String
    let value: Double
    let unit: String
    let baseline: Double?
    let baselineName: String?

    /// Prints the result as one JSON line on standard output, with explicit nulls.
    func print() {
        let object: [String: Any] = [
            "bench": bench, "metric": metric, "value": value, "unit": unit,
            "baseline": baseline ?? NSNull(), "baseline_name": baselineName ?? NSNull(),
        ]
        // A dictionary of strings, numbers and nulls always serializes.
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        Swift.print(String(decoding: data, as: UTF8.self))
    }
}

/// Summary statistics of a list of durations in nanoseconds.
struct DurationStats {
    let median: Double
    let p99: Double
    let mean: Double

    init(nanoseconds: [UInt64]) {
        precondition(!nanoseconds.isEmpty, "no samples")
        let sorted = nanoseconds.sorted()
        func percentile(_ p: Double) -> Double {
            Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
        }
        median = percentile(0.5)
        p99 = percentile(0.99)
        mean = Double(sorted.reduce(0, +)) / Double(sorted.count)
    }
}

/// A small deterministic generator (SplitMix64), so runs are reproducible from a seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
