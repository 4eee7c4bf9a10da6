import ArgumentParser
import Foundation
import Logging
import Synchronization

/// How log lines look on standard error.
enum LogFormat: String, CaseIterable, Sendable {
    /// `2026-11-22T19:00:00.123Z info worker: job completed job_id=7 kind=diag.noop`
    case text
    /// `{"ts":"...","level":"info","label":"worker","msg":"job completed","job_id":"7"}`
    case json
}

extension LogFormat: ExpressibleByArgument {}

enum LoggingSetup {
    private static let done = Mutex(false)

    /// Installs the handler once per process; later calls do nothing.
    static func bootstrap(level: Logger.Level, format: LogFormat) {
        done.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap { label in
                var handler = LineLogHandler(label: label, format: format)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// Writes one line per event to standard error, as key=value text or as JSON.
struct LineLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let timestamp = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        var line: String
        switch format {
        case .text:
            line = "\(timestamp) \(event.level) \(label): \(Self.oneLine("\(event.message)"))"
            for key in fields.keys.sorted() {
                line += " \(key)=\(Self.quoted("\(fields[key]!)"))"
            }
        case .json:
            var object: [String: String] = ["ts": timestamp, "level": "\(event.level)", "label": label, "msg": "\(event.message)"]
            for (key, value) in fields { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A value as one token: quoted when it has spaces, quotes or `=`, and never more than one
    /// line (a line break in a server's error becomes `\n`), so each event stays one line.
    static func quoted(_ value: String) -> String {
        let value = oneLine(value)
        if value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) {
            return "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return value
    }

    /// `text` with its line breaks written as `\n` (and `\r`).
    static func oneLine(_ text: String) -> String {
        guard text.contains(where: \.isNewline) else { return text }
        return text.replacingOccurrences(of: "\r\n", with: "\\n").replacingOccurrences(of: "\n", with: "\\n")
            .replacingOccurrences(of: "\r", with: "\\r")
    }
}
