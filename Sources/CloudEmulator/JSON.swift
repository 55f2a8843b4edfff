import Foundation

/// A JSON value whose objects keep their key order, so the emulator's bodies read in the same order as
/// the real services' (the recorded bodies under `reference/`), and tests can inspect request bodies.
public enum JSON: Sendable, Equatable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// An integer.
    case int(Int)
    /// A non-integral number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSON])
    /// An object, keys in order.
    case object([(String, JSON)])

    /// Equality compares object keys as sets of pairs, in order.
    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The string, or nil.
    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The integer (also from an integral double or a numeric string), or nil.
    public var int: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d: return Int(d)
        case .string(let s): return Int(s)
        default: return nil
        }
    }
    /// The boolean, or nil. Strings read as OpenStack reads them (`true`, `1`, `yes`, `on`, ...).
    public var bool: Bool? {
        switch self {
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .string(let s): return ["true", "1", "yes", "on", "t", "y"].contains(s.lowercased()) ? true
            : ["false", "0", "no", "off", "f", "n"].contains(s.lowercased()) ? false : nil
        default: return nil
        }
    }
    /// The array, or nil.
    public var array: [JSON]? { if case .array(let a) = self { return a } else { return nil } }
    /// The object members, or nil.
    public var members: [(String, JSON)]? { if case .object(let m) = self { return m } else { return nil } }
    /// Whether this is `null`.
    public var isNull: Bool { if case .null = self { return true } else { return false } }

    /// A string or `null`.
    static func optional(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }

    /// A string-to-string map as an object, keys sorted.
    static func stringMap(_ map: [String: String]) -> JSON {
        .object(map.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }

    /// The object's members as a string map (non-string values are skipped), or nil if not an object.
    var stringMap: [String: String]? {
        guard let members else { return nil }
        var map: [String: String] = [:]
        for (key, value) in members { if let s = value.string { map[key] = s } }
        return map
    }

    /// Parses UTF-8 JSON text.
    public static func parse(_ bytes: some Collection<UInt8>) throws -> JSON {
        try JSONDecoder().decode(JSON.self, from: Data(bytes))
    }

    /// The compact UTF-8 text of this value.
    public var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .string(let s): JSON.escape(s, into: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out += "," }
                JSON.escape(key, into: &out)
                out += ":"
                value.write(into: &out)
            }
            out += "}"
        }
    }

    private static func escape(_ string: String, into out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension JSON: Decodable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes any JSON value (object keys sorted, since the decoder does not keep their order).
    public init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            self = .object(try object.allKeys.map(\.stringValue).sorted().map {
                ($0, try object.decode(JSON.self, forKey: Key(stringValue: $0)))
            })
        } else if var array = try? decoder.unkeyedContainer() {
            var items: [JSON] = []
            while !array.isAtEnd { items.append(try array.decode(JSON.self)) }
            self = .array(items)
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                self = .null
            } else if let b = try? single.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? single.decode(Int.self) {
                self = .int(i)
            } else if let d = try? single.decode(Double.self) {
                self = .double(d)
            } else {
                self = .string(try single.decode(String.self))
            }
        }
    }
}
