import Testing
import MCPClient
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a child started by ``ChildProcess`` inherits: its three standard descriptors and nothing
/// else of this process. An inherited pipe end keeps that pipe's reader from ever seeing the end
/// (a test suite once stalled for a minute on exactly that: a psql holding a server's socket).
@Suite struct ChildProcessTests {
    @Test func aChildHoldsOnlyItsStandardDescriptors() throws {
        #if os(Linux)
        // Descriptors of this process with close-on-exec unset, as any plain pipe() makes them.
        var leaky: [Int32] = [-1, -1]
        #expect(pipe(&leaky) == 0)
        defer { leaky.forEach { _ = close($0) } }
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd"])
        _ = close(child.input)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(child.output, &chunk, chunk.count)
            if count <= 0 { break }
            output += chunk[0..<count]
        }
        _ = close(child.output)
        #expect(ChildProcess.waitForExit(child.processID) == 0)
        let descriptors = String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
        // sh's own: 0, 1, 2, and whatever `ls` opens for itself, never this process's pipe.
        #expect(Set(descriptors).isSuperset(of: [0, 1, 2]))
        #expect(!descriptors.contains(leaky[0]) && !descriptors.contains(leaky[1]), "inherited: \(descriptors)")
        #endif
    }
}
