// swift-tools-version:5.9
//
// The Swift package of fieldreport: the uniffi-generated Swift API
// (Sources/FieldReport, do not edit) over the Rust static library, shipped
// as an XCFramework binary target.
//
// FieldReportFFI.xcframework is not committed: build it on a Mac with
// ./build-xcframework.sh (it holds libfieldreport.a for iOS, the iOS
// simulator and macOS, plus the C header and module map from
// Sources/FieldReportFFI/include). For a release, upload the zipped
// XCFramework and replace the path with
//     .binaryTarget(name: "FieldReportFFI", url: "<zip url>", checksum: "<swift package compute-checksum>")
//
// Not built or tested on the project's Linux machines (no Swift toolchain
// there): see README.md.
import PackageDescription

let package = Package(
    name: "FieldReport",
    platforms: [
        .iOS(.v13),
        .macOS(.v10_15),
    ],
    products: [
        .library(name: "FieldReport", targets: ["FieldReport"]),
    ],
    targets: [
        // The C side: libfieldreport.a with FieldReportFFI.h and a module map
        // declaring `module FieldReportFFI`, which FieldReport.swift imports.
        .binaryTarget(
            name: "FieldReportFFI",
            path: "FieldReportFFI.xcframework"
        ),
        .target(
            name: "FieldReport",
            dependencies: ["FieldReportFFI"],
            path: "Sources/FieldReport"
        ),
        // Runs against a sandbox: FIELDREPORT_SANDBOX_URL=http://127.0.0.1:8480/api/v1
        // (start one with `cargo run --features cli -- sandbox --port 8480`).
        .testTarget(
            name: "FieldReportTests",
            dependencies: ["FieldReport"],
            path: "Tests/FieldReportTests"
        ),
    ]
)
