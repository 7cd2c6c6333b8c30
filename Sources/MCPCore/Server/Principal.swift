/// Who is calling: the identity a transport established for a connection, handed to every
/// request's handler in ``RequestContext/principal``.
///
/// The engine itself uses only ``scopes``: a tool whose ``Tool/requiredScopes`` the principal
/// lacks is left out of its `tools/list` and refused when called. What a principal owns, and
/// who may see it, is the host's business (``MCPServer/setResourceAccess(_:)``).
///
/// stdio has one principal, ``local``, which may do everything: whoever can write to the
/// server's standard input started it. Streamable HTTP names each bearer token's holder.
public struct Principal: Sendable, Hashable, CustomStringConvertible {
    /// A stable, non-secret name: `token:alice`, `oauth:user-42`, `local`. Never a credential.
    public var id: String
    /// The group the principal belongs to (a tenant claim, a token's group), if any.
    public var tenant: String?
    /// The scopes granted; `nil` grants every scope (stdio, a test bench without
    /// authentication).
    public var scopes: Set<String>?

    public init(id: String, tenant: String? = nil, scopes: Set<String>? = nil) {
        self.id = id
        self.tenant = tenant
        self.scopes = scopes
    }

    /// The one principal of a stdio server.
    public static let local = Principal(id: "local")

    /// Whether the principal holds `scope`.
    public func has(_ scope: String) -> Bool {
        scopes?.contains(scope) ?? true
    }

    /// The scopes of `required` the principal lacks, in their order.
    public func missing(_ required: [String]) -> [String] {
        required.filter { !has($0) }
    }

    public var description: String {
        id + (tenant.map { "@" + $0 } ?? "")
    }
}
