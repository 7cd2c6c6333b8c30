import Configuration
import Foundation
import Synchronization
import SystemPackage

/// The settings of one run, read through one swift-configuration `ConfigReader` from, in order
/// of precedence: the command line, the environment, a configuration file
/// (``Setting/configFile``, JSON or YAML, keyed by the settings' names), and each setting's
/// declared default. It remembers where each value came from, for `agent-payments config check`.
///
/// Libraries never see this: ``ServerConfiguration/load(_:simulate:allowUnauthenticated:)``
/// turns it into their typed configuration.
public final class Settings: Sendable {
    /// Where a value came from.
    public enum Origin: Sendable, Equatable, CustomStringConvertible {
        case commandLine
        case environment
        case file(String)
        case defaultValue

        public var description: String {
            switch self {
            case .commandLine: return "command line"
            case .environment: return "environment"
            case .file(let path): return "file \(path)"
            case .defaultValue: return "default"
            }
        }
    }

    private let reader: ConfigReader
    private let origins: OriginRecorder
    /// Each setting's raw value once read: a server reads some several times on its way to the
    /// first answer, and each lookup through the reader's providers costs microseconds.
    private let read = Mutex<[Setting: String?]>([:])
    /// The configuration file read, if any.
    public let file: String?
    /// The process's environment, for what is handed on to children (the ngrok agent).
    public let environment: [String: String]

    /// Reads the settings `commandLine` gives (by setting), the environment, and the file that
    /// either names (``Setting/configFile``).
    public init(
        commandLine: [Setting: String], environment: [String: String]
    ) throws(ConfigurationError) {
        let secretNames = Set(Setting.all.filter(\.isSecret).map(\.name))
        var providers: [any ConfigProvider] = [
            NamedProvider(
                name: Origin.commandLine.description,
                upstream: InMemoryProvider(
                    name: "command line",
                    values: Dictionary(
                        uniqueKeysWithValues: commandLine.map { setting, value in
                            (AbsoluteConfigKey(setting.key), ConfigValue(.string(value), isSecret: setting.isSecret))
                        }))),
            // The variables that are settings, keyed as the reader asks for them: swift-configuration's
            // EnvironmentVariablesProvider spells each key asked for as a variable's name again, on
            // every read, which was a tenth of the server's cold start.
            NamedProvider(
                name: Origin.environment.description,
                upstream: InMemoryProvider(
                    name: "environment",
                    values: Dictionary(
                        uniqueKeysWithValues: Setting.all.compactMap { setting in
                            environment[setting.name].map {
                                (AbsoluteConfigKey(setting.key), ConfigValue(.string($0), isSecret: setting.isSecret))
                            }
                        }))),
        ]
        let path = (commandLine[.configFile] ?? environment[Setting.configFile.name])?.trimmed
        if let path, !path.isEmpty {
            providers.append(try Self.fileProvider(path: path, secrets: secretNames))
            file = path
        } else {
            file = nil
        }
        self.environment = environment
        origins = OriginRecorder()
        reader = ConfigReader(providers: providers, accessReporter: origins)
    }

    /// The value of `setting`, trimmed, from the first source that sets it to something not
    /// blank, else its default; `nil` when neither.
    public func value(_ setting: Setting) -> String? {
        guard let text = raw(setting)?.trimmed, !text.isEmpty else {
            return setting.defaultValue
        }
        return text
    }

    /// The value as given, untrimmed (secrets whose spaces are theirs); `nil` when unset or empty.
    public func raw(_ setting: Setting) -> String? {
        if let known = read.withLock({ $0[setting] }) { return known }
        var text = reader.string(forKey: setting.key, isSecret: setting.isSecret)
        if text?.isEmpty == true { text = nil }
        read.withLock { $0[setting] = text }
        return text
    }

    /// Whether a source sets `setting` (its default does not count).
    public func isSet(_ setting: Setting) -> Bool {
        raw(setting)?.trimmed.isEmpty == false
    }

    /// Where the value of `setting` comes from.
    public func origin(of setting: Setting) -> Origin {
        guard isSet(setting), let name = origins.provider(of: AbsoluteConfigKey(setting.key)) else {
            return .defaultValue
        }
        if name == Origin.commandLine.description { return .commandLine }
        if name == Origin.environment.description { return .environment }
        return .file(file ?? name)
    }

    /// A provider for the configuration file at `path`: JSON (`.json`) or YAML (`.yaml`,
    /// `.yml`), an object whose keys are settings' names. Numbers, booleans and lists are read
    /// as the text an environment variable would hold (`8080`, `true`, `USD,EUR`).
    static func fileProvider(path: String, secrets: Set<String>) throws(ConfigurationError) -> any ConfigProvider {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .invalidConfigFile(path: path, reason: "it cannot be read (\(error.localizedDescription))")
        }
        let lowercased = path.lowercased()
        let yaml = lowercased.hasSuffix(".yaml") || lowercased.hasSuffix(".yml")
        let snapshot: any ConfigSnapshot
        do {
            if yaml {
                snapshot = try YAMLSnapshot(
                    data: data.bytes, providerName: path,
                    parsingOptions: .init(secretsSpecifier: .dynamic { key, _ in secrets.contains(key) }))
            } else if lowercased.hasSuffix(".json") {
                snapshot = try JSONSnapshot(
                    data: data.bytes, providerName: path,
                    parsingOptions: .init(secretsSpecifier: .dynamic { key, _ in secrets.contains(key) }))
            } else {
                throw ConfigurationError.invalidConfigFile(
                    path: path, reason: "its name must end in .json, .yaml or .yml")
            }
        } catch let error as ConfigurationError {
            throw error
        } catch {
            // The parser's own message may quote a line of the file, and the file holds secrets.
            throw .invalidConfigFile(
                path: path, reason: "it is not a \(yaml ? "YAML mapping" : "JSON object") of settings by name")
        }
        let known = Set(Setting.all.map(\.name))
        if let unknown = Self.topLevelKeys(of: data, yaml: yaml).sorted().first(where: {
            !known.contains($0)
        }) {
            throw .invalidConfigFile(
                path: path,
                reason: "\"\(unknown)\" is not a setting (the keys are the variables' names, such as CALLBACK_BASE_URL)"
            )
        }
        return FileSnapshotProvider(name: path, file: snapshot)
    }

    /// The file's top-level keys, so that a misspelt one is refused instead of ignored.
    private static func topLevelKeys(of data: Data, yaml: Bool) -> [String] {
        if !yaml {
            return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]).map { Array($0.keys) } ?? []
        }
        // A top-level YAML key starts its line, unindented, and ends at the first ": " or ":".
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).compactMap { line in
            guard let first = line.first, !first.isWhitespace, first != "#", first != "-",
                let colon = line.firstIndex(of: ":")
            else { return nil }
            return line[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
        }
    }
}

/// Which provider answered each key, as the reader reports its lookups.
final class OriginRecorder: AccessReporter, Sendable {
    private let answers = Mutex<[AbsoluteConfigKey: String]>([:])

    func report(_ event: AccessEvent) {
        let answer = event.providerResults.first { result in
            if case .success(let lookup) = result.result, lookup.value != nil { return true }
            return false
        }
        guard let answer else { return }
        answers.withLock { $0[event.metadata.key] = answer.providerName }
    }

    func provider(of key: AbsoluteConfigKey) -> String? { answers.withLock { $0[key] } }
}
