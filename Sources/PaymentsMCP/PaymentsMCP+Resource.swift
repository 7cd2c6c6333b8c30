import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation
import Logging

/// The status resource `payment://{callSid}/{paymentSid}/status`.
extension PaymentsMCP {
    // MARK: Resource

    func statusTemplate() -> ResourceTemplate {
        ResourceTemplate(
            try! URITemplate("payment://{callSid}/{paymentSid}/status"), name: "payment-status",
            title: "Payment session status",
            description:
                "Live, masked status of one payment session, with the next step. Subscribe to be told of every change.",
            mimeType: "application/json",
            list: { [self] context in
                // Only what this principal may see: another's payments are not listed at all.
                let actor = context.principal.paymentActor
                guard context.principal.has(PaymentScope.read) else { return [] }
                return try await Self.rethrowingForMCP { () async throws(FlowError) in
                    try await coordinator.activeSessions()
                }.compactMap { session in
                    guard let sid = session.paymentSID, actor.mayAccess(session) else { return nil }
                    return ResourceDescriptor(
                        uri: SessionJSON.uri(callSID: session.callSID, paymentSID: sid),
                        name: "\(session.callSID)/\(sid)",
                        title: "Payment \(sid) (\(session.phase.name))", mimeType: "application/json")
                }
            }
        ) { [self] variables, uri, context in
            // Another principal's payment reads as one that does not exist.
            guard context.principal.has(PaymentScope.read),
                let sid = variables["paymentSid"].flatMap(PaymentSID.init),
                let callSID = variables["callSid"].flatMap(CallSID.init),
                let session = try await Self.rethrowingForMCP({ () async throws(FlowError) in
                    try await coordinator.latestSession(sid)
                }),
                session.callSID == callSID, context.principal.paymentActor.mayAccess(session)
            else { return nil }
            return [ResourceContents(uri: uri, mimeType: "application/json", text: rendering(session).text)]
        }
    }
}
