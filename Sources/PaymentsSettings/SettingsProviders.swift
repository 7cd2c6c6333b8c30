import Configuration

/// A provider under the name ``Settings/Origin`` reports it by (`command line`, `environment`).
struct NamedProvider: ConfigProvider {
    let name: String
    let upstream: any ConfigProvider

    var providerName: String { name }

    func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        try upstream.value(forKey: key, type: type)
    }

    nonisolated(nonsending) func fetchValue(
        forKey key: AbsoluteConfigKey, type: ConfigType
    ) async throws -> LookupResult {
        try await upstream.fetchValue(forKey: key, type: type)
    }

    nonisolated(nonsending) func watchValue<Return: ~Copyable>(
        forKey key: AbsoluteConfigKey, type: ConfigType,
        updatesHandler:
            nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<Result<LookupResult, any Error>, Never>)
            async throws ->
            Return
    ) async throws -> Return {
        try await upstream.watchValue(forKey: key, type: type, updatesHandler: updatesHandler)
    }

    func snapshot() -> any ConfigSnapshot { upstream.snapshot() }

    nonisolated(nonsending) func watchSnapshot<Return: ~Copyable>(
        updatesHandler:
            nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<any ConfigSnapshot, Never>) async throws ->
            Return
    ) async throws -> Return {
        try await upstream.watchSnapshot(updatesHandler: updatesHandler)
    }
}

/// A configuration file's settings: its top-level keys are the settings' names
/// (`CALLBACK_PORT`), and a number, boolean or list asked for as text is read as the text an
/// environment variable would hold (`8080`, `true`, `USD,EUR`), so a file can say `8080`.
struct FileSnapshotProvider: ConfigProvider, ConfigSnapshot {
    let name: String
    let file: any ConfigSnapshot

    var providerName: String { name }

    func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        // The settings' keys are their names' words; the file holds the names.
        let named = AbsoluteConfigKey([key.components.joined(separator: "_").uppercased()])
        do {
            return try file.value(forKey: named, type: type)
        } catch {
            guard type == .string else { throw error }
            for other in [ConfigType.int, .double, .bool, .stringArray, .intArray, .doubleArray] {
                guard var result = try? file.value(forKey: named, type: other), let value = result.value else {
                    continue
                }
                result.value = ConfigValue(.string(Self.text(value.content)), isSecret: value.isSecret)
                return result
            }
            throw error
        }
    }

    static func text(_ content: ConfigContent) -> String {
        switch content {
        case .string(let value): return value
        case .int(let value): return String(value)
        case .double(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
        case .bool(let value): return String(value)
        case .stringArray(let values): return values.joined(separator: ",")
        case .intArray(let values): return values.map(String.init).joined(separator: ",")
        case .doubleArray(let values): return values.map { "\($0)" }.joined(separator: ",")
        case .boolArray(let values): return values.map(String.init).joined(separator: ",")
        case .bytes, .byteChunkArray: return ""
        }
    }

    nonisolated(nonsending) func fetchValue(
        forKey key: AbsoluteConfigKey, type: ConfigType
    ) async throws -> LookupResult {
        try value(forKey: key, type: type)
    }

    nonisolated(nonsending) func watchValue<Return: ~Copyable>(
        forKey key: AbsoluteConfigKey, type: ConfigType,
        updatesHandler:
            nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<Result<LookupResult, any Error>, Never>)
            async throws ->
            Return
    ) async throws -> Return {
        try await watchValueFromValue(forKey: key, type: type, updatesHandler: updatesHandler)
    }

    func snapshot() -> any ConfigSnapshot { self }

    nonisolated(nonsending) func watchSnapshot<Return: ~Copyable>(
        updatesHandler:
            nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<any ConfigSnapshot, Never>) async throws ->
            Return
    ) async throws -> Return {
        try await watchSnapshotFromSnapshot(updatesHandler: updatesHandler)
    }
}
