import Crypto
import Foundation
import ShoalHTTP

/// An object store on S3 or anything that speaks its API (R2, MinIO, `moto_server`): path-style
/// requests (`endpoint/bucket/key`) signed with AWS signature version 4, over the process's HTTP
/// client with a deadline on every call.
public struct S3ObjectStore: ObjectStore {
    /// Where and as whom to call.
    public struct Configuration: Sendable {
        /// The service's base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
        /// `http://127.0.0.1:5000`.
        public var endpoint: URL
        /// The bucket.
        public var bucket: String
        /// The region the signature names (`us-east-1` when the service does not care, `auto` for R2).
        public var region: String
        /// The access key id.
        public var accessKey: String
        /// The secret access key (never logged or shown).
        public var secretKey: String
        /// Prepended to every key, e.g. `shoal/production/` (empty: none).
        public var keyPrefix: String
        /// How long one call may take.
        public var timeout: Duration

        /// A configuration; `keyPrefix` should end with `/` when set.
        public init(
            endpoint: URL, bucket: String, region: String = "us-east-1", accessKey: String, secretKey: String,
            keyPrefix: String = "", timeout: Duration = .seconds(60)
        ) {
            self.endpoint = endpoint
            self.bucket = bucket
            self.region = region
            self.accessKey = accessKey
            self.secretKey = secretKey
            self.keyPrefix = keyPrefix
            self.timeout = timeout
        }
    }

    /// The configuration in force.
    public let configuration: Configuration

    /// A store over `configuration`; checks the bucket name and prefix.
    public init(_ configuration: Configuration) throws {
        let bucket = configuration.bucket
        guard (3...63).contains(bucket.count),
            bucket.utf8.allSatisfy({
                ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E
            })
        else {
            throw ObjectStoreError(
                "'\(bucket)' is not an S3 bucket name (3 to 63 lowercase letters, digits, '-' and '.')")
        }
        if !configuration.keyPrefix.isEmpty { try ObjectStoreError.check(configuration.keyPrefix + "x") }
        guard let scheme = configuration.endpoint.scheme, scheme == "http" || scheme == "https",
            configuration.endpoint.host != nil
        else {
            throw ObjectStoreError("\(configuration.endpoint) is not an http:// or https:// endpoint")
        }
        self.configuration = configuration
    }

    /// The endpoint and bucket.
    public var location: String { "\(configuration.endpoint.absoluteString)/\(configuration.bucket)" }

    /// Creates the bucket; a bucket this account already owns is fine.
    public func createBucket() async throws {
        let answer = try await send("PUT", path: "/\(configuration.bucket)", query: [], body: [])
        if answer.isSuccess { return }
        if answer.status == 409, String(decoding: answer.body, as: UTF8.self).contains("BucketAlreadyOwnedByYou") {
            return
        }
        throw failure("creating bucket \(configuration.bucket)", answer)
    }

    /// `PUT /bucket/key`.
    public func put(_ key: String, _ bytes: [UInt8]) async throws {
        try ObjectStoreError.check(key)
        let answer = try await send("PUT", path: objectPath(key), query: [], body: bytes)
        guard answer.isSuccess else { throw failure("storing \(key)", answer) }
    }

    /// `GET /bucket/key`; 404 is nil.
    public func get(_ key: String) async throws -> [UInt8]? {
        try ObjectStoreError.check(key)
        let answer = try await send("GET", path: objectPath(key), query: [], body: nil)
        if answer.status == 404 { return nil }
        guard answer.isSuccess else { throw failure("reading \(key)", answer) }
        return [UInt8](answer.body)
    }

