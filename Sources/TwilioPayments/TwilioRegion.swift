public import Foundation

/// A Twilio Region: where a request's data is processed and stored. A call handled in a region
/// is acted on only through that region's API, with API keys and an Auth Token made in that
/// region (a US1 key is refused by IE1 and AU1).
///
/// The Payment resource exists in US1, and in IE1 and AU1 for some Pay Connectors (Base
/// Commerce, Braintree, CardConnect, Chase Paymentech, the Generic Pay Connector and Shuttle).
public enum TwilioRegion: String, Sendable, CaseIterable, CustomStringConvertible {
    /// United States, the default.
    case us1
    /// Ireland.
    case ie1
    /// Australia.
    case au1

    /// The edge location Twilio's documentation names for the region's API (`api.dublin.ie1…`):
    /// used when a region is chosen without an edge, because the short host names
    /// (`api.ie1.twilio.com`) stopped working on 2026-04-28.
    public var documentedEdge: TwilioEdge {
        switch self {
        case .us1: return .ashburn
        case .ie1: return .dublin
        case .au1: return .sydney
        }
    }

    /// Twilio's regions that exist but where the Payment resource does not (a clear refusal
    /// rather than an unknown name).
    static let withoutPayments: Set<String> = ["us2", "de1", "jp1", "sg1", "br1"]

    public var description: String { rawValue }
}

/// A Twilio edge location: where a request enters Twilio's network on its way to a region.
public enum TwilioEdge: String, Sendable, CaseIterable, CustomStringConvertible {
    case ashburn, dublin, frankfurt, singapore, sydney, tokyo, umatilla
    case saoPaulo = "sao-paulo"

    public var description: String { rawValue }
}

/// Twilio's REST API host for a region and an edge: `https://api.{edge}.{region}.twilio.com`,
/// as Twilio's helper libraries build it.
public struct TwilioEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// Why a region or an edge was refused.
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// A region name that is not one of Twilio's, or one without the Payment resource.
        case unknownRegion(String)
        /// An edge name that is not one of Twilio's public edge locations.
        case unknownEdge(String)
        /// An edge without a region: Twilio would take it to US1, which a European or
        /// Australian deployment rarely means.
        case edgeWithoutRegion(TwilioEdge)

        public var description: String {
            switch self {
            case .unknownRegion(let name):
                return "\"\(name)\" is not a Twilio region with the Payment resource: use \(expected)"
            case .unknownEdge(let name): return "\"\(name)\" is not an edge location: use \(expected)"
            case .edgeWithoutRegion(let edge):
                return
                    "the edge \(edge) names where requests enter Twilio, not where they are processed: a region must be \(expected)"
            }
        }

        /// What the setting must be instead, as a phrase (`one of us1, ie1, au1 …`).
        public var expected: String {
            let regions = TwilioRegion.allCases.map(\.rawValue).joined(separator: ", ")
            switch self {
            case .unknownRegion(let name):
                if TwilioRegion.withoutPayments.contains(name.lowercased()) {
                    return "one of \(regions) (Twilio's Payment resource is not available in \(name))"
                }
                return "one of \(regions)"
            case .unknownEdge:
                return "one of Twilio's edge locations: " + TwilioEdge.allCases.map(\.rawValue).joined(separator: ", ")
            case .edgeWithoutRegion(let edge):
                return
                    "set beside the edge (\(regions)): an edge alone sends requests to US1 through \(edge), which "
                    + "is rarely what is meant"
            }
        }
    }

    /// The region requests go to.
    public let region: TwilioRegion
    /// The edge they enter through.
    public let edge: TwilioEdge

    /// The endpoint for `region` through `edge` (the region's documented edge when nil).
    public init(region: TwilioRegion, edge: TwilioEdge? = nil) {
        self.region = region
        self.edge = edge ?? region.documentedEdge
    }

    /// Parses names as an operator writes them (case and surrounding blanks ignored). `nil`
    /// for both is Twilio's default host (see ``TwilioPaymentsClient/defaultBaseURL``), so it
    /// answers `nil`.
    public static func named(region: String?, edge: String?) throws(Problem) -> TwilioEndpoint? {
        let region = region.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.flatMap {
            $0.isEmpty ? nil : $0
        }
        let edge = edge.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.flatMap { $0.isEmpty ? nil : $0 }
        let parsedEdge: TwilioEdge?
        if let edge {
            guard let known = TwilioEdge(rawValue: edge) else { throw .unknownEdge(edge) }
            parsedEdge = known
        } else {
            parsedEdge = nil
        }
        guard let region else {
            if let parsedEdge { throw .edgeWithoutRegion(parsedEdge) }
            return nil
        }
        guard let parsedRegion = TwilioRegion(rawValue: region) else { throw .unknownRegion(region) }
        return TwilioEndpoint(region: parsedRegion, edge: parsedEdge)
    }

    /// The host name, `api.{edge}.{region}.twilio.com`.
    public var host: String { "api.\(edge.rawValue).\(region.rawValue).twilio.com" }

    /// The base URL for ``TwilioPaymentsClient``.
    public var baseURL: URL { URL(string: "https://\(host)")! }

    public var description: String { host }
}
