import Foundation
import Logging
import Testing
import TestSupport
@testable import OpenStackClient

/// The real Keystone of this test run, with the client configurations the tests use.
typealias RealKeystone = RealKeystoneEnvironment

extension RealKeystoneEnvironment {
    func passwordConfiguration(password: String? = nil) -> CloudConfiguration {
        CloudConfiguration(
            authURL: self["KEYSTONE_URL"],
            credentials: .password(
                user: UserReference(name: self["KEYSTONE_USER"], domainName: self["KEYSTONE_DOMAIN"]),
                password: Secret(password ?? self["KEYSTONE_PASSWORD"]),
                project: ProjectReference(name: self["KEYSTONE_PROJECT"], domainName: self["KEYSTONE_DOMAIN"])))
    }

    func applicationCredentialConfiguration(secret: String? = nil) -> CloudConfiguration {
        CloudConfiguration(
            authURL: self["KEYSTONE_URL"],
            credentials: .applicationCredential(
                .id(self["KEYSTONE_APP_CRED_ID"]), secret: Secret(secret ?? self["KEYSTONE_APP_CRED_SECRET"])))
    }
}
