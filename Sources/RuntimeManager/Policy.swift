import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who may do what in the runtime manager, read from a JSON policy file.
///
/// The format is documented in docs/POLICY.md. In short: a list of rules; a
/// rule matches a client by certificate SHA-256 fingerprint and/or subject
/// common name (all given matchers must match) and grants path prefixes for
/// `write`, `append` and `read`, and optionally `shutdown`. Grants of all
/// matching rules add up; nothing is allowed unless some rule grants it.
///
/// Decoding is strict (unknown keys are errors) because a typo in a security
/// policy ("raed") must not silently deny or grant.
public struct Policy: Sendable, Equatable {
    /// One rule of the policy.
    public struct Rule: Sendable, Equatable {
        /// Free text used in logs; optional.
        public var name: String?
        /// Required subject common name, if any.
        public var commonName: String?
        /// Required certificate fingerprint (normalized lowercase hex), if any.
        public var sha256Fingerprint: String?
        public var write: [String]
        public var append: [String]
        public var read: [String]
        public var shutdown: Bool

        public init(
            name: String? = nil, commonName: String? = nil, sha256Fingerprint: String? = nil,
            write: [String] = [], append: [String] = [], read: [String] = [], shutdown: Bool = false
        ) {
            self.name = name
            self.commonName = commonName
            self.sha256Fingerprint = sha256Fingerprint.map(Policy.normalizedFingerprint)
            self.write = write
            self.append = append
            self.read = read
            self.shutdown = shutdown
        }

        /// Whether this rule applies to a client.
        public func matches(_ identity: ClientIdentity) -> Bool {
            if let cn = self.commonName, cn != identity.commonName { return false }
            if let fp = self.sha256Fingerprint, fp != identity.sha256Fingerprint { return false }
            return true
        }
    }

    /// What a client asks to do; file actions carry the file name.
    public enum Action: Sendable, Equatable, CustomStringConvertible {
        case write(String)
        case append(String)
        case read(String)
        case shutdown

        public var description: String {
            switch self {
            case .write(let path): return "write \"\(path)\""
            case .append(let path): return "append to \"\(path)\""
            case .read(let path): return "read \"\(path)\""
            case .shutdown: return "shut down the runtime manager"
            }
        }
    }

    public var rules: [Rule]
    /// SHA-256 of the policy file's bytes, as answered to request_policy_hash,
    /// so a client can check which policy it is talking to.
    public var sha256: [UInt8]

    public init(rules: [Rule], sha256: [UInt8] = []) {
        self.rules = rules
        self.sha256 = sha256
    }

    /// Whether some rule grants `action` to `identity`.
    public func permits(_ action: Action, for identity: ClientIdentity) -> Bool {
        self.rules.contains { rule in
            guard rule.matches(identity) else { return false }
            switch action {
            case .write(let path): return rule.write.contains { path.hasPrefix($0) }
            case .append(let path): return rule.append.contains { path.hasPrefix($0) }
            case .read(let path): return rule.read.contains { path.hasPrefix($0) }
            case .shutdown: return rule.shutdown
            }
        }
    }

    /// Lowercase hex without separators: accepts `AB:CD:…` as printed by
    /// `openssl x509 -fingerprint -sha256` as well as plain hex.
    public static func normalizedFingerprint(_ text: String) -> String {
        text.filter { $0 != ":" }.lowercased()
    }
}

// MARK: - Loading

extension Policy {
    /// Parses a policy from the bytes of a policy file; its hash is the SHA-256 of exactly these bytes.
    public init(jsonBytes: [UInt8]) throws {
        let file: PolicyFile
        do {
            file = try JSONDecoder().decode(PolicyFile.self, from: Data(jsonBytes))
        } catch let error as PolicyError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            throw PolicyError.invalid(Self.describe(context, fallback: "not valid JSON"))
        } catch let DecodingError.keyNotFound(key, context) {
            throw PolicyError.invalid("missing key \"\(key.stringValue)\" at \(Self.path(context.codingPath))")
        } catch let DecodingError.typeMismatch(type, context) {
            throw PolicyError.invalid("expected \(Self.typeName(type)) at \(Self.path(context.codingPath))")
        } catch let DecodingError.valueNotFound(type, context) {
            throw PolicyError.invalid("expected \(Self.typeName(type)) at \(Self.path(context.codingPath))")
        }
        self.init(rules: file.rules, sha256: Array(SHA256.hash(data: jsonBytes)))
    }

    /// Reads and parses a policy file.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyError.unreadable(path: path)
        }
        do {
            try self.init(jsonBytes: Array(data))
        } catch let PolicyError.invalid(reason) {
            throw PolicyError.invalidFile(path: path, reason: reason)
        }
    }

    private static func path(_ codingPath: [CodingKey]) -> String {
        guard !codingPath.isEmpty else { return "the top level" }
        return codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }

    private static func describe(_ context: DecodingError.Context, fallback: String) -> String {
        context.codingPath.isEmpty ? fallback : "\(context.debugDescription) at \(self.path(context.codingPath))"
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [String].Type, is [Any].Type: return "a list of path prefixes (strings)"
        default: return "\(type)"
        }
    }
}

