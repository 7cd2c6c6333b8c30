import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation
import Logging

/// Completion of call and payment SIDs.
extension PaymentsMCP {
    // MARK: Completion

    func complete(_ request: CompletionRequest, principal: Principal) async -> Completion {
        guard principal.has(PaymentScope.read) else {
            return Completion(values: [])
        }
        // Completion is a convenience: with the store away it offers nothing rather than fail.
        // Only this principal's own (or its tenant's) payments are offered.
        let actor = principal.paymentActor
        let sessions = ((try? await coordinator.activeSessions()) ?? []).filter(actor.mayAccess)
        let values: [String]
        switch request.argumentName {
        case "callSid":
            values = Array(Set(sessions.map(\.callSID.rawValue))).sorted()
        case "paymentSid":
            let call = request.contextArguments["callSid"]
            values = sessions.filter { call == nil || $0.callSID.rawValue == call }.compactMap {
                $0.paymentSID?.rawValue
            }.sorted()
        default:
            values = []
        }
        return Completion(values: values.filter { $0.hasPrefix(request.value) })
    }
}
