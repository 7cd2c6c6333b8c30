import Testing
import TwilioPayments
@testable import TwilioSimulator

/// The simulator's callback queue: each payment's callbacks in order, one at a time per payment,
/// a bounded number of workers that end when nothing waits.
@Suite struct CallbackDeliveriesTests {
    let first = PaymentSID("PK" + String(repeating: "a", count: 32))!
    let second = PaymentSID("PK" + String(repeating: "b", count: 32))!

    func fields(_ label: String) -> CallbackDeliveries.Fields { [("Label", label)] }

    @Test func oneWorkerSendsEachPaymentsCallbacksInOrderTakingTurns() {
        var deliveries = CallbackDeliveries(maximumWorkers: 1)
        let started = deliveries.enqueue(fields("a1"), for: first)
        #expect(started, "the first callback starts a worker")
        for (label, payment) in [("a2", first), ("b1", second), ("a3", first), ("b2", second)] {
            let another = deliveries.enqueue(fields(label), for: payment)
            #expect(!another, "one worker at most")
        }
        var order: [String] = []
        while let (payment, fields) = deliveries.next() {
            order.append(fields[0].1)
            deliveries.sent(payment)
        }
        #expect(order == ["a1", "b1", "a2", "b2", "a3"])
        #expect(deliveries.workers == 0 && deliveries.waitingCount == 0)
        let again = deliveries.enqueue(fields("b3"), for: second)
        #expect(again, "an idle queue starts a worker again")
    }

    @Test func aPaymentWithACallbackOnItsWayIsNotHandedToAnotherWorker() {
        var deliveries = CallbackDeliveries(maximumWorkers: 4)
        let started = deliveries.enqueue(fields("a1"), for: first)
        let sameReady = deliveries.enqueue(fields("a2"), for: first)
        #expect(started && !sameReady, "nothing more is ready: no second worker")
        #expect(deliveries.workers == 1)
        let taken = deliveries.next()
        #expect(taken?.0 == first && taken?.1[0].1 == "a1")
        // a2 waits while a1 is on its way: another worker finds nothing.
        let secondWorker = deliveries.enqueue(fields("b1"), for: second)
        #expect(secondWorker, "another payment is ready: a second worker")
        let other = deliveries.next()
        #expect(other?.0 == second)
        let nothing = deliveries.next()
        #expect(nothing == nil, "a1 is still on its way, so a2 is not ready")
        #expect(deliveries.workers == 1)
        deliveries.sent(first)
        let following = deliveries.next()
        #expect(following?.1[0].1 == "a2")
        deliveries.sent(first)
        deliveries.sent(second)
        let end = deliveries.next()
        #expect(end == nil)
        #expect(deliveries.workers == 0)
    }

    @Test func manyPaymentsAreServedByTheBoundedWorkersAlone() {
        var deliveries = CallbackDeliveries(maximumWorkers: 3)
        var started = 0
        let payments = (0..<3000).map { number -> PaymentSID in
            let hex = String(number, radix: 16)
            return PaymentSID("PK" + String(repeating: "0", count: 32 - hex.count) + hex)!
        }
        for payment in payments where deliveries.enqueue(fields("x"), for: payment) { started += 1 }
        #expect(started == 3 && deliveries.workers == 3)
        var served = 0
        // Three workers taking turns, as their tasks would.
        var active = 3
        while active > 0 {
            for _ in 0..<active {
                guard let (payment, _) = deliveries.next() else {
                    active -= 1
                    continue
                }
                served += 1
                deliveries.sent(payment)
            }
        }
        #expect(served == 3000 && deliveries.workers == 0 && deliveries.waitingCount == 0)
    }
}
