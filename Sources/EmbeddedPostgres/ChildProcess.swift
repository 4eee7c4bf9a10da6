import Foundation

/// A child OS process started with `posix_spawn`, reaped with `waitpid`. Used to run the
/// server's tools (`initdb`, `pg_ctl`) and, by callers, to run worker processes.
/// Output goes to a file or is inherited, never to a pipe nobody reads.
public struct ChildProcess: Sendable {
    public let pid: pid_t

    /// Starts `arguments[0]` (an absolute path) with the rest as its arguments. Standard input
    /// is /dev/null; standard output and error go to `outputPath` (appended), or are inherited.
    /// The child starts with no signal blocked and the stopping signals at their defaults, whatever
    /// this process ignores (an ignored SIGTERM would be inherited, and a shell cannot trap it).
    public static func spawn(
        _ arguments: [String], environment: [String: String]? = nil, outputPath: String? = nil
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for stopping in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, stopping) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let environmentList = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let status = withNullTerminatedCStrings(arguments) { argv in
            withNullTerminatedCStrings(environmentList) { envp in
                posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
            }
        }
        guard status == 0 else {
            throw ChildProcessError("cannot start \(arguments[0]): \(String(cString: strerror(status)))")
        }
        return ChildProcess(pid: pid)
    }

    /// Waits for the process to end; returns its exit status, or 128+signal when a signal ended it.
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return Self.exitCode(status)
    }

    /// The exit status if the process has ended (reaping it), nil while it runs; -1 when it was
    /// reaped before (its status went to that earlier call).
    public func exitStatusIfEnded() -> Int32? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return Self.exitCode(status) }
        return result < 0 && errno == ECHILD ? -1 : nil
    }

    /// Sends a signal such as SIGTERM or SIGKILL.
    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs a command to its end; throws with its output when it exits non-zero.
    public static func run(_ arguments: [String], environment: [String: String]? = nil) throws -> String {
        let outputPath = NSTemporaryDirectory() + "inmailq-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let child = try spawn(arguments, environment: environment, outputPath: outputPath)
        let status = child.wait()
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw ChildProcessError("\(URL(fileURLWithPath: arguments[0]).lastPathComponent) failed (exit \(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return output
    }
}

/// A child process that could not start or did not succeed, with its output.
public struct ChildProcessError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

private func withNullTerminatedCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let duplicated = strings.map { strdup($0) } + [nil]
    defer { duplicated.forEach { free($0) } }
    return duplicated.withUnsafeBufferPointer { body($0.baseAddress!) }
}
