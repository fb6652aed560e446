import NIOCore

/// How many streams have a live local end on this link, and who waits for none to be left (a
/// drain on shutdown: `YamuxMultiplexer.allStreamsClosed`). A value: the promises it gives back
/// are completed by the caller, after the count has changed, so a waiter's callback may ask again.
struct YamuxOpenStreams {
    private(set) var count = 0
    private var idleWaiters: [EventLoopPromise<Void>] = []

    /// A stream's local end took its slot.
    mutating func opened() {
        count += 1
    }

    /// A stream's local end is done; returns the waiters to complete if it was the last.
    mutating func closed() -> [EventLoopPromise<Void>] {
        assert(count > 0, "a stream closed that was never counted open")
        count -= 1
        return count == 0 ? takeWaiters() : []
    }

    /// A future that completes once no stream is open (at once if none is).
    mutating func noneOpen(on loop: EventLoop) -> EventLoopFuture<Void> {
        if count == 0 { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    /// The link is gone: nothing is open any more; returns every waiter to complete.
    mutating func closeAll() -> [EventLoopPromise<Void>] {
        count = 0
        return takeWaiters()
    }

    private mutating func takeWaiters() -> [EventLoopPromise<Void>] {
        defer { idleWaiters = [] }
        return idleWaiters
    }
}