/// Why a policy file was refused; says where the problem is.
public enum PolicyError: Error, Equatable, CustomStringConvertible, Sendable {
    case unreadable(path: String)
    case invalid(String)
    case invalidFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path):
            return "cannot read policy file \(path); check the --policy path"
        case .invalid(let reason):
            return "invalid policy: \(reason) (format: docs/POLICY.md)"
        case .invalidFile(let path, let reason):
            return "invalid policy file \(path): \(reason) (format: docs/POLICY.md)"
        }
    }
}

/// A JSON object key by name, to find keys the format does not know.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private func rejectUnknownKeys(in decoder: Decoder, known: Set<String>, what: String) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    for key in container.allKeys where !known.contains(key.stringValue) {
        let path = (decoder.codingPath + [key]).map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        throw PolicyError.invalid(
            "unknown key \"\(key.stringValue)\" at \(path); \(what) may have: \(known.sorted().joined(separator: ", "))"
        )
    }
}

/// The file format, decoded strictly.
private struct PolicyFile: Decodable {
    var rules: [Policy.Rule]

    enum CodingKeys: String, CodingKey, CaseIterable { case rules }

    init(from decoder: Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: Set(CodingKeys.allCases.map(\.rawValue)), what: "the policy")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.rules = try container.decode([Policy.Rule].self, forKey: .rules)
    }
}

extension Policy.Rule: Decodable {
    private enum CodingKeys: String, CodingKey, CaseIterable {
        case name, match, write, append, read, shutdown
    }

    private enum MatchKeys: String, CodingKey, CaseIterable {
        case commonName = "common_name"
        case sha256
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: Set(CodingKeys.allCases.map(\.rawValue)), what: "a rule")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let matchDecoder = try container.superDecoder(forKey: .match)
        try rejectUnknownKeys(in: matchDecoder, known: Set(MatchKeys.allCases.map(\.rawValue)), what: "match")
        let match = try matchDecoder.container(keyedBy: MatchKeys.self)
        let commonName = try match.decodeIfPresent(String.self, forKey: .commonName)
        let fingerprint = try match.decodeIfPresent(String.self, forKey: .sha256)
        let ruleName = decoder.codingPath.map { $0.intValue.map { "rules[\($0)]" } ?? $0.stringValue }.last ?? "a rule"
        guard commonName != nil || fingerprint != nil else {
            // A rule without a matcher would apply to every certificate the CA
            // ever issued; make that impossible to write by accident.
            throw PolicyError.invalid("\(ruleName) has an empty match; give \"common_name\" and/or \"sha256\"")
        }
        if let fingerprint {
            let hex = Policy.normalizedFingerprint(fingerprint)
            guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
                throw PolicyError.invalid(
                    "\(ruleName) match.sha256 is not a SHA-256 fingerprint (64 hex digits, colons allowed): \"\(fingerprint)\""
                )
            }
        }
        self.init(
            name: try container.decodeIfPresent(String.self, forKey: .name),
            commonName: commonName,
            sha256Fingerprint: fingerprint,
            write: try container.decodeIfPresent([String].self, forKey: .write) ?? [],
            append: try container.decodeIfPresent([String].self, forKey: .append) ?? [],
            read: try container.decodeIfPresent([String].self, forKey: .read) ?? [],
            shutdown: try container.decodeIfPresent(Bool.self, forKey: .shutdown) ?? false
        )
    }
}
