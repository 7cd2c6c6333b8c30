import Foundation
import Testing
@testable import PaymentsSettings

/// Docs/configuration.md and Docs/http.md are held to the declaration: each setting has one row,
/// each row names a declared setting, and a row's default is the declared one.
@Suite struct SettingsDocumentationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Row {
        var file: String
        var names: [String]
        var cells: [String]
    }

    /// The rows of the settings tables of `file` (headed `| Variable |` or `| Setting |`) with
    /// the settings their first cell names (`` `NAME` ``).
    static func rows(_ file: String) throws -> [Row] {
        let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
        var inTable = false
        return text.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> Row? in
            if line.hasPrefix("| Variable |") || line.hasPrefix("| Setting |") { inTable = true }
            if !line.hasPrefix("|") { inTable = false }
            guard inTable, line.hasPrefix("| ") else { return nil }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard let first = cells.first else { return nil }
            let names = first.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter {
                $0.offset % 2 == 1
            }.map {
                String($0.element)
            }
            .filter { name in
                name.count > 3 && name.allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" }
            }
            return names.isEmpty ? nil : Row(file: file, names: names, cells: Array(cells))
        }
    }

    @Test func everySettingHasOneRowAndEveryRowIsASetting() throws {
        let rows = try Self.rows("Docs/configuration.md") + Self.rows("Docs/http.md")
        let documented = rows.flatMap(\.names)
        for setting in Setting.all {
            #expect(
                documented.filter { $0 == setting.name }.count == 1,
                "\(setting.name): rows \(documented.filter { $0 == setting.name }.count)")
        }
        let declared = Set(Setting.all.map(\.name))
        for name in documented where !declared.contains(name) {
            Issue.record("\(name) is documented but not declared in Setting+Declaration.swift")
        }
    }

    @Test func theDocumentedDefaultIsTheDeclaredOne() throws {
        // Docs/configuration.md's tables are | Variable | Default | Meaning |.
        for row in try Self.rows("Docs/configuration.md") where row.cells.count == 3 {
            for name in row.names {
                let setting = try #require(Setting.named(name))
                #expect(row.cells[1] == setting.documentedDefault, "\(name): docs say \(row.cells[1])")
            }
        }
        // Docs/http.md's table says "default N" in its meaning.
        for row in try Self.rows("Docs/http.md") {
            for name in row.names {
                let setting = try #require(Setting.named(name))
                guard let value = setting.defaultValue else { continue }
                #expect(
                    row.cells.last?.contains("default \(value)") == true, "\(name): default \(value) not documented")
            }
        }
    }
}