    /// `ListObjectsV2`, page by page.
    public func list(prefix: String) async throws -> [String] {
        var keys: [String] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", configuration.keyPrefix + prefix)]
            if let token { query.append(("continuation-token", token)) }
            let answer = try await send("GET", path: "/\(configuration.bucket)", query: query, body: nil)
            guard answer.isSuccess else { throw failure("listing \(prefix)", answer) }
            let text = String(decoding: answer.body, as: UTF8.self)
            for key in Self.elements("Key", in: text) where key.hasPrefix(configuration.keyPrefix) {
                keys.append(String(key.dropFirst(configuration.keyPrefix.count)))
            }
            token =
                Self.elements("IsTruncated", in: text).first == "true"
                ? Self.elements("NextContinuationToken", in: text).first : nil
        } while token != nil
        return keys.sorted()
    }

    /// `DELETE /bucket/key`, one by one.
    public func delete(_ keys: [String]) async throws {
        for key in keys {
            try ObjectStoreError.check(key)
            let answer = try await send("DELETE", path: objectPath(key), query: [], body: nil)
            guard answer.isSuccess || answer.status == 404 else { throw failure("removing \(key)", answer) }
        }
    }

    private func objectPath(_ key: String) -> String {
        "/\(configuration.bucket)/\(configuration.keyPrefix)\(key)"
    }

    private func failure(_ what: String, _ answer: HTTPAnswer) -> ObjectStoreError {
        let text = String(decoding: answer.body.prefix(4096), as: UTF8.self)
        let code = Self.elements("Code", in: text).first ?? "HTTP \(answer.status)"
        let message = Self.elements("Message", in: text).first.map { ": \($0)" } ?? ""
        return ObjectStoreError(
            "\(location) refused \(what) (\(code)\(message)); check the bucket, the region and the credentials")
    }

    /// Sends one signed request.
    func send(_ method: String, path: String, query: [(String, String)], body: [UInt8]?) async throws -> HTTPAnswer {
        let now = Date()
        let signed = SignatureV4.sign(
            method: method, endpoint: configuration.endpoint, path: path, query: query, body: body ?? [],
            region: configuration.region, accessKey: configuration.accessKey, secretKey: configuration.secretKey,
            date: now)
        guard let url = URL(string: signed.url) else {
            throw ObjectStoreError("\(signed.url) is not a URL; check the endpoint")
        }
        var call = HTTPCall(
            method, url, body: body.map { Data($0) }, contentType: "application/octet-stream",
            timeout: configuration.timeout, maxBodyBytes: 1 << 31)
        call.headers.append(contentsOf: signed.headers)
        return try await OutboundHTTP.send(call)
    }

    /// The texts of every `<name>…</name>` element, unescaped (enough for S3's flat answers).
    static func elements(_ name: String, in text: String) -> [String] {
        var values: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "<\(name)>"),
            let close = rest.range(of: "</\(name)>", range: open.upperBound..<rest.endIndex)
        {
            values.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return values
    }

    private static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// AWS signature version 4 for S3 (`UNSIGNED-PAYLOAD` is never used: every body is hashed).
enum SignatureV4 {
    struct Signed {
        var url: String
        var headers: [(name: String, value: String)]
    }

    static func sign(
        method: String, endpoint: URL, path: String, query: [(String, String)], body: [UInt8], region: String,
        accessKey: String, secretKey: String, date: Date
    ) -> Signed {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stamp = formatter.string(from: date)
        let day = String(stamp.prefix(8))
        let host = endpoint.port.map { "\(endpoint.host!):\($0)" } ?? endpoint.host!
        let basePath = endpoint.path.hasSuffix("/") ? String(endpoint.path.dropLast()) : endpoint.path
        let canonicalPath = encode(basePath + path, keepingSlash: true)
        let encodedQuery: [(name: String, value: String)] = query.map { pair in
            (name: encode(pair.0, keepingSlash: false), value: encode(pair.1, keepingSlash: false))
        }
        let sortedQuery = encodedQuery.sorted { left, right in
            left.name == right.name ? left.value < right.value : left.name < right.name
        }
        let canonicalQuery = sortedQuery.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let payloadHash = hex(SHA256.hash(data: body))
        let headers = [("host", host), ("x-amz-content-sha256", payloadHash), ("x-amz-date", stamp)]
        let signedHeaders = headers.map(\.0).joined(separator: ";")
        let canonicalRequest = [
            method, canonicalPath, canonicalQuery, headers.map { "\($0.0):\($0.1)\n" }.joined(), signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/s3/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", stamp, scope, hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        var key = SymmetricKey(data: Array("AWS4\(secretKey)".utf8))
        for part in [day, region, "s3", "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        var url = "\(endpoint.scheme!)://\(host)\(canonicalPath)"
        if !canonicalQuery.isEmpty { url += "?" + canonicalQuery }
        return Signed(
            url: url,
            headers: [
                ("Host", host), ("x-amz-content-sha256", payloadHash), ("x-amz-date", stamp),
                ("Authorization", authorization),
            ])
    }

    /// RFC 3986 percent-encoding of everything but unreserved characters (and `/` in paths).
    static func encode(_ text: String, keepingSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            let unreserved =
                (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E || (keepingSlash && byte == 0x2F)
            if unreserved {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
