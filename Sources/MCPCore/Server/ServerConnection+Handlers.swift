import Synchronization

/// The handlers behind tools, resources, prompts and completion.
extension ServerConnection {
    /// The registered item that `params["name"]` names (a tool, a prompt), or an error that
    /// lists what is available.
    func named<Item: Sendable>(
        _ kind: String, _ params: JSONValue, in items: KeyPath<MCPServer.Registry, [Item]>,
        name itemName: (Item) -> String
    ) throws -> (String, Item) {
        guard let name = params["name"]?.stringValue else {
            throw JSONRPCError.invalidParams("\"name\" (a string) is required")
        }
        guard let item = server.registry.withLock({ $0[keyPath: items].first { itemName($0) == name } }) else {
            let known = server.registry.withLock { $0[keyPath: items].map(itemName) }.joined(separator: ", ")
            throw JSONRPCError.invalidParams("Unknown \(kind): \(name) (available: \(known.isEmpty ? "none" : known))")
        }
        return (name, item)
    }

    // MARK: Tools

    /// A tool call checked and ready to run, or already answered (a refusal of its scopes or
    /// arguments).
    enum PreparedToolCall {
        case answered(JSONValue)
        case run(ToolCall)
    }

    func callTool(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        let (name, tool) = try named("tool", params, in: \.tools) { $0.name }
        let call: ToolCall
        switch try prepareToolCall(name, tool, params: params, context: context) {
        case .answered(let refusal): return refusal
        case .run(let prepared): call = prepared
        }
        let result: ToolResult
        do {
            result = try await tool.handler(call)
        } catch let error as ToolError {
            if let structured = error.structuredContent {
                return ToolResult(text: error.message, structuredContent: structured, isError: true).json
            }
            return ToolResult.refusal(reason: "tool-error", message: error.message, retryable: false).json
        } catch let error as JSONRPCError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return ToolResult.refusal(reason: "tool-failed", message: "Tool \(name) failed: \(error)", retryable: false)
                .json
        }
        return try checked(result, of: tool, named: name)
    }

    /// The answer of a `tools/call` whose tool answers it at once (``Tool/immediate``), refusals
    /// of scopes and arguments included; `nil` when the tool has no immediate answer or declines,
    /// and the call must run in a task.
    func callToolImmediately(params: JSONValue, context: RequestContext) -> Result<JSONValue, JSONRPCError>? {
        // An unknown tool is left to the task, which names it in its error.
        guard let (name, tool) = try? named("tool", params, in: \.tools, name: { $0.name }),
            let immediate = tool.immediate
        else { return nil }
        do {
            switch try prepareToolCall(name, tool, params: params, context: context) {
            case .answered(let refusal):
                return .success(refusal)
            case .run(let call):
                guard let result = immediate(call) else { return nil }
                return .success(try checked(result, of: tool, named: name))
            }
        } catch let error as JSONRPCError {
            return .failure(error)
        } catch {
            return .failure(.internalError(String(describing: error)))
        }
    }

    /// Checks the principal's scopes for `tool` and the arguments against its input schema.
    func prepareToolCall(
        _ name: String, _ tool: Tool, params: JSONValue, context: RequestContext
    ) throws -> PreparedToolCall {
        let missing = context.principal.missing(tool.requiredScopes)
        if !missing.isEmpty {
            return .answered(
                ToolResult.refusal(
                    reason: "insufficient-scope",
                    message:
                        "This client may not call \(name): its credentials lack the scope \(missing.joined(separator: " "))",
                    retryable: false,
                    whatToDo:
                        "Do not call \(name) again with these credentials; ask the operator for a token with \(missing.joined(separator: " ")).",
                    details: ["requiredScopes": .array(missing.map(JSONValue.string))]
                ).json)
        }
        // Absent and null arguments alike mean none.
        let argumentsValue = params["arguments"].flatMap { $0.isNull ? nil : $0 } ?? [:]
        guard case .object(var arguments) = argumentsValue else {
            throw JSONRPCError.invalidParams("\"arguments\" must be an object, got \(argumentsValue.typeName)")
        }
        // Strict-mode models (OpenAI's, LangChain's strict converters) must send every property
        // and send null for what they mean to omit: an optional argument that is null is absent.
        // The schema's required names are read only when a null came: most calls send none.
        if arguments.values.contains(where: \.isNull) {
            let required = Set(tool.inputSchema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            for (key, value) in arguments where value.isNull && !required.contains(key) {
                arguments.removeValue(forKey: key)
            }
        }
        let violations = JSONSchemaValidator(
            schema: tool.inputSchema, echoesValues: server.options.echoesArgumentValues
        )
        .validate(.object(arguments), rootName: "arguments")
        if !violations.isEmpty {
            let text = "Invalid arguments for tool \(name): " + violations.map(\.description).joined(separator: "; ")
            return .answered(
                ToolResult.refusal(
                    reason: "invalid-arguments", message: text, retryable: false,
                    whatToDo: "Call \(name) again with arguments that match its input schema (tools/list shows it).",
                    details: [
                        "violations": .array(
                            violations.map { .object(["path": .string($0.path), "problem": .string($0.message)]) })
                    ]
                ).json)
        }
        return .run(ToolCall(arguments: arguments, context: context))
    }

    /// A tool's result as sent, after checking it against the tool's output schema.
    func checked(_ result: ToolResult, of tool: Tool, named name: String) throws -> JSONValue {
        if let outputSchema = tool.outputSchema, !result.isError {
            guard let structured = result.structuredContent else {
                throw JSONRPCError.internalError(
                    "tool \(name) declares an outputSchema but returned no structuredContent")
            }
            if result.structuredContentValidated { return result.json }
            let problems = JSONSchemaValidator(schema: outputSchema).validate(structured, rootName: "structuredContent")
            if !problems.isEmpty {
                throw JSONRPCError.internalError(
                    "tool \(name) returned output that does not match its outputSchema: "
                        + problems.map(\.description).joined(separator: "; "))
            }
        }
        return result.json
    }

    // MARK: Resources

    func resourceExists(uri: String) -> Bool {
        server.registry.withLock { registry in
            registry.resources.contains { $0.descriptor.uri == uri }
                || registry.templates.contains { $0.template.match(uri) != nil }
        }
    }

    func listResources(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        let (resources, listers) = server.registry.withLock { registry in
            (registry.resources.map(\.descriptor), registry.templates.compactMap(\.list))
        }
        var descriptors = resources
        for list in listers { descriptors += try await list(context) }
        return try paginate(descriptors.map(\.json), key: "resources", params: params).get()
    }

    func readResource(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        guard let uri = params["uri"]?.stringValue else {
            throw JSONRPCError.invalidParams("\"uri\" (a string) is required")
        }
        let (resource, templates) = server.registry.withLock { registry in
            (registry.resources.first { $0.descriptor.uri == uri }, registry.templates)
        }
        if let resource {
            return ["contents": .array(try await resource.read(context).map(\.json))]
        }
        for template in templates {
            guard let variables = template.template.match(uri) else { continue }
            if let contents = try await template.read(variables, uri, context) {
                return ["contents": .array(contents.map(\.json))]
            }
        }
        throw ResourceNotFound.error(uri: uri)
    }

    // MARK: Prompts

    func getPrompt(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        let (name, prompt) = try named("prompt", params, in: \.prompts) { $0.name }
        let arguments = try Self.stringArguments(params["arguments"], what: "prompt \(name)")
        let missing = prompt.arguments.filter { $0.required && (arguments[$0.name] ?? "").isEmpty }.map(\.name)
        if !missing.isEmpty {
            throw JSONRPCError.invalidParams(
                "Missing required argument\(missing.count > 1 ? "s" : "") for prompt \(name): "
                    + missing.joined(separator: ", "))
        }
        return try await prompt.render(arguments, context).json
    }

    static func stringArguments(_ value: JSONValue?, what: String) throws -> [String: String] {
        guard let value, !value.isNull else { return [:] }
        guard case .object(let members) = value else {
            throw JSONRPCError.invalidParams("\"arguments\" for \(what) must be an object of strings")
        }
        var arguments: [String: String] = [:]
        for (key, member) in members {
            guard let string = member.stringValue else {
                throw JSONRPCError.invalidParams("argument \(key) for \(what) must be a string, got \(member.typeName)")
            }
            arguments[key] = string
        }
        return arguments
    }

    // MARK: Completion

    func complete(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        let provider = server.registry.withLock { $0.completionProvider }
        guard let provider else {
            throw JSONRPCError.methodNotFound("completion/complete", detail: "this server offers no completions")
        }
        guard let reference = params["ref"], let type = reference["type"]?.stringValue else {
            throw JSONRPCError.invalidParams("\"ref\" with a \"type\" is required")
        }
        let parsedReference: CompletionRequest.Reference
        switch type {
        case "ref/prompt":
            guard let name = reference["name"]?.stringValue else {
                throw JSONRPCError.invalidParams("ref/prompt needs a \"name\"")
            }
            guard server.registry.withLock({ $0.prompts.contains { $0.name == name } }) else {
                throw JSONRPCError.invalidParams("Unknown prompt: \(name)")
            }
            parsedReference = .prompt(name: name)
        case "ref/resource":
            guard let uri = reference["uri"]?.stringValue else {
                throw JSONRPCError.invalidParams("ref/resource needs a \"uri\"")
            }
            guard
                server.registry.withLock({
                    $0.templates.contains { $0.template.text == uri }
                        || $0.resources.contains { $0.descriptor.uri == uri }
                })
            else {
                throw JSONRPCError.invalidParams("Unknown resource template: \(uri)")
            }
            parsedReference = .resourceTemplate(uri: uri)
        default:
            throw JSONRPCError.invalidParams("\"ref.type\" must be ref/prompt or ref/resource, got \(type)")
        }
        guard let argumentName = params["argument"]?["name"]?.stringValue,
            let value = params["argument"]?["value"]?.stringValue
        else {
            throw JSONRPCError.invalidParams("\"argument\" needs a string \"name\" and \"value\"")
        }
        let contextArguments = try Self.stringArguments(params["context"]?["arguments"], what: "completion context")
        let request = CompletionRequest(
            reference: parsedReference, argumentName: argumentName, value: value,
            contextArguments: contextArguments)
        return try await provider(request, context).json
    }
}
