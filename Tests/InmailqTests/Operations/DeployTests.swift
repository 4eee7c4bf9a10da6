import EmbeddedPostgres
import Foundation
import Testing

/// The manifests in deploy/, checked by the tools their platforms use.
@Suite("Deploy manifests")
struct DeployTests {
    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let outputPath = TestScratch.directory + "/deploy-\(UInt32.random(in: 0...UInt32.max)).out"
        let status = try ChildProcess.spawn(arguments, outputPath: outputPath).wait()
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// `systemd-analyze verify` on every unit, the worker's template as an instance, with the
    /// built executable in place of /usr/local/bin/inmailq.
    @Test func systemdUnitsPassSystemdAnalyzeVerify() throws {
        let tool = try #require(["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                "systemd-analyze is missing (Debian's systemd package)")
        let directory = TestScratch.directory + "/units-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let source = TestPaths.root + "/deploy/systemd"
        var units: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: source).sorted() {
            let text = try String(contentsOfFile: source + "/" + name, encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/inmailq", with: TestPaths.executable)
            let unit = name.replacingOccurrences(of: "@.service", with: "@9464.service")
            try text.write(toFile: directory + "/" + unit, atomically: true, encoding: .utf8)
            units.append(directory + "/" + unit)
        }
        #expect(units.map { ($0 as NSString).lastPathComponent } == [
            "inmailq-renewals.service", "inmailq-renewals.timer", "inmailq-serve.service", "inmailq-worker@9464.service",
        ])
        let verified = try run([tool, "verify"] + units)
        #expect(verified.status == 0, "\(verified.output)")
        #expect(!verified.output.contains("inmailq"), "\(verified.output)")  // no warning about our units
        // The check itself finds a mistake.
        try "[Service]\nExecStart=\(TestPaths.executable) worker\nTimeoutStopSecs=30\n".write(toFile: directory + "/broken.service", atomically: true, encoding: .utf8)
        #expect(try run([tool, "verify", directory + "/broken.service"]).output.contains("TimeoutStopSecs"))
    }

    /// Every Kubernetes manifest against the API's schemas (kubernetes-validate, offline, strict).
    @Test func kubernetesManifestsMatchTheSchemas() throws {
        let validator = try #require(
            (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/kubernetes-validate" }
                .first { FileManager.default.isExecutableFile(atPath: $0) },
            "kubernetes-validate is missing (`make test` installs it from PyPI)")
        let source = TestPaths.root + "/deploy/kubernetes"
        let files = try FileManager.default.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(".yaml") }.sorted().map { source + "/" + $0 }
        #expect(files.count == 4)
        let validated = try run([validator, "--strict", "-k", "1.30.0"] + files)
        #expect(validated.status == 0, "\(validated.output)")
        #expect(validated.output.components(separatedBy: " passed for resource ").count - 1 == 5, "\(validated.output)")
        for kind in ["deployment/inmailq-worker", "deployment/inmailq-serve", "service/inmailq-serve", "cronjob/inmailq-renewals", "job/inmailq-migrate"] {
            #expect(validated.output.contains(kind), "\(kind)")
        }
        // A misspelt field fails.
        let worker = try String(contentsOfFile: source + "/worker.yaml", encoding: .utf8)
        let broken = TestScratch.directory + "/broken-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try worker.replacingOccurrences(of: "terminationGracePeriodSeconds", with: "terminationGracePeriod").write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try run([validator, "--strict", "-k", "1.30.0", broken]).status != 0)

        // What the issue asks of them: the grace period above the shutdown deadline, no overlap
        // of renewals, no secret inlined.
        #expect(worker.contains("terminationGracePeriodSeconds: 40") && worker.contains(#"--shutdown-deadline, "20""#))
        let cronJob = try String(contentsOfFile: source + "/renewals-cronjob.yaml", encoding: .utf8)
        #expect(cronJob.contains("concurrencyPolicy: Forbid") && cronJob.contains("startingDeadlineSeconds:"))
        for file in files {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(!text.contains("password") || !text.contains("value: postgres"), "\(file)")
            for secret in ["DATABASE_URL", "INMAILQ_DIRECT_DATABASE_URL", "INMAILQ_GATEWAY_API_KEY", "INMAILQ_WEBHOOK_SECRET"] {
                for range in text.ranges(of: "name: \(secret)\n") {
                    #expect(text[range.upperBound...].trimmingPrefix(while: { $0 == " " }).hasPrefix("valueFrom: {secretKeyRef:"), "\(file): \(secret)")
                }
            }
        }
    }
}

extension Substring {
    func trimmingPrefix(while predicate: (Character) -> Bool) -> Substring { drop(while: predicate) }
}
