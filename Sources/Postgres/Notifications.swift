import CLibPQ
import Foundation

/// A NOTIFY delivered to a listening session.
public struct Notification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    /// The server process of the session that sent it.
    public let senderPID: Int32
}

extension Connection {
    /// Starts listening on `channel` (quoted as an identifier, so any name is safe).
    /// After a reconnect the session listens again by itself.
    public func listen(_ channel: String) throws(PostgresError) {
        try runScript("listen \(quoteIdentifier(channel))")
        listeningChannels.insert(channel)
    }

    /// Stops listening on `channel`.
    public func unlisten(_ channel: String) throws(PostgresError) {
        try runScript("unlisten \(quoteIdentifier(channel))")
        listeningChannels.remove(channel)
    }

    /// Sends a notification; it is delivered when the surrounding transaction commits.
    public func notify(_ channel: String, payload: String = "") throws(PostgresError) {
        try execute("select pg_notify(\(channel), \(payload))")
    }

    /// Waits for the next notification on any channel this session listens to, sleeping on the
    /// connection's socket (no polling). Returns nil when `timeout` passes, or as soon as
    /// `interruptDescriptor` (e.g. the read end of a pipe) becomes readable.
    public func nextNotification(timeout: Duration, interruptDescriptor: Int32? = nil) throws(PostgresError) -> Notification? {
        try reconnectIfBroken()
        let deadline = ContinuousClock.now + timeout
        while true {
            guard PQconsumeInput(handle) == 1 else { throw connectionError(statement: nil) }
            if let notification = takeNotification() { return notification }
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            var descriptors = [pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)]
            if let interruptDescriptor {
                descriptors.append(pollfd(fd: interruptDescriptor, events: Int16(POLLIN), revents: 0))
            }
            let milliseconds = Int32(min(remaining.seconds * 1000, Double(Int32.max)).rounded(.up))
            let ready = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
            if ready < 0, errno != EINTR {
                throw PostgresError(kind: .connection, message: "waiting for a notification failed: \(String(cString: strerror(errno)))")
            }
            if descriptors.count > 1, descriptors[1].revents != 0 { return nil }
        }
    }

    /// Notifications that already arrived (for example during other statements), without waiting.
    public func pendingNotifications() throws(PostgresError) -> [Notification] {
        try reconnectIfBroken()
        guard PQconsumeInput(handle) == 1 else { throw connectionError(statement: nil) }
        var notifications: [Notification] = []
        while let notification = takeNotification() { notifications.append(notification) }
        return notifications
    }

    private func takeNotification() -> Notification? {
        guard let raw = PQnotifies(handle) else { return nil }
        defer { PQfreemem(raw) }
        return Notification(
            channel: String(cString: raw.pointee.relname),
            payload: String(cString: raw.pointee.extra),
            senderPID: raw.pointee.be_pid)
    }
}
