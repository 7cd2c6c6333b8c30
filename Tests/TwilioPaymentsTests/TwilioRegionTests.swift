import Foundation
import Synchronization
import Testing
@testable import TwilioPayments

/// Regions and edges (issue 29): the host a region and an edge name, what leaves the client for
/// it, and the sentences for a key from another region and a host that cannot be reached.
struct TwilioRegionTests {
    /// Answers every request with `response`, and keeps the URLs it was asked for (the host and
    /// path that leave the client, which a loopback server cannot show).
    final class RecordingTransport: HTTPTransport {
        let urls = Mutex<[URL]>([])
        let answer: Result<HTTPResponse, TransportFailure>

        init(_ answer: Result<HTTPResponse, TransportFailure>) {
            self.answer = answer
        }

        func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
            urls.withLock { $0.append(request.url) }
            return try answer.get()
        }
    }

    @Test(
        arguments: [
            ("us1", nil, "api.ashburn.us1.twilio.com"), ("ie1", nil, "api.dublin.ie1.twilio.com"),
            ("AU1", nil, "api.sydney.au1.twilio.com"), (" ie1 ", "frankfurt", "api.frankfurt.ie1.twilio.com"),
            ("au1", "Sydney", "api.sydney.au1.twilio.com"), ("us1", "sao-paulo", "api.sao-paulo.us1.twilio.com"),
        ] as [(String, String?, String)])
    func aRegionAndAnEdgeNameTheHost(region: String, edge: String?, host: String) throws {
        let endpoint = try #require(try TwilioEndpoint.named(region: region, edge: edge))
        #expect(endpoint.host == host && endpoint.baseURL.absoluteString == "https://\(host)")
    }

    @Test func neitherIsTwiliosDefaultHost() throws {
        #expect(try TwilioEndpoint.named(region: nil, edge: nil) == nil)
        #expect(try TwilioEndpoint.named(region: "", edge: " ") == nil)
    }

    @Test(
        arguments: [
            ("eu1", nil, TwilioEndpoint.Problem.unknownRegion("eu1")),
            ("de1", nil, .unknownRegion("de1")),
            ("ie1", "paris", .unknownEdge("paris")),
            (nil, "dublin", .edgeWithoutRegion(.dublin)),
        ] as [(String?, String?, TwilioEndpoint.Problem)])
    func aBadNameOrCombinationIsRefusedWithAReason(region: String?, edge: String?, problem: TwilioEndpoint.Problem) {
        #expect(throws: problem) { try TwilioEndpoint.named(region: region, edge: edge) }
        #expect(!problem.expected.isEmpty)
    }

    @Test func aRegionWithoutPaymentsIsNamedAsSuch() {
        #expect(TwilioEndpoint.Problem.unknownRegion("de1").expected.contains("not available in de1"))
        #expect(TwilioEndpoint.Problem.unknownRegion("eu1").expected == "one of us1, ie1, au1")
        #expect(TwilioEndpoint.Problem.edgeWithoutRegion(.dublin).expected.contains("US1 through dublin"))
    }

    @Test func everyRequestGoesToTheRegionsHostWithTheUsualPath() async throws {
        let body = #"{"sid":"\#(Fixture.call)","status":"in-progress"}"#
        let transport = RecordingTransport(.success(HTTPResponse(status: 200, headers: [:], body: Data(body.utf8))))
        let client = try TwilioPaymentsClient(
            credentials: Fixture.credentials, baseURL: TwilioEndpoint(region: .ie1).baseURL, transport: transport)
        _ = try await client.fetchCall(Fixture.call)
        let url = try #require(transport.urls.withLock { $0.first })
        #expect(url.scheme == "https" && url.host == "api.dublin.ie1.twilio.com")
        #expect(url.path == "/2010-04-01/Accounts/\(Fixture.account)/Calls/\(Fixture.call).json")
    }

    @Test func aRefusedKeyNamesTheHostAndTheLikelyRegionMismatch() async throws {
        let body =
            #"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#
        let transport = RecordingTransport(.success(HTTPResponse(status: 401, headers: [:], body: Data(body.utf8))))
        let client = try TwilioPaymentsClient(
            credentials: Fixture.credentials, baseURL: TwilioEndpoint(region: .au1).baseURL, transport: transport)
        do {
            _ = try await client.fetchCall(Fixture.call)
            Issue.record("no error")
        } catch {
            guard case .api(let answer) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(answer.host == "api.sydney.au1.twilio.com" && answer.isAuthenticationFailure)
            #expect(error.description.contains("The request went to api.sydney.au1.twilio.com"))
            #expect(error.description.contains("belong to one Twilio region"))
        }
        // Another refusal says nothing of regions.
        let other = TwilioAPIError(httpStatus: 400, code: 64018, message: "x", host: "api.twilio.com")
        #expect(!other.description.contains("region"))
    }

    @Test func aCallNotFoundNamesTheHostAndTheRegionItMayBeIn() async throws {
        let body = #"{"code":20404,"message":"The requested resource was not found","status":404}"#
        let transport = RecordingTransport(.success(HTTPResponse(status: 404, headers: [:], body: Data(body.utf8))))
        let client = try TwilioPaymentsClient(credentials: Fixture.credentials, transport: transport)
        do {
            _ = try await client.fetchCall(Fixture.call)
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("The request went to api.twilio.com"), "\(error)")
            #expect(error.description.contains("found only through that region's API"), "\(error)")
        }
    }

    @Test func aHostThatCannotBeReachedIsNamed() async throws {
        let transport = RecordingTransport(.failure(TransportFailure("could not resolve the host", isRetryable: false)))
        let client = try TwilioPaymentsClient(
            credentials: Fixture.credentials, baseURL: TwilioEndpoint(region: .ie1, edge: .frankfurt).baseURL,
            transport: transport)
        do {
            _ = try await client.fetchCall(Fixture.call)
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("api.frankfurt.ie1.twilio.com"), "\(error)")
        }
    }
}
