import CloudEmulator
import Foundation
import Testing

@Suite("Keystone v3 subset")
struct KeystoneTests {
    @Test("password auth by names returns 201, X-Subject-Token and a catalog of the emulator's own endpoints")
    func passwordByNames() async throws {
        try await withTestCloud { cloud in
            let body = """
                {"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"admin-secret"}}},
                 "scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}
                """
            let response = try await cloud.send("POST", "/v3/auth/tokens", json: body)
            #expect(response.status == 201)
            let token = try #require(response.header("X-Subject-Token"))
            #expect(token.count > 150)
            let json = try #require(response.json?["token"])
            #expect(json["project"]?["id"]?.string == cloud.adminProjectID)
            #expect(json["expires_at"]?.string?.hasSuffix(".000000Z") == true)
            let roles = json["roles"]?.array?.compactMap { $0["name"]?.string } ?? []
            #expect(Set(roles) == ["admin", "member", "reader"])
            let catalog = try #require(json["catalog"]?.array)
            let urls = catalog.reduce(into: [String: String]()) { map, service in
                map[service["type"]!.string!] = service["endpoints"]?.array?.first?["url"]?.string
            }
            #expect(urls["compute"] == cloud.running.computeURL)
            #expect(urls["volumev3"] == cloud.running.volumeURL(projectID: cloud.adminProjectID))
            #expect(urls["block-storage"] == cloud.running.volumeURL(projectID: cloud.adminProjectID))
            #expect(urls["identity"] == cloud.running.authURL)
        }
    }

    @Test("password auth by ids, default project, unscoped and nocatalog")
    func passwordVariants() async throws {
        try await withTestCloud { cloud in
            let userID = EmulatorSeed.userID("admin")
            let byIDs = """
                {"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"\(userID)","password":"admin-secret"}}},"scope":{"project":{"id":"\(cloud.tenantProjectID)"}}}}
                """
            let scoped = try await cloud.send("POST", "/v3/auth/tokens?nocatalog", json: byIDs)
            #expect(scoped.status == 201)
            #expect(scoped.json?["token"]?["project"]?["name"]?.string == "tenant")
            #expect(scoped.json?["token"]?["catalog"] == nil)
            let noScope = """
                {"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"\(userID)","password":"admin-secret"}}}}}
                """
            let defaulted = try await cloud.send("POST", "/v3/auth/tokens", json: noScope)
            #expect(defaulted.json?["token"]?["project"]?["name"]?.string == "admin")
            let unscoped = try await cloud.send(
                "POST", "/v3/auth/tokens",
                json: """
                    {"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"\(userID)","password":"admin-secret"}}},"scope":"unscoped"}}
                    """)
            #expect(unscoped.status == 201)
            #expect(unscoped.json?["token"]?["project"] == nil)
            #expect(unscoped.json?["token"]?["catalog"] == nil)
        }
    }

    @Test("application credential by id and by name + user; a scope is refused")
    func applicationCredentials() async throws {
        try await withTestCloud { cloud in
            let byName = """
                {"auth":{"identity":{"methods":["application_credential"],"application_credential":{"name":"backup-plugin","user":{"name":"backup-svc","domain":{"name":"Default"}},"secret":"app-secret"}}}}
                """
            let response = try await cloud.send("POST", "/v3/auth/tokens", json: byName)
            #expect(response.status == 201)
            let token = try #require(response.json?["token"])
            #expect(token["methods"] == .array([.string("application_credential")]))
            #expect(token["project"]?["id"]?.string == cloud.tenantProjectID)
            let credentialID = try #require(token["application_credential"]?["id"]?.string)
            #expect(token["application_credential"]?["restricted"] == .bool(true))
            let byID = """
                {"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"\(credentialID)","secret":"app-secret"}}}}
                """
            #expect(try await cloud.send("POST", "/v3/auth/tokens", json: byID).status == 201)
            let wrong = byID.replacingOccurrences(of: "app-secret", with: "nope")
            #expect(try await cloud.send("POST", "/v3/auth/tokens", json: wrong).status == 401)
            let scoped = """
                {"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"\(credentialID)","secret":"app-secret"}},"scope":{"project":{"id":"\(cloud.tenantProjectID)"}}}}
                """
            let refused = try await cloud.send("POST", "/v3/auth/tokens", json: scoped)
            #expect(refused.status == 401)
            #expect(refused.json?["error"]?["message"]?.string?.contains("cannot request a scope") == true)
        }
    }

    @Test("wrong password: 401 with Keystone's body and WWW-Authenticate; malformed: 400")
    func errors() async throws {
        try await withTestCloud { cloud in
            let body = """
                {"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"wrong"}}}}}
                """
            let response = try await cloud.send("POST", "/v3/auth/tokens", json: body)
            #expect(response.status == 401)
            #expect(response.header("WWW-Authenticate") == "Keystone uri=\"\(cloud.running.authURL)\"")
            #expect(
                response.json
                    == .object([
                        (
                            "error",
                            .object([
                                ("code", .int(401)), ("message", .string("The request you have made requires authentication.")),
                                ("title", .string("Unauthorized")),
                            ])
                        )
                    ]))
            let malformed = try await cloud.send("POST", "/v3/auth/tokens", json: #"{"auth":{"identity":{"methods":["password"]}}}"#)
            #expect(malformed.status == 400)
            #expect(malformed.json?["error"]?["title"]?.string == "Bad Request")
        }
    }

    @Test("validation: 200 with the token, 404 for unknown, revoked and expired subjects")
    func validation() async throws {
        // 10 s tokens: long enough for the checks before expiry even on a loaded machine.
        try await withTestCloud(tokenLifetime: 10) { cloud in
            let admin = try await cloud.token()
            let issued = ContinuousClock.now
            let subject = try await cloud.tenantToken()
            let valid = try await cloud.send("GET", "/v3/auth/tokens", token: admin, headers: [("X-Subject-Token", subject)])
            #expect(valid.status == 200)
            #expect(valid.header("X-Subject-Token") == subject)
            #expect(valid.json?["token"]?["user"]?["name"]?.string == "backup-svc")
            let unknown = try await cloud.send("GET", "/v3/auth/tokens", token: admin, headers: [("X-Subject-Token", "gAAAAAbogus")])
            #expect(unknown.status == 404)
            #expect(unknown.json?["error"]?["message"]?.string == "Could not recognize Fernet token")
            #expect(try await cloud.send("DELETE", "/v3/auth/tokens", token: admin, headers: [("X-Subject-Token", subject)]).status == 204)
            let revoked = try await cloud.send("GET", "/v3/auth/tokens", token: admin, headers: [("X-Subject-Token", subject)])
            #expect(revoked.json?["error"]?["message"]?.string == "Failed to validate token")
            try await Task.sleep(until: issued + .milliseconds(10_200))
            let expired = try await cloud.send("GET", cloud.volumePath("/volumes"), token: admin)
            #expect(expired.status == 401)
        }
    }

    @Test("version documents at / (300) and /v3")
    func versions() async throws {
        try await withTestCloud { cloud in
            let root = try await cloud.send("GET", "/")
            #expect(root.status == 300)
            #expect(root.json?["versions"]?["values"]?.array?.first?["id"]?.string == "v3.14")
            let v3 = try await cloud.send("GET", "/v3")
            #expect(v3.status == 200)
            #expect(v3.json?["version"]?["status"]?.string == "stable")
        }
    }
}
