import Foundation
import ServiceLifecycle

extension Worker: Service {
    /// Runs the worker until the work is done (`exitWhenDone`), graceful shutdown (it drains:
    /// no more claims, running jobs finish within the shutdown deadline) or cancellation (running
    /// jobs are released at once). Its threads keep libpq's blocking calls off Swift's cooperative
    /// pool; this task only waits for them.
    public func run() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let thread = Thread {
                        do {
                            try self.runUntilStopped()
                            continuation.resume()
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                    thread.name = "inmailq-worker"
                    thread.start()
                }
            } onGracefulShutdown: {
                self.drain()
            }
        } onCancel: {
            self.releaseNow()
        }
    }
}
