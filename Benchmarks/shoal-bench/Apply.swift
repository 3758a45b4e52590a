import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalReplication
import ShoalSQLite
import Synchronization

/// `apply`: replica apply throughput without fsync for several batch sizes, next to raw `pwrite`s
/// of as many pages; and how long readers are blocked while a one-frame sync applies.
struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Replica apply throughput (frames/s, no fsync) and reader blocking for one-frame applies.")

    @Option(help: "Frames to replicate in the throughput phase (about 2 per transaction).")
    var frames = 40_000

    @Option(help: "One-frame applies timed in the blocking phase.")
    var singleApplies = 2_000

    func run() throws {
        try throughput()
        try blocking()
    }

    /// Applies the same log with batches of 100 and 10,000 frames.
    func throughput() throws {
        for batch in [100, 10_000] {
            let fixture = try ReplicationFixture(name: "apply-\(batch)", rows: 1)
            defer { fixture.close() }
            // Transactions of one ~3.9 KB row each: a fresh leaf page per row, about two frames.
            try fixture.log.withWritePermit {
                try fixture.writer.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
                while fixture.log.committedFrames < UInt64(frames) {
                    try fixture.writer.transaction {
                        for _ in 0..<50 {
                            try fixture.writer.execute("INSERT INTO blobs (data) VALUES (randomblob(3900))")
                        }
                    }
                }
            }
            let total = fixture.log.committedFrames - (fixture.replica.position?.frame ?? 0)
            let start = shoal_bench_now_ns()
            let results = try fixture.catchUp(maxFrames: batch)
            let seconds = Double(shoal_bench_now_ns() - start) / 1e9
            let applied = results.reduce(0) { $0 + $1.framesApplied }
            guard UInt64(applied) == total else { throw ValidationError("applied \(applied) of \(total) frames") }
            let pagesWritten = results.reduce(0) { $0 + $1.pagesWritten }
            let raw = try rawWrites(pages: pagesWritten, directory: fixture.directory)
            BenchResult(
                bench: "apply", metric: "frames_per_second_batch_\(batch)", value: Double(applied) / seconds,
                unit: "frames/s", baseline: Double(pagesWritten) / raw, baselineName: "raw_pwrite_pages_per_second"
            ).print()
            if batch == 100 {
                // What the replicator's check of every frame (salts, chained checksum) costs, over
                // the same frames, beside the apply of them.
                var chunks: [FrameChunk] = []
                var next: UInt64 = 1
                while case .frames(let chunk) = try fixture.log.readFrames(generation: 1, start: next, maxFrames: batch)
                {
                    chunks.append(chunk)
                    next = chunk.lastFrame + 1
                }
                var chain: FrameChain?
                var checked = 0
                let checkStart = shoal_bench_now_ns()
                for chunk in chunks {
                    chain = try FrameChain.verify(chunk, after: chain)
                    checked += chunk.count
                }
                let checkSeconds = Double(shoal_bench_now_ns() - checkStart) / 1e9
                guard UInt64(checked) == fixture.log.committedFrames else {
                    throw ValidationError("checked \(checked) of \(fixture.log.committedFrames) frames")
                }
                BenchResult(
                    bench: "apply", metric: "frame_check_frames_per_second", value: Double(checked) / checkSeconds,
                    unit: "frames/s", baseline: Double(applied) / seconds, baselineName: "frames_per_second_batch_100"
                ).print()
            }
        }
    }

    /// Seconds to `pwrite` `pages` pages of 4096 bytes to a scratch file (the page-cache limit).
    func rawWrites(pages: Int, directory: String) throws -> Double {
        let path = directory + "/raw.bin"
        let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw ValidationError("cannot create \(path)") }
        defer {
            close(descriptor)
            unlink(path)
        }
        let page = [UInt8](repeating: 0x5a, count: 4096)
        let start = shoal_bench_now_ns()
        try page.withUnsafeBytes { bytes in
            for index in 0..<pages {
                guard pwrite(descriptor, bytes.baseAddress, 4096, off_t(index) * 4096) == 4096 else {
                    throw ValidationError("pwrite failed")
                }
            }
        }
        return Double(shoal_bench_now_ns() - start) / 1e9
    }

    /// One-frame applies while a reader thread reads continuously; how long the gate stays closed.
    func blocking() throws {
        let fixture = try ReplicationFixture(name: "apply-blocking", rows: 100_000)
        defer { fixture.close() }
        let stop = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
        let reader = Thread {
            var key: Int64 = 1
            while !stop.load(ordering: .acquiring) {
                _ = try? fixture.replica.read { connection in
                    let statement = try connection.cachedStatement("SELECT n FROM kv WHERE id = ?")
                    try statement.bind(key, at: 1)
                    defer { statement.reset() }
                    return try statement.step() ? statement.int64(at: 0) : 0
                }
                key = key % 100_000 + 1
                reads.add(1, ordering: .relaxed)
            }
        }
        reader.start()
        var blocked: [UInt64] = []
        var total: [UInt64] = []
        var random = SeededGenerator(seed: 9)
        for _ in 0..<singleApplies {
            try fixture.updateOneRow(id: Int64.random(in: 1...100_000, using: &random))
            let start = shoal_bench_now_ns()
            let results = try fixture.catchUp()
            total.append(shoal_bench_now_ns() - start)
            guard results.count == 1, results[0].framesApplied == 1 else {
                throw ValidationError("expected one one-frame apply, got \(results.map(\.framesApplied))")
            }
            blocked.append(UInt64(results[0].readersBlocked.components.attoseconds / 1_000_000_000))
        }
        stop.store(true, ordering: .releasing)
        while !reader.isFinished { usleep(1000) }
        guard reads.load(ordering: .relaxed) > 0 else { throw ValidationError("the reader never read") }
        let blockedStats = DurationStats(nanoseconds: blocked)
        let totalStats = DurationStats(nanoseconds: total)
        BenchResult(
            bench: "apply", metric: "one_frame_readers_blocked_median", value: blockedStats.median / 1000, unit: "us",
            baseline: 200, baselineName: "target_max"
        ).print()
        BenchResult(
            bench: "apply", metric: "one_frame_readers_blocked_p99", value: blockedStats.p99 / 1000, unit: "us",
            baseline: nil, baselineName: nil
        ).print()
        BenchResult(
            bench: "apply", metric: "one_frame_apply_total_median", value: totalStats.median / 1000, unit: "us",
            baseline: blockedStats.median / 1000, baselineName: "one_frame_readers_blocked_median"
        ).print()
    }
}
