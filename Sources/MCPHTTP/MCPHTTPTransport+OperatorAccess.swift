public import Hummingbird
public import NIOCore

extension MCPHTTPTransport {
    /// What an operator's read-only route beside `/mcp` (such as `/metrics`) asks of `request`:
    /// nothing on a loopback listener (`exposed` false); elsewhere what `/mcp` asks of it
    /// (`transport`'s tokens or OAuth), and without a transport, having nothing to ask, it refuses
    /// with `403`. Returns the refusal, or `nil` to serve the request.
    public static func operatorRefusal(
        _ request: Request, channel: (any Channel)?, exposed: Bool, transport: MCPHTTPTransport?, path: String
    ) async -> Response? {
        guard exposed else { return nil }
        guard let transport else {
            return Response(
                status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: "\(path) is served without a token only on a loopback listener; use --http's tokens\n"))
            )
        }
        if case .refused(let response) = await transport.authenticate(request, channel: channel) { return response }
        return nil
    }
}
