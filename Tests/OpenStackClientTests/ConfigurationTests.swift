import Foundation
import Testing
import TestSupport
import OpenStackClient

@Suite("clouds.yaml, secure.yaml and OS_* variables")
struct ConfigurationTests {
    let cloudsYAML = """
        clouds:
          prod:
            auth:
              auth_url: https://keystone.example:5000
              username: backup
              project_name: ops
              user_domain_name: Corp
              project_domain_id: default
            region_name: RegionOne
            interface: internal
            block_storage_endpoint_override: https://cinder.example/v3/p
          appcred:
            auth_type: v3applicationcredential
            auth:
              auth_url: https://keystone.example/v3
              application_credential_id: abc123
          broken:
            auth:
              username: x
        """
    let secureYAML = """
        clouds:
          prod:
            auth:
              password: s3cret-from-secure-yaml
          appcred:
            auth:
              application_credential_secret: appsecret
        """

    private func withFiles(_ body: (String) throws -> Void) throws {
        try withTemporaryDirectory { directory in
            try cloudsYAML.write(toFile: "\(directory)/clouds.yaml", atomically: true, encoding: .utf8)
            try secureYAML.write(toFile: "\(directory)/secure.yaml", atomically: true, encoding: .utf8)
            try body(directory)
        }
    }

    @Test("a cloud from clouds.yaml with its password from secure.yaml")
    func cloudWithSecure() throws {
        try withFiles { directory in
            let loader = CloudConfigurationLoader(environment: ["OS_CLOUD": "prod"], searchDirectories: [directory])
            let configuration = try loader.load()
            #expect(configuration.identityURL == "https://keystone.example:5000/v3")
            #expect(configuration.regionName == "RegionOne")
            #expect(configuration.interfaces == [.internal])
            #expect(configuration.endpointOverrides["block-storage"] == "https://cinder.example/v3/p")
            guard case .password(let user, let password, let project) = configuration.credentials else {
                Issue.record("expected password credentials")
                return
            }
            #expect(user == UserReference(name: "backup", domainName: "Corp"))
            #expect(password.reveal() == "s3cret-from-secure-yaml")
            #expect(project == ProjectReference(name: "ops", domainID: "default"))
            #expect(configuration.origin.contains("clouds.yaml") && configuration.origin.contains("secure.yaml"))
        }
    }

    @Test("an application credential by id")
    func applicationCredential() throws {
        try withFiles { directory in
            let configuration = try CloudConfigurationLoader(environment: [:], searchDirectories: [directory])
                .load(overrides: CloudConfigurationOverrides(cloud: "appcred"))
            guard case .applicationCredential(.id("abc123"), let secret) = configuration.credentials else {
                Issue.record("expected an application credential by id")
                return
            }
            #expect(secret.reveal() == "appsecret")
        }
    }

    @Test("OS_* variables override the file, flags override both")
    func precedence() throws {
        try withFiles { directory in
            let loader = CloudConfigurationLoader(
                environment: ["OS_CLOUD": "prod", "OS_REGION_NAME": "RegionTwo", "OS_PASSWORD": "from-env", "OS_INSECURE": "true"],
                searchDirectories: [directory])
            let configuration = try loader.load(overrides: CloudConfigurationOverrides(regionName: "RegionThree"))
            #expect(configuration.regionName == "RegionThree")
            #expect(!configuration.verifyTLS)
            guard case .password(_, let password, _) = configuration.credentials else { return }
            #expect(password.reveal() == "from-env")
        }
    }

    @Test("environment only, no file")
    func environmentOnly() throws {
        let configuration = try CloudConfigurationLoader(
            environment: [
                "OS_AUTH_URL": "http://127.0.0.1:5000/v3/", "OS_USER_ID": "uid", "OS_PASSWORD": "p", "OS_PROJECT_ID": "pid",
                "OS_INTERFACE": "publicURL",
            ], searchDirectories: []
        ).load()
        #expect(configuration.identityURL == "http://127.0.0.1:5000/v3")
        #expect(configuration.interfaces == [.public])
        #expect(configuration.origin == "environment")
    }

    @Test("errors name the key and the file, and never the secret", arguments: [
        (["OS_CLOUD": "nope"], "no cloud named 'nope'"),
        (["OS_CLOUD": "broken"], "no Keystone URL configured"),
        (["OS_AUTH_URL": "keystone:5000", "OS_USERNAME": "u", "OS_PASSWORD": "pw-secret"], "is not an http(s) URL"),
        (["OS_AUTH_URL": "http://k/v3", "OS_USERNAME": "u"], "no password configured"),
        (["OS_AUTH_URL": "http://k/v3", "OS_APPLICATION_CREDENTIAL_ID": "a"], "needs its secret"),
        (["OS_AUTH_URL": "http://k/v3", "OS_USERNAME": "u", "OS_PASSWORD": "pw-secret", "OS_INTERFACE": "private"], "unknown interface"),
        (["OS_AUTH_URL": "http://k/v3", "OS_USERNAME": "u", "OS_PASSWORD": "pw-secret", "OS_CACERT": "/nonexistent.pem"], "cannot be read"),
    ])
    func errors(environment: [String: String], message: String) throws {
        try withFiles { directory in
            let error = #expect(throws: ConfigurationError.self) {
                try CloudConfigurationLoader(environment: environment, searchDirectories: [directory]).load()
            }
            let line = error?.description ?? ""
            #expect(line.contains(message), "\(line)")
            #expect(!line.contains("pw-secret"))
            if environment["OS_CLOUD"] == "nope" { #expect(line.contains("\(directory)/clouds.yaml")) }
        }
    }

    @Test("a clouds.yaml that is not YAML is named")
    func badYAML() throws {
        try withTemporaryDirectory { directory in
            try "clouds: [unclosed".write(toFile: "\(directory)/clouds.yaml", atomically: true, encoding: .utf8)
            let error = #expect(throws: ConfigurationError.self) {
                try CloudConfigurationLoader(environment: ["OS_CLOUD": "x"], searchDirectories: [directory]).load()
            }
            #expect(error?.description.hasPrefix("\(directory)/clouds.yaml: is not valid YAML") == true)
        }
    }
}
