import Foundation
import Testing
@testable import PaymentFlow
import TwilioPayments

/// Who may act on which payment, and what may be charged: enforced by the coordinator, so every
/// host (MCP, HTTP, a library caller) gets the same answer.
@Suite struct PaymentPolicyTests {
    let api = FakePaymentsAPI()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://example.com/twilio/callbacks/")

    static let alice = PaymentActor(owner: PaymentOwner(principal: "token:alice", tenant: "acme"))
    static let bob = PaymentActor(owner: PaymentOwner(principal: "token:bob", tenant: "globex"))
    static let carol = PaymentActor(owner: PaymentOwner(principal: "token:carol", tenant: "acme"))
    static let operatorActor = PaymentActor(owner: PaymentOwner(principal: "token:ops"), isOperator: true)

    func coordinator(
        _ policy: SpendingPolicy = .unlimited, ledger: any SpendingLedger = InMemorySpendingLedger()
    ) -> PaymentCoordinator {
        PaymentCoordinator(api: api, callbackURLs: callbacks, policy: policy, ledger: ledger, now: { Sample.date })
    }

    @Test func anotherPrincipalsSessionIsUnknownToItAndItsCallIsBusy() async throws {
        let flow = coordinator()
        let started = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions()), as: Self.alice
        ).session
        let sid = try #require(started.paymentSID)
        #expect(started.owner == Self.alice.owner, "the session records who started it")
        let sent = api.calls.count
        for command in [
            PaymentCommand.capture(.cardNumber, paymentSID: sid, callSID: nil, restart: false),
            .complete(paymentSID: sid, callSID: nil), .cancel(paymentSID: sid, callSID: nil),
            .capture(.cardNumber, paymentSID: sid, callSID: Sample.otherCall, restart: false),
        ] {
            // Exactly what a SID nobody knows gets: no existence oracle, not even through the call check.
            await #expect(throws: FlowError.unknownSession(sid)) { try await flow.perform(command, as: Self.bob) }
        }
        await #expect(throws: FlowError.callBusy(callSID: Sample.call)) {
            try await flow.perform(.start(callSID: Sample.call, options: PaymentSessionOptions()), as: Self.bob)
        }
        #expect(api.calls.count == sent, "nothing reached Twilio for bob")
        #expect(Self.carol.mayAccess(started) && Self.operatorActor.mayAccess(started) && !Self.bob.mayAccess(started))
        // A tenant-mate and the operator act on it.
        _ = try await flow.perform(.capture(.cardNumber, paymentSID: sid, callSID: nil, restart: false), as: Self.carol)
        let cancelled = try await flow.perform(.cancel(paymentSID: sid, callSID: nil), as: Self.operatorActor)
        #expect(cancelled.session.phase.name == "cancelled")
        // A session without an owner (a host without principals) is the operator's alone.
        let hosted = try await flow.start(callSID: Sample.otherCall, options: PaymentSessionOptions())
        #expect(hosted.owner == nil && !Self.alice.mayAccess(hosted) && Self.operatorActor.mayAccess(hosted))
    }

    @Test func chargesAreBoundedByAmountCurrencyAndScope() async throws {
        let flow = coordinator(SpendingPolicy(maximumCharge: 100, currencies: ["usd", "EUR"]))
        await #expect(throws: FlowError.policy(.chargeTooLarge(amount: "5000", maximum: "100", currency: "USD"))) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "5000")), as: Self.alice)
        }
        await #expect(throws: FlowError.policy(.currencyNotAllowed(currency: "GBP", allowed: ["EUR", "USD"]))) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "10", currency: "gbp")),
                as: Self.alice)
        }
        let tokenizer = PaymentActor(owner: PaymentOwner(principal: "token:t"), mayCharge: false)
        await #expect(throws: FlowError.policy(.chargeNotPermitted)) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "10")), as: tokenizer)
        }
        #expect(api.calls.isEmpty, "no refused charge reached Twilio")
        // Tokenizing is never a charge; 100 is within the maximum.
        _ = try await flow.perform(.start(callSID: Sample.call, options: PaymentSessionOptions()), as: tokenizer)
        _ = try await flow.perform(
            .start(callSID: Sample.otherCall, options: PaymentSessionOptions(chargeAmount: "100.00", currency: "EUR")),
            as: Self.alice)
        #expect(
            FlowError.policy(.chargeTooLarge(amount: "5000", maximum: "100", currency: "USD")).description.contains(
                "maximum of 100 USD"))
    }

    @Test func theDailyLimitCountsPerPrincipalAndGivesBackWhatWasNotCharged() async throws {
        let ledger = InMemorySpendingLedger()
        let flow = coordinator(SpendingPolicy(dailyLimit: 100), ledger: ledger)
        let first = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "60")), as: Self.alice
        ).session
        #expect(first.charge == ChargeAuthorization(countedOn: "2027-01-15", fromAmountDue: false))
        await #expect(
            throws: FlowError.policy(.dailyLimitReached(amount: "50", spentToday: "60", limit: "100", currency: "USD"))
        ) {
            try await flow.perform(
                .start(callSID: Sample.otherCall, options: PaymentSessionOptions(chargeAmount: "50")), as: Self.alice)
        }
        // Another principal has a limit of its own.
        _ = try await flow.perform(
            .start(callSID: Sample.otherCall, options: PaymentSessionOptions(chargeAmount: "50")), as: Self.bob)
        // A cancelled payment charged nothing: its amount is given back.
        _ = try await flow.perform(.cancel(paymentSID: try #require(first.paymentSID), callSID: nil), as: Self.alice)
        #expect(
            await ledger.reserve(principal: "token:alice", day: "2027-01-15", currency: "USD", amount: 0, limit: 100)
                .spentBefore == 0)
        // So does a start Twilio refused.
        api.failNext(with: .api(TwilioAPIError(httpStatus: 400, code: 64001, message: "Invalid")))
        await #expect(throws: FlowError.self) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "70")), as: Self.alice)
        }
        #expect(
            await ledger.reserve(principal: "token:alice", day: "2027-01-15", currency: "USD", amount: 0, limit: 100)
                .spentBefore == 0)
        // A repeated start resumes and counts nothing twice.
        let again = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "70")), as: Self.alice)
        let resumed = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "70")), as: Self.alice)
        #expect(!again.repeated && resumed.repeated)
        #expect(
            await ledger.reserve(principal: "token:alice", day: "2027-01-15", currency: "USD", amount: 0, limit: 100)
                .spentBefore == 70)
    }

    @Test func theBackendFixesTheAmountAndTheAgentCannotChangeIt() async throws {
        let flow = coordinator(SpendingPolicy(requireAmountDue: true))
        await #expect(throws: FlowError.policy(.amountDueRequired)) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "10")), as: Self.alice)
        }
        try await flow.registerAmountDue(
            AmountDue(amount: "49.90", currency: "eur", expiresAt: Sample.date.addingTimeInterval(600)),
            onCall: Sample.call)
        await #expect(throws: FlowError.policy(.amountDiffers(asked: "5000 EUR", due: "49.90", currency: "EUR"))) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "5000", currency: "EUR")),
                as: Self.alice)
        }
        await #expect(throws: FlowError.policy(.amountDiffers(asked: "49.90 USD", due: "49.90", currency: "EUR"))) {
            try await flow.perform(
                .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "49.90")), as: Self.alice)
        }
        let started = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions()), as: Self.alice
        ).session
        #expect(
            started.configuration.options.chargeAmount == "49.90" && started.configuration.options.currency == "EUR")
        #expect(started.charge?.fromAmountDue == true)
        #expect(api.calls.count == 1, "only the start with the amount due reached Twilio")
        // Stating the same amount is fine too (on a call of its own).
        try await flow.registerAmountDue(
            AmountDue(amount: "12.5", expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.otherCall)
        _ = try await flow.perform(
            .start(callSID: Sample.otherCall, options: PaymentSessionOptions(chargeAmount: "12.50")), as: Self.alice)
        // An expired amount due no longer applies; a bad one is refused when registered.
        await #expect(throws: FlowError.self) {
            try await flow.registerAmountDue(
                AmountDue(amount: "-3", expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.call)
        }
        let third = CallSID(validated: "CA" + String(repeating: "3", count: 32))
        try await flow.registerAmountDue(
            AmountDue(amount: "5", expiresAt: Sample.date.addingTimeInterval(-1)), onCall: third)
        #expect(try await flow.amountDue(onCall: third) == nil)
    }

    @Test func aCompletedChargeConsumesTheAmountDueAndKeepsItsCount() async throws {
        let ledger = InMemorySpendingLedger()
        let flow = coordinator(SpendingPolicy(dailyLimit: 100), ledger: ledger)
        try await flow.registerAmountDue(
            AmountDue(amount: "40", expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.call)
        let started = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions()), as: Self.alice
        ).session
        let sid = try #require(started.paymentSID)
        let secret = String(try #require(api.calls.first?.statusCallback).split(separator: "/").last!)
        _ = try await flow.receiveCallback(
            secret: secret, Sample.callback(["Result": "success", "PaymentConfirmationCode": "ch_1"], sid: sid))
        #expect(try await flow.session(sid)?.phase.name == "completed")
        #expect(
            try await flow.amountDue(onCall: Sample.call) == nil,
            "charged: the amount due is consumed, a second payment cannot charge it again")
        #expect(
            await ledger.reserve(principal: "token:alice", day: "2027-01-15", currency: "USD", amount: 0, limit: 100)
                .spentBefore == 40,
            "what was charged stays counted")
    }

    @Test func anotherTenantsAmountDueIsNeitherSeenNorUsedNorChanged() async throws {
        let flow = coordinator()
        let due = AmountDue(amount: "49.90", expiresAt: Sample.date.addingTimeInterval(600))
        try await flow.registerAmountDue(due, onCall: Sample.call, as: Self.alice)
        #expect(
            try await flow.amountDue(onCall: Sample.call, as: Self.carol)?.registeredBy == Self.alice.owner,
            "a tenant-mate sees it")
        #expect(try await flow.amountDue(onCall: Sample.call, as: Self.bob) == nil, "another tenant does not")
        await #expect(throws: FlowError.callBusy(callSID: Sample.call)) {
            try await flow.registerAmountDue(
                AmountDue(amount: "1", expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.call,
                as: Self.bob)
        }
        #expect(try await flow.clearAmountDue(onCall: Sample.call, as: Self.bob) == false)
        #expect(try await flow.amountDue(onCall: Sample.call)?.amount == "49.90", "untouched")
        // Planted by bob on a call of alice's: alice's start does not charge it.
        try await flow.registerAmountDue(
            AmountDue(amount: "1", expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.otherCall,
            as: Self.bob)
        let tokenized = try await flow.perform(
            .start(callSID: Sample.otherCall, options: PaymentSessionOptions()), as: Self.alice
        ).session
        #expect(!tokenized.configuration.isCharge && tokenized.charge == nil)
        // Nobody may fix the amount on a call where another tenant's payment runs.
        await #expect(throws: FlowError.callBusy(callSID: Sample.otherCall)) {
            try await flow.clearAmountDue(onCall: Sample.otherCall)
            try await flow.registerAmountDue(
                AmountDue(amount: "2", expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.otherCall,
                as: Self.bob)
        }
        // A host without principals registers for everyone.
        let third = CallSID(validated: "CA" + String(repeating: "3", count: 32))
        try await flow.registerAmountDue(
            AmountDue(amount: "7", expiresAt: Sample.date.addingTimeInterval(600)), onCall: third)
        let charged = try await flow.perform(.start(callSID: third, options: PaymentSessionOptions()), as: Self.bob)
            .session
        #expect(charged.configuration.options.chargeAmount == "7")
    }
}
