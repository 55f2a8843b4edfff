import Foundation

/// `limit`/`marker`/`offset` paging as Nova and Cinder do it: a `next` link whenever the page is full
/// (so the last page may be empty), `limit` clamped to 1000.
struct Page<Item> {
    var items: [Item]
    /// The `<key>_links` value, when a next page may exist.
    var links: JSON?

    static var maxLimit: Int { 1000 }

    /// Cuts `all` (already filtered and sorted) into the page the request asks for.
    /// - Parameters:
    ///   - notFound: the rejection for an unknown marker.
    ///   - linkBase: the absolute URL of the collection (query appended).
    static func make(
        _ all: [Item], id: (Item) -> String, request: EmulatorRequest, linkBase: String,
        notFound: (String) -> ServiceRejection
    ) throws(ServiceRejection) -> Page<Item> {
        var start = 0
        if let marker = request.queryValue("marker") {
            guard let index = all.firstIndex(where: { id($0) == marker }) else { throw notFound(marker) }
            start = index + 1
        }
        if let offsetText = request.queryValue("offset") {
            guard let offset = Int(offsetText), offset >= 0 else {
                throw ServiceRejection(400, "Invalid input received: offset must be a non-negative integer")
            }
            start += offset
        }
        var limit = maxLimit
        if let limitText = request.queryValue("limit") {
            guard let value = Int(limitText), value >= 0 else {
                throw ServiceRejection(400, "limit param must be an integer")
            }
            limit = min(value, maxLimit)
        }
        let items = Array(all.dropFirst(start).prefix(limit))
        var links: JSON?
        if limit > 0, items.count == limit, let last = items.last {
            var query = request.query.filter { $0.0 != "marker" && $0.0 != "offset" }
            if !query.contains(where: { $0.0 == "limit" }) { query.append(("limit", String(limit))) }
            query.append(("marker", id(last)))
            let text = query.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
            links = .array([.object([("rel", .string("next")), ("href", .string(linkBase + "?" + text))])])
        }
        return Page(items: items, links: links)
    }

    private static func percentEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
