import TwilioPayments

/// The status callbacks waiting to be sent: each payment's in the order they were made, one at a
/// time per payment (one session's callbacks arrive in order), and up to ``maximumWorkers``
/// payments' at once.
///
/// A payment with nothing to send costs no task: workers run only while callbacks wait and end
/// when none do. (One delivery task per payment, waiting on a stream for the session's life, held
/// a task allocator slab and a task-local link of about 1 KiB each: 10,000 idle sessions cost
/// ~20 MB of the simulator's memory, measured with heaptrack.) Not thread-safe: the simulator
/// keeps it under its state lock.
struct CallbackDeliveries {
    typealias Fields = [(String, String)]

    /// How many payments' callbacks may be on their way at once.
    let maximumWorkers: Int
    /// Callbacks not yet taken by a worker, per payment, oldest first.
    private var waiting: [PaymentSID: [Fields]] = [:]
    /// Payments with waiting callbacks and none on its way, in the order they became so:
    /// `ready[readyStart...]`.
    private var ready: [PaymentSID] = []
    private var readyStart = 0
    /// Payments with a callback on its way.
    private var sending: Set<PaymentSID> = []
    /// Workers running.
    private(set) var workers = 0

    init(maximumWorkers: Int = 16) {
        precondition(maximumWorkers > 0, "at least one worker")
        self.maximumWorkers = maximumWorkers
    }

    /// How many callbacks wait for a worker.
    var waitingCount: Int { waiting.values.reduce(0) { $0 + $1.count } }

    /// Queues `fields` for `payment`; `true` when the caller must start a worker (which then
    /// calls ``next()`` until it returns `nil`).
    mutating func enqueue(_ fields: Fields, for payment: PaymentSID) -> Bool {
        let wasIdle = waiting[payment] == nil
        waiting[payment, default: []].append(fields)
        if wasIdle, !sending.contains(payment) { ready.append(payment) }
        // A worker for each payment ready or on its way, up to the bound: more would find nothing.
        guard workers < maximumWorkers, workers < ready.count - readyStart + sending.count else { return false }
        workers += 1
        return true
    }

    /// The next callback for a worker to send (its payment then has one on its way until
    /// ``sent(_:)``), or `nil` when none is ready: the worker then ends (it is no longer counted).
    mutating func next() -> (PaymentSID, Fields)? {
        guard readyStart < ready.count else {
            workers -= 1
            ready.removeAll(keepingCapacity: false)
            readyStart = 0
            return nil
        }
        let payment = ready[readyStart]
        readyStart += 1
        if readyStart >= 1024, readyStart * 2 >= ready.count {
            ready.removeFirst(readyStart)
            readyStart = 0
        }
        var queue = waiting.removeValue(forKey: payment) ?? []
        let fields = queue.removeFirst()
        if !queue.isEmpty { waiting[payment] = queue }
        sending.insert(payment)
        return (payment, fields)
    }

    /// `payment`'s callback has been sent (or failed): its next one, if any, is ready.
    mutating func sent(_ payment: PaymentSID) {
        sending.remove(payment)
        if waiting[payment] != nil { ready.append(payment) }
    }

    /// A worker stopped without asking for more (its task was cancelled).
    mutating func workerStopped() {
        workers -= 1
    }
}
