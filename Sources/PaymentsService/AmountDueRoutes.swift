import Foundation
public import Hummingbird
public import PaymentFlow
import TwilioPayments

/// The backend's way to fix what a call's payment charges, before the agent starts it:
///
/// - `PUT /calls/{CallSid}/amount-due` with `{"amount": "49.90", "currency": "USD",
///   "expiresInSeconds": 3600}` registers it (`204`);
/// - `GET` answers it (`200`, or `404` when none applies);
/// - `DELETE` withdraws it (`204`, or `404` when none is).
///
/// Amounts due belong to the principal that registered them and its tenant, as payments do:
/// another tenant's reads as none (`404`), and registering on a call that holds another
/// tenant's amount due or payment is refused (`409`).
///
/// A `startPaymentCapture` on that call without an amount then charges it, and one with another
/// amount is refused (``PolicyRefusal/amountDiffers(asked:due:currency:)``). Every request is
/// authenticated by `authorize`, which answers the principal acting, or the response that
/// refuses it (the MCP endpoint's own bearer check, so one token list serves both). Bodies are
/// small JSON objects (4 KiB at most); nothing in them is echoed back.
public struct AmountDueRoutes<Context: RequestContext>: Sendable {
    /// Who is calling, or the refusal (`401`, `403`, `429`…).
    public enum Admission: Sendable {
        case admitted(PaymentActor)
        case refused(Response)
    }
    public typealias Authorize = @Sendable (Request, Context) async -> Admission

    public let coordinator: PaymentCoordinator
    public let authorize: Authorize
    /// The longest an amount due may apply.
    public let maximumLifetime: Duration

    public init(
        coordinator: PaymentCoordinator,
        maximumLifetime: Duration = .seconds(86_400),
        authorize: @escaping Authorize
    ) {
        self.coordinator = coordinator
        self.authorize = authorize
        self.maximumLifetime = maximumLifetime
    }

    /// The path the routes answer on, for a call.
    public static var path: String { "/calls/{callSid}/amount-due" }

    /// `PUT`, `GET` and `DELETE` on ``path``, for the host's router.
    public func routes() -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        let path = RouterPath(Self.path)
        routes.put(path) { request, context in await handle(request, context, method: .put) }
        routes.get(path) { request, context in await handle(request, context, method: .get) }
        routes.delete(path) { request, context in await handle(request, context, method: .delete) }
        return routes
    }

    private func handle(_ request: Request, _ context: Context, method: HTTPRequest.Method) async -> Response {
        let actor: PaymentActor
        switch await authorize(request, context) {
        case .refused(let refusal): return refusal
        case .admitted(let admitted): actor = admitted
        }
        guard actor.mayCharge else {
            var refusal = Self.json(
                .forbidden, ["error": "insufficient_scope", "message": "amounts due need the payments:charge scope"])
            refusal.headers[.wwwAuthenticate] = "Bearer error=\"insufficient_scope\", scope=\"payments:charge\""
            return refusal
        }
        guard let callSID = context.parameters.get("callSid").flatMap(CallSID.init) else {
            return Self.json(
                .badRequest,
                [
                    "error": "invalid_call_sid",
                    "message": "the path must name a Twilio Call SID (CA followed by 32 hexadecimal digits)",
                ])
        }
        let flow = coordinator
        do throws(FlowError) {
            switch method {
            case .get:
                guard let due = try await flow.amountDue(onCall: callSID, as: actor) else {
                    return Self.json(
                        .notFound, ["error": "none", "message": "no amount due is registered for this call"])
                }
                return Self.json(
                    .ok,
                    [
                        "amount": due.amount, "currency": due.currency,
                        "expiresAt": ISO8601DateFormatter().string(from: due.expiresAt),
                    ])
            case .delete:
                guard try await flow.clearAmountDue(onCall: callSID, as: actor) else {
                    return Self.json(
                        .notFound, ["error": "none", "message": "no amount due is registered for this call"])
                }
                return Response(status: .noContent)
            default:
                let body: ByteBuffer
                do {
                    body = try await request.body.collect(upTo: 4096)
                } catch {
                    return Self.json(
                        .contentTooLarge, ["error": "too_large", "message": "the body is larger than 4 KiB"])
                }
                guard let parsed = try? JSONDecoder().decode(Body.self, from: Data(buffer: body)) else {
                    return Self.json(
                        .badRequest,
                        [
                            "error": "invalid_body",
                            "message":
                                "the body must be a JSON object: amount (a decimal such as \"49.90\"), currency, expiresInSeconds",
                        ])
                }
                let longest = Int(maximumLifetime.components.seconds)
                let lifetime = max(1, min(parsed.expiresInSeconds ?? longest, longest))
                let due = AmountDue(
                    amount: parsed.amount.text, currency: parsed.currency ?? "USD", registeredBy: actor.owner,
                    expiresAt: Date().addingTimeInterval(TimeInterval(lifetime)))
                try await flow.registerAmountDue(due, onCall: callSID, as: actor)
                return Response(status: .noContent)
            }
        } catch {
            switch error {
            case .invalidArgument(let problem):
                return Self.json(.badRequest, ["error": "invalid_amount", "message": problem])
            case .policy(let refusal):
                return Self.json(.unprocessableContent, ["error": refusal.reason, "message": refusal.description])
            case .callBusy:
                return Self.json(
                    .conflict,
                    [
                        "error": "call_busy",
                        "message":
                            "another client's amount due or payment is on this call; it cannot be changed from here",
                    ])
            default:
                return Self.json(
                    .serviceUnavailable, ["error": "unavailable", "message": error.description], retryAfter: 1)
            }
        }
    }

    /// The body of a `PUT`.
    struct Body: Decodable {
        var amount: AmountText
        var currency: String?
        var expiresInSeconds: Int?
    }

    /// An amount given as a string (kept exactly) or a JSON number; never a boolean.
    struct AmountText: Decodable {
        var text: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self.text = text
            } else {
                self.text = SpendingPolicy.text(try container.decode(Decimal.self))
            }
        }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: String], retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
