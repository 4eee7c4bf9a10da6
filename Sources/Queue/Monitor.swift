import Foundation

/// A mutex with several condition variables, so that each kind of waiter (handler threads,
/// the producer, the completer) is woken only by the events it waits for.
///
/// `@unchecked Sendable`: the pthread objects it owns are made to be shared between threads;
/// they are allocated once, never moved, and freed in deinit.
final class Monitor: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: [UnsafeMutablePointer<pthread_cond_t>]

    /// A monitor with `conditionCount` condition variables, numbered from 0.
    init(conditionCount: Int) {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        conditions = (0..<conditionCount).map { _ in
            let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
            pthread_cond_init(condition, &attributes)
            return condition
        }
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        for condition in conditions {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits on condition `index` (the lock held); wakes by signal or after `timeout` if given.
    func wait(_ index: Int, timeout: Duration? = nil) {
        guard let timeout else {
            pthread_cond_wait(conditions[index], mutex)
            return
        }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = max(timeout, .zero).components
        var nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        var deadline = timespec(tv_sec: now.tv_sec + Int(seconds) + nanoseconds / 1_000_000_000, tv_nsec: 0)
        nanoseconds %= 1_000_000_000
        deadline.tv_nsec = nanoseconds
        pthread_cond_timedwait(conditions[index], mutex, &deadline)
    }

    /// Wakes one waiter of condition `index`.
    func signal(_ index: Int) { pthread_cond_signal(conditions[index]) }

    /// Wakes every waiter of condition `index`.
    func broadcast(_ index: Int) { pthread_cond_broadcast(conditions[index]) }
}
