import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation
import Logging

/// The guidance prompts.
extension PaymentsMCP {
    // MARK: Prompts

    func makePrompt(_ prompt: GuidanceTopic) -> Prompt {
        let descriptions: [GuidanceTopic: String] = [
            .startCapture: "How to open the payment with the caller and start the session.",
            .cardNumber: "Guiding the caller to type the card number.",
            .securityCode: "Guiding the caller to type the security code.",
            .expirationDate: "Guiding the caller to type the expiration date.",
            .postalCode: "Guiding the caller to type the billing postal code.",
            .bankAccount: "Guiding the caller through the bank routing and account numbers (ACH).",
            .finishCapture: "Confirming everything is captured and completing the payment.",
            .completion: "What to say once the payment has gone through.",
            .error: "Explaining what went wrong and how to recover.",
        ]
        return Prompt(
            name: prompt.rawValue, title: prompt.rawValue, description: descriptions[prompt],
            arguments: [
                PromptArgument(name: "callSid", description: "The call's SID", required: prompt == .startCapture),
                PromptArgument(
                    name: "paymentSid", description: "The payment session's SID, to tailor the guidance to its state"),
            ]
        ) { [self] arguments, context in
            var session: PaymentSession?
            // Tailored only to a session this principal may see; another's reads as none.
            let actor = context.principal.paymentActor
            if context.principal.has(PaymentScope.read) {
                if let sid = arguments["paymentSid"].flatMap(PaymentSID.init) {
                    session = try await Self.rethrowingForMCP { () async throws(FlowError) in
                        try await coordinator.session(sid)
                    }.flatMap { actor.mayAccess($0) ? $0 : nil }
                } else if let call = arguments["callSid"].flatMap(CallSID.init) {
                    session = try await Self.rethrowingForMCP { () async throws(FlowError) in
                        try await coordinator.sessions(onCall: call)
                    }.first(where: actor.mayAccess)
                }
            }
            let text = redactor.redact(PromptLibrary.text(prompt, session: session, waitSeconds: maximumWaitSeconds))
            return PromptResult(description: descriptions[prompt], messages: [PromptMessage(role: .user, text: text)])
        }
    }
}
